"""Alert delivery: consume the alert stream for one platform and send to every target, paced.

Guarantees, per (alert, chat):
- Nothing is lost: an entry is acknowledged only after every target reached a final state;
  entries of a consumer that died are reclaimed by another after ``claim_idle_ms``.
- Exactly once: a delivery record ``sent:{alert}:{target}`` is claimed (``pending:<consumer>``)
  just before the send and set to ``ok`` after it, so a reclaimer skips what was delivered. A
  graceful stop finishes in-flight sends first. Only a hard crash with a send in flight can
  repeat that one message (the platform gives no way to ask whether it arrived).
- One bad chat never blocks the others: a 429 delays only that chat, a blocked or removed chat
  is unsubscribed, a migrated group keeps its subscriptions under its new id.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from core.alerts.events import AlertEvent
from core.alerts.pacing import Limits, Pacer
from core.alerts.store import AlertStore
from core.reply import Reply, reply_from_json

log = logging.getLogger(__name__)

RECORD_TTL_S = 14 * 86_400

# GET the record; claim it when absent, or when reclaiming an entry whose previous owner died
# with this send in flight. Returns 1 when the caller now owns the send.
_CLAIM = """
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1 end
if ARGV[3] == '1' and string.sub(v, 1, 8) == 'pending:' and v ~= ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1
end
if v == ARGV[1] then return 1 end
return 0
"""


class Outcome(Enum):
    OK = "ok"
    RETRY = "retry"  # rate limited or transient: try again later
    GONE = "gone"  # blocked, kicked, chat deleted: unsubscribe
    MIGRATED = "migrated"  # the chat has a new id
    FAILED = "failed"  # permanent for this message


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    retry_after_s: float = 0.0
    new_chat_id: int | None = None
    detail: str = ""


class Sender(Protocol):
    """A platform's way to send one alert to one chat, with its errors mapped to outcomes."""

    platform: str  # target prefix: "tg", "dc"

    def is_group(self, chat_id: int) -> bool: ...

    async def send(self, chat_id: int, reply: Reply) -> SendResult: ...


@dataclass(order=True, slots=True)
class _Job:
    ready_at: float
    seq: int
    target: str = field(compare=False)
    attempts: int = field(default=0, compare=False)


@dataclass(slots=True)
class BroadcastStats:
    sent: int = 0
    retried: int = 0
    gone: int = 0
    migrated: int = 0
    failed: int = 0
    skipped: int = 0


