"""The liquidations chart: the series equal what Redis holds, the sums computed here."""

from __future__ import annotations

import io

from PIL import Image as PILImage

from core.charts.command import ChartCommands
from core.context import ChatContext
from core.liquidations import LiqEvent, LiquidationStore
from core.store import MarketStore
from tests.charts.conftest import NOW_MS
from tests.charts.test_series import same, series_of

H = 3_600_000
CTX = ChatContext(platform="tg", chat_id=42, user_id=42)


async def test_liquidations_per_hour_longs_up_shorts_down(charts: ChartCommands, store: MarketStore) -> None:
    events = [
        LiqEvent(
            "okx" if i % 2 else "bybit",
            "BTC/USDT:USDT",
            "BTC",
            "long" if i % 3 else "short",
            1.0,
            100_000.0 * (1 + i % 4),
            1e5,
            NOW_MS - i * 700_000,
        )
        for i in range(120)
    ]
    await LiquidationStore(store.redis, store.keys).add(events, now_ms=NOW_MS)
    got = await series_of(charts, ["liqs", "btc", "24h"])
    for side, sign, label in (("long", 1, "longs liquidated"), ("short", -1, "shorts liquidated")):
        hours: dict[int, float] = {}
        for e in events:
            if e.side == side and e.ts_ms >= NOW_MS - 24 * H:
                hours[e.ts_ms // H] = hours.get(e.ts_ms // H, 0.0) + e.usd
        assert same(got[label], [(h * H + H / 2, sign * hours[h] / 1e6) for h in sorted(hours)])
    reply = await charts.chart(["liqs", "btc", "4h"], CTX)
    assert reply.image is not None and PILImage.open(io.BytesIO(reply.image.data)).size == (1200, 750)
