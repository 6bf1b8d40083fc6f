"""REST payload builders for :mod:`tests.fakes.exchanges`, one group per venue.

Every builder takes ``(state, query, now_ms)`` and returns ``(http_status, json_body)``; the body is
wrapped in the venue's real envelope and every value comes from the :class:`VenueState`, so a test
can move a number in the state and see ccxt report it. ``ROUTES[venue][path]`` maps the path below
the venue prefix (e.g. ``/fapi/v1/premiumIndex``) to its builder.

Unit conventions (what the venues really report):

* binanceusdm ``openInterest``: base coin.  binancecoinm ``openInterest``: contracts (100 USD BTC, 10 USD others).
* okx ``oi``: contracts (linear ctVal in coin, inverse ctVal in USD), ``oiCcy``: coin, ``oiUsd``: USD.
* bybit ``openInterest``: linear = coin, inverse = USD (1 USD contracts); ``openInterestValue``:
  linear = USD, inverse = coin.
* deribit ``open_interest``: inverse = USD, linear (USDC) = coin.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tests.fakes import deribit_options

if TYPE_CHECKING:
    from tests.fakes.exchanges import Future, Perp, VenueState

Reply = tuple[int, Any]
Builder = Callable[["VenueState", Mapping[str, str], int], Reply]

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTH_CODES = "FGHJKMNQUVXZ"  # CME-style month letters used by bybit inverse futures (H=Mar ... Z=Dec)
_PERPETUAL_DELIVERY_MS = 4133404800000  # binance "deliveryDate" of perpetuals (2100-12-25)
_DERIBIT_PERPETUAL_EXPIRY_MS = 32503708800000  # deribit "expiration_timestamp" of perpetuals (3000-01-01)
_TICK = {"BTC": "0.1", "ETH": "0.01", "SOL": "0.001"}
_LISTED_MS = 1569398400000


# ----------------------------------------------------------------------------------------- helpers


def num(x: float) -> str:
    """Plain decimal string as the venues send it ("0.0001", never "1e-04")."""
    s = format(Decimal(repr(float(x))), "f")
    return s[:-2] if s.endswith(".0") else s


def expiry_ms(f: Future) -> int:
    """Futures settle at 08:00 UTC on their expiry date on all five venues."""
    moment = dt.datetime.combine(f.expiry, dt.time(8, 0), tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def tick(asset: str) -> str:
    return _TICK.get(asset, "0.0001")


def inverse_contract_usd(asset: str) -> int:
    """USD face value of one inverse contract (binancecoinm, okx -USD-, deribit inverse use 100/10)."""
    return 100 if asset == "BTC" else 10


def listed_perps(venue: str, state: VenueState) -> list[Perp]:
    """binanceusdm is linear-only, binancecoinm inverse-only; the others list both kinds."""
    if venue == "binanceusdm":
        return [p for p in state.perps if p.linear]
    if venue == "binancecoinm":
        return [p for p in state.perps if not p.linear]
    return list(state.perps)


def listed_futures(venue: str, state: VenueState) -> list[Future]:
    """binanceusdm lists linear (USDT) futures only; binancecoinm and deribit inverse only."""
    if venue == "binanceusdm":
        return [f for f in state.futures if f.linear]
    if venue in ("binancecoinm", "deribit"):
        return [f for f in state.futures if not f.linear]
    return list(state.futures)


def _oi_contracts_inverse(oi_base: float, mark: float, face_usd: float) -> int:
    return round(oi_base * mark / face_usd)


def _quarter_rank(futures: list[Future], f: Future) -> int:
    """0 for the nearest expiry of the same asset and margin kind, 1 for the next, ..."""
    same = sorted(g.expiry for g in futures if g.asset == f.asset and g.linear == f.linear)
    return same.index(f.expiry)


# ----------------------------------------------------------------------------------------- binance


_STATUS = {  # the double's status words -> each venue's own
    "binance": {"trading": "TRADING", "settling": "SETTLING", "pending": "PENDING_TRADING"},
    "okx": {"trading": "live", "settling": "suspend", "pending": "preopen"},
    "bybit": {"trading": "Trading", "settling": "Settling", "pending": "PreLaunch"},
}


def binance_symbol(x: Perp | Future) -> str:
    """BTCUSDT / BTCUSDT_261225 (USDⓈ-M), BTCUSD_PERP / BTCUSD_261225 (COIN-M), ETHBTC (coin-quoted)."""
    if x.quote:
        return f"{x.asset}{x.quote}"
    quote = "USDT" if x.linear else "USD"
    if hasattr(x, "expiry"):
        return f"{x.asset}{quote}_{x.expiry:%y%m%d}"
    return f"{x.asset}{quote}" if x.linear else f"{x.asset}USD_PERP"


def _binance_filters(asset: str, linear: bool) -> list[dict[str, Any]]:
    qty = ("0.001", "1000") if linear else ("1", "1000000")
    return [
        {"filterType": "PRICE_FILTER", "minPrice": tick(asset), "maxPrice": "4529764", "tickSize": tick(asset)},
        {"filterType": "LOT_SIZE", "minQty": qty[0], "maxQty": qty[1], "stepSize": qty[0]},
        {"filterType": "MARKET_LOT_SIZE", "minQty": qty[0], "maxQty": qty[1], "stepSize": qty[0]},
        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
        {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"},
    ] + ([{"filterType": "MIN_NOTIONAL", "notional": "100"}] if linear else [])


def _binance_exchange_info(venue: str, state: VenueState, now_ms: int) -> Reply:
    """``GET /fapi/v1/exchangeInfo`` | ``/dapi/v1/exchangeInfo``::

    {"timezone":"UTC","serverTime":..,"rateLimits":[..],"exchangeFilters":[],"symbols":[
      {"symbol":"BTCUSDT","pair":"BTCUSDT","contractType":"PERPETUAL","deliveryDate":4133404800000,
       "status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT","marginAsset":"USDT","filters":[..],..},
      {"symbol":"BTCUSD_261225","contractType":"CURRENT_QUARTER","contractStatus":"TRADING",
       "contractSize":100,"marginAsset":"BTC",..}]}

    USDⓈ-M uses ``status``, COIN-M ``contractStatus`` plus ``contractSize`` (USD per contract).
    """
    linear = venue == "binanceusdm"
    futures = listed_futures(venue, state)
    rows: list[tuple[Perp | Future, str, int]] = [
        (p, "PERPETUAL", _PERPETUAL_DELIVERY_MS) for p in listed_perps(venue, state)
    ]
    rows += [(f, ("CURRENT_QUARTER", "NEXT_QUARTER")[min(_quarter_rank(futures, f), 1)], expiry_ms(f)) for f in futures]
    symbols = []
    for x, contract_type, delivery in rows:
        sym = binance_symbol(x)
        entry: dict[str, Any] = {
            "symbol": sym,
            "pair": sym.split("_")[0],
            "contractType": contract_type,
            "deliveryDate": delivery,
            "onboardDate": _LISTED_MS,
            "baseAsset": x.asset,
            "quoteAsset": x.quote or ("USDT" if linear else "USD"),
            "marginAsset": x.quote or ("USDT" if linear else x.asset),
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "pricePrecision": max(len(tick(x.asset).split(".")[1]), 1),
            "quantityPrecision": 3 if linear else 0,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": _binance_filters(x.asset, linear),
            "orderTypes": [
                "LIMIT",
                "MARKET",
                "STOP",
                "STOP_MARKET",
                "TAKE_PROFIT",
                "TAKE_PROFIT_MARKET",
                "TRAILING_STOP_MARKET",
            ],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        }
        if linear:
            entry |= {"status": _STATUS["binance"][x.status], "settlePlan": 0, "permissionSet": ["GRID", "COPY"]}
        else:
            entry |= {
                "contractStatus": _STATUS["binance"][x.status],
                "contractSize": inverse_contract_usd(x.asset),
                "equalQtyPrecision": 4,
            }
        symbols.append(entry)
    body: dict[str, Any] = {
        "timezone": "UTC",
        "serverTime": now_ms,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        ],
        "exchangeFilters": [],
        "symbols": symbols,
    }
    if linear:
        body |= {
            "futuresType": "U_MARGINED",
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        }
    return 200, body


def _binance_premium_index(venue: str, state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``GET /fapi/v1/premiumIndex`` | ``/dapi/v1/premiumIndex`` (perps and dated futures)::

    [{"symbol":"BTCUSDT","markPrice":"45802.81129892","indexPrice":"45745.47701915",
      "estimatedSettlePrice":"45133.91753671","lastFundingRate":"0.00063521","interestRate":"0.00010000",
      "nextFundingTime":1621267200000,"time":1621252344001}, ...]

    Dated futures carry ``"lastFundingRate":""``, ``"interestRate":""`` and ``"nextFundingTime":0``;
    COIN-M rows add ``"pair"``. USDⓈ-M with ``symbol=`` answers one object, COIN-M always a list.
    """
    rows: list[dict[str, Any]] = []
    for p in listed_perps(venue, state):
        rows.append(
            {
                "symbol": binance_symbol(p),
                "markPrice": f"{p.mark:.8f}",
                "indexPrice": f"{p.index:.8f}",
                "estimatedSettlePrice": f"{p.index:.8f}",
                "lastFundingRate": f"{p.funding_rate:.8f}",
                "interestRate": "0.00010000",
                "nextFundingTime": p.next_funding_ms,
                "time": now_ms,
            }
        )
    for f in listed_futures(venue, state):
        rows.append(
            {
                "symbol": binance_symbol(f),
                "markPrice": f"{f.mark:.8f}",
                "indexPrice": f"{f.index:.8f}",
                "estimatedSettlePrice": f"{f.index:.8f}",
                "lastFundingRate": "",
                "interestRate": "",
                "nextFundingTime": 0,
                "time": now_ms,
            }
        )
    if venue == "binancecoinm":
        for r in rows:
            r["pair"] = r["symbol"].split("_")[0]
    wanted = q.get("symbol")
    if wanted is None:
        return 200, rows
    rows = [r for r in rows if r["symbol"] == wanted]
    if not rows:
        return 400, {"code": -1121, "msg": "Invalid symbol."}
    return 200, rows if venue == "binancecoinm" else rows[0]


