"""One send pacer per platform and token: every message the bot sends waits here for its slot.

The model (Telegram's, Discord's are the same shape):

- a global rate, spaced evenly (one slot every ``1 / global_per_s`` seconds, never a burst);
- per lane (a chat or channel) sliding windows, e.g. 1 per 1.05 s for a private chat and also
  20 per 61 s for a group;
- holds: a 429 delays exactly its scope (the lane, or the whole bot) for exactly ``retry_after``.

Waiters are served by priority (replies before alert fan-out), then in arrival order; a waiter
whose lane is not open yet never blocks one whose lane is. Memory is bounded by the lanes used
within the longest window (plus live holds), not by every chat ever seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """A platform's flood limits; windows are (max sends, seconds), checked per lane."""

    global_per_s: float
    private: tuple[tuple[int, float], ...]
    group: tuple[tuple[int, float], ...]

    @property
    def horizon_s(self) -> float:
        """The longest window: a lane idle for longer than this has no state worth keeping."""
        return max((w for _, w in (*self.private, *self.group)), default=0.0)


# Telegram: ~30/s overall, ~1/s per chat, 20/min per group. Paced a little under each so that
# clock skew and network jitter between us and the server never tip a window over.
TELEGRAM_LIMITS = Limits(global_per_s=28.0, private=((1, 1.05),), group=((1, 1.05), (20, 61.0)))
# Discord: 50 requests/s global, about 5 messages per 5 s per channel.
DISCORD_LIMITS = Limits(global_per_s=45.0, private=((5, 5.5),), group=((5, 5.5),))


class Priority(IntEnum):
    REPLY = 0  # a person is waiting: command replies, edits, button answers
    ALERT = 1  # fan-out: may wait behind replies
    ALERT_PREPAID = 2  # an alert whose slot was already taken (its turn was awaited before the send)


# Two different lanes refused within this many seconds: the limit that was hit is the bot's, not a chat's.
GLOBAL_FLOOD_WINDOW_S = 1.0
# A shared-budget round trip slower than this (Redis unreachable, not refusing): pace locally instead.
SHARED_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class Reservation:
    """``wait_s`` until the reserved slot (``lane_closed``: nothing reserved, the lane opens in ``wait_s``)."""

    wait_s: float
    lane_closed: bool = False


class SharedSlots(Protocol):
    """Slots of a token shared with other processes (``core.shared_budget.SharedBudget``)."""

    async def reserve(self, lane: str | None, group: bool) -> Reservation: ...

    async def hold_all(self, retry_after_s: float) -> None: ...

    async def hold(self, lane: str, retry_after_s: float) -> None: ...


@dataclass(slots=True)
class _Waiter:
    lane: str | None
    group: bool
    fut: asyncio.Future[None]


@dataclass(slots=True)
class PacerStats:
    granted: int = 0
    lane_holds: int = 0
    global_holds: int = 0


