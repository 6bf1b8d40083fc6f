"""Hyperliquid, Bitget, Gate and KuCoin Futures through the real ccxt against the exchange double.

Expected figures come from the double's state and each venue's documented units (see the payload
modules' docstrings), never from the bot's code. Each venue also survives one way of failing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import ccxt.async_support as ccxt
import pytest
from redis.asyncio import Redis

from core.alerts.events import AlertEvent
from core.alerts.service import AlertService, AlertSettings
from core.alerts.store import AlertStore
from core.commands import CommandCore, CoreSettings
from core.keys import Keys
from core.metrics.registry import default_registry
from core.models import MS_PER_DAY
from core.render import to_plain
from core.store import MarketStore
from tests.builders import read, rule_from, sources
from tests.fakes.exchange_payloads import binance_symbol, expiry_ms
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.gate_payloads import QUANTO
from tests.fakes.kucoinfutures_payloads import MULTIPLIER
from tests.fakes.more_venues import MORE_VENUES
from watchers.errors import SourceError
from watchers.market import MarketWatcher, MarketWatcherConfig
from watchers.venues import VenueClient, describe
from watchers.venues.urls import rewrite_rest_urls
from watchers.watched import WatchedAssets

REGISTRY = default_registry()
NOTES = {v: describe(v) for v in MORE_VENUES}


class Clock:
    def __init__(self) -> None:
        self.now = int(time.time() * 1000)

    def __call__(self) -> int:
        return self.now


class Deployment:
    def __init__(
        self,
        store: MarketStore,
        watchers: dict[str, MarketWatcher],
        service: AlertService,
        alerts: AlertStore,
        clock: Clock,
    ) -> None:
        self.store, self.watchers, self.service, self.alerts, self.clock = store, watchers, service, alerts, clock
        notes = {v: w.client.adapter.summary() for v, w in watchers.items()} | {"kraken": "unknown venue, not polled"}
        self.core = CommandCore(
            store,
            CoreSettings(venues=tuple(watchers), sources=self.sources, venue_notes=notes),
            REGISTRY,
            clock_ms=clock,
        )

    @property
    def sources(self) -> dict[str, tuple[str, ...]]:
        src = sources(REGISTRY, tuple(self.watchers))
        src["basis"] = tuple(v for v, w in self.watchers.items() if "basis" in w.client.metrics)
        return src

    async def poll(self) -> list[BaseException | int]:
        return await asyncio.gather(*(w.poll_once() for w in self.watchers.values()), return_exceptions=True)

    async def text(self, command: str, *args: str) -> str:
        return to_plain(await self.core.run(command, list(args)))


@pytest.fixture
async def deployment(exchanges: ExchangeDouble, redis: Redis, keys: Keys) -> AsyncIterator[Deployment]:
    clock = Clock()
    store = MarketStore(redis, keys, retention_ms=30 * MS_PER_DAY)
    alerts = AlertStore(redis, keys)
    watchers = {}
    for v in MORE_VENUES:
        client = VenueClient(v, timeout_s=2.0, rest_base_url=exchanges.url(v))
        watchers[v] = MarketWatcher(client, store, REGISTRY, MarketWatcherConfig(history_step_s=0), clock_ms=clock)
    dep = Deployment(store, watchers, None, alerts, clock)  # type: ignore[arg-type]
    dep.service = AlertService(
        alerts, store, keys, REGISTRY, AlertSettings(sources=dep.sources, history_step_s=60), clock_ms=clock
    )
    for w in watchers.values():
        w.listeners.append(dep.service.on_samples)
    await dep.service.start()
    try:
        yield dep
    finally:
        await dep.service.stop()
        for w in watchers.values():
            await w.client.close()


def expected_oi(exchanges: ExchangeDouble, venue: str, asset: str) -> tuple[float, float]:
    """(coins, USD) of an asset's contracts on a venue, from the venue's documented units."""
    state = exchanges.venues[venue]
    coins = usd = 0.0
    # gate: the perpetuals' position_size only (its delivery futures' open interest is not counted)
    for x in [*state.perps, *(state.futures if venue != "gate" else [])]:
        if x.asset != asset:
            continue
        base, mark = x.open_interest_base, x.mark
        if venue == "gate" and x.linear:  # contracts of quanto_multiplier coins
            c = round(base / QUANTO[asset]) * QUANTO[asset]
            coins, usd = coins + c, usd + c * mark
        elif venue == "gate" or (venue == "kucoinfutures" and not x.linear):  # inverse: 1 USD contracts
            u = float(round(base * mark))
            coins, usd = coins + u / mark, usd + u
        elif venue == "kucoinfutures":  # lots of multiplier coins
            c = round(base / MULTIPLIER[asset]) * MULTIPLIER[asset]
            coins, usd = coins + c, usd + c * mark
        else:  # hyperliquid openInterest, bitget holdingAmount: coins
            coins, usd = coins + base, usd + base * mark
    return coins, usd


async def test_each_new_venue_serves_funding_oi_and_basis_where_listed(
    deployment: Deployment, exchanges: ExchangeDouble
) -> None:
    results = await deployment.poll()
    assert all(isinstance(r, int) and r > 0 for r in results), results
    assert not exchanges.unknown
    store = deployment.store

    funding = await read(store, "funding", "BTC", MORE_VENUES)
    for venue in MORE_VENUES:
        perps = [p for p in exchanges.venues[venue].perps if p.asset == "BTC"]
        got = sorted(funding[venue], key=lambda s: s.inverse)
        assert [s.rate_per_interval for s in got] == pytest.approx([p.funding_rate for p in perps]), venue
        assert [s.interval_s for s in got] == [p.interval_h * 3600 for p in perps], venue
        assert [s.mark_usd for s in got] == pytest.approx([p.mark for p in perps]), venue
    assert {s.interval_s for s in funding["hyperliquid"]} == {3600}  # hourly settlement
    assert funding["hyperliquid"][0].rate_per_interval == pytest.approx(0.0001 / 8)

    oi = await read(store, "oi", "BTC", MORE_VENUES)
    for venue in MORE_VENUES:
        coins, usd = expected_oi(exchanges, venue, "BTC")
        assert sum(s.coins for s in oi[venue]) == pytest.approx(coins, rel=1e-9), venue
        assert sum(s.usd for s in oi[venue]) == pytest.approx(usd, rel=1e-9), venue

    basis = await read(store, "basis", "BTC", MORE_VENUES)
    assert set(basis) == {"bitget", "gate", "kucoinfutures"}  # hyperliquid lists no dated futures
    for venue in ("bitget", "gate", "kucoinfutures"):
        want = sorted((expiry_ms(f), f.mark, f.index) for f in exchanges.venues[venue].futures if f.asset == "BTC")
        got = sorted((s.expiry_ms, s.future_usd, s.index_usd) for s in basis[venue])
        assert [v for t in got for v in t] == pytest.approx([v for t in want for v in t]), venue

    text = await deployment.text("funding", "btc")
    assert all(v in text for v in MORE_VENUES), text
    total = sum(expected_oi(exchanges, v, "BTC")[1] for v in MORE_VENUES)
    text = await deployment.text("oi", "btc")
    assert f"{total / 1e9:,.2f}B" in text and "on 4 venues" in text, text
    text = await deployment.text("basis", "btc")
    assert "futures on 3 venues" in text, text


async def test_status_says_what_each_venue_serves(deployment: Deployment) -> None:
    await deployment.poll()
    text = await deployment.text("status")
    assert "hyperliquid: funding, oi; no basis (no dated futures listed)" in text
    assert "gate: funding, basis, oi" in text
    assert "bitget: funding, basis, oi" in text
    assert "kraken: unknown venue, not polled" in text
    for v in MORE_VENUES:  # a served venue is ok; no part of it reported failing for a metric it does not serve
        assert f"{v} basis:" not in text
    table = text.split("What each venue serves")[0]
    for v in MORE_VENUES:
        assert [line.split()[1] for line in table.splitlines() if line.startswith(v + " ")] == ["ok"], text


async def test_rules_include_the_new_venues(deployment: Deployment, exchanges: ExchangeDouble) -> None:
    rule = rule_from("funding btc above 0.05% venue hyperliquid", venues=MORE_VENUES, now_ms=deployment.clock.now)
    await deployment.alerts.save_rule(rule, who="t", action="set", now_ms=deployment.clock.now)
    await deployment.poll()
    assert not await _fired(deployment)
    # hourly funding: 0.01%/h is 0.08%/8h, above the threshold of 0.05%/8h
    exchanges.venues["hyperliquid"].perps[0].funding_rate = 0.0001
    deployment.clock.now += 60_000
    await deployment.poll()
    fired = await _fired(deployment)
    assert len(fired) == 1 and fired[0].venue == "hyperliquid", fired


async def _fired(dep: Deployment) -> list[AlertEvent]:
    entries = await dep.alerts.redis.xrange(dep.alerts.keys.alerts())
    return [AlertEvent.from_json(f[b"event"]) for _id, f in entries]


@pytest.mark.parametrize(
    ("venue", "path", "fault", "down", "failed", "kept"),
    [
        ("hyperliquid", "/info", "500", True, (), ()),
        ("bitget", "/api/v2/mix/market/tickers", "malformed", True, (), ()),
        ("gate", "/api/v4/futures/btc/contracts", "429", False, ("funding", "oi"), ("basis",)),
        ("kucoinfutures", "/api/ua/v2/market/funding-rate", "garbage", False, ("funding",), ("basis", "oi")),
    ],
)
async def test_each_new_venue_survives_a_failure(
    deployment: Deployment,
    exchanges: ExchangeDouble,
    venue: str,
    path: str,
    fault: str,
    down: bool,
    failed: tuple[str, ...],
    kept: tuple[str, ...],
) -> None:
    await deployment.poll()
    before = {m: await read(deployment.store, m, "BTC", (venue,)) for m in ("funding", "oi")}
    exchanges.venues[venue].path_faults[path] = fault
    deployment.clock.now += 60_000
    results = dict(zip(deployment.watchers, await deployment.poll(), strict=True))
    others = [r for v, r in results.items() if v != venue]
    assert all(isinstance(r, int) and r > 0 for r in others), results  # the other venues carry on
    health = {h.name: h for h in await deployment.store.read_health(MORE_VENUES)}
    if down:
        assert isinstance(results[venue], SourceError), results[venue]
        assert health[venue].down and health[venue].last_error
        # the last good values stay stored (shown with their age), nothing invented
        for m, by_venue in before.items():
            assert await read(deployment.store, m, "BTC", (venue,)) == by_venue
    else:
        assert isinstance(results[venue], int)
        assert set(health[venue].degraded) == set(failed), health[venue]
        for m in kept:
            assert (await read(deployment.store, m, "BTC", (venue,)))[venue]
    assert "Traceback" not in await deployment.text("status")


async def test_per_symbol_calls_only_for_watched_assets(exchanges: ExchangeDouble, redis: Redis, keys: Keys) -> None:
    """binance open interest: one call per contract of an asset a chat subscribes to or a rule watches."""
    alerts = AlertStore(redis, keys)
    await alerts.subscribe("tg:1", ["oi:ETH"])
    rule = rule_from("oi sol above 1000000", rule_id="r9")
    await alerts.save_rule(rule, who="t", action="set", now_ms=0)
    client = VenueClient(
        "binanceusdm", timeout_s=2.0, rest_base_url=exchanges.url("binanceusdm"), watched=WatchedAssets(redis, keys)
    )
    try:
        snap = await client.snapshot()
    finally:
        await client.close()
    state = exchanges.venues["binanceusdm"]
    asked = sorted(r.split("symbol=")[1] for r in state.requests if r.startswith("GET /fapi/v1/openInterest"))
    want = sorted(binance_symbol(x) for x in [*state.perps, *state.futures] if x.linear and x.asset in ("ETH", "SOL"))
    assert asked == want
    assert {s.asset for s in snap.oi} == {"ETH", "SOL"}


def _rest_strings(urls: Any) -> list[str]:
    if isinstance(urls, dict):
        return [s for v in urls.values() for s in _rest_strings(v)]
    if isinstance(urls, list):
        return [s for v in urls for s in _rest_strings(v)]
    return [urls] if isinstance(urls, str) and urls.startswith("http") else []


@pytest.mark.parametrize("venue", MORE_VENUES)
async def test_rest_urls_rewritten_for_each_shape(venue: str) -> None:
    ex = getattr(ccxt, venue)()
    try:
        rewritten = rewrite_rest_urls(ex.urls["api"], "http://127.0.0.1:9/x")
    finally:
        await ex.close()
    strings = _rest_strings(rewritten)
    assert strings and all(s.startswith("http://127.0.0.1:9/x") and "{hostname}" not in s for s in strings)
    assert len(strings) == len(_rest_strings(ex.urls["api"]))


async def test_bitget_interval_changed_at_runtime_is_read(exchanges: ExchangeDouble) -> None:
    """Bitget shortens a perpetual's interval at the funding cap; the market list keeps the old one."""
    client = VenueClient("bitget", timeout_s=2.0, rest_base_url=exchanges.url("bitget"), funding_info_refresh_s=0)
    try:
        first = {s.symbol: s for s in (await client.snapshot()).funding}
        btc = exchanges.venues["bitget"].perps[0]
        assert first["BTC/USDT:USDT"].interval_s == 8 * 3600
        assert first["BTC/USDT:USDT"].next_funding_ms == btc.next_funding_ms
        btc.interval_h, btc.funding_rate = 4, 0.002
        exchanges.venues["bitget"].path_faults["/api/v2/mix/market/contracts"] = "500"  # no market reload helps
        second = {s.symbol: s for s in (await client.snapshot()).funding}
        assert second["BTC/USDT:USDT"].interval_s == 4 * 3600
        assert second["BTC/USDT:USDT"].rate_per_interval == pytest.approx(0.002)
        # the intervals endpoint failing keeps the last known ones; the rest of the poll is stored
        exchanges.venues["bitget"].path_faults["/api/v2/mix/market/current-fund-rate"] = "500"
        third = await client.snapshot()
        assert {s.symbol: s.interval_s for s in third.funding}["BTC/USDT:USDT"] == 4 * 3600
        assert third.aux["funding_intervals"] and all(p.error is None for p in third.parts.values())
    finally:
        await client.close()


@pytest.mark.parametrize("venue", MORE_VENUES)
@pytest.mark.parametrize("status", ["settling", "pending"])
async def test_contracts_not_trading_are_dropped(exchanges: ExchangeDouble, venue: str, status: str) -> None:
    """A delisting or not-yet-trading perpetual, in each venue's own words, is kept out while its price answers."""
    state = exchanges.venues[venue]
    sol = next(p for p in state.perps if p.asset == "SOL")
    sol.status = status
    client = VenueClient(venue, timeout_s=2.0, rest_base_url=exchanges.url(venue))
    try:
        snap = await client.snapshot()
    finally:
        await client.close()
    assert "SOL" not in {s.asset for s in [*snap.funding, *snap.oi]}
    assert {"BTC", "ETH"} <= {s.asset for s in snap.funding}