def _binance_funding_info(venue: str, state: VenueState) -> Reply:
    """``GET /fapi/v1/fundingInfo`` | ``/dapi/v1/fundingInfo``: only symbols with adjusted cap/floor or a
    non-default interval, i.e. here every perp whose interval is not 8h::

    [{"symbol":"BLZUSDT","adjustedFundingRateCap":"0.03000000","adjustedFundingRateFloor":"-0.03000000",
      "fundingIntervalHours":4,"disclaimer":false}]
    """
    return 200, [
        {
            "symbol": binance_symbol(p),
            "adjustedFundingRateCap": "0.02000000",
            "adjustedFundingRateFloor": "-0.02000000",
            "fundingIntervalHours": p.interval_h,
            "disclaimer": False,
        }
        for p in listed_perps(venue, state)
        if p.interval_h != 8
    ]


def _binance_open_interest(venue: str, state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``GET /fapi/v1/openInterest?symbol=BTCUSDT`` -> ``{"openInterest":"10659.509","symbol":"BTCUSDT",
    "time":1589437530011}`` (coin); ``/dapi/v1/openInterest?symbol=BTCUSD_PERP`` -> ``{"symbol":..,
    "pair":"BTCUSD","openInterest":"26542436","contractType":"PERPETUAL","time":..}`` (contracts)."""
    wanted = q.get("symbol")
    if not wanted:
        return 400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}
    items: list[Perp | Future] = [*listed_perps(venue, state), *listed_futures(venue, state)]
    for x in items:
        if binance_symbol(x) != wanted:
            continue
        if venue == "binanceusdm":
            return 200, {"openInterest": num(x.open_interest_base), "symbol": wanted, "time": now_ms}
        contracts = _oi_contracts_inverse(x.open_interest_base, x.mark, inverse_contract_usd(x.asset))
        kind = "PERPETUAL" if wanted.endswith("_PERP") else "CURRENT_QUARTER"
        return 200, {
            "symbol": wanted,
            "pair": wanted.split("_")[0],
            "openInterest": str(contracts),
            "contractType": kind,
            "time": now_ms,
        }
    return 400, {"code": -1121, "msg": "Invalid symbol."}


def _binance_routes(venue: str) -> dict[str, Builder]:
    prefix = "/fapi/v1" if venue == "binanceusdm" else "/dapi/v1"
    return {
        f"{prefix}/exchangeInfo": lambda s, q, now: _binance_exchange_info(venue, s, now),
        f"{prefix}/premiumIndex": lambda s, q, now: _binance_premium_index(venue, s, q, now),
        f"{prefix}/fundingInfo": lambda s, q, now: _binance_funding_info(venue, s),
        f"{prefix}/openInterest": lambda s, q, now: _binance_open_interest(venue, s, q, now),
        f"{prefix}/time": lambda s, q, now: (200, {"serverTime": now}),
        f"{prefix}/ping": lambda s, q, now: (200, {}),
    }


# ----------------------------------------------------------------------------------------- okx


def okx_inst_id(x: Perp | Future) -> str:
    """BTC-USDT-SWAP / BTC-USD-SWAP, BTC-USDT-261225 / BTC-USD-261225."""
    quote = "USDT" if x.linear else "USD"
    if hasattr(x, "expiry"):
        return f"{x.asset}-{quote}-{x.expiry:%y%m%d}"
    return f"{x.asset}-{quote}-SWAP"


def okx_ct_val(x: Perp | Future) -> float:
    """Linear: coin per contract (BTC 0.01, ETH 0.1, others 1); inverse: USD per contract (BTC 100, others 10)."""
    if x.linear:
        return {"BTC": 0.01, "ETH": 0.1}.get(x.asset, 1.0)
    return float(inverse_contract_usd(x.asset))


def _okx(data: list[dict[str, Any]]) -> Reply:
    return 200, {"code": "0", "msg": "", "data": data}


def _okx_items(state: VenueState, inst_type: str | None) -> list[tuple[str, Perp | Future]]:
    items: list[tuple[str, Perp | Future]] = []
    if inst_type in (None, "SWAP"):
        items += [("SWAP", p) for p in state.perps]
    if inst_type in (None, "FUTURES"):
        items += [("FUTURES", f) for f in state.futures]
    return items


def _okx_instruments(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``GET /api/v5/public/instruments?instType=SWAP|FUTURES``::

    {"code":"0","msg":"","data":[{"instType":"SWAP","instId":"BTC-USDT-SWAP","uly":"BTC-USDT",
      "instFamily":"BTC-USDT","settleCcy":"USDT","ctVal":"0.01","ctMult":"1","ctValCcy":"BTC",
      "ctType":"linear","expTime":"","alias":"","state":"live","tickSz":"0.1","lotSz":"0.01",..}]}

    Inverse contracts have ``settleCcy`` = coin, ``ctValCcy`` "USD"; futures ``expTime`` ms and
    ``alias`` quarter / next_quarter.
    """
    inst_type = q.get("instType")
    if inst_type not in ("SWAP", "FUTURES"):
        return _okx([])  # SPOT / MARGIN / OPTION: nothing listed by the double
    data = []
    for kind, x in _okx_items(state, inst_type):
        quote = "USDT" if x.linear else "USD"
        is_future = kind == "FUTURES"
        data.append(
            {
                "alias": ("quarter", "next_quarter")[min(_quarter_rank(state.futures, x), 1)] if is_future else "",
                "auctionEndTime": "",
                "baseCcy": "",
                "category": "1",
                "ctMult": "1",
                "ctType": "linear" if x.linear else "inverse",
                "ctVal": num(okx_ct_val(x)),
                "ctValCcy": x.asset if x.linear else "USD",
                "expTime": str(expiry_ms(x)) if is_future else "",
                "instFamily": f"{x.asset}-{quote}",
                "instId": okx_inst_id(x),
                "instType": kind,
                "lever": "100" if x.asset == "BTC" else "50",
                "listTime": str(_LISTED_MS),
                "lotSz": "0.01" if x.linear else "1",
                "maxIcebergSz": "100000000",
                "maxLmtAmt": "20000000",
                "maxLmtSz": "100000000",
                "maxMktAmt": "",
                "maxMktSz": "12000",
                "maxStopSz": "12000",
                "maxTriggerSz": "100000000",
                "maxTwapSz": "100000000",
                "minSz": "0.01" if x.linear else "1",
                "optType": "",
                "quoteCcy": "",
                "ruleType": "normal",
                "settleCcy": quote if x.linear else x.asset,
                "state": _STATUS["okx"][x.status],
                "stk": "",
                "tickSz": tick(x.asset),
                "uly": f"{x.asset}-{quote}",
            }
        )
    if "instId" in q:
        data = [d for d in data if d["instId"] == q["instId"]]
    return _okx(data)


def _okx_funding_rate(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``GET /api/v5/public/funding-rate?instId=ANY`` (all swaps) or ``instId=BTC-USDT-SWAP``::

    {"code":"0","msg":"","data":[{"instType":"SWAP","instId":"BTC-USDT-SWAP","fundingRate":"0.0001",
      "fundingTime":"1703088000000","nextFundingRate":"","nextFundingTime":"1703116800000",
      "method":"current_period","formulaType":"withRate","interestRate":"0.0001",
      "maxFundingRate":"0.00375","minFundingRate":"-0.00375","premium":"..","settFundingRate":"..",
      "settState":"settled","impactValue":"","ts":".."}]}

    ``fundingTime`` is the upcoming settlement, ``nextFundingTime`` the one after (the gap is the
    interval); ``nextFundingRate`` is filled ("next_period" method) only when a predicted rate is set.
    """
    inst_id = q.get("instId")
    if not inst_id:
        return 200, {"code": "51000", "msg": "Parameter instId error", "data": []}
    data = []
    for p in state.perps:
        if inst_id not in ("ANY", okx_inst_id(p)):
            continue
        data.append(
            {
                "formulaType": "withRate",
                "fundingRate": num(p.funding_rate),
                "fundingTime": str(p.next_funding_ms),
                "impactValue": "",
                "instId": okx_inst_id(p),
                "instType": "SWAP",
                "interestRate": "0.0001",
                "maxFundingRate": "0.00375",
                "method": "current_period" if p.predicted_rate is None else "next_period",
                "minFundingRate": "-0.00375",
                "nextFundingRate": "" if p.predicted_rate is None else num(p.predicted_rate),
                "nextFundingTime": str(p.next_funding_ms + p.interval_h * 3_600_000),
                "premium": num(round((p.mark - p.index) / p.index, 10)),
                "settFundingRate": num(p.funding_rate),
                "settState": "settled",
                "ts": str(now_ms),
            }
        )
    if inst_id != "ANY" and not data:
        return 200, {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
    return _okx(data)


def _okx_mark_price(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``GET /api/v5/public/mark-price?instType=SWAP|FUTURES``::

    {"code":"0","msg":"","data":[{"instType":"SWAP","instId":"BTC-USDT-SWAP","markPx":"200","ts":".."}]}
    """
    data = [
        {"instType": kind, "instId": okx_inst_id(x), "markPx": num(x.mark), "ts": str(now_ms)}
        for kind, x in _okx_items(state, q.get("instType", "SWAP"))
    ]
    if "instId" in q:
        data = [d for d in data if d["instId"] == q["instId"]]
    return _okx(data)


def _okx_index_tickers(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``GET /api/v5/market/index-tickers?quoteCcy=USD|USDT|USDC`` (or ``instId=BTC-USDT``)::

    {"code":"0","msg":"","data":[{"instId":"BTC-USDT","idxPx":"43350","high24h":"43649.7",
      "sodUtc0":"43444.1","open24h":"43640.8","low24h":"43261.9","sodUtc8":"43328.7","ts":".."}]}

    The USDT index of an asset is taken from its linear contracts, the USD index from its inverse
    ones (perps before futures), falling back to any contract of the asset.
    """
    quote = q.get("quoteCcy")
    inst_id = q.get("instId")
    if quote is None and inst_id is None:
        return 200, {"code": "50014", "msg": "Parameter quoteCcy can not be empty", "data": []}
    index: dict[str, float] = {}
    for x in [*state.perps, *state.futures]:
        index.setdefault(f"{x.asset}-{'USDT' if x.linear else 'USD'}", x.index)
    for x in [*state.perps, *state.futures]:
        for qc in ("USD", "USDT"):
            index.setdefault(f"{x.asset}-{qc}", x.index)
    data = []
    for iid, px in index.items():
        if (quote is not None and not iid.endswith(f"-{quote}")) or (inst_id is not None and iid != inst_id):
            continue
        data.append(
            {
                "instId": iid,
                "idxPx": num(px),
                "high24h": num(px),
                "sodUtc0": num(px),
                "open24h": num(px),
                "low24h": num(px),
                "sodUtc8": num(px),
                "ts": str(now_ms),
            }
        )
    return _okx(data)


def _okx_open_interest(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``GET /api/v5/public/open-interest?instType=SWAP&uly=BTC-USDT&instId=BTC-USDT-SWAP``::

    {"code":"0","msg":"","data":[{"instType":"SWAP","instId":"BTC-USDT-SWAP","oi":"2125419",
      "oiCcy":"21254.19","oiUsd":"..","ts":".."}]}

    ``oi`` in contracts, ``oiCcy`` in coin, ``oiUsd`` in USD.
    """
    data = []
    for kind, x in _okx_items(state, q.get("instType")):
        if "instId" in q and okx_inst_id(x) != q["instId"]:
            continue
        if "uly" in q and f"{x.asset}-{'USDT' if x.linear else 'USD'}" != q["uly"]:
            continue
        usd = x.open_interest_base * x.mark
        contracts = x.open_interest_base / okx_ct_val(x) if x.linear else usd / okx_ct_val(x)
        data.append(
            {
                "instType": kind,
                "instId": okx_inst_id(x),
                "oi": num(round(contracts, 8)),
                "oiCcy": num(x.open_interest_base),
                "oiUsd": num(round(usd, 8)),
                "ts": str(now_ms),
            }
        )
    return _okx(data)


OKX_ROUTES: dict[str, Builder] = {
    "/api/v5/public/instruments": _okx_instruments,
    "/api/v5/public/funding-rate": _okx_funding_rate,
    "/api/v5/public/mark-price": _okx_mark_price,
    "/api/v5/market/index-tickers": _okx_index_tickers,
    "/api/v5/public/open-interest": _okx_open_interest,
    "/api/v5/public/time": lambda s, q, now: _okx([{"ts": str(now)}]),
}


# ----------------------------------------------------------------------------------------- bybit


def bybit_symbol(x: Perp | Future) -> str:
    """BTCUSDT / BTCUSD perps, BTC-26DEC26 (USDC linear future), BTCUSDZ26 (inverse future)."""
    if not hasattr(x, "expiry"):
        return f"{x.asset}USDT" if x.linear else f"{x.asset}USD"
    e = x.expiry
    if x.linear:
        return f"{x.asset}-{e.day:02d}{_MONTHS[e.month - 1]}{e:%y}"
    return f"{x.asset}USD{_MONTH_CODES[e.month - 1]}{e:%y}"


def _bybit(result: dict[str, Any], now_ms: int) -> Reply:
    return 200, {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now_ms}


def _bybit_items(state: VenueState, category: str | None) -> list[Perp | Future]:
    want_linear = category == "linear"
    return [x for x in [*state.perps, *state.futures] if x.linear == want_linear]


def _bybit_instrument(x: Perp | Future) -> dict[str, Any]:
    is_future = hasattr(x, "expiry")
    kind = ("Linear" if x.linear else "Inverse") + ("Futures" if is_future else "Perpetual")
    quote = ("USDC" if is_future else "USDT") if x.linear else "USD"
    lot = (
        {
            "maxOrderQty": "1190.000",
            "minOrderQty": "0.001",
            "qtyStep": "0.001",
            "postOnlyMaxOrderQty": "1190.000",
            "maxMktOrderQty": "500.000",
            "minNotionalValue": "5",
        }
        if x.linear
        else {
            "maxOrderQty": "1000000",
            "minOrderQty": "1",
            "qtyStep": "1",
            "postOnlyMaxOrderQty": "1000000",
            "maxMktOrderQty": "200000",
            "minNotionalValue": "",
        }
    )
    return {
        "symbol": bybit_symbol(x),
        "contractType": kind,
        "status": _STATUS["bybit"][x.status],
        "baseCoin": x.asset,
        "quoteCoin": quote,
        "settleCoin": quote if x.linear else x.asset,
        "launchTime": str(_LISTED_MS),
        "deliveryTime": str(expiry_ms(x)) if is_future else "0",
        "deliveryFeeRate": "0.0005" if is_future else "",
        "priceScale": str(len(tick(x.asset).split(".")[1])),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": tick(x.asset), "maxPrice": "1999999.80", "tickSize": tick(x.asset)},
        "lotSizeFilter": lot,
        "unifiedMarginTrade": True,
        "fundingInterval": 0 if is_future else x.interval_h * 60,
        "copyTrading": "both" if x.linear else "none",
        "upperFundingRate": "" if is_future else "0.005",
        "lowerFundingRate": "" if is_future else "-0.005",
        "isPreListing": False,
        "preListingInfo": None,
        "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
        "displayName": "",
    }


def _bybit_instruments(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``GET /v5/market/instruments-info?category=linear|inverse&limit=1000[&cursor=..][&status=PreLaunch]``::

    {"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[{"symbol":"BTCUSDT",
      "contractType":"LinearPerpetual","status":"Trading","baseCoin":"BTC","quoteCoin":"USDT",
      "settleCoin":"USDT","deliveryTime":"0","fundingInterval":480,"priceFilter":{"tickSize":"0.10",..},
      "lotSizeFilter":{"minOrderQty":"0.001","qtyStep":"0.001",..},..}],"nextPageCursor":""},
      "retExtInfo":{},"time":..}

    ``fundingInterval`` is in minutes. Pages hold ``min(limit, state.page_size)`` rows; the cursor is
    opaque to ccxt (here ``"page_<offset>"``) and ``""`` on the last page.
    """
    category = q.get("category")
    if category not in ("linear", "inverse", "spot", "option"):
        return 200, {
            "retCode": 10001,
            "retMsg": "params error: Category is invalid",
            "result": {},
            "retExtInfo": {},
            "time": now_ms,
        }
    wanted = q.get("status", "Trading")  # the venue lists only trading contracts unless asked for another status
    rows = [
        row
        for x in (_bybit_items(state, category) if category in ("linear", "inverse") else [])
        if (row := _bybit_instrument(x))["status"] == wanted
    ]
    page = max(1, min(int(q.get("limit", "500")), state.page_size))
    start = int(q.get("cursor", "page_0").rpartition("_")[2] or 0)
    chunk = rows[start : start + page]
    cursor = f"page_{start + page}" if start + page < len(rows) else ""
    return _bybit({"category": category, "list": chunk, "nextPageCursor": cursor}, now_ms)


def _bybit_tickers(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``GET /v5/market/tickers?category=linear|inverse[&symbol=..]``::

    {"retCode":0,"retMsg":"OK","result":{"category":"inverse","list":[{"symbol":"BTCUSD",
      "lastPrice":"16597.00","indexPrice":"16598.54","markPrice":"16596.00","openInterest":"373504107",
      "openInterestValue":"22505.67","fundingRate":"-0.001034","nextFundingTime":"1672387200000",
      "fundingIntervalHour":"8","deliveryTime":"0","predictedDeliveryPrice":"","basis":"",..}]},..}

    Futures carry ``deliveryTime`` (ms) and empty ``fundingRate``/``nextFundingTime`` "0". Bybit
    publishes no predicted rate: ``Perp.predicted_rate`` is ignored here.
    """
    category = q.get("category")
    if category not in ("linear", "inverse"):
        return _bybit({"category": category or "", "list": []}, now_ms)
    rows = []
    for x in _bybit_items(state, category):
        is_future = hasattr(x, "expiry")
        last = (x.last if x.last is not None else x.mark) if is_future else x.mark
        oi, oi_value = (
            (x.open_interest_base, x.open_interest_base * x.mark)
            if x.linear
            else (round(x.open_interest_base * x.mark), x.open_interest_base)
        )
        rows.append(
            {
                "symbol": bybit_symbol(x),
                "lastPrice": num(last),
                "indexPrice": num(x.index),
                "markPrice": num(x.mark),
                "prevPrice24h": num(last),
                "price24hPcnt": "0",
                "highPrice24h": num(last),
                "lowPrice24h": num(last),
                "prevPrice1h": num(last),
                "openInterest": num(oi),
                "openInterestValue": num(round(oi_value, 8)),
                "turnover24h": "0",
                "volume24h": "0",
                "fundingRate": "" if is_future else num(x.funding_rate),
                "nextFundingTime": "0" if is_future else str(x.next_funding_ms),
                "predictedDeliveryPrice": "",
                "basisRate": num(round((last - x.index) / x.index, 10)) if is_future else "",
                "deliveryFeeRate": "0.0005" if is_future else "",
                "deliveryTime": str(expiry_ms(x)) if is_future else "0",
                "ask1Size": "1",
                "bid1Price": num(last),
                "ask1Price": num(last),
                "bid1Size": "1",
                "basis": num(round(last - x.index, 8)) if is_future else "",
                "preOpenPrice": "",
                "preQty": "",
                "curPreListingPhase": "",
                "fundingIntervalHour": "" if is_future else str(x.interval_h),
                "fundingCap": "" if is_future else "0.005",
            }
        )
    if "symbol" in q:
        rows = [r for r in rows if r["symbol"] == q["symbol"]]
    return _bybit({"category": category, "list": rows}, now_ms)


BYBIT_ROUTES: dict[str, Builder] = {
    "/v5/market/instruments-info": _bybit_instruments,
    "/v5/market/tickers": _bybit_tickers,
    "/v5/market/time": lambda s, q, now: _bybit({"timeSecond": str(now // 1000), "timeNano": str(now * 10**6)}, now),
}


# ----------------------------------------------------------------------------------------- deribit


def deribit_name(x: Perp | Future) -> str:
    """BTC-PERPETUAL (inverse), BTC_USDC-PERPETUAL (linear), BTC-26DEC26 (inverse future)."""
    if hasattr(x, "expiry"):
        return f"{x.asset}-{x.expiry.day}{_MONTHS[x.expiry.month - 1]}{x.expiry:%y}"
    return f"{x.asset}-PERPETUAL" if not x.linear else f"{x.asset}_USDC-PERPETUAL"


def _deribit(result: Any, now_ms: int) -> Reply:
    us = now_ms * 1000
    return 200, {"jsonrpc": "2.0", "result": result, "usIn": us, "usOut": us + 150, "usDiff": 150, "testnet": False}


def _deribit_error(now_ms: int, param: str) -> Reply:
    us = now_ms * 1000
    return 400, {
        "jsonrpc": "2.0",
        "error": {"message": "Invalid params", "data": {"reason": "wrong format", "param": param}, "code": -32602},
        "usIn": us,
        "usOut": us + 100,
        "usDiff": 100,
        "testnet": False,
    }


def _deribit_items(state: VenueState) -> list[Perp | Future]:
    return [*listed_perps("deribit", state), *listed_futures("deribit", state)]


def _deribit_contract(x: Perp | Future) -> float:
    """Linear (USDC): coin per contract; inverse: USD per contract (BTC 10, ETH 1)."""
    if x.linear:
        return {"BTC": 0.001, "ETH": 0.01}.get(x.asset, 0.1)
    return 10.0 if x.asset == "BTC" else 1.0


def _deribit_settle(x: Perp | Future) -> str:
    return "USDC" if x.linear else x.asset


def _deribit_get_currencies(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``GET /api/v2/public/get_currencies``::

    {"jsonrpc":"2.0","result":[{"currency":"BTC","currency_long":"Bitcoin","coin_type":"BITCOIN",
      "fee_precision":4,"min_confirmations":1,"min_withdrawal_fee":0.0001,"withdrawal_fee":0.0001,
      "withdrawal_priorities":[]}, ...],"usIn":..,"usOut":..,"usDiff":..,"testnet":false}
    """
    names = {
        "BTC": ("Bitcoin", "BITCOIN"),
        "ETH": ("Ethereum", "ETHER"),
        "USDC": ("USD Coin", "USDC"),
        "USDT": ("Tether", "USDT"),
    }
    return _deribit(
        [
            {
                "currency": c,
                "currency_long": long,
                "coin_type": coin,
                "fee_precision": 4,
                "min_confirmations": 1,
                "min_withdrawal_fee": 0.0001,
                "withdrawal_fee": 0.0001,
                "withdrawal_priorities": [],
                "in_cross_collateral_pool": True,
                "apr": 0.0,
            }
            for c, (long, coin) in names.items()
        ],
        now_ms,
    )


def _deribit_get_instruments(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``GET /api/v2/public/get_instruments[?currency=BTC][&kind=future]`` (ccxt sends no currency)::

    {"jsonrpc":"2.0","result":[{"instrument_name":"BTC-PERPETUAL","kind":"future",
      "settlement_period":"perpetual","expiration_timestamp":32503708800000,"base_currency":"BTC",
      "counter_currency":"USD","quote_currency":"USD","settlement_currency":"BTC",
      "contract_size":10.0,"tick_size":0.5,"min_trade_amount":10.0,"is_active":true,
      "future_type":"reversed","instrument_type":"reversed",..}],..}

    Dated futures: ``settlement_period`` "month", ``expiration_timestamp`` ms. USDC linear perps use
    ``*_USDC-PERPETUAL`` with counter/settlement currency USDC.
    """
    currency = q.get("currency", "any")
    kind = q.get("kind")
    result = []
    for x in _deribit_items(state):
        if currency not in ("any", _deribit_settle(x)) or kind not in (None, "future"):
            continue
        is_future = hasattr(x, "expiry")
        counter = "USDC" if x.linear else "USD"
        result.append(
            {
                "instrument_name": deribit_name(x),
                "instrument_id": 100000 + len(result),
                "kind": "future",
                "settlement_period": "month" if is_future else "perpetual",
                "expiration_timestamp": expiry_ms(x) if is_future else _DERIBIT_PERPETUAL_EXPIRY_MS,
                "creation_timestamp": _LISTED_MS,
                "base_currency": x.asset,
                "counter_currency": counter,
                "quote_currency": counter,
                "settlement_currency": _deribit_settle(x),
                "price_index": f"{x.asset.lower()}_{counter.lower()}",
                "contract_size": _deribit_contract(x),
                "min_trade_amount": _deribit_contract(x),
                "tick_size": float(tick(x.asset)) if x.linear else (0.5 if x.asset == "BTC" else 0.05),
                "is_active": x.status == "trading",
                "rfq": False,
                "future_type": "linear" if x.linear else "reversed",
                "instrument_type": "linear" if x.linear else "reversed",
                "max_leverage": 50,
                "max_liquidation_commission": 0.0075,
                "maker_commission": 0.0,
                "taker_commission": 0.0005,
                "block_trade_commission": 0.00025,
                "block_trade_min_trade_amount": 200000,
                "block_trade_tick_size": 0.01,
            }
        )
    return _deribit(result, now_ms)


def _deribit_book_summary(state: VenueState, q: Mapping[str, str], now_ms: int) -> Reply:
    """``GET /api/v2/public/get_book_summary_by_currency?currency=BTC&kind=future``::

    {"jsonrpc":"2.0","result":[{"instrument_name":"BTC-PERPETUAL","base_currency":"BTC",
      "quote_currency":"USD","mark_price":..,"last":..,"estimated_delivery_price":..,"funding_8h":..,
      "current_funding":..,"open_interest":..,"bid_price":..,"ask_price":..,"mid_price":..,
      "volume":..,"volume_usd":..,"volume_notional":..,"high":..,"low":..,"price_change":..,
      "creation_timestamp":..}],..}

    ``estimated_delivery_price`` is the index. ``funding_8h`` = the perp's rate scaled to 8h,
    ``current_funding`` = its predicted rate when set, else the same value; dated futures have no
    funding fields. ``open_interest``: USD for inverse, coin for USDC linear.
    """
    currency = q.get("currency")
    if not currency:
        return _deribit_error(now_ms, "currency")
    kind = q.get("kind")
    result = []
    for x in _deribit_items(state):
        if _deribit_settle(x) != currency or kind not in (None, "future"):
            continue
        is_future = hasattr(x, "expiry")
        last = (x.last if x.last is not None else x.mark) if is_future else x.mark
        oi = x.open_interest_base if x.linear else round(x.open_interest_base * x.mark)
        row: dict[str, Any] = {
            "volume_usd": 0.0,
            "volume_notional": 0.0,
            "volume": 0.0,
            "quote_currency": "USDC" if x.linear else "USD",
            "price_change": 0.0,
            "open_interest": oi,
            "mid_price": last,
            "mark_price": x.mark,
            "low": last,
            "last": last,
            "instrument_name": deribit_name(x),
            "high": last,
            "estimated_delivery_price": x.index,
            "creation_timestamp": now_ms,
            "bid_price": last,
            "base_currency": x.asset,
            "ask_price": last,
        }
        if not is_future:
            rate_8h = x.funding_rate * 8 / x.interval_h
            row["funding_8h"] = rate_8h
            row["current_funding"] = x.predicted_rate if x.predicted_rate is not None else rate_8h
        result.append(row)
    return _deribit(result, now_ms)


DERIBIT_ROUTES: dict[str, Builder] = {
    "/api/v2/public/get_currencies": _deribit_get_currencies,
    "/api/v2/public/get_instruments": _deribit_get_instruments,
    "/api/v2/public/get_book_summary_by_currency": _deribit_book_summary,
    "/api/v2/public/get_time": lambda s, q, now: _deribit(now, now),
}
deribit_options.install(DERIBIT_ROUTES)  # option instruments and the option book summary


ROUTES: dict[str, dict[str, Builder]] = {
    "binanceusdm": _binance_routes("binanceusdm"),
    "binancecoinm": _binance_routes("binancecoinm"),
    "okx": OKX_ROUTES,
    "bybit": BYBIT_ROUTES,
    "deribit": DERIBIT_ROUTES,
}

GARBAGE: dict[str, Any] = {"unexpected": "shape", "items": [1, 2, 3]}
"""Body of the ``"garbage"`` fault: valid JSON, wrong shape for every venue."""
