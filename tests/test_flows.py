"""Exchange flows end to end: provider doubles -> FlowWatcher -> Redis -> /flows, flows alerts, replay."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from core.alerts.events import AlertEvent
from core.alerts.service import AlertService, AlertSettings
from core.alerts.store import AlertStore
from core.keys import Keys
from core.metrics.registry import default_registry
from core.render import to_plain
from core.store import MarketStore
from tests.builders import command_core, read, rule_from, sources
from tests.fakes.flow_providers import DaySpec, FlowProvidersDouble
from watchers.errors import SourceRejected
from watchers.flows import CoinMetricsProvider, CryptoQuantProvider, GlassnodeProvider
from watchers.flows.watcher import FlowWatcher

REGISTRY = default_registry()
FLOWS = REGISTRY.get("flows")
REPLAY = Path(__file__).resolve().parents[1].parent / "shared" / "replay" / "april-2021" / "exchange_flows_1d.csv"


def ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def days_before(n: int) -> str:
    return (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=n)).isoformat()


def series(n: int = 35) -> list[DaySpec]:
    """n complete days ending yesterday, with distinct, hand-checkable values."""
    out = []
    for i in range(n, 0, -1):
        k = n - i  # 0 .. n-1, oldest first
        out.append(
            DaySpec(
                days_before(i),
                inflow=10_000.0 + 100 * k,
                outflow=9_000.0 + 50 * k,
                balance=2_000_000.0 + 1_000 * k,
                price=50_000.0,
            )
        )
    return out


@pytest.fixture
async def flows() -> AsyncIterator[FlowProvidersDouble]:
    async with FlowProvidersDouble() as d:
        d.days["BTC"] = series()
        yield d


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def store(redis: Redis, keys: Keys) -> MarketStore:
    return MarketStore(redis, keys, retention_ms=86_400_000)


async def test_flows_command_sums_and_changes(
    flows: FlowProvidersDouble, session: aiohttp.ClientSession, store: MarketStore
) -> None:
    provider = CoinMetricsProvider(session, base_url=flows.url("coinmetrics"), min_interval_s=0)
    watcher = FlowWatcher(provider, store, FLOWS, ["BTC"], days=35)
    assert await watcher.poll_once() == 35
    core = command_core(store, ("okx",), providers=("coinmetrics",), alerts=False)
    text = to_plain(await core.run("flows", ["btc"]))
    spec = flows.days["BTC"]
    last = spec[-1]
    net = [d.inflow - d.outflow for d in spec]
    assert f"day {last.day}" in text and "coinmetrics" in text and "published" in text
    assert f"{last.inflow:,.0f}" in text and f"{last.outflow:,.0f}" in text
    assert f"{net[-1]:+,.0f}" in text
    assert f"{sum(net[-7:]):+,.0f}" in text and f"{sum(net[-30:]):+,.0f}" in text
    assert f"{last.balance:,.0f}" in text
    b1, b7 = spec[-2].balance, spec[-8].balance
    assert f"1d {(last.balance - b1) / b1 * 100:+.2f}%" in text and f"7d {(last.balance - b7) / b7 * 100:+.2f}%" in text
    assert f"${net[-1] * 50_000 / 1e6:,.2f}M" in text  # USD beside BTC
    series_text = to_plain(await core.run("flows", ["btc", "14d"]))
    assert series_text.count("\n" + spec[-1].day[5:]) == 1 and spec[-14].day[5:] in series_text
    assert spec[-15].day[5:] not in series_text
    assert (await core.run("flows", ["btc", "400d"])).error
    assert "No exchange-flow data for DOGE" in (await core.run("flows", ["doge"])).title


async def test_providers_kept_apart(
    flows: FlowProvidersDouble, session: aiohttp.ClientSession, store: MarketStore
) -> None:
    gn = GlassnodeProvider(session, flows.GLASSNODE_KEY, base_url=flows.url("glassnode"))
    cq = CryptoQuantProvider(session, flows.CRYPTOQUANT_KEY, base_url=flows.url("cryptoquant"))
    for p in (gn, cq):
        await FlowWatcher(p, store, FLOWS, ["BTC"], days=35).poll_once()
    core = command_core(store, ("okx",), providers=("glassnode", "cryptoquant"), alerts=False)
    text = to_plain(await core.run("flows", ["btc"]))
    assert "glassnode · day" in text and "cryptoquant · day" in text
    data = await read(store, "flows", "BTC", ("glassnode", "cryptoquant"))
    assert set(data) == {"glassnode", "cryptoquant"}


async def test_netflow_rule_fires_once_per_day_not_on_refetch(
    flows: FlowProvidersDouble, session: aiohttp.ClientSession, store: MarketStore, redis: Redis, keys: Keys
) -> None:
    alerts = AlertStore(redis, keys)
    rule = rule_from("flows btc netflow above 3000", venues=("okx",))
    await alerts.save_rule(rule, who="t", action="set", now_ms=0)
    svc = AlertService(alerts, store, keys, REGISTRY, AlertSettings(sources=sources(REGISTRY, ("okx",))))
    await svc.start()
    provider = CoinMetricsProvider(session, base_url=flows.url("coinmetrics"), min_interval_s=0)
    watcher = FlowWatcher(provider, store, FLOWS, ["BTC"], days=35, listeners=[svc.on_samples])
    flows.days["BTC"][-1] = DaySpec(
        days_before(1),
        inflow=20_000.0,
        outflow=15_000.0,
        balance=2e6,
        price=5e4,
        available_at=f"{dt.datetime.now(dt.UTC).date().isoformat()}T00:30:00Z",
    )
    await watcher.poll_once()
    await watcher.poll_once()  # the same days again
    entries = await redis.xrange(keys.alerts())
    assert len(entries) == 1
    fields = {k.decode(): v.decode() for k, v in entries[0][1].items()}
    assert fields["ts_ms"] == str(ms(f"{dt.datetime.now(dt.UTC).date().isoformat()}T00:30:00Z"))
    event = AlertEvent.from_json(fields["event"])
    assert (event.metric, event.field, event.value, event.extra["day"]) == ("flows", "netflow", 5000.0, days_before(1))
    text = to_plain(REGISTRY.render(event))
    assert "BTC exchange netflow above +3,000 BTC/day" in text and "+5,000 BTC" in text and "coinmetrics" in text
    assert len(await redis.xrange(keys.alerts())) == 1


async def test_rejected_key_reported_once_and_survived(
    flows: FlowProvidersDouble, session: aiohttp.ClientSession, store: MarketStore
) -> None:
    notices: list[tuple[str, str]] = []

    async def notify(source: str, error: str) -> None:
        notices.append((source, error))

    provider = GlassnodeProvider(session, "wrong-key-123", base_url=flows.url("glassnode"))
    watcher = FlowWatcher(provider, store, FLOWS, ["BTC"], on_rejected=notify)
    for _ in range(3):
        with pytest.raises(SourceRejected):
            await watcher.poll_once()
    assert len(notices) == 1 and notices[0][0] == "glassnode" and "wrong-key" not in notices[0][1]
    core = command_core(store, ("okx",), providers=("glassnode",), alerts=False)
    status = to_plain(await core.run("status", []))
    assert "glassnode: SourceRejected" in status and "401" in status and "wrong-key" not in status


@pytest.mark.replay
async def test_replay_april_2021_netflow_above_3000(
    flows: FlowProvidersDouble, session: aiohttp.ClientSession, store: MarketStore, redis: Redis, keys: Keys
) -> None:
    if not REPLAY.exists():
        pytest.skip(f"replay data not found at {REPLAY} (the shared replay folder sits beside the repository)")
    with REPLAY.open(newline="") as f:
        rows = list(csv.DictReader(f))
    published = [
        DaySpec(
            r["date"],
            inflow=float(r["inflow_btc"]),
            outflow=float(r["outflow_btc"]),
            balance=float(r["exchange_balance_btc"]),
            price=float(r["price_usd"]),
            available_at=r["available_at_utc"],
        )
        for r in rows
    ]
    expected = [(r["date"], ms(r["available_at_utc"])) for r in rows if float(r["netflow_btc"]) > 3000]

    alerts = AlertStore(redis, keys)
    rule = rule_from("flows btc netflow above 3000", venues=("okx",))
    await alerts.save_rule(rule, who="replay", action="set", now_ms=0)
    clock = [ms("2021-04-01T00:00:00Z")]
    svc = AlertService(
        alerts, store, keys, REGISTRY, AlertSettings(sources=sources(REGISTRY, ("okx",))), clock_ms=lambda: clock[0]
    )
    await svc.start()
    provider = CoinMetricsProvider(session, base_url=flows.url("coinmetrics"), min_interval_s=0, clock=lambda: clock[0])
    watcher = FlowWatcher(
        provider, store, FLOWS, ["BTC"], days=31, listeners=[svc.on_samples], clock_ms=lambda: clock[0]
    )
    end = ms("2021-05-01T12:00:00Z")
    while clock[0] <= end:  # poll hourly, serving only the rows published by then
        flows.days["BTC"] = [d for d in published if d.available_at and ms(d.available_at) <= clock[0]]
        if flows.days["BTC"]:
            await watcher.poll_once()
        clock[0] += 3_600_000
    fired = []
    for _id, fields in await redis.xrange(keys.alerts()):
        f = {k.decode(): v.decode() for k, v in fields.items()}
        fired.append((AlertEvent.from_json(f["event"]).extra["day"], int(f["ts_ms"])))
    assert fired == expected
    crash = ms("2021-04-18T00:00:00Z")
    before_crash = [(day, t) for day, t in fired if t < crash]
    assert before_crash == [("2021-04-12", ms("2021-04-13T03:37:25Z")), ("2021-04-13", ms("2021-04-14T04:50:17Z"))]
