"""What a chart shows, before anything is drawn: series in display units, level lines, labels.

A :class:`Figure` is a plain, picklable value: the data-to-series step builds it from what Redis
holds, the renderer (``core.charts.draw``) turns it into a PNG in a worker process.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Series:
    """One line (or set of bars) of a chart; ``xs`` are ms timestamps, or days for an ``x_kind`` of days."""

    label: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    style: str = "line"  # "line", "bars" or "points" (a line with markers)
    axis: str = "left"  # "left" or "right" (a second unit, e.g. the exchange balance)
    width: float = 0.0  # bars: width in x units (ms on a time axis); 0: most of a day, or 1 unit
    rising_good: bool = False  # bars: positive in green, negative in red (else positive red: inflows, longs hit)


@dataclass(frozen=True, slots=True)
class LevelLine:
    """A horizontal line across the chart: a threshold of an alert rule."""

    label: str
    value: float


@dataclass(frozen=True, slots=True)
class Figure:
    """Everything one chart shows."""

    title: str  # "BTC funding · 7d"
    y_label: str  # with its unit: "funding, % per 8h"
    series: tuple[Series, ...]
    footer: str  # data source and time
    caption: str  # what the platform shows under the picture
    levels: tuple[LevelLine, ...] = ()
    marks: tuple[LevelLine, ...] = ()  # vertical lines at x values (spot, a flip level)
    x_kind: str = "time"  # "time" (UTC), or a number axis named by x_label (days to expiry, strike)
    x_label: str = ""
    y2_label: str = ""
    empty_note: str = "no data in this window yet"

    @property
    def points(self) -> int:
        return sum(len(s.xs) for s in self.series)
