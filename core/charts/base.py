"""A chart kind: which words select it, what it reads from Redis, and the pure step from that to a Figure.

Each chart kind belongs to one metric and is listed in ``core.charts.catalog`` under the metric's
name; ``/chart <metric> <asset> [window]`` asks the metric's kinds in turn which one takes the
window word, so a new metric brings its charts without the command changing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from core.charts.figure import Figure, LevelLine
from core.metrics.base import Metric
from core.render import VENUE_LABELS
from core.reply import UserError
from core.store import TIERS_MS, MarketStore

_WINDOW = re.compile(r"^(\d{1,3})(h|d)$")
POINTS_PER_SERIES = 800  # a window reads the finest history with at most this many points per series
MAX_POINTS = 800  # per series drawn: a phone screen has fewer pixels across


@dataclass(frozen=True, slots=True)
class ChartRequest:
    """One chart as asked for: metric, asset, window (seconds; 0 for a snapshot), options, theme."""

    chart: str  # the chart kind's name: "funding", "basis curve"
    metric: str
    asset: str
    window: str  # as typed, normalized: "7d", "curve"
    window_s: int
    options: tuple[str, ...] = ()  # e.g. ("ann",)
    theme: str = "light"


@dataclass(frozen=True, slots=True)
class ChartSource:
    """What a chart may read: the store (never an exchange), the metric's sources, the clock."""

    store: MarketStore
    metric: Metric
    sources: tuple[str, ...]
    clock_ms: Callable[[], int]
    fine_step_ms: int = 300_000  # the [history] step of the watchers' history

    async def history(self, asset: str, window_s: int, now_ms: int) -> dict[str, list[tuple[int, str]]]:
        """Every source's history members in the window, from the finest history that keeps the points per
        series under POINTS_PER_SERIES (the 5-minute history, the hourly one, the 6-hourly one)."""
        since = now_ms - window_s * 1000
        for tier, step_ms in TIERS_MS.items():
            if window_s * 1000 / step_ms <= POINTS_PER_SERIES or tier == list(TIERS_MS)[-1]:
                break
        if window_s * 1000 / self.fine_step_ms <= POINTS_PER_SERIES:
            return await self.store.history_since(self.metric.name, asset, self.sources, since)
        found = await self.store.history_since(self.metric.name, asset, self.sources, since, tier=tier)
        if found or window_s > self.store.retention_ms / 1000:
            return found
        return await self.store.history_since(self.metric.name, asset, self.sources, since)  # tiers not written yet


def fmt_window(seconds: int) -> str:
    """3600 * 24 -> '24h', 7 days -> '7d': hours below two days, days from there (never weeks)."""
    return f"{seconds // 86_400}d" if seconds % 86_400 == 0 and seconds >= 2 * 86_400 else f"{seconds // 3600}h"


def parse_window(word: str, *, lo_s: int = 3600, hi_s: int = 90 * 86_400) -> int | None:
    """'24h', '7d', '90d' -> seconds within bounds; None when the word is not a window."""
    m = _WINDOW.match(word.lower())
    if not m:
        return None
    seconds = int(m.group(1)) * (3600 if m.group(2) == "h" else 86_400)
    return seconds if lo_s <= seconds <= hi_s else None


class Chart:
    """Base of every chart kind; subclasses read Redis in ``load`` and build the Figure in ``figure``."""

    metric: ClassVar[str]
    name: ClassVar[str]
    words: ClassVar[str]  # the usage after the asset: "[1d-90d] [ann]"
    summary: ClassVar[str]
    snapshot: ClassVar[str | None] = None  # the word that selects a snapshot chart ("curve"); None: a window
    default_window: ClassVar[str] = "7d"
    lo_s: ClassVar[int] = 3600
    hi_s: ClassVar[int] = 90 * 86_400
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, metric: Metric) -> None:
        self.m = metric  # the configured metric (its options: min days to expiry, ...)

    def level(self, value: float, req: ChartRequest) -> float | None:
        """A rule's threshold (in the metric's unit) as a line in the chart's unit; None: not drawn."""
        return None

    def request(self, asset: str, words: Sequence[str], theme: str) -> ChartRequest | None:
        """The request these words make of this kind, None when they are not its words."""
        rest = [w.lower() for w in words]
        opts = tuple(w for w in rest if w in self.options)
        rest = [w for w in rest if w not in self.options]
        if self.snapshot is not None:
            if rest != [self.snapshot]:
                return None
            return ChartRequest(self.name, self.metric, asset, self.snapshot, 0, opts, theme)
        if len(rest) > 1:
            return None
        window = rest[0] if rest else self.default_window
        seconds = parse_window(window, lo_s=self.lo_s, hi_s=self.hi_s)
        if seconds is None:
            if rest and _WINDOW.match(window):
                raise UserError(
                    f"/chart {self.metric}: the window must be from {fmt_window(self.lo_s)} to "
                    f"{fmt_window(self.hi_s)}, e.g. /chart {self.metric} btc {self.default_window}"
                )
            return None
        return ChartRequest(self.name, self.metric, asset, window, seconds, opts, theme)  # the window as typed

    def usage(self) -> str:
        return f"/chart {self.metric} <asset> {self.words}"

    async def load(self, src: ChartSource, req: ChartRequest, now_ms: int) -> Any:
        """What Redis holds for this chart (raw members or rows): the only I/O of a chart."""
        raise NotImplementedError

    def figure(self, raw: Any, req: ChartRequest, levels: Sequence[LevelLine], now_ms: int) -> Figure:
        """The pure step: what Redis held -> the series drawn, in display units."""
        raise NotImplementedError


def family_label(venue: str, symbol: str, asset: str) -> str:
    """'binance·usdc' from a venue and a ccxt symbol (the settle currency after ':')."""
    label = VENUE_LABELS.get(venue, venue)
    settle = symbol.split(":", 1)[1].split("-", 1)[0] if ":" in symbol else ""
    if venue == "binancecoinm" or not settle or settle == "USDT":
        return label
    if settle == "USDC":
        return f"{label}·usdc"
    if settle == asset and venue != "deribit":
        return f"{label}·inv"
    return label


def thin(points: Sequence[tuple[float, float]], limit: int = MAX_POINTS) -> list[tuple[float, float]]:
    """At most ``limit`` points, evenly picked (the last one kept): a line does not need more."""
    if len(points) <= limit:
        return list(points)
    step = len(points) / limit
    picked = [points[int(i * step)] for i in range(limit - 1)]
    return [*picked, points[-1]]


def stamp(now_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(now_ms / 1000))


def source_footer(sources: Sequence[str], now_ms: int, what: str = "venue history in Redis") -> str:
    names = ", ".join(VENUE_LABELS.get(s, s) for s in sources) or "none"
    return f"Source: {what} ({names}) · drawn {stamp(now_ms)}"
