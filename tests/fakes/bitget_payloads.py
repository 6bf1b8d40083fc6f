"""Bitget mix (futures) answers for :mod:`tests.fakes.exchanges`, in the venue's v2 envelope.

``/api/v2/mix/market/contracts?productType=`` lists contracts (``symbolType`` perpetual or delivery,
``symbolStatus`` normal / off / listed, ``fundInterval`` hours); ``/api/v2/mix/market/tickers?productType=``
carries ``fundingRate`` (per interval), ``markPrice``, ``indexPrice`` and ``holdingAmount`` (open interest
in coins, on coin-margined contracts too); ``/api/v2/mix/market/current-fund-rate?productType=`` the
interval in force (``fundingRateInterval``, hours) and ``nextUpdate`` (ms). USDT-FUTURES are linear,
COIN-FUTURES inverse (``BTCUSD``, quarterlies ``BTCUSDH26``); USDC-FUTURES and the demo S* product types
answer an empty list here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tests.fakes.exchange_payloads import _MONTH_CODES, Builder, Reply, expiry_ms, num

if TYPE_CHECKING:
    from tests.fakes.exchanges import Future, Perp, VenueState

_STATUS = {"trading": "normal", "settling": "off", "pending": "listed"}


def bitget_symbol(x: Perp | Future) -> str:
    quote = "USDT" if x.linear else "USD"
    expiry = getattr(x, "expiry", None)
    if expiry is None:
        return f"{x.asset}{quote}"
    return f"{x.asset}{quote}{_MONTH_CODES[expiry.month - 1]}{expiry.year % 100:02d}"


def _items(state: VenueState, product: str) -> list[Perp | Future]:
    if product == "USDT-FUTURES":
        return [p for p in state.perps if p.linear]
    if product == "COIN-FUTURES":
        return [*(p for p in state.perps if not p.linear), *(f for f in state.futures if not f.linear)]
    return []


def _envelope(data: Any, now_ms: int) -> Reply:
    return 200, {"code": "00000", "msg": "success", "requestTime": now_ms, "data": data}


def _contracts(state: VenueState, q: Mapping[str, Any], now_ms: int) -> Reply:
    rows = []
    for x in _items(state, str(q.get("productType", ""))):
        future = hasattr(x, "expiry")
        margin = "USDT" if x.linear else x.asset
        rows.append(
            {
                "symbol": bitget_symbol(x),
                "baseCoin": x.asset,
                "quoteCoin": "USDT" if x.linear else "USD",
                "buyLimitPriceRatio": "0.01",
                "sellLimitPriceRatio": "0.01",
                "feeRateUpRatio": "0.005",
                "makerFeeRate": "0.0002",
                "takerFeeRate": "0.0006",
                "openCostUpRatio": "0.01",
                "supportMarginCoins": [margin],
                "minTradeNum": "0.001",
                "priceEndStep": "1",
                "volumePlace": "3",
                "pricePlace": "1",
                "sizeMultiplier": "0.001",
                "symbolType": "delivery" if future else "perpetual",
                "minTradeUSDT": "5",
                "maxSymbolOrderNum": "200",
                "maxProductOrderNum": "400",
                "maxPositionNum": "150",
                "symbolStatus": _STATUS[x.status],
                "offTime": "-1",
                "limitOpenTime": "-1",
                "deliveryTime": str(expiry_ms(x)) if future else "",  # type: ignore[arg-type]  # a Future here
                "deliveryStartTime": "",
                "deliveryPeriod": "",
                "launchTime": "",
                "fundInterval": "" if future else str(getattr(x, "interval_h", 8)),
                "minLever": "1",
                "maxLever": "125",
                "posLimit": "0.05",
                "maintainTime": "",
            }
        )
    return _envelope(rows, now_ms)


def _tickers(state: VenueState, q: Mapping[str, Any], now_ms: int) -> Reply:
    rows = []
    for x in _items(state, str(q.get("productType", ""))):
        future = hasattr(x, "expiry")
        last = getattr(x, "last", None) or x.mark
        rows.append(
            {
                "symbol": bitget_symbol(x),
                "lastPr": num(last),
                "askPr": num(last),
                "bidPr": num(last),
                "bidSz": "1.5",
                "askSz": "2.1",
                "high24h": num(last),
                "low24h": num(last),
                "ts": str(now_ms),
                "change24h": "0",
                "baseVolume": "100",
                "quoteVolume": "1000000",
                "usdtVolume": "1000000",
                "openUtc": num(last),
                "changeUtc24h": "0",
                "indexPrice": num(x.index),
                "fundingRate": "0" if future else num(x.funding_rate),  # type: ignore[union-attr]
                "holdingAmount": num(x.open_interest_base),
                "deliveryStartTime": None,
                "deliveryTime": str(expiry_ms(x)) if future else None,  # type: ignore[arg-type]
                "deliveryStatus": "delivery_normal" if future else "",
                "open24h": num(last),
                "markPrice": num(x.mark),
            }
        )
    return _envelope(rows, now_ms)


def _current_fund_rate(state: VenueState, q: Mapping[str, Any], now_ms: int) -> Reply:
    """The interval in force now (hours) and the next settlement, per perpetual of the product type."""
    rows = [
        {
            "symbol": bitget_symbol(x),
            "fundingRate": num(x.funding_rate),  # type: ignore[union-attr]
            "fundingRateInterval": str(x.interval_h),
            "nextUpdate": str(x.next_funding_ms),  # type: ignore[union-attr]
            "minFundingRate": "-0.003",
            "maxFundingRate": "0.003",
        }
        for x in _items(state, str(q.get("productType", "")))
        if not hasattr(x, "expiry")
    ]
    return _envelope(rows, now_ms)


BITGET_ROUTES: dict[str, Builder] = {
    "/api/v2/mix/market/contracts": _contracts,
    "/api/v2/mix/market/tickers": _tickers,
    "/api/v2/mix/market/current-fund-rate": _current_fund_rate,
}
