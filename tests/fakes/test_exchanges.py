"""ccxt's own parsing against ExchangeDouble: the values put in the state come back out of ccxt."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from tests.fakes.exchange_payloads import GARBAGE
from tests.fakes.exchanges import (
    ExchangeDouble,
    Future,
    Perp,
    default_state,
    next_funding_ms,
    quarterly_expiries,
)
from watchers.venues.urls import rewrite_rest_urls

OPTIONS: dict[str, dict[str, Any]] = {
    "binanceusdm": {},
    "binancecoinm": {},
    "okx": {"fetchMarkets": {"types": ["swap", "future"]}},
    "bybit": {"fetchMarkets": {"types": ["linear", "inverse"]}},
    "deribit": {},
}

H = 3_600_000
NOW = dt.datetime(2026, 5, 4, 10, 30, tzinfo=dt.UTC)
E1, E2 = dt.date(2026, 6, 26), dt.date(2026, 9, 25)


def _ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(8), tzinfo=dt.UTC).timestamp() * 1000)


@pytest.fixture
async def double() -> AsyncIterator[ExchangeDouble]:
    async with ExchangeDouble() as d:
        yield d


@pytest.fixture
async def connect(double: ExchangeDouble) -> AsyncIterator[Callable[..., Any]]:
    opened: list[Any] = []

    def make(venue: str, timeout: int = 3000) -> Any:
        ex = getattr(ccxt, venue)({"options": OPTIONS[venue], "timeout": timeout})
        ex.urls["api"] = rewrite_rest_urls(ex.urls["api"], double.url(venue))
        opened.append(ex)
        return ex

    yield make
    for ex in opened:
        await ex.close()
    assert double.unknown == []


# ------------------------------------------------------------------------------ state and helpers


def test_quarterly_expiries_are_last_fridays_settling_0800_utc() -> None:
    assert quarterly_expiries(NOW) == [E1, E2]
    assert quarterly_expiries(dt.datetime(2026, 12, 25, 7, 59, tzinfo=dt.UTC)) == [
        dt.date(2026, 12, 25),
        dt.date(2027, 3, 26),
    ]
    assert quarterly_expiries(dt.datetime(2026, 12, 25, 8, 0, tzinfo=dt.UTC))[0] == dt.date(2027, 3, 26)
    assert all(d.weekday() == 4 for d in quarterly_expiries(NOW, count=8))


def test_default_states_list_what_each_venue_lists() -> None:
    nf = next_funding_ms(NOW)
    assert nf == int(dt.datetime(2026, 5, 4, 16, tzinfo=dt.UTC).timestamp() * 1000)
    kinds = {}
    for venue in ExchangeDouble.VENUES:
        s = default_state(venue, NOW)
        assert {p.asset for p in s.perps} >= {"BTC", "ETH"}
        assert {(f.asset, f.expiry) for f in s.futures} >= {(a, e) for a in ("BTC", "ETH") for e in (E1, E2)}
        assert all(p.next_funding_ms == nf and p.interval_h == 8 for p in s.perps)
        kinds[venue] = ({p.linear for p in s.perps}, {f.linear for f in s.futures})
    assert kinds == {
        "binanceusdm": ({True}, {True}),
        "binancecoinm": ({False}, {False}),
        "okx": ({True, False}, {True, False}),
        "bybit": ({True, False}, {True, False}),
        "deribit": ({True, False}, {False}),
    }


# ------------------------------------------------------------------------------ binance


async def test_binanceusdm(double: ExchangeDouble, connect: Callable[..., Any]) -> None:
    state = double.venues["binanceusdm"]
    state.perps = [
        Perp(
            "BTC",
            mark=101_234.5,
            index=101_200.25,
            funding_rate=0.000125,
            next_funding_ms=1_800_000_000_000,
            open_interest_base=81_234.567,
        ),
        Perp("SOL", mark=151.5, index=151.4, funding_rate=-0.0003, next_funding_ms=1_800_000_000_000, interval_h=4),
        Perp("ETH", mark=1.0, index=1.0, funding_rate=0.0, next_funding_ms=0, linear=False),  # not listed
    ]
    state.futures = [
        Future("BTC", E1, mark=103_000.0, index=101_200.25, open_interest_base=4321.5),
        Future("BTC", E2, mark=104_000.0, index=101_200.25),
        Future("ETH", E1, mark=1.0, index=1.0, linear=False),
    ]  # not listed
    ex = connect("binanceusdm")
    markets = await ex.load_markets()
    assert set(markets) == {"BTC/USDT:USDT", "SOL/USDT:USDT", "BTC/USDT:USDT-260626", "BTC/USDT:USDT-260925"}
    fut = markets["BTC/USDT:USDT-260626"]
    assert (fut["id"], fut["type"], fut["expiry"], fut["active"]) == ("BTCUSDT_260626", "future", _ms(E1), True)
    assert markets["BTC/USDT:USDT"]["precision"]["price"] == 0.1

    rates = await ex.fetch_funding_rates()
    btc = rates["BTC/USDT:USDT"]
    assert (btc["markPrice"], btc["indexPrice"], btc["fundingRate"], btc["fundingTimestamp"]) == (
        101_234.5,
        101_200.25,
        0.000125,
        1_800_000_000_000,
    )
    assert btc["interval"] is None  # premiumIndex carries no interval: fetch_funding_intervals does
    assert abs(btc["timestamp"] - time.time() * 1000) < 5000
    # dated futures come back too: mark/index usable, no funding
    bfut = rates["BTC/USDT:USDT-260626"]
    assert (bfut["markPrice"], bfut["indexPrice"], bfut["fundingRate"], bfut["fundingTimestamp"]) == (
        103_000.0,
        101_200.25,
        None,
        0,
    )
    assert set(rates) == set(markets)

    intervals = await ex.fetch_funding_intervals()
    assert {k: v["interval"] for k, v in intervals.items()} == {"SOL/USDT:USDT": "4h"}

    oi = await ex.fetch_open_interest("BTC/USDT:USDT")
    assert (oi["openInterestAmount"], oi["baseVolume"], oi["openInterestValue"]) == (81_234.567, 81_234.567, None)
    oi = await ex.fetch_open_interest("BTC/USDT:USDT-260626")
    assert oi["openInterestAmount"] == 4321.5
    assert state.requests == [
        "GET /fapi/v1/exchangeInfo",
        "GET /fapi/v1/premiumIndex",
        "GET /fapi/v1/fundingInfo",
        "GET /fapi/v1/openInterest?symbol=BTCUSDT",
        "GET /fapi/v1/openInterest?symbol=BTCUSDT_260626",
    ]

    state.perps[0].funding_rate = -0.0007  # moving a value is seen by the next call
    assert (await ex.fetch_funding_rates())["BTC/USDT:USDT"]["fundingRate"] == -0.0007


async def test_binancecoinm(double: ExchangeDouble, connect: Callable[..., Any]) -> None:
    state = double.venues["binancecoinm"]
    state.perps = [
        Perp(
            "BTC",
            mark=100_000.0,
            index=99_990.0,
            funding_rate=0.0002,
            next_funding_ms=1_800_000_000_000,
            open_interest_base=500.0,
            linear=False,
        ),
        Perp(
            "ETH",
            mark=3_000.0,
            index=2_999.0,
            funding_rate=-0.0001,
            next_funding_ms=1_800_000_000_000,
            interval_h=4,
            open_interest_base=1_000.0,
            linear=False,
        ),
        Perp("SOL", mark=1.0, index=1.0, funding_rate=0.0, next_funding_ms=0),  # linear: not listed
    ]
    state.futures = [Future("BTC", E2, mark=102_000.0, index=99_990.0, linear=False, open_interest_base=10.0)]
    ex = connect("binancecoinm")
    markets = await ex.load_markets()
    assert set(markets) == {"BTC/USD:BTC", "ETH/USD:ETH", "BTC/USD:BTC-260925"}
    assert markets["BTC/USD:BTC"]["id"] == "BTCUSD_PERP"
    assert markets["BTC/USD:BTC"]["contractSize"] == 100
    assert markets["ETH/USD:ETH"]["contractSize"] == 10
    assert markets["BTC/USD:BTC-260925"]["inverse"] is True
    assert markets["BTC/USD:BTC-260925"]["expiry"] == _ms(E2)

    rates = await ex.fetch_funding_rates()
    assert (rates["BTC/USD:BTC"]["markPrice"], rates["BTC/USD:BTC"]["indexPrice"]) == (100_000.0, 99_990.0)
    assert (rates["BTC/USD:BTC"]["fundingRate"], rates["BTC/USD:BTC"]["fundingTimestamp"]) == (
        0.0002,
        1_800_000_000_000,
    )
    assert rates["BTC/USD:BTC-260925"]["markPrice"] == 102_000.0
    assert rates["BTC/USD:BTC-260925"]["fundingRate"] is None
    intervals = await ex.fetch_funding_intervals()
    assert {k: v["interval"] for k, v in intervals.items()} == {"ETH/USD:ETH": "4h"}

    oi = await ex.fetch_open_interest("BTC/USD:BTC")  # contracts of 100 USD, baseVolume not given
    assert (oi["openInterestAmount"], oi["baseVolume"]) == (500_000.0, None)
    oi = await ex.fetch_open_interest("ETH/USD:ETH")
    assert oi["openInterestAmount"] == 300_000.0
    assert (await ex.fetch_open_interest("BTC/USD:BTC-260925"))["openInterestAmount"] == 10_200.0
    assert state.requests[:3] == ["GET /dapi/v1/exchangeInfo", "GET /dapi/v1/premiumIndex", "GET /dapi/v1/fundingInfo"]


# ------------------------------------------------------------------------------ okx


async def test_okx(double: ExchangeDouble, connect: Callable[..., Any]) -> None:
    state = double.venues["okx"]
    nf = 1_800_000_000_000
    state.perps = [
        Perp(
            "BTC",
            mark=100_100.5,
            index=100_050.1,
            funding_rate=0.00011,
            next_funding_ms=nf,
            predicted_rate=0.00023,
            open_interest_base=12_345.0,
        ),
        Perp("ETH", mark=3_210.0, index=3_200.0, funding_rate=-0.00002, next_funding_ms=nf, interval_h=4),
        Perp(
            "BTC",
            mark=100_090.0,
            index=100_040.0,
            funding_rate=0.00005,
            next_funding_ms=nf,
            interval_h=1,
            open_interest_base=200.0,
            linear=False,
        ),
    ]
    state.futures = [
        Future("BTC", E1, mark=101_500.0, index=100_050.1, open_interest_base=300.0),
        Future("BTC", E2, mark=102_500.0, index=100_040.0, linear=False),
    ]
    ex = connect("okx")
    markets = await ex.load_markets()
    assert set(markets) == {
        "BTC/USDT:USDT",
        "ETH/USDT:USDT",
        "BTC/USD:BTC",
        "BTC/USDT:USDT-260626",
        "BTC/USD:BTC-260925",
    }
    assert markets["BTC/USDT:USDT"]["contractSize"] == 0.01
    assert markets["BTC/USD:BTC"]["contractSize"] == 100
    assert markets["BTC/USD:BTC"]["inverse"] is True
    assert (markets["BTC/USDT:USDT-260626"]["id"], markets["BTC/USDT:USDT-260626"]["expiry"]) == (
        "BTC-USDT-260626",
        _ms(E1),
    )

    rates = await ex.fetch_funding_rates()
    assert set(rates) == {"BTC/USDT:USDT", "ETH/USDT:USDT", "BTC/USD:BTC"}
    btc = rates["BTC/USDT:USDT"]
    assert (btc["fundingRate"], btc["fundingTimestamp"], btc["interval"]) == (0.00011, nf, "8h")
    assert (btc["nextFundingRate"], btc["nextFundingTimestamp"]) == (0.00023, nf + 8 * H)
    assert btc["markPrice"] is None and btc["indexPrice"] is None
    assert (rates["ETH/USDT:USDT"]["interval"], rates["ETH/USDT:USDT"]["nextFundingRate"]) == ("4h", None)
    assert (rates["BTC/USD:BTC"]["fundingRate"], rates["BTC/USD:BTC"]["interval"]) == (0.00005, "1h")

    swaps = await ex.fetch_mark_prices(params={"instType": "SWAP"})
    assert {k: v["markPrice"] for k, v in swaps.items()} == {
        "BTC/USDT:USDT": 100_100.5,
        "ETH/USDT:USDT": 3_210.0,
        "BTC/USD:BTC": 100_090.0,
    }
    futs = await ex.fetch_mark_prices(params={"instType": "FUTURES"})
    assert {k: v["markPrice"] for k, v in futs.items()} == {
        "BTC/USDT:USDT-260626": 101_500.0,
        "BTC/USD:BTC-260925": 102_500.0,
    }

    usd = await ex.publicGetMarketIndexTickers({"quoteCcy": "USD"})
    usdt = await ex.publicGetMarketIndexTickers({"quoteCcy": "USDT"})
    assert usd["code"] == "0"
    assert {d["instId"]: float(d["idxPx"]) for d in usd["data"]} == {"BTC-USD": 100_040.0, "ETH-USD": 3_200.0}
    assert {d["instId"]: float(d["idxPx"]) for d in usdt["data"]} == {"BTC-USDT": 100_050.1, "ETH-USDT": 3_200.0}

    oi = await ex.fetch_open_interest("BTC/USDT:USDT")  # contracts, coin, USD
    assert (oi["openInterestAmount"], oi["baseVolume"]) == (1_234_500.0, 12_345.0)
    assert oi["openInterestValue"] == pytest.approx(12_345.0 * 100_100.5)
    oi = await ex.fetch_open_interest("BTC/USD:BTC")
    assert (oi["openInterestAmount"], oi["baseVolume"]) == (pytest.approx(200.0 * 100_090.0 / 100), 200.0)
    assert (await ex.fetch_open_interest("BTC/USDT:USDT-260626"))["baseVolume"] == 300.0
    assert state.requests[:3] == [
        "GET /api/v5/public/instruments?instType=SWAP",
        "GET /api/v5/public/instruments?instType=FUTURES",
        "GET /api/v5/public/funding-rate?instId=ANY",
    ]
    assert state.requests[-1] == "GET /api/v5/public/open-interest?instType=FUTURES&uly=BTC-USDT&instId=BTC-USDT-260626"


# ------------------------------------------------------------------------------ bybit


async def test_bybit(double: ExchangeDouble, connect: Callable[..., Any]) -> None:
    state = double.venues["bybit"]
    nf = 1_800_000_000_000
    state.perps = [
        Perp(
            "BTC", mark=100_200.0, index=100_150.0, funding_rate=0.0001, next_funding_ms=nf, open_interest_base=50_000.5
        ),
        Perp(
            "SOL", mark=150.25, index=150.2, funding_rate=0.00025, next_funding_ms=nf, interval_h=1, predicted_rate=0.9
        ),  # bybit publishes no predicted rate: ignored
        Perp("ETH", mark=3_100.0, index=3_099.0, funding_rate=0.0, next_funding_ms=nf),
        Perp(
            "BTC",
            mark=100_180.0,
            index=100_160.0,
            funding_rate=-0.0001,
            next_funding_ms=nf,
            interval_h=4,
            open_interest_base=300.0,
            linear=False,
        ),
    ]
    state.futures = [
        Future("BTC", E1, mark=101_000.0, index=100_150.0, last=101_010.0, open_interest_base=12.5),
        Future("BTC", dt.date(2026, 12, 25), mark=103_000.0, index=100_160.0, linear=False, open_interest_base=7.0),
    ]
    state.page_size = 2  # follow nextPageCursor
    ex = connect("bybit")
    markets = await ex.load_markets()
    assert set(markets) == {
        "BTC/USDT:USDT",
        "SOL/USDT:USDT",
        "ETH/USDT:USDT",
        "BTC/USD:BTC",
        "BTC/USDC:USDC-260626",
        "BTC/USD:BTC-261225",
    }
    assert "GET /v5/market/instruments-info?category=linear&limit=1000&cursor=page_2" in state.requests
    assert markets["BTC/USDC:USDC-260626"]["id"] == "BTC-26JUN26"
    assert markets["BTC/USDC:USDC-260626"]["expiry"] == _ms(E1)
    assert markets["BTC/USD:BTC-261225"]["id"] == "BTCUSDZ26"
    assert markets["BTC/USD:BTC"]["contractSize"] == 1  # ccxt: inverse contractSize = minOrderQty (1 USD)
    assert markets["SOL/USDT:USDT"]["info"]["fundingInterval"] == 60  # minutes
    assert markets["BTC/USD:BTC"]["info"]["fundingInterval"] == 240

    linear = await ex.fetch_tickers(params={"category": "linear"})
    assert set(linear) == {"BTC/USDT:USDT", "SOL/USDT:USDT", "ETH/USDT:USDT", "BTC/USDC:USDC-260626"}
    btc = linear["BTC/USDT:USDT"]
    assert (btc["markPrice"], btc["indexPrice"], btc["last"]) == (100_200.0, 100_150.0, 100_200.0)
    info = btc["info"]
    assert (float(info["fundingRate"]), int(info["nextFundingTime"]), info["fundingIntervalHour"]) == (0.0001, nf, "8")
    assert float(info["openInterest"]) == 50_000.5  # linear: coin
    assert float(info["openInterestValue"]) == pytest.approx(50_000.5 * 100_200.0)  # USD
    assert linear["SOL/USDT:USDT"]["info"]["fundingIntervalHour"] == "1"
    fut = linear["BTC/USDC:USDC-260626"]
    assert (fut["markPrice"], fut["indexPrice"], fut["last"]) == (101_000.0, 100_150.0, 101_010.0)
    assert (int(fut["info"]["deliveryTime"]), fut["info"]["fundingRate"]) == (_ms(E1), "")

    inverse = await ex.fetch_tickers(params={"category": "inverse"})
    assert set(inverse) == {"BTC/USD:BTC", "BTC/USD:BTC-261225"}
    perp = inverse["BTC/USD:BTC"]
    assert (perp["markPrice"], float(perp["info"]["fundingRate"]), perp["info"]["fundingIntervalHour"]) == (
        100_180.0,
        -0.0001,
        "4",
    )
    assert float(perp["info"]["openInterest"]) == round(300.0 * 100_180.0)  # inverse: USD
    assert float(perp["info"]["openInterestValue"]) == 300.0  # inverse: coin
    assert inverse["BTC/USD:BTC-261225"]["markPrice"] == 103_000.0
    assert state.requests[-2:] == ["GET /v5/market/tickers?category=linear", "GET /v5/market/tickers?category=inverse"]


# ------------------------------------------------------------------------------ deribit


async def test_deribit(double: ExchangeDouble, connect: Callable[..., Any]) -> None:
    state = double.venues["deribit"]
    state.perps = [
        Perp(
            "BTC",
            mark=100_300.5,
            index=100_250.0,
            funding_rate=0.00004,
            next_funding_ms=0,
            interval_h=1,
            predicted_rate=0.00002,
            open_interest_base=10.0,
            linear=False,
        ),
        Perp("ETH", mark=3_050.0, index=3_049.0, funding_rate=0.0001, next_funding_ms=0, linear=False),
        Perp("SOL", mark=151.0, index=150.9, funding_rate=0.0002, next_funding_ms=0, open_interest_base=777.0),
    ]
    state.futures = [
        Future("BTC", E1, mark=101_500.0, index=100_250.0, last=101_450.0, linear=False, open_interest_base=3.0),
        Future("ETH", E1, mark=1.0, index=1.0),  # linear future: not listed on deribit
    ]
    ex = connect("deribit")
    markets = await ex.load_markets()
    assert set(markets) == {"BTC/USD:BTC", "ETH/USD:ETH", "SOL/USDC:USDC", "BTC/USD:BTC-260626"}
    assert markets["BTC/USD:BTC"]["id"] == "BTC-PERPETUAL"
    assert markets["SOL/USDC:USDC"]["id"] == "SOL_USDC-PERPETUAL"
    assert markets["SOL/USDC:USDC"]["linear"] is True
    assert (markets["BTC/USD:BTC-260626"]["id"], markets["BTC/USD:BTC-260626"]["expiry"]) == ("BTC-26JUN26", _ms(E1))

    btc = await ex.fetch_tickers(params={"code": "BTC", "kind": "future"})
    assert set(btc) == {"BTC/USD:BTC", "BTC/USD:BTC-260626"}
    perp = btc["BTC/USD:BTC"]
    assert (perp["markPrice"], perp["last"], perp["indexPrice"]) == (100_300.5, 100_300.5, None)
    assert perp["info"]["estimated_delivery_price"] == 100_250.0  # the index lives here
    assert perp["info"]["funding_8h"] == pytest.approx(0.00004 * 8)  # scaled from the 1h rate
    assert perp["info"]["current_funding"] == 0.00002
    assert perp["info"]["open_interest"] == round(10.0 * 100_300.5)  # inverse: USD
    fut = btc["BTC/USD:BTC-260626"]
    assert (fut["markPrice"], fut["last"], fut["info"]["estimated_delivery_price"]) == (101_500.0, 101_450.0, 100_250.0)
    assert "funding_8h" not in fut["info"]

    eth = await ex.fetch_tickers(params={"code": "ETH", "kind": "future"})
    assert eth["ETH/USD:ETH"]["info"]["funding_8h"] == 0.0001
    usdc = await ex.fetch_tickers(params={"code": "USDC", "kind": "future"})
    assert set(usdc) == {"SOL/USDC:USDC"}
    assert (usdc["SOL/USDC:USDC"]["markPrice"], usdc["SOL/USDC:USDC"]["info"]["open_interest"]) == (151.0, 777.0)
    assert state.requests == [
        "GET /api/v2/public/get_currencies",
        "GET /api/v2/public/get_instruments",
        "GET /api/v2/public/get_book_summary_by_currency?currency=BTC&kind=future",
        "GET /api/v2/public/get_book_summary_by_currency?currency=ETH&kind=future",
        "GET /api/v2/public/get_book_summary_by_currency?currency=USDC&kind=future",
    ]


# ------------------------------------------------------------------------------ envelopes, faults, 404


CALLS: dict[str, Callable[[Any], Any]] = {
    "binanceusdm": lambda ex: ex.fetch_funding_rates(),
    "binancecoinm": lambda ex: ex.fetch_funding_rates(),
    "okx": lambda ex: ex.fetch_funding_rates(),
    "bybit": lambda ex: ex.fetch_tickers(params={"category": "linear"}),
    "deribit": lambda ex: ex.fetch_tickers(params={"code": "BTC", "kind": "future"}),
}

RAW_PATHS = {
    "binanceusdm": "/fapi/v1/premiumIndex",
    "binancecoinm": "/dapi/v1/premiumIndex",
    "okx": "/api/v5/public/mark-price?instType=SWAP",
    "bybit": "/v5/market/tickers?category=linear",
    "deribit": "/api/v2/public/get_book_summary_by_currency?currency=BTC&kind=future",
}


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


async def test_envelopes_and_server_time(double: ExchangeDouble) -> None:
    now = time.time() * 1000
    bodies = {v: json.loads((await _get(double.url(v) + p))[1]) for v, p in RAW_PATHS.items()}
    assert isinstance(bodies["binanceusdm"], list)
    assert abs(bodies["binanceusdm"][0]["time"] - now) < 5000
    assert (bodies["okx"]["code"], bodies["okx"]["msg"]) == ("0", "")
    assert abs(int(bodies["okx"]["data"][0]["ts"]) - now) < 5000
    assert (bodies["bybit"]["retCode"], bodies["bybit"]["retMsg"]) == (0, "OK")
    assert abs(bodies["bybit"]["time"] - now) < 5000
    rpc = bodies["deribit"]
    assert (rpc["jsonrpc"], rpc["testnet"], rpc["usOut"] - rpc["usIn"]) == ("2.0", False, rpc["usDiff"])
    assert abs(rpc["usIn"] / 1000 - now) < 5000


@pytest.mark.parametrize("venue", ExchangeDouble.VENUES)
async def test_fault_500_and_timeout(venue: str, double: ExchangeDouble, connect: Callable[..., Any]) -> None:
    ex = connect(venue, timeout=300)
    await ex.load_markets()
    double.venues[venue].fault = "500"
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await CALLS[venue](ex)
    double.venues[venue].fault, double.venues[venue].delay_s = "timeout", 1.0
    with pytest.raises(ccxt.RequestTimeout):
        await CALLS[venue](ex)
    double.venues[venue].delay_s = 0.0  # "timeout" with no delay answers normally
    assert await CALLS[venue](ex)


@pytest.mark.parametrize("venue", ExchangeDouble.VENUES)
async def test_fault_malformed_and_garbage(venue: str, double: ExchangeDouble, connect: Callable[..., Any]) -> None:
    ex = connect(venue)
    await ex.load_markets()
    state = double.venues[venue]
    state.fault = "malformed"
    status, text = await _get(double.url(venue) + RAW_PATHS[venue])
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    # ccxt quirk: a truncated JSON body is not an error, the call just parses to nothing
    assert await CALLS[venue](ex) == {}
    state.fault = "garbage"
    status, text = await _get(double.url(venue) + RAW_PATHS[venue])
    assert (status, json.loads(text)) == (200, GARBAGE)
    state.fault = None
    assert await CALLS[venue](ex)


async def test_unknown_paths_answer_404_and_are_recorded(double: ExchangeDouble) -> None:
    assert (await _get(double.url("okx") + "/api/v5/market/tickers?instType=SWAP"))[0] == 404
    assert (await _get(double.url("kraken") + "/0/public/Time"))[0] == 404
    assert double.unknown == ["okx GET /api/v5/market/tickers?instType=SWAP", "kraken GET /0/public/Time"]
    assert double.venues["okx"].requests == ["GET /api/v5/market/tickers?instType=SWAP"]
    double.unknown.clear()
