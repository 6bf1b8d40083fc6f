"""The dealer gamma chart: GEX per strike near spot (bars), with spot and the flip level as vertical lines.

Reads the latest option chain in Redis and uses the gamma metric's own figures (Black-76, dealers
long calls and short puts; see ``core.gamma``); ``/chart gamma btc 30d`` keeps the expiries within 30 days.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

from core.charts.base import Chart, ChartRequest, ChartSource, source_footer
from core.charts.figure import Figure, LevelLine, Series
from core.gamma import OptionSample
from core.metrics.gamma import chain_figures
from core.reply import UserError

_DAYS = re.compile(r"^(\d{1,3})d$")
SPAN = 0.3  # strikes within ±30% of spot are drawn


class GammaChart(Chart):
    metric = "gamma"
    name = "gamma"
    words = "[1d-365d: expiries within]"
    summary = "dealer gamma exposure per strike (USD per 1% move) with spot and the flip level"
    snapshot = ""

    def request(self, asset: str, words: Sequence[str], theme: str) -> ChartRequest | None:
        rest = [w.lower() for w in words]
        if len(rest) > 1:
            return None
        if rest:
            m = _DAYS.match(rest[0])
            if not m:
                return None
            if not 1 <= int(m.group(1)) <= 365:
                raise UserError("/chart gamma: expiries within 1d to 365d, e.g. /chart gamma btc 30d")
        return ChartRequest(self.name, self.metric, asset, rest[0] if rest else "", 0, tuple(rest), theme)

    async def load(self, src: ChartSource, req: ChartRequest, now_ms: int) -> dict[str, list[OptionSample]]:
        by_venue, _ = await src.store.read_latest(src.metric, req.asset, src.sources)
        return by_venue

    def figure(
        self, raw: Mapping[str, Sequence[OptionSample]], req: ChartRequest, levels: Sequence[LevelLine], now_ms: int
    ) -> Figure:
        max_days = float(req.window[:-1]) if req.window else getattr(self.m, "max_days", None)
        chain = [o for samples in raw.values() for o in samples]
        by_strike, total, spot, flip = chain_figures(chain, now_ms, max_days) if chain else ({}, 0.0, None, None)
        series: tuple[Series, ...] = ()
        marks: list[LevelLine] = []
        if spot:
            strikes = sorted(k for k in by_strike if abs(k - spot) <= SPAN * spot)
            gaps = [b - a for a, b in itertools.pairwise(strikes)]
            width = min(gaps) * 0.8 if gaps else spot * 0.01
            series = (
                Series(
                    "net GEX per strike",
                    tuple(strikes),
                    tuple(by_strike[k] / 1e6 for k in strikes),
                    "bars",
                    width=width,
                    rising_good=True,
                ),
            )
            marks.append(LevelLine(f"spot {spot:,.0f}", spot))
            if flip:
                marks.append(LevelLine(f"flip {flip:,.0f}", flip))
        within = f"expiries within {req.window}" if req.window else "every expiry"
        return Figure(
            title=f"{req.asset} dealer gamma · total {total / 1e6:+,.1f}M per 1%",
            y_label="GEX, USD millions per 1% move",
            x_kind="strike",
            x_label="strike (USD)",
            series=series,
            marks=tuple(marks),
            levels=tuple(levels),
            footer=source_footer(
                sorted(raw), now_ms, f"latest options in Redis, {within}; dealers long calls, short puts"
            ),
            caption=f"{req.asset} dealer gamma by strike ({within})",
        )
