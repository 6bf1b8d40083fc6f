"""Stream watchers: one venue's websocket feed kept alive, and what its batches become in Redis.

A :class:`StreamWatcher` runs one feed of a :class:`watchers.venues.streams.StreamClient`: it
waits for batches, hands them to a sink, and reconnects with capped exponential backoff and
jitter when the connection fails or stalls (no frame, not even a pong, for ``stall_after_s``;
ccxt's own keepalive pings every ``ping_interval_s``). Its state, message rate, last message and
reconnects go to Redis for ``/status``. While it is live it *owns* its metric for the venue (or,
for a per-symbol stream, those symbols): the market watcher's poll leaves that alone, and takes
over again when the stream goes down.

Sinks: :class:`LiquidationSink` adds events once each (replays after a reconnect add nothing;
events older than ``max_event_age_s`` when they arrive, the burst some venues send on connect,
are dropped), recomputes the venue's rolling windows from Redis and evaluates rules on them;
:class:`TickSink` upserts funding or basis samples, coalesced: an instrument is written only when
its rate or price moved beyond a tolerance, or ``refresh_s`` after its last write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.liquidations import LiqEvent, LiquidationStore, event_problem
from core.metrics.base import Metric
from core.store import MarketStore
from core.streams import StreamHealthStore
from watchers.runner import backoff_delay

log = logging.getLogger(__name__)

Evaluate = Callable[..., Awaitable[object]]  # AlertService.on_samples(metric, venue, samples, replace=False)


def _now_ms() -> int:
    return int(time.time() * 1000)


class StreamStalled(Exception):
    """No frame arrived for longer than the stall limit."""


class StreamResubscribe(Exception):
    """The contracts to stream changed (a listing, a delisting, an expiry): subscribe afresh, no failure."""


class StreamStandby(Exception):
    """This process lost the venue's lease: the stream stops here and another process streams."""


class FeedClient(Protocol):
    venue: str

    def feeds(self) -> dict[str, Callable[[], Awaitable[list[Any]]]]: ...

    def last_message_ms(self) -> int | None: ...

    def covered(self, feed: str) -> frozenset[str] | None: ...

    async def outdated(self, feed: str) -> bool: ...

    async def reset(self) -> None: ...


class Sink(Protocol):
    metric: str

    async def on_batch(self, batch: list[Any]) -> None: ...

    async def tick(self) -> None: ...

    def restart(self) -> None:
        """The stream (re)connected: what it last wrote may have been overwritten by the poll meanwhile."""


@dataclass(frozen=True, slots=True)
class StreamConfig:
    stall_after_s: float = 30.0
    reconnect_base_s: float = 1.0
    max_backoff_s: float = 60.0
    publish_every_s: float = 2.0  # health to Redis at most this often (and on every state change)
    resubscribe_check_s: float = 60.0  # this often: do the contracts to stream still match the subscription?


