"""Alert delivery: consume the alert stream for one platform and send to every target, paced.

Guarantees, per (alert, chat):
- Nothing is lost: an entry is acknowledged only after every target reached a final state;
  entries of a consumer that died are reclaimed by another after ``claim_idle_ms``. A missing
  stream or consumer group (Redis restarted empty) is recreated and delivery goes on.
- Exactly once: a delivery record ``sent:{alert}:{target}`` is claimed (``pending:<consumer>``)
  just before the send and set to ``ok`` after it (retried until it is written), so a reclaimer
  skips what was delivered. A graceful stop finishes in-flight sends first. Only a hard crash with
  a send in flight can repeat that one message (the platform gives no way to ask whether it arrived).
- One chat never delays another: many alerts are in flight, each target has its own lane
  delivering its alerts in order; a 429 or a backoff waits in that lane only. A blocked or removed
  chat is unsubscribed, a migrated group keeps its subscriptions under its new id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from core.alerts.events import AlertEvent
from core.alerts.store import AlertStore
from core.context import format_target, parse_target
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
    """A platform's way to send one alert to one chat (or forum topic), paced, errors mapped to outcomes."""

    platform: str  # target prefix: "tg", "dc"

    async def wait_turn(self, chat_id: int, thread_id: int | None = None) -> None:
        """Until the platform's pacer grants this chat its next slot (the send that follows uses it)."""

    async def send(self, chat_id: int, reply: Reply, thread_id: int | None = None) -> SendResult: ...


@dataclass(slots=True)
class BroadcastStats:
    sent: int = 0
    retried: int = 0
    gone: int = 0
    migrated: int = 0
    failed: int = 0
    skipped: int = 0
    record_retries: int = 0
    regrouped: int = 0


@dataclass(slots=True)
class _Entry:
    """One alert in flight: acknowledged once every target reached a final state."""

    id: Any
    alert_id: str
    reply: Reply
    reclaimed: bool
    outstanding: int = 0
    failed: bool = False


@dataclass(slots=True)
class _Job:
    entry: _Entry
    target: str


