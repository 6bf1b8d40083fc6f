"""From latest samples to one number per signal: the value a rule compares with its threshold."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from core.render import margin_label


@dataclass(frozen=True, slots=True)
class Point:
    """One series' current value in the unit rules compare, with where it came from."""

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


def level(points: Sequence[Point], selector: str) -> Level | None:
    """Reduce points by a selector: max, min, mean, sum, or '<venue>/<agg>'."""
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
    if agg == "sum":
        return Level(sum(p.value for p in points), None, tuple(points))
    return Level(sum(p.value for p in points) / len(points), None, tuple(points))


def zscore(current: float, history: Sequence[float], min_points: int = 30) -> float | None:
    """(current - mean) / stdev of the history; None with too little or flat history."""
    if len(history) < min_points:
        return None
    sd = statistics.stdev(history)
    if sd <= 0:
        return None
    return (current - statistics.fmean(history)) / sd
