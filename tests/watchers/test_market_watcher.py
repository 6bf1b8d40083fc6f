"""Watchers against the local exchange server: real ccxt parsing, real Redis, numbers checked by hand."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from core.commands import CommandCore
from core.keys import Keys
from core.metrics.registry import default_registry
from core.models import MS_PER_DAY
from core.render import to_plain
from core.store import MarketStore
from tests.builders import command_core, read
from tests.fakes.exchanges import ExchangeDouble, Future, Perp
from watchers.errors import MalformedResponse, SourceUnavailable
from watchers.market import MarketWatcher, MarketWatcherConfig
from watchers.venues import VenueClient

VENUES = ExchangeDouble.VENUES


def expiry_ms(d: dt.date) -> int:
    return int(dt.datetime.combine(d, dt.time(8), tzinfo=dt.UTC).timestamp() * 1000)


@pytest.fixture
async def store(redis: Redis, keys: Keys) -> MarketStore:
    return MarketStore(redis, keys, retention_ms=MS_PER_DAY)


@pytest.fixture
async def watchers(exchanges: ExchangeDouble, store: MarketStore) -> AsyncIterator[dict[str, MarketWatcher]]:
    out = {}
    for v in VENUES:
        client = VenueClient(v, timeout_s=1.0, rest_base_url=exchanges.url(v), oi_assets=("BTC", "ETH"))
        out[v] = MarketWatcher(client, store, default_registry(), MarketWatcherConfig(history_step_s=0))
    try:
        yield out
    finally:
        for w in out.values():
            await w.client.close()


def core_for(store: MarketStore) -> CommandCore:
    return command_core(store, VENUES, alerts=False)


async def test_every_venue_polls_and_basis_figures_match(
    exchanges: ExchangeDouble, watchers: dict[str, MarketWatcher], store: MarketStore
) -> None:
    expiry = dt.date.today() + dt.timedelta(days=60)
    for v, state in exchanges.venues.items():
        linear = v != "binancecoinm" and v != "deribit"
        state.futures = [Future("BTC", expiry, mark=61_500.0, index=60_000.0, linear=linear)]
        for p in state.perps:  # one index per underlying (okx publishes it once, not per contract)
            if p.asset == "BTC":
                p.index, p.mark = 60_000.0, 60_030.0
    for w in watchers.values():
        assert await w.poll_once() > 0
    basis = await read(store, "basis", "BTC", VENUES)
    assert set(basis) == set(VENUES)
    now_ms = int(time.time() * 1000)
    days = (expiry_ms(expiry) - now_ms) / MS_PER_DAY
    expected_ann = (61_500 - 60_000) / 60_000 * 365 / days
    for venue, samples in basis.items():
        (s,) = [x for x in samples if x.expiry_ms == expiry_ms(expiry)]
        assert s.future_usd == pytest.approx(61_500.0), venue
        assert s.index_usd == pytest.approx(60_000.0), venue
        assert s.basis_annualized(now_ms, 3) == pytest.approx(expected_ann, rel=1e-3), venue
    text = to_plain(await core_for(store).run("basis", ["btc"]))
    assert f"{expected_ann * 100:+.1f}%" in text
    assert "+2.50%" in text  # (61500 - 60000) / 60000
    assert "5 futures on 5 venues" in text


async def test_funding_interval_predicted_and_annualized(
    exchanges: ExchangeDouble, watchers: dict[str, MarketWatcher], store: MarketStore
) -> None:
    nf = int(time.time() * 1000) + 2 * 3600_000
    exchanges.venues["binanceusdm"].perps = [Perp("SOL", 151.0, 150.0, 0.0002, nf, interval_h=4)]
    exchanges.venues["okx"].perps = [Perp("SOL", 151.0, 150.0, 0.0003, nf, predicted_rate=0.00035)]
    exchanges.venues["bybit"].perps = [Perp("SOL", 151.0, 150.0, -0.0001, nf, interval_h=1)]
    for v in ("binanceusdm", "okx", "bybit"):
        await watchers[v].poll_once()
    funding = await read(store, "funding", "SOL", ("binanceusdm", "okx", "bybit"))
    (b,) = funding["binanceusdm"]
    assert (b.rate_per_interval, b.interval_s, b.next_funding_ms) == (pytest.approx(0.0002), 14_400, nf)
    assert b.rate_annualized == pytest.approx(0.0002 * 6 * 365)
    (o,) = funding["okx"]
    assert (o.rate_per_interval, o.interval_s, o.predicted_rate) == (
        pytest.approx(0.0003),
        28_800,
        pytest.approx(0.00035),
    )
    assert o.mark_usd == pytest.approx(151.0) and o.index_usd == pytest.approx(150.0)
    (y,) = funding["bybit"]
    assert (y.rate_per_interval, y.interval_s) == (pytest.approx(-0.0001), 3600)
    text = to_plain(await core_for(store).run("funding", ["sol"]))
    assert "+0.0200%" in text and "4h" in text and f"{0.0002 * 6 * 365 * 100:+.1f}%" in text
    assert "-0.0100%" in text and "1h" in text
    assert "+0.0350%" in text  # okx predicted
    # mean per 8h: 0.0004 (binance 4h x2), 0.0003 (okx), -0.0008 (bybit 1h x8)
    assert f"Mean {(0.0004 + 0.0003 - 0.0008) / 3 * 100:+.4f}%/8h" in text


async def test_bulk_endpoints_only(exchanges: ExchangeDouble, watchers: dict[str, MarketWatcher]) -> None:
    for w in watchers.values():
        await w.poll_once()  # loads markets
    for state in exchanges.venues.values():
        state.requests.clear()
    for w in watchers.values():
        await w.poll_once()
    paths = {v: [r.split("?")[0] for r in s.requests] for v, s in exchanges.venues.items()}
    # binance has no bulk open interest: one request per contract of the OI assets (BTC, ETH by default),
    # fundingInfo only when due (every funding_info_refresh_s) or when a next funding time jumps
    for v, prefix in (("binanceusdm", "/fapi/v1"), ("binancecoinm", "/dapi/v1")):
        contracts = [r for r in exchanges.venues[v].requests if "openInterest" in r]
        n_btc_eth = sum(
            1
            for x in [*exchanges.venues[v].perps, *exchanges.venues[v].futures]
            if x.asset in ("BTC", "ETH") and x.linear == (v == "binanceusdm")
        )
        assert paths[v] == [f"GET {prefix}/premiumIndex"] + [f"GET {prefix}/openInterest"] * n_btc_eth
        assert len(set(contracts)) == n_btc_eth  # each contract once
    assert sorted(paths["okx"]) == sorted(
        [
            "GET /api/v5/public/funding-rate",
            "GET /api/v5/public/mark-price",
            "GET /api/v5/public/mark-price",
            "GET /api/v5/market/index-tickers",
            "GET /api/v5/market/index-tickers",
            "GET /api/v5/public/open-interest",
            "GET /api/v5/public/open-interest",
        ]
    )
    assert paths["bybit"] == ["GET /v5/market/tickers"] * 2
    assert set(paths["deribit"]) == {"GET /api/v2/public/get_book_summary_by_currency"}
    # okx and bybit load only swap/future (linear/inverse) markets
    okx_loads = [r for r in exchanges.venues["okx"].requests if "instruments" in r]
    assert okx_loads == []


@pytest.mark.parametrize("fault", ["500", "timeout", "malformed", "garbage"])
async def test_failing_venue_isolated_and_reported(
    fault: str, exchanges: ExchangeDouble, watchers: dict[str, MarketWatcher], store: MarketStore
) -> None:
    for w in watchers.values():
        await w.poll_once()
    okx = exchanges.venues["okx"]
    okx.fault = fault
    okx.delay_s = 3.0 if fault == "timeout" else 0.0
    exchanges.venues["bybit"].perps[0].funding_rate = 0.0007
    expected = SourceUnavailable if fault in ("500", "timeout") else (MalformedResponse, SourceUnavailable)
    with pytest.raises(expected):
        await watchers["okx"].poll_once()
    assert await watchers["bybit"].poll_once() > 0  # the other venues keep updating
    funding = await read(store, "funding", "BTC", ("okx", "bybit"))
    assert any(s.rate_per_interval == pytest.approx(0.0007) for s in funding["bybit"])
    assert funding["okx"]  # the last good okx values are still served
    core = core_for(store)
    status = to_plain(await core.run("status", []))
    okx_line = next(ln for ln in status.splitlines() if ln.startswith("okx "))
    assert okx_line.split()[1] == "down"
    assert "okx: " in status  # the last error is shown
    basis = to_plain(await core.run("basis", ["btc"]))
    assert "Data age" in basis and "okx" in basis


async def test_insane_values_rejected_not_stored(
    exchanges: ExchangeDouble, watchers: dict[str, MarketWatcher], store: MarketStore
) -> None:
    expiry = dt.date.today() + dt.timedelta(days=40)
    nf = int(time.time() * 1000) + 3600_000
    exchanges.venues["binanceusdm"].futures = [
        Future("BTC", expiry, mark=0.0, index=60_000.0),
        Future("ETH", expiry, mark=-3.0, index=3_000.0),
        Future("SOL", expiry, mark=1500.0, index=150.0),  # 10x the index: absurd
    ]
    exchanges.venues["binanceusdm"].perps = [
        Perp("BTC", 60_000.0, 60_000.0, 0.0001, nf),
        Perp("ETH", 3_000.0, 3_000.0, 0.9, nf),
    ]  # 90% per interval
    await watchers["binanceusdm"].poll_once()
    basis = {a: await read(store, "basis", a, ("binanceusdm",)) for a in ("BTC", "ETH", "SOL")}
    funding = {a: await read(store, "funding", a, ("binanceusdm",)) for a in ("BTC", "ETH")}
    assert all("binanceusdm" not in b for b in basis.values())
    assert [s.asset for s in funding["BTC"]["binanceusdm"]] == ["BTC"]
    assert "binanceusdm" not in funding["ETH"]


async def test_new_contracts_appear_after_market_refresh(exchanges: ExchangeDouble, store: MarketStore) -> None:
    client = VenueClient("deribit", timeout_s=1.0, rest_base_url=exchanges.url("deribit"))
    clock = [int(time.time() * 1000)]
    watcher = MarketWatcher(
        client, store, default_registry(), MarketWatcherConfig(markets_refresh_s=3600), clock_ms=lambda: clock[0]
    )
    try:
        await watcher.poll_once()
        before = {s.symbol for s in (await read(store, "basis", "BTC", ("deribit",)))["deribit"]}
        new_expiry = dt.date.today() + dt.timedelta(days=300)
        exchanges.venues["deribit"].futures.append(Future("BTC", new_expiry, 70_000.0, 60_000.0, linear=False))
        await watcher.poll_once()  # markets not reloaded yet: the new contract is unknown
        assert {s.symbol for s in (await read(store, "basis", "BTC", ("deribit",)))["deribit"]} == before
        clock[0] += 3601_000
        await watcher.poll_once()
        after = {s.symbol for s in (await read(store, "basis", "BTC", ("deribit",)))["deribit"]}
        assert len(after - before) == 1
    finally:
        await client.close()