class DeliveryWorker:
    """One consumer of the alert stream for one platform: many alerts in flight, one lane per target.

    Each target has its own lane that delivers its alerts in stream order; a lane that waits (a
    429, a backoff, a group's minute budget) holds only that target. Pacing is the sender's: every
    send goes through the platform's one pacer, shared with command replies.
    """

    def __init__(
        self,
        store: AlertStore,
        sender: Sender,
        *,
        group: str,
        consumer: str,
        claim_idle_ms: int = 60_000,
        max_attempts: int = 8,
        max_backoff_s: float = 300.0,
        max_entries: int = 1024,
        max_queued: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
        admins: frozenset[str] = frozenset(),
        render: Callable[[AlertEvent], Reply] | None = None,
    ) -> None:
        self.store = store
        self.render = render or _plain_render  # typed events are rendered here, at delivery
        self.admins = admins  # user ids (private chats) that receive notices meant for the bot's admins
        self.redis: Redis = store.redis
        self.keys = store.keys
        self.sender = sender
        self.group = group
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        self.max_attempts = max_attempts
        self.max_backoff_s = max_backoff_s
        self.max_entries = max_entries  # alerts in flight at once
        self.max_queued = max_queued  # (alert, target) jobs waiting in lanes: bounds memory
        self.clock = clock
        self.stats = BroadcastStats()
        self._claim = self.redis.register_script(_CLAIM)
        self._entries: dict[str, _Entry] = {}
        self._lanes: dict[str, deque[_Job]] = {}
        self._queued = 0
        self._stop = asyncio.Event()
        self._room = asyncio.Event()
        self._lane_tasks: set[asyncio.Task[None]] = set()

    async def ensure_group(self, start: str = "$") -> None:
        await ensure_group(self.redis, self.keys.alerts(), self.group, start=start)

    @property
    def in_flight(self) -> int:
        return len(self._entries)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop``; a stop finishes the sends in flight and leaves the rest pending."""
        self._stop = stop
        await self.ensure_group()
        stream = self.keys.alerts()
        last_reclaim = last_touch = self.clock()
        reclaim_from: Any = "0-0"
        touch_every = min(10.0, self.claim_idle_ms / 3000)
        try:
            while not stop.is_set():
                try:
                    now = self.clock()
                    if now - last_touch >= touch_every:
                        last_touch = now
                        await self._touch()
                    if not self._has_room():
                        self._room.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._room.wait(), touch_every)
                        continue
                    entries: list[tuple[Any, dict[Any, Any]]] = []
                    reclaimed = False
                    if now - last_reclaim > min(5.0, self.claim_idle_ms / 2000):
                        last_reclaim = now
                        # the cursor moves on past entries that cannot be delivered (trimmed away)
                        res = await self.redis.xautoclaim(
                            stream, self.group, self.consumer, self.claim_idle_ms, reclaim_from, count=16
                        )
                        reclaim_from = res[0]
                        entries = [e for e in res[1] if e and e[1] and _s(e[0]) not in self._entries]
                        reclaimed = bool(entries)
                    if not entries:
                        # a few alerts at a time once the lanes fill up, so the queue stays near its bound
                        count = 64 if self._queued < self.max_queued // 2 else 1
                        got: Any = await self.redis.xreadgroup(
                            self.group, self.consumer, {stream: ">"}, count=count, block=100 if self._entries else 500
                        )
                        entries = got[0][1] if got else []  # RESP2 shape: [[stream, [(id, fields), ...]]]
                    for entry_id, fields in entries:
                        if stop.is_set():
                            break
                        await self.admit(entry_id, fields, reclaimed=reclaimed)
                except asyncio.CancelledError:
                    raise
                except ResponseError as e:
                    if "NOGROUP" in str(e):
                        # Redis lost the stream or the group (restarted empty, flushed, evicted): make both
                        # again from the start of whatever stream exists now, which holds only new alerts
                        self.stats.regrouped += 1
                        log.warning("delivery %s/%s: consumer group missing; recreating it", self.group, self.consumer)
                        reclaim_from = "0-0"
                        with contextlib.suppress(RedisError, OSError):
                            await self.ensure_group(start="0")
                            continue
                    else:
                        log.exception("delivery %s/%s: loop error", self.group, self.consumer)
                    await self._pause(1.0)
                except Exception:  # Redis hiccup: keep the consumer alive, retry after a pause
                    log.exception("delivery %s/%s: loop error", self.group, self.consumer)
                    await self._pause(1.0)
        finally:
            if not stop.is_set():  # cancelled rather than stopped: the lanes go too
                for task in self._lane_tasks:
                    task.cancel()
            if self._lane_tasks:  # lanes see the stop: each finishes the send it is in, then ends
                await asyncio.gather(*list(self._lane_tasks), return_exceptions=True)

    def _has_room(self) -> bool:
        return len(self._entries) < self.max_entries and self._queued < self.max_queued

    async def _touch(self) -> None:
        """Keep the entries in flight ours: a long wait must not look like a dead consumer to the others."""
        ids = [e.id for e in self._entries.values()]
        for i in range(0, len(ids), 500):
            await self.redis.xclaim(self.keys.alerts(), self.group, self.consumer, 0, ids[i : i + 500], justid=True)

    async def admit(self, entry_id: Any, fields: dict[Any, Any], *, reclaimed: bool) -> None:
        """Put one alert into the lanes of its targets (acknowledged at once when nobody is left to send to)."""
        f = {_s(k): _s(v) for k, v in fields.items()}
        alert_id = _s(entry_id)
        if alert_id in self._entries:  # read again (a recreated group starts over): its lanes have it already
            return
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
            todo = [
                t
                for t, r in zip(targets, records, strict=True)
                if r is None or (_s(r).startswith("pending:") and (reclaimed or _s(r) == mine))
            ]
            self.stats.skipped += len(targets) - len(todo)
        else:
            todo = []
        entry = _Entry(entry_id, alert_id, reply, reclaimed)
        if not todo:
            await self._ack(entry)
            return
        self._entries[alert_id] = entry
        for t in todo:
            self._enqueue(_Job(entry, t))
        log.info(
            "delivery %s: alert %s queued for %d target(s) (%d muted)", self.group, alert_id, len(todo), len(muted)
        )

    def _enqueue(self, job: _Job) -> None:
        job.entry.outstanding += 1
        self._queued += 1
        lane = self._lanes.get(job.target)
        if lane is not None:
            lane.append(job)
            return
        self._lanes[job.target] = deque([job])
        task = asyncio.create_task(self._run_lane(job.target))
        self._lane_tasks.add(task)
        task.add_done_callback(self._lane_tasks.discard)

    async def _run_lane(self, target: str) -> None:
        """Deliver this target's alerts one after another, in stream order."""
        lane = self._lanes[target]
        try:
            while lane and not self._stop.is_set():
                job = lane[0]
                try:
                    done = await self._deliver(job)
                except Exception:  # an adapter or Redis failure around the send: leave the alert pending
                    log.exception("delivery %s: alert %s to %s failed", self.group, job.entry.alert_id, target)
                    done, job.entry.failed = True, True
                if not done:
                    break  # stopping: the alert stays pending, its record says where it was
                lane.popleft()
                self._queued -= 1
                await self._target_done(job.entry)
        finally:
            if self._lanes.get(target) is lane:
                del self._lanes[target]
                self._queued -= len(lane)

    async def _target_done(self, entry: _Entry) -> None:
        entry.outstanding -= 1
        if entry.outstanding > 0:
            return
        self._entries.pop(entry.alert_id, None)
        self._room.set()
        if entry.failed:
            # not acknowledged and no longer touched: reclaimed after claim_idle_ms, its records
            # tell the reclaimer what is left
            log.warning("delivery %s: alert %s left pending after a failed send", self.group, entry.alert_id)
            return
        await self._ack(entry)

    async def _ack(self, entry: _Entry) -> None:
        try:
            await self.redis.xack(self.keys.alerts(), self.group, entry.id)
        except (RedisError, OSError) as e:
            # the group vanished, or Redis is away: the entry stays pending, untouched from now on, and is
            # reclaimed after claim_idle_ms; its records say every target is done, so nothing is resent
            log.warning("delivery %s: ack of %s failed: %s", self.group, entry.alert_id, e)
            return
        log.info("delivery %s: alert %s done", self.group, entry.alert_id)

    async def _pause(self, seconds: float) -> bool:
        """Sleep unless stopping; False when the stop came first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return not self._stop.is_set()

    async def _deliver(self, job: _Job) -> bool:
        """Send one alert to one target until it reached a final state; False when stopped first."""
        entry, key = job.entry, self.keys.sent(job.entry.alert_id, job.target)
        mine = f"pending:{self.consumer}"
        _, chat_id, thread_id = parse_target(job.target)
        attempts, redis_errors = 0, 0
        while True:
            # a retry claims again (a no-op while the record is still ours) so that it never sends what
            # another consumer took over meanwhile; only a first attempt on a reclaimed entry takes over
            takeover = "1" if entry.reclaimed and attempts == 0 else "0"
            # the slot first, then the claim: only lanes about to send touch Redis (a few at a time, at the
            # send rate, not thousands of waiting lanes at once), and "pending" marks a send about to happen
            if not await self._turn(chat_id, thread_id):
                return False  # stopped before this send started: nothing is in flight
            try:
                claimed = await self._claim(keys=[key], args=[mine, RECORD_TTL_S, takeover])
            except (RedisError, OSError) as e:
                redis_errors += 1
                log.warning("delivery %s: claim for %s failed (%s); retrying", self.group, job.target, e)
                if not await self._pause(min(5.0, 0.1 * 2 ** min(redis_errors, 6))):
                    return False
                continue
            if not claimed:
                self.stats.skipped += 1
                return True
            try:
                result = await self.sender.send(chat_id, entry.reply, thread_id)
            except Exception as e:  # an adapter bug must not take the lane down
                log.exception("delivery %s: sender raised for %s", self.group, job.target)
                result = SendResult(Outcome.RETRY, detail=f"{type(e).__name__}: {e}")
            if result.outcome is Outcome.OK:
                self.stats.sent += 1
                return await self._record(key, "ok")
            if result.outcome is Outcome.RETRY and attempts + 1 < self.max_attempts:
                self.stats.retried += 1
                wait = result.retry_after_s or min(self.max_backoff_s, 2.0**attempts)
                log.info(
                    "delivery %s: %s retry %d in %.1fs (%s)", self.group, job.target, attempts + 1, wait, result.detail
                )
                attempts += 1
                if not await self._pause(wait):
                    return False
                continue
            if result.outcome is Outcome.MIGRATED and result.new_chat_id is not None:
                self.stats.migrated += 1
                new_target = format_target(self.sender.platform, result.new_chat_id, thread_id)
                log.info("delivery %s: %s migrated to %s; subscriptions moved", self.group, job.target, new_target)
                await self.store.migrate(job.target, new_target, now_ms=int(time.time() * 1000))
                self._enqueue(_Job(entry, new_target))
                return await self._record(key, "migrated")
            if result.outcome is Outcome.GONE:
                self.stats.gone += 1
                removed = await self.store.unsubscribe(job.target)
                log.warning(
                    "delivery %s: %s is gone (%s); unsubscribed from %s",
                    self.group,
                    job.target,
                    result.detail,
                    ", ".join(removed) or "nothing",
                )
                return await self._record(key, "gone")
            self.stats.failed += 1
            log.error(
                "delivery %s: giving up on %s after %d attempt(s): %s",
                self.group,
                job.target,
                attempts + 1,
                result.detail,
            )
            return await self._record(key, "failed")

    async def _turn(self, chat_id: int, thread_id: int | None) -> bool:
        """Wait for the pacer's slot unless a stop comes first (then the slot wait is abandoned)."""
        if self._stop.is_set():
            return False
        turn = asyncio.ensure_future(self.sender.wait_turn(chat_id, thread_id))
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({turn, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if turn.done():
            turn.result()
            return True
        turn.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await turn
        return False

    async def _record(self, key: str, value: str) -> bool:
        """Write the delivery record, retrying until it sticks: a lost write would mean a resend."""
        failures = 0
        while True:
            try:
                await self.redis.set(key, value, ex=RECORD_TTL_S)
                return True
            except (RedisError, OSError) as e:
                failures += 1
                self.stats.record_retries += 1
                log.warning("delivery %s: writing %s for %s failed (%s); retrying", self.group, value, key, e)
                if self._stop.is_set() and failures >= 5:
                    return False  # stopping with Redis away: left pending (a reclaimer may resend this one)
                await asyncio.sleep(min(2.0, 0.05 * 2 ** min(failures, 6)))


async def ensure_group(redis: Redis, stream: str, group: str, *, start: str = "$") -> None:
    """Create the consumer group (and the stream) unless it exists; new groups start at new alerts."""
    try:
        await redis.xgroup_create(stream, group, id=start, mkstream=True)
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
