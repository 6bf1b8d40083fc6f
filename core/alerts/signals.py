"""From latest samples to one number per signal: the value a rule compares with its threshold."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.models import EIGHT_HOURS_S, MS_PER_DAY, BasisSample, FundingSample
from core.render import margin_label


@dataclass(frozen=True, slots=True)
class Point:
    """One series' current value: funding per 8h, or annualized basis, with where it came from."""

    venue: str
    symbol: str
    value: float
    settle: str
    inverse: bool

    @property
    def label(self) -> str:
        """Venue and margin type, as shown in replies."""
        return margin_label(self.venue, self.settle, self.inverse)


@dataclass(frozen=True, slots=True)
class Level:
    value: float
    point: Point | None  # the series of the max/min (None for a mean)
    points: tuple[Point, ...]


def funding_points(by_venue: Mapping[str, Sequence[FundingSample]]) -> list[Point]:
    """Funding normalized to 8h so venues with 1h/4h intervals compare with 8h ones."""
    return [Point(v, s.symbol, s.rate_per_interval * EIGHT_HOURS_S / s.interval_s, s.settle, s.inverse)
            for v, ss in by_venue.items() for s in ss]


def basis_points(by_venue: Mapping[str, Sequence[BasisSample]], now_ms: int, min_days: float) -> list[Point]:
    """Annualized basis of every future outside the near-expiry window."""
    out = []
    for v, ss in by_venue.items():
        for s in ss:
            days = (s.expiry_ms - now_ms) / MS_PER_DAY
            if days >= min_days and days > 0:
                out.append(Point(v, s.symbol, (s.future_usd - s.index_usd) / s.index_usd * 365.0 / days,
                                 s.settle, s.inverse))
    return out


def level(points: Sequence[Point], selector: str) -> Level | None:
    """Reduce points by a selector: max, min, mean, or '<venue>/<agg>'."""
    agg = selector
    if "/" in selector:
        venue, agg = selector.split("/", 1)
        points = [p for p in points if p.venue == venue]
    if not points:
        return None
    if agg == "max":
        p = max(points, key=lambda x: x.value)
        return Level(p.value, p, tuple(points))
    if agg == "min":
        p = min(points, key=lambda x: x.value)
        return Level(p.value, p, tuple(points))
    return Level(sum(p.value for p in points) / len(points), None, tuple(points))


def zscore(current: float, history: Sequence[float], min_points: int = 30) -> float | None:
    """(current - mean) / stdev of the history; None with too little or flat history."""
    if len(history) < min_points:
        return None
    sd = statistics.stdev(history)
    if sd <= 0:
        return None
    return (current - statistics.fmean(history)) / sd
