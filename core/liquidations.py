"""Liquidations: single events from the venues' public streams, and rolling sums over 1h, 4h and 24h.

Events live in Redis, one ZSET per (asset, venue) scored by the venue's timestamp, so every
process and a restarted one see the same windows. An event is its own member: a frame that a
venue replays after a reconnect is added with ``ZADD NX`` and counts nothing the second time.
Sides are the position that was liquidated (a forced sell closes a long).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Self

from redis.asyncio import Redis

from core.keys import Keys

WINDOWS_S = (3600, 14_400, 86_400)
SIDES = ("long", "short")
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
    """Adds liquidation events once each and reads them back; owns no connection."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def add(self, events: Sequence[LiqEvent], *, now_ms: int) -> list[LiqEvent]:
        """Store events; return the ones not seen before (a replayed frame returns nothing)."""
        if not events:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for e in events:
            pipe.zadd(self.keys.liq_events(e.asset, e.venue), {e.to_json(): e.ts_ms}, nx=True)
        for key in {self.keys.liq_events(e.asset, e.venue) for e in events}:
            pipe.zremrangebyscore(key, "-inf", now_ms - KEEP_MS)
        added = (await pipe.execute())[: len(events)]
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
        """Rolling sums of each (asset, venue), from the events in Redis (what every process agrees on)."""
        pipe = self.redis.pipeline(transaction=False)
        for asset, venue in pairs:
            pipe.zrangebyscore(self.keys.liq_events(asset, venue), now_ms - 86_400_000, "+inf")
        raw_all: list[Any] = await pipe.execute()
        return [
            windows_of(venue, asset, (LiqEvent.from_json(m) for m in raw), now_ms)
            for (asset, venue), raw in zip(pairs, raw_all, strict=True)
        ]
