"""The market watcher of one venue: poll, check, store each metric's part, report health per part."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.metrics.registry import Registry
from core.store import MarketStore
from watchers.errors import MalformedResponse, SourceError
from watchers.venues import VenueClient
from watchers.venues.client import PARTS, Snapshot

log = logging.getLogger(__name__)

# (metric, venue, samples, keep=contracts): the venue's whole current set of that metric (empty when its part
# failed), apart from the contracts in ``keep`` that a live stream feeds
SamplesListener = Callable[..., Awaitable[object]]


@dataclass(frozen=True, slots=True)
class MarketWatcherConfig:
    markets_refresh_s: float = 3600.0
    history_step_s: float = 300.0
    history_assets: tuple[str, ...] = ("BTC", "ETH", "SOL")


def _now_ms() -> int:
    return int(time.time() * 1000)


class MarketWatcher:
    """Turns one venue's answers into samples of every metric it serves, each part stored on its own."""

    def __init__(
        self,
        client: VenueClient,
        store: MarketStore,
        registry: Registry,
        config: MarketWatcherConfig,
        *,
        listeners: Sequence[SamplesListener] = (),
        clock_ms: Callable[[], int] = _now_ms,
        stream_owns: Callable[[str], bool | frozenset[str]] = lambda metric: False,
    ) -> None:
        self.client = client
        self.store = store
        self.registry = registry
        self.config = config
        self.listeners = list(listeners)
        self.clock_ms = clock_ms
        # a live stream of this venue feeds the metric (True) or some of its symbols: the poll leaves that alone
        self.stream_owns = stream_owns
        self.venue = client.venue
        self._last_history_ms: dict[tuple[str, str, str], int] = {}
        self._last_problem: dict[str, str] = {}

    @property
    def name(self) -> str:
        return f"market:{self.venue}"

    def _keep_history(self, metric: str, s: Any) -> bool:
        if "*" not in self.config.history_assets and s.asset not in self.config.history_assets:
            return False
        key = (metric, s.asset, s.symbol)
        last = self._last_history_ms.get(key)
        if last is not None and s.ts_ms - last < self.config.history_step_s * 1000:
            return False
        self._last_history_ms[key] = s.ts_ms
        return True

    def _reject(self, symbol: str, problem: str | None) -> bool:
        if problem is None:
            self._last_problem.pop(symbol, None)
            return False
        if self._last_problem.get(symbol) != problem:  # log a bad value once, not every poll
            log.warning("venue=%s symbol=%s rejected: %s", self.venue, symbol, problem)
            self._last_problem[symbol] = problem
        return True

    async def _markets(self) -> int | None:
        loaded = self.client.markets_loaded_ms
        if loaded is None:
            return await self.client.load_markets()
        if self.clock_ms() - loaded > self.config.markets_refresh_s * 1000:
            try:
                return await self.client.load_markets(reload=True)
            except SourceError as e:  # the markets we have still serve; try the refresh again next poll
                log.warning(
                    "venue=%s market refresh failed, keeping %d known markets: %s",
                    self.venue,
                    len(self.client.derivatives()),
                    e,
                )
        return None

    async def poll_once(self) -> int:
        """Poll the venue once; returns how many samples were stored. Raises SourceError when nothing worked."""
        start_req = self.client.requests
        t0 = time.perf_counter()
        try:
            markets = await self._markets()
            snap = await self.client.snapshot()
            checked = self._checked(snap)
            if not any(checked.values()):
                raise MalformedResponse(
                    f"all {sum(len(p.samples) for p in snap.parts.values())} samples failed sanity checks"
                )
        except SourceError as e:
            await self.store.record_failure(
                self.venue,
                f"{type(e).__name__}: {e}",
                now_ms=self.clock_ms(),
                requests=self.client.requests - start_req,
            )
            for metric in snap_metrics(self.registry, self.client.metrics):  # nothing of it is current any more
                fed = self.stream_owns(metric)
                if fed is True:
                    continue
                for listener in self.listeners:  # but what a per-contract stream feeds
                    await listener(metric, self.venue, [], keep=fed if isinstance(fed, frozenset) else frozenset())
            raise
        now = self.clock_ms()
        endpoints: dict[str, str | None] = dict(snap.aux)
        stored = 0
        owned = {metric: self.stream_owns(metric) for metric in checked}
        for metric, samples in checked.items():
            part = snap.parts[metric]
            if owned[metric] is True:
                endpoints[metric] = None
                continue
            streamed = owned[metric]
            if isinstance(streamed, frozenset) and streamed:
                # upsert the rest: the streamed rows stay (delisted ones go once the stream stops)
                samples = checked[metric] = [s for s in samples if s.symbol not in streamed]
            if part.error is not None:
                endpoints[metric] = f"{type(part.error).__name__}: {part.error}"
                continue  # its stored values stay for their age, marked not current, out of every figure
            endpoints[metric] = None if samples or owned[metric] else "every sample failed sanity checks"
            m = self.registry.get(metric)
            history = [s for s in m.history_samples(samples) if self._keep_history(metric, s)]
            await self.store.write_samples(
                m, self.venue, samples, history=history, now_ms=now, replace=False if owned[metric] else None
            )
            stored += len(samples)
        await self.store.record_success(
            self.venue,
            now_ms=now,
            latency_ms=int((time.perf_counter() - t0) * 1000),
            requests=self.client.requests - start_req,
            markets=markets,
            endpoints=endpoints,
        )
        for metric, samples in checked.items():
            if owned[metric] is True:
                continue
            usable = samples if snap.parts[metric].error is None else []
            fed = owned[metric]
            keep = fed if isinstance(fed, frozenset) else frozenset()
            for listener in self.listeners:  # the venue's whole set, with what a per-contract stream feeds kept
                await listener(metric, self.venue, usable, keep=keep)
        log.debug("venue=%s stored %s", self.venue, ", ".join(f"{len(v)} {k}" for k, v in checked.items()))
        return stored

    def _checked(self, snap: Snapshot) -> dict[str, list[Any]]:
        """Each part's samples that pass the metric's sanity check (parts of metrics not registered are dropped)."""
        out: dict[str, list[Any]] = {}
        for metric, part in snap.parts.items():
            m = self.registry.find(metric)
            if m is None:
                continue
            out[metric] = [s for s in part.samples if not self._reject(s.symbol, m.problem(s))]
        return out


def snap_metrics(registry: Registry, served: Sequence[str] = PARTS) -> list[str]:
    """The metrics a venue poll produces (those it serves) that this deployment registers."""
    return [m for m in served if m in registry]