class StreamWatcher:
    """Keeps one feed of one venue connected and hands its batches to a sink."""

    def __init__(
        self,
        client: FeedClient,
        feed: str,
        sink: Sink,
        health: StreamHealthStore,
        config: StreamConfig,
        *,
        clock_ms: Callable[[], int] = _now_ms,
        rng: random.Random | None = None,
        allowed: Callable[[], bool] = lambda: True,
    ) -> None:
        self.client = client
        # whether this process may stream now (data replicas: the holder of the venue's poll lease), so a
        # standby's stream never writes beside the active process's poll
        self.allowed = allowed
        self.feed = feed
        self.sink = sink
        self.health = health
        self.config = config
        self.clock_ms = clock_ms
        self.rng = rng or random.Random()
        self.name = f"{client.venue}:{feed}"
        self.state = "connecting"
        self.messages = 0
        self.reconnects = 0
        self.last_message_ms: int | None = None
        self.since_ms: int | None = None
        self.last_error: str | None = None
        self._published_ms = 0
        self._published_messages = 0
        self._delivered = False  # this connection delivered a batch

    def owns(self, metric: str) -> bool | frozenset[str]:
        """While the stream is live and fresh, what of ``metric`` it feeds: True for all of the venue's
        instruments, or the symbols it streams; the poll then leaves those alone. False otherwise."""
        if metric != self.sink.metric or self.state != "live" or self.last_message_ms is None:
            return False
        if self.clock_ms() - self.last_message_ms > self.config.stall_after_s * 1000:
            return False
        covered = self.client.covered(self.feed)
        return True if covered is None else covered

    async def run(self, *, stop: asyncio.Event) -> None:
        """Until ``stop``: connect, consume, and on any failure or stall reconnect after a backoff."""
        failures = 0
        while not stop.is_set():
            if not self.allowed():
                due = self.clock_ms() - self._published_ms >= self.config.publish_every_s * 1000
                if self.state != "standby" or due:
                    await self._set_state("standby")
                try:
                    await asyncio.wait_for(stop.wait(), timeout=max(0.05, min(1.0, self.config.stall_after_s / 4)))
                except TimeoutError:
                    pass
                continue
            try:
                await self._session(stop)
            except asyncio.CancelledError:
                raise
            except StreamStandby:
                log.info("stream %s: standing by (another process streams this venue)", self.name)
                await self.client.reset()
                continue
            except StreamResubscribe:
                log.info("stream %s: the contracts to stream changed; subscribing afresh", self.name)
                await self.client.reset()
                continue
            except Exception as e:  # a stream must survive anything the venue or the network does
                # a connection that delivered data was healthy: its loss starts the backoff afresh
                failures = 1 if self._delivered else failures + 1
                self._delivered = False
                self.reconnects += 1
                self.last_error = f"{type(e).__name__}: {e}"[:300]
                delay = backoff_delay(failures - 1, self.config.reconnect_base_s, self.config.max_backoff_s, self.rng)
                log.warning("stream %s: %s; reconnect %d in %.1fs", self.name, self.last_error, failures, delay)
                await self._set_state("reconnecting")
                await self.client.reset()
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
                continue
            else:
                break
        await self._set_state("stopped")

    async def _session(self, stop: asyncio.Event) -> None:
        """One connection's life: returns when ``stop`` is set, raises when it fails or stalls."""
        await self._set_state("connecting")
        feed = self.client.feeds()[self.feed]
        started = self.clock_ms()
        checked_ms = started
        check_s = max(0.05, min(1.0, self.config.stall_after_s / 4))
        stop_task: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        task: asyncio.Future[Any] | None = None
        try:
            while not stop.is_set():
                if task is None:
                    task = asyncio.ensure_future(feed())
                await asyncio.wait({task, stop_task}, timeout=check_s, return_when=asyncio.FIRST_COMPLETED)
                task_done = task.done()
                if task_done:
                    batch = task.result()  # raises the feed's failure
                    task = None
                    await self._on_batch(batch)
                if not self.allowed():
                    raise StreamStandby("another process holds this venue's lease")
                if not task_done and not stop.is_set():
                    last = self.client.last_message_ms() or started
                    if self.clock_ms() - last > self.config.stall_after_s * 1000:
                        raise StreamStalled(f"no frame for {(self.clock_ms() - last) / 1000:.1f}s")
                if self.clock_ms() - checked_ms >= self.config.resubscribe_check_s * 1000:
                    checked_ms = self.clock_ms()
                    if await self.client.outdated(self.feed):
                        raise StreamResubscribe()
                await self._tick()
        finally:
            stop_task.cancel()
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _on_batch(self, batch: list[Any]) -> None:
        now = self.clock_ms()
        self.messages += 1
        self._delivered = True
        self.last_message_ms = now
        if self.state != "live":
            self.since_ms = now
            self.sink.restart()
            log.info("stream %s: live", self.name)
            await self._set_state("live")
        try:
            await self.sink.on_batch(batch)
        except Exception as e:  # Redis trouble: keep the connection, the next batch tries again
            log.warning("stream %s: storing a batch failed: %s: %s", self.name, type(e).__name__, e)

    async def _tick(self) -> None:
        try:
            await self.sink.tick()
        except Exception as e:
            log.warning("stream %s: refresh failed: %s: %s", self.name, type(e).__name__, e)
        if self.clock_ms() - self._published_ms >= self.config.publish_every_s * 1000:
            await self._publish()

    async def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
        await self._publish()

    async def _publish(self) -> None:
        now = self.clock_ms()
        elapsed_s = max(0.001, (now - self._published_ms) / 1000) if self._published_ms else 0.0
        rate = (self.messages - self._published_messages) / elapsed_s if elapsed_s else 0.0
        self._published_ms, self._published_messages = now, self.messages
        owned = self.owns(self.sink.metric)
        try:
            await self.health.write(
                self.name,
                {
                    "state": self.state,
                    "messages": self.messages,
                    "rate_per_s": round(rate, 2),
                    "last_message_ms": self.last_message_ms,
                    "reconnects": self.reconnects,
                    "since_ms": self.since_ms,
                    "last_error": self.last_error,
                    "updated_ms": now,
                },
                feeds=(self.client.venue, self.sink.metric) if owned else None,
                contracts=owned if isinstance(owned, frozenset) else None,
                vouch_ms=int(self.config.stall_after_s * 1000),
            )
        except Exception as e:  # health is for people; never let it end the stream
            log.debug("stream %s: health not written: %s", self.name, e)


