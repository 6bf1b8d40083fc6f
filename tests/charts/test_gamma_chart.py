"""The dealer-gamma chart: GEX per strike equals Black-76 over the chain Redis holds, with spot and flip marks."""

from __future__ import annotations

import io
import math

from PIL import Image as PILImage

from core.charts.catalog import ChartCatalog
from core.charts.command import ChartCommands
from core.context import ChatContext
from core.gamma import OptionSample
from core.store import MarketStore
from tests.charts.conftest import NOW_MS
from tests.charts.test_series import same

CTX = ChatContext(platform="tg", chat_id=42, user_id=42)


def gex(o: OptionSample, now_ms: int) -> float:
    """Black-76 gamma x OI x F^2 x 1%, + calls, - puts (the convention /gamma states)."""
    f, k, sigma, t = o.underlying_usd, o.strike, o.mark_iv_pct / 100, (o.expiry_ms - now_ms) / (365 * 86_400_000)
    d1 = (math.log(f / k) + sigma * sigma * t / 2) / (sigma * math.sqrt(t))
    gamma = math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi) / (f * sigma * math.sqrt(t))
    return (1 if o.call else -1) * gamma * o.open_interest * f * f * 0.01


async def test_gamma_by_strike_with_spot_and_flip(charts: ChartCommands, store: MarketStore) -> None:
    def oi(k: int, call: bool) -> float:  # calls dominate above 95k, puts below: the net turns negative below
        return (900.0 if call else 300.0) if k > 95_000 else (300.0 if call else 900.0)

    chain = [
        OptionSample(
            "deribit",
            f"BTC/USD:BTC-260101-{k}-{'C' if c else 'P'}",
            "BTC",
            float(k),
            NOW_MS + 30 * 86_400_000,
            c,
            oi(k, c),
            50.0,
            100_000.0,
            99_800.0,
            NOW_MS,
        )
        for k in range(40_000, 160_001, 5000)
        for c in (True, False)
    ]
    await store.write_samples(charts.registry.get("gamma"), "deribit", chain, now_ms=NOW_MS)
    charts.sources["gamma"] = ("deribit",)  # the venues of these tests list no options
    charts.catalog = ChartCatalog(charts.registry, charts.sources)
    chart, req = charts.parse(["gamma", "btc"])
    fig = chart.figure(await chart.load(charts.source("gamma"), req, NOW_MS), req, [], NOW_MS)
    by_strike: dict[float, float] = {}
    for o in chain:
        by_strike[o.strike] = by_strike.get(o.strike, 0.0) + gex(o, NOW_MS)
    near = sorted(k for k in by_strike if abs(k - 99_800) <= 0.3 * 99_800)  # ±30% of spot
    (bars,) = fig.series
    assert same(list(zip(bars.xs, bars.ys, strict=True)), [(k, by_strike[k] / 1e6) for k in near])
    spot, flip = fig.marks
    assert spot.value == 99_800 and 90_000 < flip.value < 99_800  # net GEX turns negative below ~95k
    reply = await charts.chart(["gamma", "btc", "30d"], CTX)
    assert reply.image is not None and PILImage.open(io.BytesIO(reply.image.data)).format == "PNG"
