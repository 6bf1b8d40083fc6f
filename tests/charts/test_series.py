"""The data-to-series step of every chart kind: the series drawn equal what Redis holds; the PNG decodes."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from PIL import Image as PILImage

from core.charts.command import ChartCommands
from core.context import ChatContext
from core.models import BasisSample, FlowDay, FundingSample, OpenInterestSample
from core.store import MarketStore
from tests.charts.conftest import NOW_MS

H = 3_600_000
DAY = 86_400_000
CTX = ChatContext(platform="tg", chat_id=42, user_id=42)


def funding(venue: str, symbol: str, rate: float, interval_s: int, ts: int) -> FundingSample:
    settle = symbol.split(":")[1]
    return FundingSample(
        venue=venue,
        symbol=symbol,
        asset="BTC",
        settle=settle,
        inverse=settle == "BTC",
        rate_per_interval=rate,
        interval_s=interval_s,
        next_funding_ms=None,
        predicted_rate=None,
        mark_usd=100_000.0,
        index_usd=100_000.0,
        ts_ms=ts,
    )


async def write(charts: ChartCommands, store: MarketStore, metric: str, samples: list, now: int = NOW_MS) -> None:
    m = charts.registry.get(metric)
    by_venue: dict[str, list] = {}
    for s in samples:
        by_venue.setdefault(s.venue, []).append(s)
    for venue, ss in by_venue.items():
        await store.write_samples(m, venue, ss, now_ms=now, history=m.history_samples(ss))


def same(got: list[tuple[float, float]], expected: list[tuple[float, float]]) -> bool:
    """Same times, values equal to float rounding."""
    return [x for x, _ in got] == [x for x, _ in expected] and [y for _, y in got] == pytest.approx(
        [y for _, y in expected], rel=1e-12, abs=1e-15
    )


async def series_of(charts: ChartCommands, words: list[str]) -> dict[str, list[tuple[float, float]]]:
    chart, req = charts.parse(words)
    raw = await chart.load(charts.source(req.metric), req, NOW_MS)
    fig = chart.figure(raw, req, [], NOW_MS)
    return {s.label: list(zip(s.xs, s.ys, strict=True)) for s in fig.series}


async def test_funding_series_equal_history_per_8h_and_annualized(charts: ChartCommands, store: MarketStore) -> None:
    written = []
    for i in range(24):  # a day of polls, every hour; okx on 4h intervals
        ts = NOW_MS - (23 - i) * H
        written += [
            funding("binanceusdm", "BTC/USDT:USDT", 0.0001 + i * 1e-6, 28_800, ts),
            funding("okx", "BTC/USDT:USDT", 0.00005 * (i % 3), 14_400, ts),
            funding("bybit", "BTC/USD:BTC", -0.0002, 28_800, ts),
        ]
    for i in range(24):
        await write(charts, store, "funding", written[i * 3 : (i + 1) * 3], now=NOW_MS - (23 - i) * H)
    got = await series_of(charts, ["funding", "btc", "1d"])
    assert set(got) == {"binance", "okx", "bybit·inv"}
    okx = [s for s in written if s.venue == "okx"]
    binance = [s for s in written if s.venue == "binanceusdm"]
    assert same(got["okx"], [(float(s.ts_ms), s.rate_per_interval * 2 * 100) for s in okx])  # 4h: twice per 8h
    assert same(got["binance"], [(float(s.ts_ms), s.rate_per_interval * 100) for s in binance])
    ann = await series_of(charts, ["funding", "btc", "1d", "ann"])
    assert same(ann["okx"], [(float(s.ts_ms), s.rate_per_interval * 365 * 6 * 100) for s in okx])


async def test_long_windows_read_the_hourly_and_6_hourly_history(charts: ChartCommands, store: MarketStore) -> None:
    written = []
    for i in range(10 * 24 * 2):  # ten days every 30 minutes
        ts = NOW_MS - 10 * DAY + i * H // 2
        s = funding("binanceusdm", "BTC/USDT:USDT", (i % 7) * 1e-5, 28_800, ts)
        written.append(s)
        await write(charts, store, "funding", [s], now=ts)
    hourly = {}
    for s in written:  # the first point of each hour
        hourly.setdefault(s.ts_ms // H, s)
    six_hourly = {}
    for s in written:
        six_hourly.setdefault(s.ts_ms // (6 * H), s)
    got = await series_of(charts, ["funding", "btc", "30d"])  # 720 hourly points at most
    assert same(got["binance"], [(float(s.ts_ms), s.rate_per_interval * 100) for s in hourly.values()])
    got = await series_of(charts, ["funding", "btc", "90d"])  # 360 6-hourly points at most
    assert same(got["binance"], [(float(s.ts_ms), s.rate_per_interval * 100) for s in six_hourly.values()])
    short = await series_of(charts, ["funding", "btc", "2d"])  # short windows: every stored point
    assert same(
        short["binance"], [(float(s.ts_ms), s.rate_per_interval * 100) for s in written if s.ts_ms >= NOW_MS - 2 * DAY]
    )


async def test_basis_series_and_curve(charts: ChartCommands, store: MarketStore) -> None:
    expiry_a, expiry_b = NOW_MS + 30 * DAY, NOW_MS + 2 * DAY  # the second is inside min_days_to_expiry (3)
    written = []
    for i in range(5):
        ts = NOW_MS - (4 - i) * H
        batch = [
            BasisSample("okx", "BTC/USDT:USDT-260101", "BTC", "USDT", False, expiry_a, 101_000 + i * 10, 100_000.0, ts),
            BasisSample("okx", "BTC/USDT:USDT-251203", "BTC", "USDT", False, expiry_b, 100_100, 100_000.0, ts),
        ]
        written += batch
        await write(charts, store, "basis", batch, now=ts)
    got = await series_of(charts, ["basis", "btc", "1d"])
    front = [s for s in written if s.expiry_ms == expiry_a]
    expected = [
        (float(s.ts_ms), (s.future_usd - s.index_usd) / s.index_usd * 365 / ((s.expiry_ms - s.ts_ms) / DAY) * 100)
        for s in front
    ]
    label = "okx " + dt.datetime.fromtimestamp(expiry_a / 1000, dt.UTC).strftime("%y%m%d")
    assert list(got) == [label]  # the contract inside 3 days of expiry is not annualized, so not drawn
    assert same(got[label], expected)
    curve = await series_of(charts, ["basis", "btc", "curve"])
    last = front[-1]
    assert same(curve["okx"], [(30.0, (last.future_usd - 1e5) / 1e5 * 365 / 30 * 100)])


async def test_open_interest_series(charts: ChartCommands, store: MarketStore) -> None:
    totals = []
    for i in range(6):
        ts = NOW_MS - (5 - i) * H
        batch = [
            OpenInterestSample("okx", "BTC/USDT:USDT", "BTC", "USDT", False, "swap", 1000 + i, 1e8 * (1 + i), ts),
            OpenInterestSample("okx", "BTC/USD:BTC", "BTC", "BTC", True, "swap", 10, 2e8, ts),
        ]
        totals.append((float(ts), (1e8 * (1 + i) + 2e8) / 1e9))
        await write(charts, store, "oi", batch, now=ts)
    got = await series_of(charts, ["oi", "btc", "1d"])
    assert list(got) == ["okx"] and same(got["okx"], totals)


async def test_flows_series_bars_and_balance(charts: ChartCommands, store: MarketStore) -> None:
    today = dt.datetime.fromtimestamp(NOW_MS / 1000, dt.UTC).date()
    rows = []
    for back in range(40, 0, -1):
        day = (today - dt.timedelta(days=back)).isoformat()
        rows.append(
            FlowDay(
                "coinmetrics",
                "BTC",
                day,
                NOW_MS - back * DAY + 5 * H,
                1000.0 + back,
                900.0,
                100.0 + back,
                2_000_000.0 - back,
                None,
            )
        )
    await store.write_samples(charts.registry.get("flows"), "coinmetrics", rows, now_ms=NOW_MS, replace=False)
    got = await series_of(charts, ["flows", "btc", "30d"])
    first = (today - dt.timedelta(days=30)).isoformat()
    kept = [r for r in rows if r.day >= first]

    def mid(day: str) -> float:
        return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp() * 1000 + 12 * H

    assert same(got["coinmetrics net flow"], [(mid(r.day), r.netflow) for r in kept])
    assert same(got["coinmetrics balance"], [(mid(r.day), r.balance) for r in kept])


async def test_each_chart_png_decodes_at_its_size(charts: ChartCommands, store: MarketStore) -> None:
    for i in range(3):
        ts = NOW_MS - (2 - i) * H
        await write(charts, store, "funding", [funding("okx", "BTC/USDT:USDT", 1e-4, 28_800, ts)], now=ts)
        await write(
            charts,
            store,
            "basis",
            [
                BasisSample(
                    "okx", "BTC/USDT:USDT-260101", "BTC", "USDT", False, NOW_MS + 30 * DAY, 101_000, 100_000.0, ts
                )
            ],
            now=ts,
        )
        await write(
            charts,
            store,
            "oi",
            [OpenInterestSample("okx", "BTC/USDT:USDT", "BTC", "USDT", False, "swap", 1, 1e9, ts)],
            now=ts,
        )
    await store.write_samples(
        charts.registry.get("flows"),
        "coinmetrics",
        [FlowDay("coinmetrics", "BTC", "2025-11-29", NOW_MS - DAY, 10.0, 5.0, 5.0, 100.0, None)],
        now_ms=NOW_MS,
        replace=False,
    )
    for words in (
        ["funding", "btc", "1d"],
        ["funding", "btc", "7d", "ann", "dark"],
        ["basis", "btc", "1d"],
        ["basis", "btc", "curve"],
        ["oi", "btc", "1d"],
        ["flows", "btc", "30d"],
    ):
        reply = await charts.chart(words, CTX)
        assert reply.image is not None, words
        img = PILImage.open(io.BytesIO(reply.image.data))
        assert img.format == "PNG" and img.size == (1200, 750), words
        assert words[0] in reply.image.caption and "BTC" in reply.image.caption
