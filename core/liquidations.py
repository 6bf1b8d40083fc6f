"""Liquidations: single events from the venues' public streams, and rolling sums over 1h, 4h and 24h.

Events live in Redis, one ZSET per (asset, venue) scored by the venue's timestamp, so every
process and a restarted one see the same windows. An event is its own member: a frame that a
venue replays after a reconnect is added with ``ZADD NX`` and counts nothing the second time.
Sides are the position that was liquidated (a forced sell closes a long). Each event is also
counted, in the same script, in a per-minute and a per-hour sum per side, and the windows are
read from those sums (plus the events of each window's partial first minute), so reading them does
not grow with the tens of thousands of events a venue publishes in a cascade.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Self

from redis.asyncio import Redis

from core.keys import Keys
from core.liq_scripts import ADD, WINDOWS

WINDOWS_S = (3600, 14_400, 86_400)
SIDES = ("long", "short")
MINUTE_MS = 60_000
KEEP_MS = 86_400_000 + 3_600_000  # the longest window plus an hour of slack for late frames


@dataclass(frozen=True, slots=True)
class LiqEvent:
    """One liquidation as the venue published it, in coins of the base asset and USD."""

    venue: str
    symbol: str  # ccxt unified symbol
    asset: str
    side: str  # the position liquidated: "long" or "short"
    coins: float
    usd: float
    price: float  # the fill (binance average price, bybit price, okx bankruptcy price)
    ts_ms: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        return cls(**json.loads(raw))


@dataclass(frozen=True, slots=True)
class LiqWindows:
    """One venue's USD liquidated per side over the rolling windows, as of ``ts_ms`` (the metric's sample)."""

    venue: str
    asset: str
    ts_ms: int
    long_1h: float
    short_1h: float
    long_4h: float
    short_4h: float
    long_24h: float
    short_24h: float
    count_24h: int
    symbol: str = "all"  # one row per venue and asset

    def usd(self, side: str, window_s: int) -> float:
        """USD liquidated on ``side`` ('long', 'short' or 'total') within the window."""
        w = {3600: "1h", 14_400: "4h", 86_400: "24h"}[window_s]
        if side == "total":
            return float(getattr(self, f"long_{w}") + getattr(self, f"short_{w}"))
        return float(getattr(self, f"{side}_{w}"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        return cls(**json.loads(raw))


MAX_SINGLE_USD = 2e9  # far above the largest single liquidation ever published: a bigger one is a bad frame


def event_problem(e: LiqEvent) -> str | None:
    """Why an event must not be counted (a garbled frame), or None."""
    for name in ("coins", "usd", "price"):
        x = getattr(e, name)
        if not isinstance(x, int | float) or not math.isfinite(x) or x <= 0:
            return f"{name} {x!r} is not a positive number"
    if e.usd > MAX_SINGLE_USD:
        return f"${e.usd:,.0f} in one liquidation is implausible"
    if e.side not in SIDES:
        return f"side {e.side!r} is neither long nor short"
    return None


def windows_of(venue: str, asset: str, events: Iterable[LiqEvent], now_ms: int) -> LiqWindows:
    """Sum events into the rolling windows ending at ``now_ms``."""
    sums = {(side, w): 0.0 for side in SIDES for w in WINDOWS_S}
    count = 0
    for e in events:
        age_ms = now_ms - e.ts_ms
        if age_ms > 86_400_000 or e.side not in SIDES:
            continue
        count += 1
        for w in WINDOWS_S:
            if age_ms <= w * 1000:
                sums[(e.side, w)] += e.usd
    return _liq_windows(venue, asset, now_ms, sums, count)


def _liq_windows(venue: str, asset: str, now_ms: int, sums: dict[tuple[str, int], float], count: int) -> LiqWindows:
    return LiqWindows(
        venue=venue,
        asset=asset,
        ts_ms=now_ms,
        long_1h=sums[("long", 3600)],
        short_1h=sums[("short", 3600)],
        long_4h=sums[("long", 14_400)],
        short_4h=sums[("short", 14_400)],
        long_24h=sums[("long", 86_400)],
        short_24h=sums[("short", 86_400)],
        count_24h=count,
    )


class LiquidationStore:
    """Adds liquidation events once each and reads them back; owns no connection.

    The windows are read from per-minute and per-hour sums kept with the events (``core.liq_scripts``):
    the whole minutes and hours inside a window come from the sums and the one partial minute at its
    start from the events themselves, so reading a window does not grow with the events of the last
    24h, and it equals ``windows_of`` over those events (for a ``now`` no more than the hour of slack
    in ``KEEP_MS`` before the latest ``add``: older sums may still hold trimmed events).
    """

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._add = redis.register_script(ADD)
        self._windows = redis.register_script(WINDOWS)

    def _pair_keys(self, asset: str, venue: str) -> list[str]:
        return [self.keys.liq_events(asset, venue), self.keys.liq_sums(asset, venue)]

    async def add(self, events: Sequence[LiqEvent], *, now_ms: int) -> list[LiqEvent]:
        """Store events; return the ones not seen before (a replayed frame returns nothing).

        Events older than the kept span (``KEEP_MS`` before ``now_ms``) are neither stored nor returned.
        A non-finite USD amount raises ValueError before anything is written (no sum could hold it).
        """
        if not events:
            return []
        bad = [e for e in events if not math.isfinite(e.usd)]
        if bad:
            raise ValueError(f"liquidation with a non-finite USD amount: {bad[0]!r}")
        slot: dict[tuple[str, str], int] = {}
        keys: list[str] = []
        args: list[str | int | float] = [now_ms, KEEP_MS]
        for e in events:
            pair = (e.asset, e.venue)
            if pair not in slot:
                slot[pair] = len(slot) + 1
                keys += self._pair_keys(*pair)
            args += [slot[pair], e.to_json(), e.ts_ms, e.side if e.side in SIDES else "", float(e.usd)]
        added = await self._add(keys=keys, args=args)
        return [e for e, n in zip(events, added, strict=True) if n]

    async def since(self, asset: str, venues: Sequence[str], since_ms: int) -> dict[str, list[LiqEvent]]:
        """Each venue's events of ``asset`` newer than ``since_ms``, oldest first: one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for v in venues:
            pipe.zrangebyscore(self.keys.liq_events(asset, v), since_ms, "+inf")
        out: dict[str, list[LiqEvent]] = {}
        for v, raw in zip(venues, await pipe.execute(), strict=True):
            if raw:
                out[v] = [LiqEvent.from_json(m) for m in raw]
        return out

    async def windows(self, pairs: Sequence[tuple[str, str]], now_ms: int) -> list[LiqWindows]:
        """Rolling sums of each (asset, venue), from Redis (what every process agrees on): one round trip."""
        if not pairs:
            return []
        keys = [k for asset, venue in pairs for k in self._pair_keys(asset, venue)]
        rows: list[Any] = await self._windows(keys=keys, args=_window_reads(now_ms))
        return [_windows_row(venue, asset, now_ms, row) for (asset, venue), row in zip(pairs, rows, strict=True)]