class Pacer:
    """Grants send slots under ``limits``; times are monotonic seconds from ``clock``."""

    def __init__(
        self, limits: Limits, *, clock: Callable[[], float] = time.monotonic, shared: SharedSlots | None = None
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.shared = shared  # other processes sending with this token: their slots are reserved there too
        self._shared_down_logged = 0.0
        self.stats = PacerStats()
        self._next_global = 0.0
        self._held_all_until = 0.0
        self._sent: dict[str, deque[float]] = {}
        self._held: dict[str, float] = {}
        self._recent_floods: deque[tuple[float, str]] = deque(maxlen=16)
        self._ready: list[tuple[int, int, _Waiter]] = []  # (priority, seq, waiter)
        self._timed: list[tuple[float, int, int, _Waiter]] = []  # (ready_at, priority, seq, waiter)
        self._seq = itertools.count()
        self._records = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # ---- what callers use ---------------------------------------------------------------
    async def acquire(self, lane: str | None, *, group: bool = False, priority: Priority = Priority.REPLY) -> None:
        """Wait for a slot for one send to ``lane`` (None: counts against the global rate only)."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._serve())
        fut: asyncio.Future[None] = loop.create_future()
        seq = next(self._seq)
        w = _Waiter(lane, group, fut)
        heapq.heappush(self._ready, (int(priority), seq, w))
        assert self._wake is not None
        self._wake.set()
        await fut  # a cancelled waiter's future is done: the scheduler skips it

    def hold(self, lane: str, retry_after_s: float) -> None:
        """A 429 for this lane: nothing goes to it for ``retry_after_s`` from now."""
        until = self.clock() + retry_after_s
        self._held[lane] = max(until, self._held.get(lane, 0.0))
        self.stats.lane_holds += 1
        self._kick()

    def hold_all(self, retry_after_s: float) -> None:
        """A 429 whose scope is the whole bot (token): nothing goes anywhere for ``retry_after_s``."""
        self._held_all_until = max(self._held_all_until, self.clock() + retry_after_s)
        self.stats.global_holds += 1
        self._kick()

    async def flood(self, lane: str | None, retry_after_s: float, *, whole_bot: bool = False) -> bool:
        """Record a 429 and hold its scope; returns True when it was taken as the whole bot's.

        When the platform does not say (Telegram), a 429 on a second lane within
        ``GLOBAL_FLOOD_WINDOW_S`` of one on another lane means the bot's own limit was hit.
        """
        now = self.clock()
        if lane is not None:
            self.hold(lane, retry_after_s)
            if self.shared is not None:
                try:
                    await asyncio.wait_for(self.shared.hold(lane, retry_after_s), SHARED_TIMEOUT_S)
                except Exception as e:  # the local hold stands; another process meets its own 429
                    log.warning("pacer: could not share a hold of %s: %s", lane, e)
            while self._recent_floods and self._recent_floods[0][0] < now - GLOBAL_FLOOD_WINDOW_S:
                self._recent_floods.popleft()
            if any(other != lane for _, other in self._recent_floods):
                whole_bot = True
            self._recent_floods.append((now, lane))
        if whole_bot or lane is None:
            self.hold_all(retry_after_s)
            if self.shared is not None:
                try:
                    await asyncio.wait_for(self.shared.hold_all(retry_after_s), SHARED_TIMEOUT_S)
                except Exception as e:  # the local hold stands; the other processes meet their own 429
                    log.warning("pacer: could not share a flood wait: %s", e)
            return True
        return False

    def lane_delay(self, lane: str | None, group: bool, now: float) -> float:
        """Seconds until this lane's windows and holds allow another send (0 when allowed now)."""
        if lane is None:
            return 0.0
        delay = self._held.get(lane, 0.0) - now
        times = self._sent.get(lane)
        if times:
            for count, window in self.limits.group if group else self.limits.private:
                if len(times) >= count:
                    delay = max(delay, times[-count] + window - now)
        return max(0.0, delay)

    def global_delay(self, now: float) -> float:
        return max(0.0, self._next_global - now, self._held_all_until - now)

    @property
    def tracked_lanes(self) -> int:
        """Lanes with state kept (bounded: those active within the longest window, and live holds)."""
        return len(self._sent) + len(self._held)

    @property
    def waiting(self) -> int:
        return len(self._ready) + len(self._timed)

    async def aclose(self) -> None:
        """Stop serving; waiters still queued are cancelled."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for w in [r[-1] for r in self._ready] + [t[-1] for t in self._timed]:
            if not w.fut.done():
                w.fut.cancel()
        self._ready.clear()
        self._timed.clear()

    # ---- the scheduler -----------------------------------------------------------------
    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def record(self, lane: str | None, now: float) -> None:
        """Account one send at ``now`` against the global rate and the lane's windows."""
        # Global slots are one interval apart. A send that is only a little late (timer wake-up
        # latency) keeps its slot, so those small delays do not add up and pull the rate below the
        # configured one; after a real stall the next slot is one interval after now (never "catch
        # up" with a burst). Either way no 1 s window holds more than round(global_per_s) + 1 sends.
        interval = 1.0 / self.limits.global_per_s
        base = self._next_global if now - self._next_global < interval / 2 else now
        self._next_global = base + interval
        self.stats.granted += 1
        if lane is not None:
            depth = max((c for c, _ in (*self.limits.private, *self.limits.group)), default=1)
            times = self._sent.get(lane)
            if times is None:
                times = self._sent[lane] = deque(maxlen=depth)
            times.append(now)
        self._records += 1
        if self._records % 512 == 0:
            self._forget(now)

    async def _reserve(self, w: _Waiter) -> float:
        """Take the shared slot (sleeping until it comes); > 0: the lane is closed for that long instead."""
        assert self.shared is not None
        try:
            r = await asyncio.wait_for(self.shared.reserve(w.lane, w.group), SHARED_TIMEOUT_S)
        except Exception as e:  # Redis away: pace on the local budget alone rather than stop sending
            if self.clock() - self._shared_down_logged > 30:
                self._shared_down_logged = self.clock()
                log.warning("pacer: shared budget unavailable, pacing locally: %s", e)
            return 0.0
        if r.lane_closed:
            return max(r.wait_s, 0.001)
        if r.wait_s > 0:
            await asyncio.sleep(r.wait_s)
        return 0.0

    def _forget(self, now: float) -> None:
        horizon = now - self.limits.horizon_s
        for lane in [k for k, v in self._sent.items() if not v or v[-1] < horizon]:
            del self._sent[lane]
        for lane in [k for k, v in self._held.items() if v <= now]:
            del self._held[lane]

    async def _serve(self) -> None:
        assert self._wake is not None
        wake = self._wake
        while True:
            now = self.clock()
            while self._timed and self._timed[0][0] <= now:
                _, prio, seq, w = heapq.heappop(self._timed)
                if not w.fut.done():
                    heapq.heappush(self._ready, (prio, seq, w))
            gdelay = self.global_delay(now)
            granted = False
            while self._ready and gdelay <= 0:
                prio, seq, w = heapq.heappop(self._ready)
                if w.fut.done():  # cancelled while waiting
                    continue
                d = self.lane_delay(w.lane, w.group, now)
                if d > 0:
                    heapq.heappush(self._timed, (now + d, prio, seq, w))
                    continue
                if self.shared is not None:
                    d = await self._reserve(w)
                    now = self.clock()
                    if d > 0:  # another process used this chat's window: try again when it opens
                        heapq.heappush(self._timed, (now + d, prio, seq, w))
                        continue
                    if w.fut.done():  # cancelled while the slot was reserved: it goes unused
                        continue
                self.record(w.lane, now)
                w.fut.set_result(None)
                granted = True
                break
            if granted:
                await asyncio.sleep(0)  # let the granted sender start before the next decision
                continue
            if self._ready:
                timeout: float | None = gdelay
            elif self._timed:
                timeout = self._timed[0][0] - now
            else:
                timeout = None
            wake.clear()
            if timeout is None:
                await wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), max(0.0005, timeout))
