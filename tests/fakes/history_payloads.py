"""History routes of the exchange double: funding rate history, paged as the venues page it, rate limited.

Registered into :data:`tests.fakes.exchange_payloads.ROUTES` by :func:`register` (one line in
``tests/fakes/exchanges.py``). Each listed perpetual settles every ``interval_h`` hours since
``HISTORY_START_MS``; its settled rate at ``ts`` is :func:`funding_at` (deterministic, so a test computes
what a backfill must have stored). Per venue, :func:`history_of` holds the knobs:

* ``min_interval_s``: a request closer than this to the previous history request answers HTTP 429 in
  the venue's shape (ccxt raises ``RateLimitExceeded``/``DDoSProtection``); ``rejected`` counts them.
* ``fail_after``: history requests after this many answer 500 (an interruption), until set back to None.
* ``served``: the history requests answered, as (path, query).

Paging, as the real venues do it:

* binanceusdm ``/fapi/v1/fundingRate``, binancecoinm ``/dapi/v1/fundingRate``
  (``symbol, startTime, endTime, limit`` <= 1000, default 100): oldest first from ``startTime``::

    [{"symbol":"BTCUSDT","fundingTime":1704067200000,"fundingRate":"0.00010000","markPrice":"42000.0"}]

* bybit ``/v5/market/funding/history`` (``category, symbol, startTime, endTime, limit`` <= 200): the NEWEST
  ``limit`` rows of the window, newest first::

    {"retCode":0,"result":{"category":"linear","list":[{"symbol":"BTCUSDT","fundingRate":"0.0001",
     "fundingRateTimestamp":"1704067200000"}]}}

* okx ``/api/v5/public/funding-rate-history`` (``instId, before, after, limit`` <= 100): rows with
  ``before < fundingTime < after``, the newest ``limit`` of them, newest first::

    {"code":"0","msg":"","data":[{"instId":"BTC-USDT-SWAP","fundingRate":"0.0001","realizedRate":"0.0001",
     "fundingTime":"1704067200000","method":"current_period"}]}

* binanceusdm ``/fapi/v1/markPriceKlines?symbol=BTCUSDT_261225`` and ``/fapi/v1/indexPriceKlines?pair=BTCUSDT``
  (binancecoinm on ``/dapi/v1``; ``interval, startTime, endTime, limit`` <= 1500): hourly candles, oldest
  first, complete ones only; the mark closes at :func:`mark_at`, the index at the future's index::

    [[1704067200000,"42000.0","42000.0","42000.0","42000.0","0",1704070799999,"0",60,"0","0","0"]]

* deribit ``/api/v2/public/get_funding_rate_history`` (``instrument_name, start_timestamp, end_timestamp``):
  one row an hour, oldest first, at most 744, each with the accrual over the last 8h::

    {"jsonrpc":"2.0","result":[{"timestamp":1704067200000,"index_price":42000.0,"prev_index_price":42000.0,
     "interest_8h":0.0001,"interest_1h":0.0000125}]}
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.fakes.exchange_payloads import (
    ROUTES,
    Builder,
    Reply,
    binance_symbol,
    bybit_symbol,
    deribit_name,
    inverse_contract_usd,
    listed_futures,
    listed_perps,
    num,
    okx_inst_id,
)

if TYPE_CHECKING:
    from tests.fakes.exchanges import Future, Perp, VenueState

HOUR_MS = 3_600_000
HISTORY_START_MS = 1_672_531_200_000  # 2023-01-01T00:00:00Z: the first settlement the double knows


@dataclass
class HistoryState:
    min_interval_s: float = 0.0
    fail_after: int | None = None
    rejected: int = 0
    served: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    last_s: float = -1e9


def history_of(state: VenueState) -> HistoryState:
    """The history knobs of one venue of one double (created on first use)."""
    h = getattr(state, "history_state", None)
    if h is None:
        h = HistoryState()
        state.history_state = h  # type: ignore[attr-defined]  # the double's state carries it from here on
    return h


def funding_at(perp: Perp, ts_ms: int) -> float:
    """The rate settled at ``ts_ms``: the perp's current rate plus a slow wave, rounded as venues send it."""
    return round(perp.funding_rate + 0.0002 * math.sin(ts_ms / (7 * 86_400_000) * 2 * math.pi), 8)


