"""/summary through the command core on a real Redis: figures, changes, ages, alert-zone markers, two round trips."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import Connection

from core.alerts.store import AlertStore
from core.gamma import OptionSample
from core.keys import Keys
from core.liquidations import LiqWindows
from core.metrics.base import fmt_amount
from core.metrics.registry import Registry, default_registry, metric_classes
from core.models import MS_PER_DAY, BasisSample, FlowDay, FundingSample, OpenInterestSample
from core.render import fmt_age, fmt_pct, to_plain
from core.store import MarketStore
from tests.builders import command_core, rule_from, write_venue
from tests.fakes.exchanges import quarterly_expiries
from tests.test_gamma import by_hand_total_samples

VENUES = ("okx", "bybit", "deribit")
NOW = int(dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC).timestamp() * 1000)


class CountingConnection(Connection):
    """Counts what is written to the wire: one write per command or pipeline (a round trip)."""

    writes = 0

    async def send_packed_command(self, command, check_health=True):  # type: ignore[no-untyped-def]
        CountingConnection.writes += 1
        return await super().send_packed_command(command, check_health)


@pytest.fixture
async def counted(redis_url: str, keys: Keys) -> AsyncIterator[Redis]:
    pool = ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    client = Redis(connection_pool=pool)
    try:
        yield client
    finally:
        batch = [k async for k in client.scan_iter(match=f"{keys.prefix}:*")]
        if batch:
            await client.delete(*batch)
        await client.aclose()
        await pool.disconnect()


def perp(venue: str, rate: float, ts: int) -> FundingSample:
    return FundingSample(
        venue, "BTC/USDT:USDT", "BTC", "USDT", False, rate, 28_800, None, None, 100_000.0, 100_000.0, ts
    )


async def test_summary_lines_markers_and_two_round_trips(counted: Redis, keys: Keys) -> None:
    reg = default_registry()
    store = MarketStore(counted, keys, retention_ms=40 * MS_PER_DAY)
    now_dt = dt.datetime.fromtimestamp(NOW / 1000, dt.UTC)
    q1, q2 = quarterly_expiries(now_dt)
    q1_ms = int(dt.datetime.combine(q1, dt.time(8), tzinfo=dt.UTC).timestamp() * 1000)
    q2_ms = int(dt.datetime.combine(q2, dt.time(8), tzinfo=dt.UTC).timestamp() * 1000)
    week_ms = NOW + 5 * MS_PER_DAY  # a weekly: not the front quarterly
    rates = {"okx": 0.0003, "bybit": 0.0001}
    prices = {"okx": (101_500.0, 103_000.0), "bybit": (102_000.0, 103_500.0)}
    for v in ("okx", "bybit"):
        basis = [
            BasisSample(v, f"BTC-Q1-{v}", "BTC", "USDT", False, q1_ms, prices[v][0], 100_000.0, NOW),
            BasisSample(v, f"BTC-Q2-{v}", "BTC", "USDT", False, q2_ms, prices[v][1], 100_000.0, NOW),
            BasisSample(v, f"BTC-W-{v}", "BTC", "USDT", False, week_ms, 100_900.0, 100_000.0, NOW),
        ]
        oi = [
            OpenInterestSample(
                v, "BTC/USDT:USDT", "BTC", "USDT", False, "swap", 1000.0, 1e8 * (2 if v == "okx" else 3), NOW
            )
        ]
        await write_venue(store, v, [perp(v, rates[v], NOW)], basis, oi, now_ms=NOW, registry=reg)
        # the bybit quarterly 24h ago, and the OI totals 24h ago
        await counted.zadd(
            keys.history("basis", "BTC", v),
            {f"{NOW - MS_PER_DAY}|BTC-Q1-{v}|101000.0|100000.0|{q1_ms}": NOW - MS_PER_DAY},
        )
        await counted.zadd(keys.history("oi", "BTC", v), {f"{NOW - MS_PER_DAY}|{1e8 * 2!r}|900.0": NOW - MS_PER_DAY})
    await counted.zadd(keys.signal_history("funding", "BTC", "mean"), {f"{NOW - MS_PER_DAY}|0.0001": NOW - MS_PER_DAY})
    days = [
        FlowDay(
            "coinmetrics",
            "BTC",
            f"2026-11-{d:02d}",
            NOW - (31 - d) * MS_PER_DAY,
            5000.0,
            4000.0,
            float(100 * d),
            2e6,
            90_000.0,
        )
        for d in range(20, 31)
    ]
    await store.write_samples(reg.get("flows"), "coinmetrics", days, now_ms=NOW, replace=False)
    chain = [
        OptionSample(
            "deribit", f"P{k}", "BTC", k, NOW + 20 * MS_PER_DAY, False, 3000.0, 55.0, 100_000.0, 100_000.0, NOW
        )
        for k in (90_000.0, 95_000.0)
    ] + [
        OptionSample("deribit", f"C{k}", "BTC", k, NOW + 20 * MS_PER_DAY, True, 500.0, 55.0, 100_000.0, 100_000.0, NOW)
        for k in (105_000.0, 110_000.0)
    ]
    await store.write_samples(reg.get("gamma"), "deribit", chain, now_ms=NOW)
    alerts = AlertStore(counted, keys)
    for i, text in enumerate(
        ("funding btc above 0.01%", "basis btc above 80%", "all(oi btc above 400m; gamma btc below -1m)"), 1
    ):
        await alerts.save_rule(
            rule_from(text, rule_id=f"r{i}", venues=VENUES, registry=reg), who="t", action="set", now_ms=NOW
        )
    core = command_core(store, VENUES, clock_ms=lambda: NOW + 30_000, registry=reg)
    await core.run("summary", ["btc"])  # warm: the command core builds nothing lazily, but be fair
    CountingConnection.writes = 0
    reply = await core.run("summary", ["btc"])
    assert CountingConnection.writes == 2
    assert [n for n, _ in reply.fields] == [
        "⚠ Funding",
        "Basis",
        "⚠ Open interest",
        "Exchange net flow",
        "Liquidations 24h",
        "⚠ Dealer gamma",
    ]
    f = dict((n.lstrip("⚠ "), v) for n, v in reply.fields)
    mean = statistics.fmean(rates.values())
    assert f"mean {fmt_pct(mean * 1095, 1)} ann." in f["Funding"]
    assert f"max {fmt_pct(0.0003 * 1095, 1)} ann. on okx" in f["Funding"]
    assert f"24h {fmt_pct((mean - 0.0001) * 1095, 1)} ann." in f["Funding"] and "30s old" in f["Funding"]
    assert "in the zone of r1" in f["Funding"]
    now = NOW + 30_000
    ann = {v: (prices[v][0] - 100_000) / 100_000 * 365 / ((q1_ms - now) / MS_PER_DAY) for v in prices}
    assert f"front quarterly {q1:%Y-%m-%d}: {fmt_pct(ann['bybit'], 1)} ann. on bybit (highest of 2)" in f["Basis"]
    old = 0.01 * 365 / ((q1_ms - (now - MS_PER_DAY)) / MS_PER_DAY)
    assert f"24h {fmt_pct(ann['bybit'] - old, 1)}" in f["Basis"]
    assert f"{fmt_amount(5e8, prefix='$')} total on 2 venues" in f["Open interest"]
    assert "24h +25.0%" in f["Open interest"]  # (2 + 3) / (2 + 2) - 1
    assert "in the zone of r3" in f["Open interest"]
    assert "+3,000 BTC on 2026-11-30" in f["Exchange net flow"]
    assert f"7d {sum(100 * d for d in range(24, 31)):+,}" in f["Exchange net flow"]
    assert "day before +2,900" in f["Exchange net flow"]
    assert f["Liquidations 24h"].startswith("no data")
    total = by_hand_total_samples(chain, now)
    assert total < -1e6 and f"total {fmt_amount(total, signed=True, prefix='$')} per 1%" in f["Dealer gamma"]
    assert "flip" in f["Dealer gamma"] and "in the zone of r3" in f["Dealer gamma"]
    text = to_plain(reply)
    assert text.startswith("BTC six factors") and "⚠ Funding: mean" in text
    later = command_core(store, VENUES, clock_ms=lambda: NOW + 400_000, registry=reg)  # after 6m40s
    f = dict((n.lstrip("⚠ "), v) for n, v in (await later.run("summary", ["btc"])).fields)
    assert f["Funding"] == "no data" and f["Dealer gamma"].startswith("total")  # a chain lasts two refreshes


async def test_summary_without_data_says_so(redis: Redis, keys: Keys) -> None:
    core = command_core(MarketStore(redis, keys, retention_ms=MS_PER_DAY), VENUES)
    reply = await core.run("summary", ["eth"])
    assert len(reply.fields) == 6 and all(v.startswith("no data") for _, v in reply.fields)
    assert "Usage: /summary <asset>" in (await core.run("summary", [])).title
    assert "Unknown metric 'summary'" in (await core.run("threshold", ["set", "summary", "btc", "above", "1"])).title


async def test_summary_reads_a_liquidations_metric_through_the_registry(redis: Redis, keys: Keys) -> None:
    reg = Registry(cls() for cls in metric_classes())
    store = MarketStore(redis, keys, retention_ms=MS_PER_DAY)
    for venue, (lo, sh) in (("okx", (2e6, 5e5)), ("bybit", (3e6, 1e6))):
        windows = LiqWindows(venue, "BTC", NOW - 3_600_000, 0.0, 0.0, 0.0, 0.0, lo, sh, 3)
        await store.write_samples(reg.get("liqs"), venue, [windows], now_ms=NOW)
    core = command_core(store, VENUES, clock_ms=lambda: NOW, registry=reg)
    f = dict((await core.run("summary", ["btc"])).fields)
    assert (
        f["Liquidations 24h"] == f"long {fmt_amount(5e6, prefix='$')} / short {fmt_amount(1.5e6, prefix='$')}"
        f" · {fmt_age(3600)} old"
    )
