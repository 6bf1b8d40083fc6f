"""The liquidations chart: USD liquidated per time bucket, longs as bars up, shorts as bars down.

Reads the liquidation events the stream watcher keeps in Redis (one ZSET per asset and venue, the
last 25 hours), summed over the venues per bucket (5 minutes up to a 4h window, else an hour).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from core.charts.base import Chart, ChartRequest, ChartSource, source_footer
from core.charts.figure import Figure, LevelLine, Series
from core.liquidations import LiqEvent, LiquidationStore


class LiquidationsChart(Chart):
    metric = "liqs"
    name = "liqs"
    words = "[1h-24h]"
    summary = "USD liquidated per 5 minutes or hour: longs up, shorts down"
    default_window = "24h"
    lo_s = 3600
    hi_s = 86_400

    async def load(self, src: ChartSource, req: ChartRequest, now_ms: int) -> dict[str, list[LiqEvent]]:
        return await LiquidationStore(src.store.redis, src.store.keys).since(
            req.asset, src.sources, now_ms - req.window_s * 1000
        )

    def figure(
        self, raw: Mapping[str, Sequence[LiqEvent]], req: ChartRequest, levels: Sequence[LevelLine], now_ms: int
    ) -> Figure:
        bucket_ms = 300_000 if req.window_s <= 4 * 3600 else 3_600_000
        sums: dict[str, dict[int, float]] = {"long": {}, "short": {}}
        for events in raw.values():
            for e in events:
                if e.side in sums and e.ts_ms >= now_ms - req.window_s * 1000:
                    b = e.ts_ms // bucket_ms
                    sums[e.side][b] = sums[e.side].get(b, 0.0) + e.usd
        series = []
        for side, sign, label in (("long", 1.0, "longs liquidated"), ("short", -1.0, "shorts liquidated")):
            buckets = sorted(sums[side])
            if buckets:
                series.append(
                    Series(
                        label,
                        tuple(float(b * bucket_ms + bucket_ms / 2) for b in buckets),
                        tuple(sign * sums[side][b] / 1e6 for b in buckets),
                        "bars",
                        width=bucket_ms * 0.8,
                    )
                )
        step = "5 minutes" if bucket_ms == 300_000 else "hour"
        return Figure(
            title=f"{req.asset} liquidations · {req.window}",
            y_label=f"USD millions per {step}",
            series=tuple(series),
            levels=tuple(levels),
            footer=source_footer(sorted(raw), now_ms, "liquidation streams in Redis, lower bounds"),
            caption=f"{req.asset} liquidations per {step}, last {req.window}",
        )