def owned(streams: Iterable[StreamWatcher], venue: str, metric: str) -> bool | frozenset[str]:
    """What of ``metric`` the live streams of ``venue`` feed now: True (all of it), some symbols, or False
    (the market watcher's ``stream_owns``)."""
    symbols: set[str] = set()
    for s in streams:
        if s.client.venue == venue:
            fed = s.owns(metric)
            if fed is True:
                return True
            if fed:
                symbols |= fed
    return frozenset(symbols) if symbols else False


class LiquidationSink:
    """Liquidation events -> Redis once each -> the venue's rolling windows -> rule evaluation."""

    metric = "liqs"

    def __init__(
        self,
        venue: str,
        events: LiquidationStore,
        store: MarketStore,
        metric: Metric,
        evaluate: Evaluate,
        *,
        max_event_age_s: float = 120.0,
        refresh_s: float = 30.0,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self.venue = venue
        self.events = events
        self.store = store
        self.m = metric
        self.evaluate = evaluate
        self.max_event_age_ms = int(max_event_age_s * 1000)
        self.refresh_ms = int(refresh_s * 1000)
        self.clock_ms = clock_ms
        self.active: set[str] = set()  # assets with events in the last 24h: their windows decay on refresh
        self._refreshed_ms = 0
        self.dropped_stale = 0
        self.dropped_duplicate = 0
        self.rejected = 0
        self._seeded = False

    async def on_batch(self, batch: list[LiqEvent]) -> None:
        now = self.clock_ms()
        sane = []
        for e in batch:
            problem = event_problem(e)
            if problem is None:
                sane.append(e)
            else:
                self.rejected += 1
                log.warning("venue=%s symbol=%s liquidation rejected: %s", self.venue, e.symbol, problem)
        fresh = [e for e in sane if now - e.ts_ms <= self.max_event_age_ms]
        self.dropped_stale += len(sane) - len(fresh)
        new = await self.events.add(fresh, now_ms=now)
        self.dropped_duplicate += len(fresh) - len(new)
        if new:
            await self._publish({e.asset for e in new}, now)

    def restart(self) -> None:
        return None  # events are added once each whatever the connection

    async def tick(self) -> None:
        now = self.clock_ms()
        if not self._seeded:  # after a restart, windows of assets seen before must still decay
            self._seeded = True
            known = await self.store.known_assets(self.m.name)
            self.active |= {a for a, venues in known.items() if self.venue in venues}
        if self.active and now - self._refreshed_ms >= self.refresh_ms:
            await self._publish(set(self.active), now)

    async def _publish(self, assets: set[str], now: int) -> None:
        self._refreshed_ms = now
        wins = await self.events.windows([(a, self.venue) for a in sorted(assets)], now)
        self.active |= assets
        self.active -= {w.asset for w in wins if w.count_24h == 0}
        await self.store.write_samples(self.m, self.venue, wins, now_ms=now, replace=False)
        await self.evaluate(self.m.name, self.venue, wins, replace=False)


class TickSink:
    """Streamed samples of one metric (funding, basis), coalesced, upserted and evaluated at once.

    A contract is written when a figure moved: a rate (any field named ``*rate*``) by more than
    ``rate_tolerance``, a price (``*_usd``) by more than ``price_tolerance`` relative, any other
    field at all; or ``refresh_s`` after its last write, so its age stays that of the stream. A
    frame older than the contract's newest one (a venue replaying on reconnect) is dropped.
    """

    def __init__(
        self,
        venue: str,
        store: MarketStore,
        metric: Metric,
        evaluate: Evaluate,
        *,
        refresh_s: float = 5.0,
        price_tolerance: float = 1e-4,
        rate_tolerance: float = 1e-7,
        history_step_s: float = 300.0,
        history_assets: tuple[str, ...] = ("BTC", "ETH", "SOL"),
    ) -> None:
        self.venue = venue
        self.store = store
        self.m = metric
        self.metric = metric.name
        self.evaluate = evaluate
        self.refresh_ms = int(refresh_s * 1000)
        self.price_tolerance = price_tolerance
        self.rate_tolerance = rate_tolerance
        self.written: dict[str, Any] = {}
        self.writes = 0
        self.dropped_stale = 0
        self._newest_ms: dict[str, int] = {}  # symbol -> the newest frame time seen (kept across reconnects)
        self.history_step_ms = int(history_step_s * 1000)
        self.history_assets = history_assets
        self._history_ms: dict[str, int] = {}  # symbol -> time of its last history point (as the poll keeps it)
        self._rejected: set[str] = set()
        self._kinds: dict[type, tuple[tuple[str, str], ...]] = {}

    def _fields(self, sample: Any) -> tuple[tuple[str, str], ...]:
        """(field, how it is compared) of a sample type: ``rate``, ``price`` or ``equal``; ts_ms is the refresh."""
        kind = type(sample)
        if kind not in self._kinds:
            self._kinds[kind] = tuple(
                (f.name, "rate" if "rate" in f.name else "price" if f.name.endswith("_usd") else "equal")
                for f in dataclasses.fields(sample)
                if f.name != "ts_ms"
            )
        return self._kinds[kind]

    def _moved(self, old: Any, new: Any) -> bool:
        for name, how in self._fields(new):
            a, b = getattr(old, name), getattr(new, name)
            if how == "equal" or a is None or b is None:
                if a != b:
                    return True
            elif how == "rate":
                if abs(b - a) > self.rate_tolerance:
                    return True
            elif a != b and (not a or abs(b - a) / abs(a) > self.price_tolerance):
                return True
        return bool(new.ts_ms - old.ts_ms >= self.refresh_ms)

    async def on_batch(self, batch: Sequence[Any]) -> None:
        due = []
        for s in batch:
            problem = self.m.problem(s)
            if problem is not None:
                if s.symbol not in self._rejected:
                    log.warning(
                        "venue=%s symbol=%s streamed %s rejected: %s", self.venue, s.symbol, self.metric, problem
                    )
                    self._rejected.add(s.symbol)
                continue
            self._rejected.discard(s.symbol)
            if s.ts_ms < self._newest_ms.get(s.symbol, 0):  # older than a frame handed over (a replay)
                self.dropped_stale += 1
                continue
            self._newest_ms[s.symbol] = s.ts_ms
            old = self.written.get(s.symbol)
            if old is None or self._moved(old, s):
                due.append(s)
        if not due:
            return
        history = []
        for s in self.m.history_samples(due):
            kept = "*" in self.history_assets or s.asset in self.history_assets
            if kept and s.ts_ms - self._history_ms.get(s.symbol, -(2**62)) >= self.history_step_ms:
                self._history_ms[s.symbol] = s.ts_ms
                history.append(s)
        await self.store.write_samples(self.m, self.venue, due, now_ms=_now_ms(), replace=False, history=history)
        self.writes += 1
        self.written.update({s.symbol: s for s in due})
        await self.evaluate(self.m.name, self.venue, due, replace=False)

    async def tick(self) -> None:
        return None

    def restart(self) -> None:
        """Write every contract's next frame: while the stream was down the poll wrote its rows."""
        self.written.clear()
