"""Data you can trust: open interest on five venues, funding intervals that change at runtime, contracts that
are not trading or not USD-priced, and one endpoint of a venue failing while the rest works.

Real ccxt against the local exchange double, real Redis, the real evaluator; expected figures are computed
here from the double's state and each venue's documented units, not from the bot's code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from core.alerts.events import AlertEvent
from core.alerts.service import AlertService, AlertSettings
from core.alerts.store import AlertStore
from core.commands import CommandCore
from core.keys import Keys
from core.metrics.registry import default_registry
from core.models import MS_PER_DAY
from core.render import to_plain
from core.store import MarketStore
from tests.builders import command_core, read, rule_from, sources
from tests.fakes.exchange_payloads import inverse_contract_usd, listed_futures, listed_perps
from tests.fakes.exchanges import ExchangeDouble, Perp
from watchers.market import MarketWatcher, MarketWatcherConfig
from watchers.venues import VenueClient

VENUES = ExchangeDouble.VENUES
REGISTRY = default_registry()


class Clock:
    def __init__(self) -> None:
        self.now = int(time.time() * 1000)

    def __call__(self) -> int:
        return self.now


@dataclass
class Bot:
    """The data side of one deployment: a watcher per venue feeding the evaluator, and the command core."""

    watchers: dict[str, MarketWatcher]
    service: AlertService
    core: CommandCore
    alerts: AlertStore
    clock: Clock

    async def poll(self, *venues: str) -> None:
        """One poll of each venue, concurrently as the running bot polls them."""
        await asyncio.gather(*(self.watchers[v].poll_once() for v in venues or VENUES))

    async def rule(self, text: str) -> None:
        rule = rule_from(text, rule_id=await self.alerts.next_rule_id(), venues=VENUES, now_ms=self.clock.now)
        await self.alerts.save_rule(rule, who="t", action="set", now_ms=self.clock.now)

    async def fired(self) -> list[AlertEvent]:
        entries = await self.alerts.redis.xrange(self.alerts.keys.alerts())
        return [AlertEvent.from_json(f[b"event"]) for _id, f in entries]

    async def text(self, command: str, *args: str) -> str:
        return to_plain(await self.core.run(command, list(args)))


@pytest.fixture
async def bot(exchanges: ExchangeDouble, redis: Redis, keys: Keys) -> AsyncIterator[Bot]:
    clock = Clock()
    store = MarketStore(redis, keys, retention_ms=30 * MS_PER_DAY)
    alerts = AlertStore(redis, keys)
    service = AlertService(
        alerts,
        store,
        keys,
        REGISTRY,
        AlertSettings(sources=sources(REGISTRY, VENUES), history_step_s=60, stale_after_ms=4 * 3_600_000),
        clock_ms=clock,
    )
    await service.start()
    watchers = {}
    for v in VENUES:
        client = VenueClient(
            v,
            timeout_s=2.0,
            rest_base_url=exchanges.url(v),
            oi_assets=("BTC", "ETH", "SOL"),
            funding_info_refresh_s=3600,
        )
        watchers[v] = MarketWatcher(
            client,
            store,
            REGISTRY,
            MarketWatcherConfig(history_step_s=0),
            listeners=[service.on_samples],
            clock_ms=clock,
        )
    try:
        yield Bot(watchers, service, command_core(store, VENUES, clock_ms=clock), alerts, clock)
    finally:
        await service.stop()
        for w in watchers.values():
            await w.client.close()


def expected_oi(exchanges: ExchangeDouble, venue: str, asset: str) -> dict[str, tuple[float, float]]:
    """(coins, USD) per contract from the venue's documented units (see the double's module docstring)."""
    state = exchanges.venues[venue]
    out = {}
    for i, x in enumerate([*listed_perps(venue, state), *listed_futures(venue, state)]):
        if x.asset != asset:
            continue
        base, mark = x.open_interest_base, x.mark
        if x.linear:  # every venue reports linear contracts in coins (or coins and USD = coins x mark)
            coins, usd = base, base * mark
        elif venue == "binancecoinm":  # contracts of 100 USD (BTC) / 10 USD face value
            usd = round(base * mark / inverse_contract_usd(asset)) * inverse_contract_usd(asset)
            coins = usd / mark
        elif venue in ("bybit", "deribit"):  # inverse: USD, whole dollars
            usd = float(round(base * mark))
            coins = usd / mark
        else:  # okx gives oiCcy and oiUsd
            coins, usd = base, base * mark
        out[f"{venue}#{i}"] = (coins, usd)
    return out


async def test_open_interest_on_five_venues_normalized_to_coins_and_usd(bot: Bot, exchanges: ExchangeDouble) -> None:
    await bot.poll()
    stored = await read(bot.core.store, "oi", "BTC", VENUES)
    assert set(stored) == set(VENUES)
    total_usd = 0.0
    for venue in VENUES:
        want = expected_oi(exchanges, venue, "BTC")
        got = stored[venue]
        assert len(got) == len(want), venue
        assert sum(s.coins for s in got) == pytest.approx(sum(c for c, _ in want.values()), rel=1e-9), venue
        assert sum(s.usd for s in got) == pytest.approx(sum(u for _, u in want.values()), rel=1e-9), venue
        total_usd += sum(u for _, u in want.values())
        for s in got:  # inverse contracts: the USD figure is the face value, coins follow from the mark
            if s.inverse:
                assert s.usd == pytest.approx(round(s.usd)), (venue, s.symbol)
    text = await bot.text("oi", "btc")
    assert f"{total_usd / 1e9:,.2f}B" in text and "on 5 venues" in text
    assert "inverse" in text and "USDT" in text and "USDC" in text  # families labelled
    assert "Change of the total" in text


async def test_oi_change_rule_fires_once_when_total_rises_15_percent(bot: Bot, exchanges: ExchangeDouble) -> None:
    await bot.rule("oi btc change 10% 1h")
    await bot.poll()
    bot.clock.now += 61 * 60_000  # an hour of flat open interest
    await bot.poll()
    assert await bot.fired() == []
    for state in exchanges.venues.values():
        for x in [*state.perps, *state.futures]:
            if x.asset == "BTC":
                x.open_interest_base *= 1.15
    bot.clock.now += 60_000
    await bot.poll()
    bot.clock.now += 60_000
    await bot.poll()  # still up 15% on an hour ago: no second alert
    (event,) = await bot.fired()
    assert event.metric == "oi" and event.kind == "change" and event.selector == "sum"
    assert event.value == pytest.approx(0.15, abs=0.002)  # whole-dollar inverse contracts round a little
    text = to_plain(REGISTRY.render(event))
    assert "BTC oi moved 10% within 1h" in text and "+15.0" in text


async def test_funding_interval_switch_is_seen_within_one_poll(bot: Bot, exchanges: ExchangeDouble) -> None:
    await bot.rule("funding btc above 0.1% venue binanceusdm")
    await bot.rule("funding btc above 0.1% venue bybit")
    await bot.poll("binanceusdm", "bybit")
    assert "8h" in await bot.text("funding", "btc") and await bot.fired() == []
    soon = int(time.time() * 1000) + 3_600_000  # the next funding moves to the next 4h boundary
    for venue in ("binanceusdm", "bybit"):
        (p,) = [p for p in exchanges.venues[venue].perps if p.asset == "BTC" and p.linear]
        p.interval_h, p.funding_rate, p.next_funding_ms = 4, 0.0007, soon
        exchanges.venues[venue].requests.clear()
    await bot.poll("binanceusdm", "bybit")
    # binance re-read fundingInfo because the next funding time jumped; bybit's ticker carries the interval
    assert any("fundingInfo" in r for r in exchanges.venues["binanceusdm"].requests)
    assert not any("instruments-info" in r for r in exchanges.venues["bybit"].requests)
    funding = await read(bot.core.store, "funding", "BTC", ("binanceusdm", "bybit"))
    for venue in ("binanceusdm", "bybit"):
        (s,) = [s for s in funding[venue] if s.symbol == "BTC/USDT:USDT"]
        assert (s.interval_s, s.rate_annualized) == (14_400, pytest.approx(0.0007 * 6 * 365)), venue
    text = await bot.text("funding", "btc")
    assert "+0.0700%  4h" in text and f"{0.0007 * 6 * 365 * 100:+.1f}%" in text
    events = await bot.fired()
    assert sorted(e.venue for e in events) == ["binanceusdm", "bybit"]
    assert all(e.value == pytest.approx(0.0014) for e in events)  # 0.07% per 4h = 0.14% per 8h


async def test_contracts_not_trading_or_coin_quoted_are_never_shown_averaged_or_alerted(
    bot: Bot, exchanges: ExchangeDouble
) -> None:
    now = int(time.time() * 1000) + 3_600_000
    usdm = exchanges.venues["binanceusdm"]
    usdm.perps += [
        Perp("XRP", 0.6, 0.6, 0.004, now, status="settling"),  # delisted, still in premiumIndex
        Perp("DOGE", 0.1, 0.1, 0.004, now, status="pending"),  # not trading yet
        Perp("ETH", 0.05, 0.05, 0.004, now, quote="BTC", open_interest_base=4e13),
    ]  # ETH/BTC
    exchanges.venues["bybit"].perps.append(Perp("XRP", 0.6, 0.6, 0.004, now, status="pending"))
    await bot.rule("funding eth above 0.1%")
    await bot.rule("funding xrp above 0.1%")
    await bot.rule("oi eth above 1t")  # 4e13 coins x 0.05 would read as $2T if the BTC price were taken for USD
    await bot.poll()
    assert "No venue lists XRP" in await bot.text("funding", "xrp")
    assert "No venue lists DOGE" in await bot.text("funding", "doge")
    eth = await read(bot.core.store, "funding", "ETH", VENUES)
    assert all(s.symbol.endswith((":USDT", ":USDC", ":ETH", ":USD")) for ss in eth.values() for s in ss)
    assert not any("BTC" in s.symbol for ss in eth.values() for s in ss)
    text = await bot.text("funding", "eth")
    assert "+0.4000%" not in text  # the coin-quoted rate is nowhere, not in the rows nor the mean
    oi = await read(bot.core.store, "oi", "ETH", ("binanceusdm",))
    assert sum(s.coins for s in oi["binanceusdm"]) < 1e7
    assert await bot.fired() == []


async def test_one_failing_endpoint_degrades_that_part_only(bot: Bot, exchanges: ExchangeDouble) -> None:
    okx = exchanges.venues["okx"]
    for p in okx.perps:
        if p.asset == "BTC":
            p.funding_rate = 0.0005  # okx pays more than the rest (0.01%)
    await bot.poll()
    for fault in ("malformed", "empty"):
        okx.path_faults = {"/api/v5/public/funding-rate": fault}
        await bot.poll()  # the funding endpoint fails; mark prices, futures and open interest still work
        status = await bot.text("status")
        okx_line = next(ln for ln in status.splitlines() if ln.startswith("okx "))
        assert okx_line.split()[1] == "degraded", fault
        assert "okx funding:" in status and "the rest of okx works" in status
        funding = await bot.text("funding", "btc")
        rows = [ln for ln in funding.splitlines() if ln.startswith("okx") and "not current" not in ln]
        assert len(rows) == 2 and all(ln.split()[0].endswith("*") for ln in rows), funding
        assert "okx funding not current" in funding
        assert f"Mean {0.0001 * 100:+.4f}%/8h" in funding  # okx's last 0.05% is in no figure
        basis = await read(bot.core.store, "basis", "BTC", ("okx",))
        assert basis["okx"] and all(time.time() * 1000 - s.ts_ms < 60_000 for s in basis["okx"])
    await bot.rule("funding btc above 0.03%")  # okx's last value would trip it; the others are at 0.01%
    await bot.poll()
    assert await bot.fired() == []
    okx.path_faults = {}
    await bot.poll("okx")
    (event,) = await bot.fired()  # healed: its current value counts again
    assert event.venue == "okx" and event.value == pytest.approx(0.0005)
    assert "degraded" not in next(ln for ln in (await bot.text("status")).splitlines() if ln.startswith("okx "))


async def test_funding_info_404_leaves_the_venue_up(bot: Bot, exchanges: ExchangeDouble) -> None:
    exchanges.venues["binanceusdm"].path_faults = {"/fapi/v1/fundingInfo": "404"}
    await bot.poll("binanceusdm")
    funding = await read(bot.core.store, "funding", "BTC", ("binanceusdm",))
    assert funding["binanceusdm"]  # stored, and current
    text = await bot.text("funding", "btc")
    assert not any(ln.startswith("binance*") for ln in text.splitlines())
    status = await bot.text("status")
    line = next(ln for ln in status.splitlines() if ln.startswith("binance "))
    assert line.split()[1] == "degraded" and "binanceusdm funding_intervals:" in status
