"""The exchange-flows chart: bars of each day's net flow, a line for the exchange balance (second axis)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from core.charts.base import Chart, ChartRequest, ChartSource, source_footer
from core.charts.figure import Figure, LevelLine, Series
from core.models import FlowDay


def day_ms(day: str) -> float:
    """A UTC day's midday in ms: where its bar stands on a time axis."""
    d = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    return d.timestamp() * 1000 + 43_200_000


class FlowsChart(Chart):
    metric = "flows"
    name = "flows"
    words = "[7d-365d]"
    summary = "bars of daily net flow onto exchanges, a line for the exchange balance"
    default_window = "90d"
    lo_s = 7 * 86_400
    hi_s = 365 * 86_400

    async def load(self, src: ChartSource, req: ChartRequest, now_ms: int) -> dict[str, list[FlowDay]]:
        by_venue, _ = await src.store.read_latest(src.metric, req.asset, src.sources)
        return by_venue

    def level(self, value: float, req: ChartRequest) -> float:
        return value

    def figure(
        self, raw: Mapping[str, Sequence[FlowDay]], req: ChartRequest, levels: Sequence[LevelLine], now_ms: int
    ) -> Figure:
        first = (dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC) - dt.timedelta(seconds=req.window_s)).date()
        series: list[Series] = []
        for provider in sorted(raw):
            rows = sorted((r for r in raw[provider] if r.day >= first.isoformat()), key=lambda r: r.day)
            net = [(day_ms(r.day), r.netflow) for r in rows if r.netflow is not None]
            bal = [(day_ms(r.day), r.balance) for r in rows if r.balance is not None]
            if net:
                series.append(
                    Series(f"{provider} net flow", tuple(x for x, _ in net), tuple(float(y) for _, y in net), "bars")
                )
            if bal:
                series.append(
                    Series(
                        f"{provider} balance",
                        tuple(x for x, _ in bal),
                        tuple(float(y) for _, y in bal),
                        "line",
                        "right",
                    )
                )
        return Figure(
            title=f"{req.asset} exchange flows · {req.window}",
            y_label=f"net flow, {req.asset} per day (+ onto exchanges)",
            y2_label=f"balance, {req.asset}",
            series=tuple(series),
            levels=tuple(levels),
            footer=source_footer(sorted(raw), now_ms, "daily on-chain rows in Redis"),
            caption=f"{req.asset} exchange net flow per day and exchange balance, last {req.window}",
        )