def _window_reads(now_ms: int) -> list[int | str]:
    """What the windows script reads for each window ending at ``now_ms`` (its ARGV, see ``core.liq_scripts``).

    A window counts every event at or after its start (``windows_of``: an age of at most the window,
    times ahead of now included): the events of its partial first minute, the sums of the minutes from
    the first whole one to now's, and the events after now's minute.
    """
    last = now_ms // MINUTE_MS + 1  # the minutes of the sums end with now's
    args: list[int | str] = [last * MINUTE_MS]
    for w in WINDOWS_S:
        start = now_ms - w * 1000
        first = -(-start // MINUTE_MS)
        args += [start, f"({first * MINUTE_MS}", *_spans(first, last)]
    return args


def _spans(first: int, last: int) -> tuple[int, ...]:
    """Minutes [first, last) as whole minutes, whole hours and whole minutes again, each half-open."""
    h0, h1 = -(-first // 60), last // 60
    if h0 >= h1:
        return (first, last, 0, 0, last, last)
    return (first, h0 * 60, h0, h1, h1 * 60, last)


def _windows_row(venue: str, asset: str, now_ms: int, row: Sequence[Any]) -> LiqWindows:
    """One pair's script reply -> LiqWindows: the sums, plus the events of each partial first minute and after now's."""
    n, longest = len(WINDOWS_S), WINDOWS_S[-1]
    sums = {(side, w): float(row[2 * i + j]) for i, w in enumerate(WINDOWS_S) for j, side in enumerate(SIDES)}
    count = int(row[2 * n])
    for w, edge in zip(WINDOWS_S, row[2 * n + 1 : 3 * n + 1], strict=True):
        for e in _counted(edge):
            sums[(e.side, w)] += e.usd
            count += w == longest
    for e in _counted(row[3 * n + 1]):  # after now's minute: in every window
        for w in WINDOWS_S:
            sums[(e.side, w)] += e.usd
        count += 1
    return _liq_windows(venue, asset, now_ms, sums, count)


def _counted(raw: Iterable[bytes]) -> Iterable[LiqEvent]:
    """The events among ``raw`` that a window counts (``windows_of`` skips any other side)."""
    return (e for e in map(LiqEvent.from_json, raw) if e.side in SIDES)