def settlements(perp: Perp, start_ms: int, end_ms: int, now_ms: int, *, step_h: int | None = None) -> list[int]:
    """Settlement times in [start_ms, end_ms], never after now (every ``step_h`` hours: deribit's hourly rows)."""
    step = (step_h or perp.interval_h) * HOUR_MS
    first = max(HISTORY_START_MS, start_ms)
    t = HISTORY_START_MS + -(-(first - HISTORY_START_MS) // step) * step
    out = []
    while t <= min(end_ms, now_ms):
        out.append(t)
        t += step
    return out


def _gate(state: VenueState, path: str, q: Mapping[str, str]) -> Reply | None:
    """Rate limit and interruption, before any answer."""
    h = history_of(state)
    now_s = time.monotonic()
    if now_s - h.last_s < h.min_interval_s:
        h.rejected += 1
        h.last_s = now_s
        return 429, {
            "code": -1003,
            "msg": "Too many requests; current limit is exceeded.",
            "retCode": 10006,
            "retMsg": "Too many visits!",
        }
    h.last_s = now_s
    if h.fail_after is not None and len(h.served) >= h.fail_after:
        return 500, {"code": -1001, "msg": "Internal error", "retCode": 10016, "retMsg": "Server error"}
    h.served.append((path, dict(q)))
    return None


def _int(q: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(q[key])
    except (KeyError, ValueError):
        return default


def _binance_funding_rate(venue: str, path: str) -> Builder:
    def build(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
        if (stop := _gate(state, path, q)) is not None:
            return stop
        perp = next((p for p in listed_perps(venue, state) if binance_symbol(p) == q.get("symbol")), None)
        if perp is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        limit = min(1000, _int(q, "limit", 100))
        times = settlements(perp, _int(q, "startTime", 0), _int(q, "endTime", now_ms), now_ms)[:limit]
        return 200, [
            {
                "symbol": binance_symbol(perp),
                "fundingTime": t,
                "fundingRate": num(funding_at(perp, t)),
                "markPrice": num(perp.mark),
            }
            for t in times
        ]

    return build


def _bybit_funding_history(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    path = "/v5/market/funding/history"
    if (stop := _gate(state, path, q)) is not None:
        return stop
    linear = q.get("category") == "linear"
    perp = next(
        (p for p in listed_perps("bybit", state) if bybit_symbol(p) == q.get("symbol") and p.linear == linear), None
    )
    if perp is None:
        return 200, {"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {}, "time": now_ms}
    limit = min(200, _int(q, "limit", 200))
    times = settlements(perp, _int(q, "startTime", 0), _int(q, "endTime", now_ms), now_ms)[-limit:]
    rows = [
        {"symbol": bybit_symbol(perp), "fundingRate": num(funding_at(perp, t)), "fundingRateTimestamp": str(t)}
        for t in reversed(times)
    ]
    return 200, {
        "retCode": 0,
        "retMsg": "OK",
        "result": {"category": q.get("category"), "list": rows},
        "retExtInfo": {},
        "time": now_ms,
    }


def _deribit_funding_history(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    path = "/api/v2/public/get_funding_rate_history"
    if (stop := _gate(state, path, q)) is not None:
        return stop
    perp = next((p for p in listed_perps("deribit", state) if deribit_name(p) == q.get("instrument_name")), None)
    us = now_ms * 1000
    if perp is None:
        return 400, {
            "jsonrpc": "2.0",
            "error": {"message": "Invalid params", "code": -32602},
            "usIn": us,
            "usOut": us,
            "usDiff": 0,
            "testnet": False,
        }
    times = settlements(perp, _int(q, "start_timestamp", 0), _int(q, "end_timestamp", now_ms), now_ms, step_h=1)[:744]
    rows = [
        {
            "timestamp": t,
            "index_price": perp.index,
            "prev_index_price": perp.index,
            "interest_8h": funding_at(perp, t),
            "interest_1h": funding_at(perp, t) / 8,
        }
        for t in times
    ]
    return 200, {"jsonrpc": "2.0", "result": rows, "usIn": us, "usOut": us + 150, "usDiff": 150, "testnet": False}


def _okx_funding_history(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    path = "/api/v5/public/funding-rate-history"
    if (stop := _gate(state, path, q)) is not None:
        return stop
    perp = next((p for p in listed_perps("okx", state) if okx_inst_id(p) == q.get("instId")), None)
    if perp is None:
        return 200, {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
    limit = min(100, _int(q, "limit", 100))
    times = [t for t in settlements(perp, _int(q, "before", -1) + 1, _int(q, "after", now_ms + 1) - 1, now_ms)]
    rows = [
        {
            "instId": okx_inst_id(perp),
            "instType": "SWAP",
            "fundingRate": num(funding_at(perp, t)),
            "realizedRate": num(funding_at(perp, t)),
            "fundingTime": str(t),
            "method": "current_period",
        }
        for t in reversed(times[-limit:])
    ]
    return 200, {"code": "0", "msg": "", "data": rows}


def mark_at(f: Future, ts_ms: int) -> float:
    """A dated future's hourly mark close at the candle opening ``ts_ms``: its mark with a small daily wave."""
    return round(f.mark * (1 + 0.002 * math.sin(ts_ms / 86_400_000 * 2 * math.pi)), 2)


def _kline(t: int, close: float) -> list[Any]:
    c = num(close)
    return [t, c, c, c, c, "0", t + HOUR_MS - 1, "0", 60, "0", "0", "0"]


def _hours(q: Mapping[str, str], now_ms: int, limit_max: int) -> list[int]:
    """Hourly candle opens from startTime to endTime (at most ``limit``), only complete ones."""
    limit = min(limit_max, _int(q, "limit", 500))
    start = -(-max(HISTORY_START_MS, _int(q, "startTime", HISTORY_START_MS)) // HOUR_MS) * HOUR_MS
    end = min(_int(q, "endTime", now_ms), now_ms - HOUR_MS)
    return list(range(start, end + 1, HOUR_MS))[:limit]


def _binance_klines(venue: str, path: str, price: str) -> Builder:
    def build(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
        if (stop := _gate(state, path, q)) is not None:
            return stop
        futures = listed_futures(venue, state)
        if price == "mark":
            f = next((x for x in futures if binance_symbol(x) == q.get("symbol")), None)
            if f is None:
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            return 200, [_kline(t, mark_at(f, t)) for t in _hours(q, now_ms, 1500)]
        f = next((x for x in futures if binance_symbol(x).split("_")[0] == q.get("pair")), None)
        if f is None:
            return 400, {"code": -1121, "msg": "Invalid pair."}
        return 200, [_kline(t, f.index) for t in _hours(q, now_ms, 1500)]

    return build


BINANCE_OI_DAYS = 30  # binance's openInterestHist keeps the last 30 days
OI_STEP_MS = 300_000  # the 5m period the backfill asks for


def oi_times(start_ms: int, end_ms: int, now_ms: int) -> list[int]:
    """The 5-minute open-interest rows in [start_ms, end_ms], complete ones only (never after now - 5 min)."""
    first = max(HISTORY_START_MS, start_ms)
    return list(range(-(-first // OI_STEP_MS) * OI_STEP_MS, min(end_ms, now_ms - OI_STEP_MS) + 1, OI_STEP_MS))


def oi_at(perp: Perp, ts_ms: int) -> float:
    """A perpetual's open interest in coins at ``ts_ms``: its current one with a daily wave."""
    return round(perp.open_interest_base * (1 + 0.05 * math.sin(ts_ms / 86_400_000 * 2 * math.pi)), 3)


def oi_contracts_inverse(perp: Perp, ts_ms: int) -> int:
    """An inverse perpetual's open interest in contracts of ``inverse_contract_usd`` USD, at its mark."""
    return round(oi_at(perp, ts_ms) * perp.mark / inverse_contract_usd(perp.asset))


def _binance_oi_history(venue: str) -> Builder:
    """``/futures/data/openInterestHist`` (USD-M ``symbol``; COIN-M ``pair, contractType``; ``period, startTime,
    endTime, limit`` <= 500): oldest first; a ``startTime`` before the last 30 days answers 400. USD-M rows
    are coins and USD::

        [{"symbol":"BTCUSDT","sumOpenInterest":"20403.637","sumOpenInterestValue":"150570784.07",
          "CMCCirculatingSupply":"19650000","timestamp":1583127900000}]

    COIN-M rows are contracts and their value in coins::

        [{"pair":"BTCUSD","contractType":"PERPETUAL","sumOpenInterest":"20403","sumOpenInterestValue":"176.19",
          "timestamp":1583127900000}]
    """
    path = "/futures/data/openInterestHist"

    def build(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
        if (stop := _gate(state, path, q)) is not None:
            return stop
        perps = listed_perps(venue, state)
        if venue == "binanceusdm":
            perp = next((p for p in perps if binance_symbol(p) == q.get("symbol")), None)
        else:
            perp = next(
                (
                    p
                    for p in perps
                    if q.get("contractType") == "PERPETUAL" and binance_symbol(p).split("_")[0] == q.get("pair")
                ),
                None,
            )
        if perp is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        limit = min(500, _int(q, "limit", 30))
        if _int(q, "startTime", now_ms) < now_ms - BINANCE_OI_DAYS * 86_400_000:
            return 400, {"code": -1130, "msg": "parameter 'startTime' is invalid."}
        times = oi_times(_int(q, "startTime", 0), _int(q, "endTime", now_ms), now_ms)[:limit]
        if venue == "binanceusdm":
            return 200, [
                {
                    "symbol": binance_symbol(perp),
                    "sumOpenInterest": num(oi_at(perp, t)),
                    "sumOpenInterestValue": num(oi_at(perp, t) * perp.mark),
                    "CMCCirculatingSupply": "19650000",
                    "timestamp": t,
                }
                for t in times
            ]
        face = inverse_contract_usd(perp.asset)
        return 200, [
            {
                "pair": binance_symbol(perp).split("_")[0],
                "contractType": "PERPETUAL",
                "sumOpenInterest": num(oi_contracts_inverse(perp, t)),
                "sumOpenInterestValue": num(oi_contracts_inverse(perp, t) * face / perp.mark),
                "timestamp": t,
            }
            for t in times
        ]

    return build


def _okx_oi_history(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``/api/v5/rubik/stat/contracts/open-interest-history`` (``instId, period, begin, end`` exclusive, ``limit``
    <= 100): the newest ``limit`` rows, newest first, each ``[ts, contracts, coins, USD]``::

        {"code":"0","msg":"","data":[["1701417600000","731377.575","7313.77","311390000.1"]]}
    """
    path = "/api/v5/rubik/stat/contracts/open-interest-history"
    if (stop := _gate(state, path, q)) is not None:
        return stop
    perp = next((p for p in listed_perps("okx", state) if okx_inst_id(p) == q.get("instId")), None)
    if perp is None:
        return 200, {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
    limit = min(100, _int(q, "limit", 100))
    times = oi_times(_int(q, "begin", -1) + 1, _int(q, "end", now_ms + 1) - 1, now_ms)
    rows = []
    for t in reversed(times[-limit:]):
        coins = oi_at(perp, t)
        contracts = coins / 0.01 if perp.linear else oi_contracts_inverse(perp, t)
        rows.append([str(t), num(contracts), num(coins), num(coins * perp.mark)])
    return 200, {"code": "0", "msg": "", "data": rows}


def bybit_mark_at(perp: Perp, ts_ms: int) -> float:
    """A bybit perpetual's mark at the 5-minute candle opening ``ts_ms``: its mark with a 6-hour wave."""
    return round(perp.mark * (1 + 0.003 * math.sin(ts_ms / 21_600_000 * 2 * math.pi)), 2)


def _bybit_perp(state: VenueState, q: Mapping[str, str]) -> Perp | None:
    return next(
        (
            p
            for p in listed_perps("bybit", state)
            if bybit_symbol(p) == q.get("symbol") and q.get("category") == ("linear" if p.linear else "inverse")
        ),
        None,
    )


def _bybit_window(q: Mapping[str, str], start: str, end: str, now_ms: int, limit_max: int) -> list[int]:
    """The newest ``limit`` 5-minute steps of [start, end], newest first, as bybit answers."""
    times = oi_times(_int(q, start, 0), _int(q, end, now_ms), now_ms)
    return list(reversed(times[-min(limit_max, _int(q, "limit", 50)) :]))


def _bybit_oi_history(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``/v5/market/open-interest`` (``category, symbol, intervalTime, startTime, endTime, limit`` <= 200): the
    newest ``limit`` rows of the window, newest first; linear in coins, inverse in USD (contracts of 1 USD)::

        {"retCode":0,"retMsg":"OK","result":{"symbol":"BTCUSDT","category":"linear","list":[
         {"openInterest":"54656.193","timestamp":"1704067200000"}],"nextPageCursor":""},"retExtInfo":{},"time":..}
    """
    path = "/v5/market/open-interest"
    if (stop := _gate(state, path, q)) is not None:
        return stop
    perp = _bybit_perp(state, q)
    if perp is None or q.get("intervalTime") != "5min":
        return 200, {"retCode": 10001, "retMsg": "params error", "result": {}, "retExtInfo": {}, "time": now_ms}
    rows = [
        {
            "openInterest": num(oi_at(perp, t) if perp.linear else round(oi_at(perp, t) * bybit_mark_at(perp, t))),
            "timestamp": str(t),
        }
        for t in _bybit_window(q, "startTime", "endTime", now_ms, 200)
    ]
    return 200, {
        "retCode": 0,
        "retMsg": "OK",
        "result": {"symbol": q.get("symbol"), "category": q.get("category"), "list": rows, "nextPageCursor": ""},
        "retExtInfo": {},
        "time": now_ms,
    }


def _bybit_mark_klines(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``/v5/market/mark-price-kline`` (``category, symbol, interval, start, end, limit`` <= 1000): newest first,
    ``[start, open, high, low, close]`` strings::

        {"retCode":0,"retMsg":"OK","result":{"symbol":"BTCUSDT","category":"linear","list":[
         ["1670608800000","17164.16","17164.16","17121.5","17131.64"]]},"retExtInfo":{},"time":..}
    """
    path = "/v5/market/mark-price-kline"
    if (stop := _gate(state, path, q)) is not None:
        return stop
    perp = _bybit_perp(state, q)
    if perp is None or q.get("interval") != "5":
        return 200, {"retCode": 10001, "retMsg": "params error", "result": {}, "retExtInfo": {}, "time": now_ms}
    rows = [[str(t)] + [num(bybit_mark_at(perp, t))] * 4 for t in _bybit_window(q, "start", "end", now_ms, 1000)]
    return 200, {
        "retCode": 0,
        "retMsg": "OK",
        "result": {"symbol": q.get("symbol"), "category": q.get("category"), "list": rows},
        "retExtInfo": {},
        "time": now_ms,
    }


def register(routes: dict[str, dict[str, Builder]] = ROUTES) -> None:
    """Add the history routes to the double's route table."""
    routes["binanceusdm"]["/fapi/v1/fundingRate"] = _binance_funding_rate("binanceusdm", "/fapi/v1/fundingRate")
    routes["binancecoinm"]["/dapi/v1/fundingRate"] = _binance_funding_rate("binancecoinm", "/dapi/v1/fundingRate")
    routes["bybit"]["/v5/market/funding/history"] = _bybit_funding_history
    routes["deribit"]["/api/v2/public/get_funding_rate_history"] = _deribit_funding_history
    routes["okx"]["/api/v5/public/funding-rate-history"] = _okx_funding_history
    routes["okx"]["/api/v5/rubik/stat/contracts/open-interest-history"] = _okx_oi_history
    routes["bybit"]["/v5/market/open-interest"] = _bybit_oi_history
    routes["bybit"]["/v5/market/mark-price-kline"] = _bybit_mark_klines
    for venue, prefix in (("binanceusdm", "/fapi/v1"), ("binancecoinm", "/dapi/v1")):
        routes[venue]["/futures/data/openInterestHist"] = _binance_oi_history(venue)
        for price, name in (("mark", "markPriceKlines"), ("index", "indexPriceKlines")):
            routes[venue][f"{prefix}/{name}"] = _binance_klines(venue, f"{prefix}/{name}", price)


def answered(state: VenueState) -> list[tuple[str, dict[str, Any]]]:
    return history_of(state).served
