"""Send pacing under a platform's limits: a global rate plus sliding windows per chat."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """A platform's flood limits; windows are (max sends, seconds), checked per chat."""

    global_per_s: float
    private: tuple[tuple[int, float], ...]
    group: tuple[tuple[int, float], ...]


# Telegram: ~30/s overall, ~1/s per chat, 20/min per group. Paced a little under each so that
# clock skew and network jitter between us and the server never tip a window over.
TELEGRAM_LIMITS = Limits(global_per_s=28.0, private=((1, 1.05),), group=((1, 1.05), (20, 61.0)))
# Discord: 50 requests/s global, about 5 messages per 5 s per channel.
DISCORD_LIMITS = Limits(global_per_s=45.0, private=((5, 5.5),), group=((5, 5.5),))


class Pacer:
    """Decides when the next send to a chat may go; times are monotonic seconds."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._next_global = 0.0
        self._sent: dict[str, deque[float]] = {}
        self._held: dict[str, float] = {}

    def target_delay(self, target: str, is_group: bool, now: float) -> float:
        """Seconds until this chat's windows allow another send (0 when allowed now)."""
        delay = self._held.get(target, 0.0) - now
        times = self._sent.get(target)
        if not times:
            return max(0.0, delay)
        for count, window in self.limits.group if is_group else self.limits.private:
            if len(times) >= count:
                delay = max(delay, times[-count] + window - now)
        return max(0.0, delay)

    def global_delay(self, now: float) -> float:
        return max(0.0, self._next_global - now)

    def hold(self, target: str, until: float) -> None:
        """A 429 for this chat: keep it quiet until ``until`` by filling its windows."""
        self._held[target] = max(until, self._held.get(target, 0.0))

    def record(self, target: str, now: float) -> None:
        # Global slots are one interval apart. A send that is only a little late (timer wake-up
        # latency) keeps its slot, so those small delays do not add up and pull the rate below the
        # configured one; after a real stall the next slot is one interval after now (never "catch
        # up" with a burst). Either way no 1 s window holds more than round(global_per_s) + 1 sends.
        interval = 1.0 / self.limits.global_per_s
        base = self._next_global if now - self._next_global < interval / 2 else now
        self._next_global = base + interval
        times = self._sent.setdefault(target, deque(maxlen=64))
        times.append(now)
        if len(self._sent) > 200_000:  # forget chats idle for longer than any window
            horizon = now - 120
            for key in [k for k, v in self._sent.items() if v[-1] < horizon]:
                del self._sent[key]
            self._held = {k: v for k, v in self._held.items() if v > now}
