"""Open-interest history backfill: the perpetuals' hourly totals per venue, where they are the venue's whole OI."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from core.keys import Keys
from core.metrics.registry import default_registry
from core.models import OpenInterestSample
from core.render import to_plain
from core.store import MarketStore
from tests.builders import command_core, write_venue
from tests.fakes.exchange_payloads import inverse_contract_usd, listed_perps
from tests.fakes.exchanges import ExchangeDouble, Perp
from tests.fakes.history_payloads import BINANCE_OI_DAYS, bybit_mark_at, history_of, oi_at, oi_contracts_inverse
from watchers.backfill import Backfill
from watchers.errors import SourceUnavailable
from watchers.venues import VenueClient
from watchers.venues.history import HistoryClient

REGISTRY = default_registry()
HOUR = 3_600_000
DAY = 86_400_000
NOW = int(time.time() * 1000)
START = (NOW // DAY - 33) * DAY  # binance keeps 30 days: the first 3 are not there
STEP = 300_000
END = (NOW // DAY - 1) * DAY - 1
VENUES = ("binanceusdm", "binancecoinm", "bybit", "deribit", "okx")
OI_PATHS = (
    "/futures/data/openInterestHist",
    "/api/v5/rubik/stat/contracts/open-interest-history",
    "/v5/market/open-interest",
)


@pytest.fixture
async def clients(exchanges: ExchangeDouble) -> AsyncIterator[dict[str, VenueClient]]:
    # perpetuals only: their OI history is the venue's whole OI
    for v in ("binanceusdm", "binancecoinm", "bybit", "okx"):
        exchanges.venues[v].futures = []
    out = {v: VenueClient(v, timeout_s=2, rest_base_url=exchanges.url(v)) for v in VENUES}
    for c in out.values():
        c.exchange.enableRateLimit = False
    try:
        yield out
    finally:
        for c in out.values():
            await c.close()


def job(
    redis: Redis,
    keys: Keys,
    clients: dict[str, VenueClient],
    *,
    start: int = START,
    end: int = END,
    venues: tuple[str, ...] = VENUES,
    max_retries: int = 3,
) -> Backfill:
    store = MarketStore(redis, keys, retention_ms=90 * DAY)
    hcs = [HistoryClient(clients[v], min_interval_s=0, clock_ms=lambda: NOW) for v in venues]
    return Backfill(
        store,
        keys,
        REGISTRY,
        hcs,
        (),
        asset="btc",
        start_ms=start,
        end_ms=end,
        max_retries=max_retries,
        retry_base_s=0.05,
    )


def units(venue: str, p: Perp, t: int) -> tuple[float, float]:
    """(coins, USD) of one perpetual at the hour ``t``, from the double's own figures."""
    if venue == "binancecoinm":  # contracts of the face value, worth that many USD
        contracts = oi_contracts_inverse(p, t)
        return contracts * inverse_contract_usd(p.asset) / p.mark, contracts * inverse_contract_usd(p.asset)
    if venue == "bybit":  # one unit from the venue, the other at the 5m mark
        mark = bybit_mark_at(p, t)
        return (
            (oi_at(p, t), oi_at(p, t) * mark)
            if p.linear
            else (round(oi_at(p, t) * mark) / mark, float(round(oi_at(p, t) * mark)))
        )
    return oi_at(p, t), oi_at(p, t) * p.mark


