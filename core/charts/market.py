"""Charts of the venue metrics: funding and basis over time, the basis term structure, open interest.

History members are the metrics' own (``Metric.history_member``): funding ``ts|symbol|rate|interval_s``,
basis ``ts|symbol|future|index|expiry_ms``, open interest ``ts|usd|coins`` (one total per venue).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from core.charts.base import Chart, ChartRequest, ChartSource, family_label, source_footer, thin
from core.charts.figure import Figure, LevelLine, Series
from core.models import EIGHT_HOURS_S, MS_PER_DAY, SECONDS_PER_YEAR, BasisSample
from core.render import VENUE_LABELS

History = Mapping[str, Sequence[tuple[int, str]]]  # venue -> (ts_ms, member), as the store returns them


def _series(groups: Mapping[str, list[tuple[float, float]]], style: str = "line") -> tuple[Series, ...]:
    out = []
    for label in sorted(groups):
        pts = thin(sorted(groups[label]))
        out.append(Series(label, tuple(p[0] for p in pts), tuple(p[1] for p in pts), style))
    return tuple(out)


class FundingChart(Chart):
    metric = "funding"
    name = "funding"
    words = "[1d-90d] [ann]"
    summary = "funding per venue over time, % per 8h (ann: annualized), the chat's thresholds as lines"
    options = ("ann",)

    async def load(self, src: ChartSource, req: ChartRequest, now_ms: int) -> History:
        return await src.history(req.asset, req.window_s, now_ms)

    def level(self, value: float, req: ChartRequest) -> float:
        """A funding rule's threshold (fraction per 8h) in the chart's unit."""
        return value * 100 * (SECONDS_PER_YEAR / EIGHT_HOURS_S if "ann" in req.options else 1)

    def figure(self, raw: History, req: ChartRequest, levels: Sequence[LevelLine], now_ms: int) -> Figure:
        ann = "ann" in req.options
        groups: dict[str, list[tuple[float, float]]] = {}
        for venue, members in raw.items():
            for ts, member in members:
                _ts, symbol, rate, interval = member.split("|")
                scale = SECONDS_PER_YEAR if ann else EIGHT_HOURS_S
                groups.setdefault(family_label(venue, symbol, req.asset), []).append(
                    (float(ts), float(rate) * scale / int(interval) * 100)
                )
        unit = "% annualized" if ann else "% per 8h"
        return Figure(
            title=f"{req.asset} funding · {req.window}",
            y_label=f"funding, {unit}",
            series=_series(groups),
            levels=tuple(levels),
            footer=source_footer(sorted(raw), now_ms),
            caption=f"{req.asset} funding per venue, last {req.window} ({unit})",
        )


class BasisChart(Chart):
    metric = "basis"
    name = "basis"
    words = "[1d-90d]"
    summary = "annualized basis per dated future over time"
    default_window = "30d"

    @property
    def min_days(self) -> float:
        return float(self.m.options.get("min_days_to_expiry", 3.0))

    async def load(self, src: ChartSource, req: ChartRequest, now_ms: int) -> History:
        return await src.history(req.asset, req.window_s, now_ms)

    def level(self, value: float, req: ChartRequest) -> float:
        return value * 100

    def figure(self, raw: History, req: ChartRequest, levels: Sequence[LevelLine], now_ms: int) -> Figure:
        groups: dict[str, list[tuple[float, float]]] = {}
        for venue, members in raw.items():
            for ts, member in members:
                _ts, symbol, future, index, expiry = member.split("|")
                days = (int(expiry) - ts) / MS_PER_DAY
                if days < self.min_days or days <= 0:
                    continue  # annualizing explodes near expiry: not drawn, as not shown or alerted on
                ann = (float(future) - float(index)) / float(index) * 365.0 / days
                date = time.strftime("%y%m%d", time.gmtime(int(expiry) / 1000))
                label = f"{family_label(venue, symbol, req.asset)} {date}"
                groups.setdefault(label, []).append((float(ts), ann * 100))
        return Figure(
            title=f"{req.asset} basis · {req.window}",
            y_label="basis, % annualized",
            series=_series(groups),
            levels=tuple(levels),
            footer=source_footer(sorted(raw), now_ms),
            caption=f"{req.asset} annualized basis per dated future, last {req.window}",
        )


class BasisCurveChart(Chart):
    metric = "basis"
    name = "basis curve"
    words = "curve"
    summary = "the term structure now: annualized basis by days to expiry, venue by venue"
    snapshot = "curve"

    @property
    def min_days(self) -> float:
        return float(self.m.options.get("min_days_to_expiry", 3.0))

    async def load(self, src: ChartSource, req: ChartRequest, now_ms: int) -> dict[str, list[BasisSample]]:
        by_venue, _ = await src.store.read_latest(src.metric, req.asset, src.sources)
        return by_venue

    def level(self, value: float, req: ChartRequest) -> float:
        return value * 100

    def figure(
        self, raw: Mapping[str, Sequence[BasisSample]], req: ChartRequest, levels: Sequence[LevelLine], now_ms: int
    ) -> Figure:
        groups: dict[str, list[tuple[float, float]]] = {}
        for venue, samples in raw.items():
            for s in samples:
                ann = s.basis_annualized(now_ms, self.min_days)
                if ann is not None:
                    groups.setdefault(VENUE_LABELS.get(venue, venue), []).append((s.days_to_expiry(now_ms), ann * 100))
        return Figure(
            title=f"{req.asset} basis term structure",
            y_label="basis, % annualized",
            x_kind="days",
            x_label="days to expiry",
            series=_series(groups, "points"),
            levels=tuple(levels),
            footer=source_footer(sorted(raw), now_ms, "latest futures in Redis"),
            caption=f"{req.asset} basis curve now: annualized basis by days to expiry, per venue",
        )


class OpenInterestChart(Chart):
    metric = "oi"
    name = "oi"
    words = "[1d-90d]"
    summary = "open interest per venue over time, USD"
    default_window = "30d"

    async def load(self, src: ChartSource, req: ChartRequest, now_ms: int) -> History:
        return await src.history(req.asset, req.window_s, now_ms)

    def level(self, value: float, req: ChartRequest) -> float:
        return value / 1e9

    def figure(self, raw: History, req: ChartRequest, levels: Sequence[LevelLine], now_ms: int) -> Figure:
        groups: dict[str, list[tuple[float, float]]] = {}
        for venue, members in raw.items():
            for ts, member in members:
                groups.setdefault(VENUE_LABELS.get(venue, venue), []).append(
                    (float(ts), float(member.split("|")[1]) / 1e9)
                )
        return Figure(
            title=f"{req.asset} open interest · {req.window}",
            y_label="open interest, USD billions",
            series=_series(groups),
            levels=tuple(levels),
            footer=source_footer(sorted(raw), now_ms),
            caption=f"{req.asset} open interest per venue, last {req.window} (USD)",
        )