class DeliveryWorker:
    """One consumer of the alert stream for one platform."""

    def __init__(self, store: AlertStore, sender: Sender, *, group: str, consumer: str, limits: Limits,
                 claim_idle_ms: int = 60_000, concurrency: int = 32, max_attempts: int = 8,
                 max_backoff_s: float = 300.0, clock: Callable[[], float] = time.monotonic,
                 admins: frozenset[str] = frozenset(),
                 render: Callable[[AlertEvent], Reply] | None = None) -> None:
        self.store = store
        self.render = render or _plain_render  # typed events are rendered here, at delivery
        self.admins = admins  # user ids (private chats) that receive notices meant for the bot's admins
        self.redis: Redis = store.redis
        self.keys = store.keys
        self.sender = sender
        self.group = group
        self.consumer = consumer
        self.pacer = Pacer(limits)
        self.claim_idle_ms = claim_idle_ms
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        self.stats = BroadcastStats()
        self._claim = self.redis.register_script(_CLAIM)
        self._seq = itertools.count()

    async def ensure_group(self) -> None:
        await ensure_group(self.redis, self.keys.alerts(), self.group)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop``; a stop mid-broadcast finishes in-flight sends and leaves the rest pending."""
        await self.ensure_group()
        stream = self.keys.alerts()
        last_reclaim = 0.0
        reclaim_from: Any = "0-0"
        while not stop.is_set():
            try:
                entries: list[tuple[Any, dict[Any, Any]]] = []
                reclaimed = False
                if self.clock() - last_reclaim > min(5.0, self.claim_idle_ms / 2000):
                    last_reclaim = self.clock()
                    # one at a time: entries claimed in a batch would sit idle while the first one is
                    # broadcast, and another consumer could take them over while this one still holds
                    # them; the cursor moves on past entries that cannot be delivered (trimmed away)
                    res = await self.redis.xautoclaim(stream, self.group, self.consumer, self.claim_idle_ms,
                                                      reclaim_from, count=1)
                    reclaim_from = res[0]
                    entries = [e for e in res[1] if e and e[1]]
                    reclaimed = bool(entries)
                if not entries:
                    got: Any = await self.redis.xreadgroup(self.group, self.consumer, {stream: ">"}, count=1,
                                                           block=500)
                    entries = got[0][1] if got else []  # RESP2 shape: [[stream, [(id, fields), ...]]]
                for entry_id, fields in entries:
                    if stop.is_set():
                        break
                    await self.process(entry_id, fields, reclaimed=reclaimed, stop=stop)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis hiccup: keep the consumer alive, retry after a pause
                log.exception("delivery %s/%s: loop error", self.group, self.consumer)
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except TimeoutError:
                    pass

    async def process(self, entry_id: Any, fields: dict[Any, Any], *, reclaimed: bool,
                      stop: asyncio.Event | None = None) -> bool:
        """Deliver one alert to all its targets; returns True when acknowledged."""
        f = {_s(k): _s(v) for k, v in fields.items()}
        alert_id = _s(entry_id)
        # entries written before events were typed carry a rendered reply
        reply = self.render(AlertEvent.from_json(f["event"])) if "event" in f else reply_from_json(f["reply"])
        prefix = f"{self.sender.platform}:"
        if f.get("scope") == "chat":
            targets = [f["target"]] if f.get("target", "").startswith(prefix) else []
        elif f.get("scope") == "admins":  # a notice for whoever runs the bot: their private chats
            ids = self.admins | await self.store.admins(self.sender.platform)
            targets = [f"{prefix}0"] if self.sender.platform == "console" else sorted(f"{prefix}{i}" for i in ids)
        else:
            targets = sorted(t for t in await self.store.subscribers(f["topic"]) if t.startswith(prefix))
        muted = await self.store.muted(targets)
        targets = [t for t in targets if t not in muted]
        if targets:
            pipe = self.redis.pipeline(transaction=False)
            for t in targets:
                pipe.get(self.keys.sent(alert_id, t))
            records = await pipe.execute()
            mine = f"pending:{self.consumer}"
            todo = [t for t, r in zip(targets, records, strict=True)
                    if r is None or (_s(r).startswith("pending:") and (reclaimed or _s(r) == mine))]
            self.stats.skipped += len(targets) - len(todo)
        else:
            todo = []
        finished = await self._broadcast(entry_id, alert_id, reply, todo, reclaimed, stop or asyncio.Event())
        if finished:
            await self.redis.xack(self.keys.alerts(), self.group, entry_id)
            log.info("delivery %s: alert %s done (%d targets, %d muted)", self.group, alert_id, len(todo), len(muted))
        return finished

    async def _broadcast(self, entry_id: Any, alert_id: str, reply: Reply, targets: list[str], reclaimed: bool,
                         stop: asyncio.Event) -> bool:
        heap = [_Job(0.0, next(self._seq), t) for t in targets]
        heapq.heapify(heap)
        in_flight: set[asyncio.Task[None]] = set()
        errors: list[BaseException] = []
        wake = asyncio.Event()
        stop_waiter = asyncio.ensure_future(stop.wait())
        stop_waiter.add_done_callback(lambda _: wake.set())

        def done(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            if not task.cancelled() and (exc := task.exception()) is not None:
                # e.g. Redis failed around the send: the target must not be dropped, so the entry
                # stays pending and is retried when reclaimed (its delivery record tells what is left)
                errors.append(exc)
                log.error("delivery %s: alert %s: send task failed", self.group, alert_id, exc_info=exc)
            wake.set()

        # keep the entry ours while a long broadcast runs (or waits out a retry): well within
        # claim_idle_ms, or another consumer would take over a broadcast that is still alive
        touch_every = min(10.0, self.claim_idle_ms / 3000)
        last_touch = self.clock()
        try:
            while heap or in_flight:
                now = self.clock()
                if now - last_touch >= touch_every:
                    last_touch = now
                    await self.redis.xclaim(self.keys.alerts(), self.group, self.consumer, 0, [entry_id],
                                            justid=True)
                if stop.is_set():
                    if in_flight:
                        await asyncio.gather(*in_flight, return_exceptions=True)
                    return False
                delay = None
                if heap and len(in_flight) < self.concurrency:
                    job = heap[0]
                    is_group = self._is_group(job.target)
                    delay = job.ready_at - now
                    if delay <= 0:
                        hold = self.pacer.target_delay(job.target, is_group, now)
                        if hold > 0:
                            job.ready_at = now + hold
                            heapq.heapreplace(heap, job)
                            continue
                        delay = self.pacer.global_delay(now)
                        if delay <= 0:
                            heapq.heappop(heap)
                            self.pacer.record(job.target, now)
                            task = asyncio.create_task(self._send(job, alert_id, reply, reclaimed, heap))
                            in_flight.add(task)
                            task.add_done_callback(done)
                            continue
                wake.clear()
                timeout = touch_every if delay is None else min(touch_every, max(0.001, delay))
                try:
                    await asyncio.wait_for(wake.wait(), timeout=timeout)
                except TimeoutError:
                    pass
            if errors:
                log.warning("delivery %s: alert %s left pending after %d failed send(s)", self.group, alert_id,
                            len(errors))
            return not errors
        finally:
            stop_waiter.cancel()

    def _is_group(self, target: str) -> bool:
        return self.sender.is_group(int(target.split(":", 1)[1]))

    async def _send(self, job: _Job, alert_id: str, reply: Reply, reclaimed: bool, heap: list[_Job]) -> None:
        key = self.keys.sent(alert_id, job.target)
        mine = f"pending:{self.consumer}"
        # a retry claims again (a no-op while the record is still ours) so that it never sends what
        # another consumer took over meanwhile; only a first attempt on a reclaimed entry takes over
        takeover = "1" if reclaimed and job.attempts == 0 else "0"
        if not await self._claim(keys=[key], args=[mine, RECORD_TTL_S, takeover]):
            self.stats.skipped += 1
            return
        chat_id = int(job.target.split(":", 1)[1])
        try:
            result = await self.sender.send(chat_id, reply)
        except Exception as e:  # an adapter bug must not take the broadcast down
            log.exception("delivery %s: sender raised for %s", self.group, job.target)
            result = SendResult(Outcome.RETRY, detail=f"{type(e).__name__}: {e}")
        if result.outcome is Outcome.OK:
            self.stats.sent += 1
            await self.redis.set(key, "ok", ex=RECORD_TTL_S)
            return
        if result.outcome is Outcome.RETRY and job.attempts + 1 < self.max_attempts:
            self.stats.retried += 1
            wait = result.retry_after_s or min(self.max_backoff_s, 2.0 ** job.attempts)
            now = self.clock()
            if result.retry_after_s:
                self.pacer.hold(job.target, now + wait)
            log.info("delivery %s: %s retry %d in %.1fs (%s)", self.group, job.target, job.attempts + 1, wait,
                     result.detail)
            heapq.heappush(heap, _Job(now + wait, next(self._seq), job.target, job.attempts + 1))
            return
        if result.outcome is Outcome.MIGRATED and result.new_chat_id is not None:
            self.stats.migrated += 1
            new_target = f"{self.sender.platform}:{result.new_chat_id}"
            log.info("delivery %s: %s migrated to %s; subscriptions moved", self.group, job.target, new_target)
            await self.store.migrate(job.target, new_target, now_ms=int(time.time() * 1000))
            await self.redis.set(key, "migrated", ex=RECORD_TTL_S)
            heapq.heappush(heap, _Job(self.clock(), next(self._seq), new_target))
            return
        if result.outcome is Outcome.GONE:
            self.stats.gone += 1
            removed = await self.store.unsubscribe(job.target)
            log.warning("delivery %s: %s is gone (%s); unsubscribed from %s", self.group, job.target,
                        result.detail, ", ".join(removed) or "nothing")
            await self.redis.set(key, "gone", ex=RECORD_TTL_S)
            return
        self.stats.failed += 1
        log.error("delivery %s: giving up on %s after %d attempt(s): %s", self.group, job.target, job.attempts + 1,
                  result.detail)
        await self.redis.set(key, "failed", ex=RECORD_TTL_S)


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """Create the consumer group (and the stream) unless it exists; new groups start at new alerts."""
    try:
        await redis.xgroup_create(stream, group, id="$", mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


def _plain_render(e: AlertEvent) -> Reply:
    """A bare message for a worker built without the registry's renderer (tests, tools)."""
    if e.metric == "notice":
        return Reply(title=str(e.extra.get("title", "")), blocks=(str(e.extra.get("text", "")),))
    return Reply(title=f"{e.asset} {e.metric} {e.kind} {e.threshold:g}: {e.value:g} [{e.rule_id}]")


def _s(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