def expected(
    exchanges: ExchangeDouble, venue: str, start: int = START, end: int = END
) -> dict[int, tuple[float, float]]:
    perps = [p for p in listed_perps(venue, exchanges.venues[venue]) if p.asset == "BTC"]
    # binance refuses a start before its last 30 days: the backfill asks from an hour after that
    first = max(start, NOW - BINANCE_OI_DAYS * DAY + HOUR) if venue.startswith("binance") else start
    steps = range(-(-first // STEP) * STEP, min(end, NOW - STEP) + 1, STEP)  # every 5 minutes, complete ones
    return {t: (sum(units(venue, p, t)[0] for p in perps), sum(units(venue, p, t)[1] for p in perps)) for t in steps}


async def stored(redis: Redis, keys: Keys, venue: str) -> dict[int, tuple[float, float]]:
    out = {}
    for raw in await redis.zrange(keys.history("oi", "BTC", venue), 0, -1):
        ts, usd, coins = raw.decode().split("|")
        out[int(ts)] = (float(coins), float(usd))
    return out


def assert_same(got: dict[int, tuple[float, float]], want: dict[int, tuple[float, float]]) -> None:
    assert sorted(got) == sorted(want)
    for t, (coins, usd) in want.items():
        assert got[t] == (pytest.approx(coins, rel=1e-9), pytest.approx(usd, rel=1e-9)), t


async def test_oi_history_paged_per_venue_in_coins_and_usd(
    exchanges: ExchangeDouble, clients: dict[str, VenueClient], redis: Redis, keys: Keys
) -> None:
    report = await job(redis, keys, clients).run()
    for v in ("binanceusdm", "binancecoinm", "bybit", "okx"):
        assert_same(await stored(redis, keys, v), expected(exchanges, v))
    assert await stored(redis, keys, "deribit") == {}
    assert any(s.startswith("deribit: oi history not supported") for s in report.skipped)
    # binance: windows of 500 5-minute rows, one request per BTC perpetual each; okx: 100 rows
    n_perps = {v: len([p for p in listed_perps(v, exchanges.venues[v]) if p.asset == "BTC"]) for v in VENUES}
    pages = {v: [q for p, q in history_of(exchanges.venues[v]).served if p in OI_PATHS] for v in VENUES}
    steps = (END - START + 1) // STEP
    # windows wholly older than binance keeps are not asked for (binance would answer 400)
    kept = [
        k
        for k in range(-(-steps // 500))
        if min(END, START + (k + 1) * 500 * STEP - 1) >= NOW - BINANCE_OI_DAYS * DAY + HOUR
    ]
    assert 0 < len(kept) < -(-steps // 500)
    assert len(pages["binanceusdm"]) == len(kept) * n_perps["binanceusdm"]
    assert len(pages["binancecoinm"]) == len(kept) * n_perps["binancecoinm"]
    assert all(
        int(q["startTime"]) >= NOW - BINANCE_OI_DAYS * DAY for v in ("binanceusdm", "binancecoinm") for q in pages[v]
    )
    assert len(pages["okx"]) == -(-steps // 100) * n_perps["okx"] and n_perps["okx"] >= 2
    assert len(pages["bybit"]) == -(-steps // 200) * n_perps["bybit"] and n_perps["bybit"] >= 2
    marks = [q for p, q in history_of(exchanges.venues["bybit"]).served if p == "/v5/market/mark-price-kline"]
    assert len(marks) == len(pages["bybit"])  # one mark-kline page per open-interest page
    assert all(q["period"] == "5m" for v in ("binanceusdm", "binancecoinm", "okx") for q in pages[v])


async def test_oi_skipped_where_dated_futures_count_in_the_live_total(
    exchanges: ExchangeDouble, redis: Redis, keys: Keys
) -> None:
    okx = VenueClient("okx", timeout_s=2, rest_base_url=exchanges.url("okx"))  # the double lists okx futures here
    okx.exchange.enableRateLimit = False
    try:
        report = await job(redis, keys, {"okx": okx}, venues=("okx",)).run()
    finally:
        await okx.close()
    assert any(s.startswith("okx: oi history not stored: its history covers perpetuals only") for s in report.skipped)
    assert await stored(redis, keys, "okx") == {}
    assert not [p for p, _q in history_of(exchanges.venues["okx"]).served if p in OI_PATHS]


async def test_oi_resume_then_idempotent(
    exchanges: ExchangeDouble, clients: dict[str, VenueClient], redis: Redis, keys: Keys
) -> None:
    okx = history_of(exchanges.venues["okx"])
    perps = len([p for p in listed_perps("okx", exchanges.venues["okx"]) if p.asset == "BTC"])
    funding_pages = -(-(END - START + 1) // (100 * HOUR))
    okx.fail_after = perps * funding_pages + 2 * perps + 1  # funding done, then OI stops in its 3rd window
    with pytest.raises(SourceUnavailable):
        await job(redis, keys, clients, venues=("okx",), max_retries=0).run()
    partial = await stored(redis, keys, "okx")
    assert 0 < len(partial) < len(expected(exchanges, "okx"))
    okx.fail_after = None
    before = len(okx.served)
    report = await job(redis, keys, clients, venues=("okx",)).run()
    assert "oi|okx|BTC" in report.resumed
    oi_windows = [(q["instId"], q["begin"]) for p, q in okx.served if p in OI_PATHS]
    # no stored window fetched twice: only the interrupted one (its first perpetual answered, the second did not)
    assert len(oi_windows) - len(set(oi_windows)) == 1
    assert len(set(oi_windows)) == -(-(END - START + 1) // (100 * STEP)) * perps
    assert len(okx.served) > before
    assert_same(await stored(redis, keys, "okx"), expected(exchanges, "okx"))
    await redis.delete(keys.backfill(f"BTC|{START}|{END}"))  # fetch it all again: the same history
    await job(redis, keys, clients, venues=("okx",)).run()
    assert_same(await stored(redis, keys, "okx"), expected(exchanges, "okx"))


async def test_oi_command_shows_24h_change_from_backfilled_history(
    exchanges: ExchangeDouble, clients: dict[str, VenueClient], redis: Redis, keys: Keys
) -> None:
    start = (NOW // DAY - 2) * DAY
    await job(redis, keys, clients, start=start, end=NOW, venues=("okx",)).run()
    then = expected(exchanges, "okx", start, NOW)
    at = max(t for t in then if t <= NOW - DAY)  # the newest total at or before 24h ago: within 5 minutes
    live_usd = then[at][1] * 1.1
    store = MarketStore(redis, keys, retention_ms=90 * DAY)
    await write_venue(
        store,
        "okx",
        oi=[
            OpenInterestSample(
                venue="okx",
                symbol="BTC/USDT:USDT",
                asset="BTC",
                settle="USDT",
                inverse=False,
                kind="swap",
                coins=live_usd / 60_000,
                usd=live_usd,
                ts_ms=NOW,
            )
        ],
        now_ms=NOW,
    )
    core = command_core(store, ("okx",), clock_ms=lambda: NOW)
    text = to_plain(await core.run("oi", ["btc"]))
    assert "24h +10.0%" in text, text
