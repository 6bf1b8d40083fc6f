"""KuCoin Futures answers for :mod:`tests.fakes.exchanges`, in the ``{"code": "200000", "data": ...}`` envelope.

* ``/api/v1/contracts/active``: the market list and ccxt's tickers (``markPrice``, ``indexPrice``); a
  perpetual has ``nextFundingRateTime`` (ms to go), a quarterly ``null`` there and an ``expireDate``.
  Bitcoin is ``XBT``: ``XBTUSDTM`` (linear, multiplier 0.001 BTC), ``XBTUSDM`` (inverse, multiplier -1 =
  1 USD), quarterlies ``XBTMH26``.
* ``/api/ua/v2/market/funding-rate``: ``nextFundingRate`` for the coming settlement, ``currentGranularity``
  (interval, ms), ``fundingTime``; funding-index rows (``.XBTUSDTMFPI8H``) come along, as on the venue.
* ``/api/ua/v1/market/open-interest``: ``openInterest`` in lots of ``multiplier``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tests.fakes.exchange_payloads import _MONTH_CODES, Builder, Reply, expiry_ms

if TYPE_CHECKING:
    from tests.fakes.exchanges import Future, Perp, VenueState

MULTIPLIER = {"BTC": 0.001, "ETH": 0.01, "SOL": 0.1}
_STATUS = {"trading": "Open", "settling": "BeingSettled", "pending": "Paused"}


def _code(asset: str) -> str:
    return "XBT" if asset == "BTC" else asset


def kucoin_symbol(x: Perp | Future) -> str:
    expiry = getattr(x, "expiry", None)
    if expiry is not None:
        return f"{_code(x.asset)}M{_MONTH_CODES[expiry.month - 1]}{expiry.year % 100:02d}"
    return f"{_code(x.asset)}USDTM" if x.linear else f"{_code(x.asset)}USDM"


def multiplier(x: Perp | Future) -> float:
    return MULTIPLIER.get(x.asset, 1.0) if x.linear else -1.0


def lots(x: Perp | Future) -> int:
    """Open interest in the venue's lots: coins / multiplier on linear contracts, USD on inverse ones."""
    if x.linear:
        return round(x.open_interest_base / MULTIPLIER.get(x.asset, 1.0))
    return round(x.open_interest_base * x.mark)


def _ok(data: Any) -> Reply:
    return 200, {"code": "200000", "data": data}


def _contracts(state: VenueState, q: Mapping[str, Any], now_ms: int) -> Reply:
    rows = []
    for x in [*state.perps, *state.futures]:
        future = hasattr(x, "expiry")
        quote = "USDT" if x.linear else "USD"
        rows.append(
            {
                "symbol": kucoin_symbol(x),
                "rootSymbol": quote,
                "type": "FFICSX" if future else "FFWCSX",
                "firstOpenDate": 1585555200000,
                "expireDate": expiry_ms(x) if future else None,  # type: ignore[arg-type]
                "settleDate": expiry_ms(x) if future else None,  # type: ignore[arg-type]
                "baseCurrency": _code(x.asset),
                "quoteCurrency": quote,
                "settleCurrency": "USDT" if x.linear else _code(x.asset),
                "maxOrderQty": 1000000,
                "maxPrice": 1000000.0,
                "lotSize": 1,
                "tickSize": 0.1,
                "indexPriceTickSize": 0.01,
                "multiplier": multiplier(x),
                "initialMargin": 0.008,
                "maintainMargin": 0.004,
                "maxRiskLimit": 100000,
                "minRiskLimit": 100000,
                "riskStep": 50000,
                "makerFeeRate": 0.0002,
                "takerFeeRate": 0.0006,
                "takerFixFee": 0.0,
                "makerFixFee": 0.0,
                "settlementFee": None,
                "isDeleverage": True,
                "isQuanto": False,
                "isInverse": not x.linear,
                "markMethod": "FairPrice",
                "fairMethod": None if future else "FundingRate",
                "status": _STATUS[x.status],
                "fundingFeeRate": None if future else x.funding_rate,  # type: ignore[union-attr]
                "predictedFundingFeeRate": None if future else x.funding_rate,  # type: ignore[union-attr]
                "openInterest": str(lots(x)),
                "turnoverOf24h": 1000000.0,
                "volumeOf24h": 10.0,
                "markPrice": x.mark,
                "indexPrice": x.index,
                "lastTradePrice": getattr(x, "last", None) or x.mark,
                "nextFundingRateTime": None if future else max(0, x.next_funding_ms - now_ms),  # type: ignore[union-attr]
                "maxLeverage": 100,
                "lowPrice": x.mark,
                "highPrice": x.mark,
                "priceChgPct": 0.0,
                "priceChg": 0.0,
            }
        )
    return _ok(rows)


def _funding(state: VenueState, q: Mapping[str, Any], now_ms: int) -> Reply:
    rows = []
    for p in state.perps:
        step = p.interval_h * 3_600_000
        rows.append(
            {
                "symbol": kucoin_symbol(p),
                "nextFundingRate": p.funding_rate,
                "fundingTime": p.next_funding_ms,
                "fundingRateCap": 0.003,
                "fundingRateFloor": -0.003,
                "currentGranularity": step,
                "newGranularity": step,
                "newGranularityStartTime": 1750147200000,
            }
        )
        rows.append(
            {
                "symbol": f".{kucoin_symbol(p)}FPI8H",
                "nextFundingRate": p.funding_rate,
                "fundingTime": p.next_funding_ms,
                "currentGranularity": step,
            }
        )
    return _ok(rows)


def _open_interest(state: VenueState, q: Mapping[str, Any], now_ms: int) -> Reply:
    return _ok(
        [
            {"symbol": kucoin_symbol(x), "openInterest": str(lots(x)), "ts": now_ms}
            for x in [*state.perps, *state.futures]
        ]
    )


KUCOIN_ROUTES: dict[str, Builder] = {
    "/api/v1/contracts/active": _contracts,
    "/api/ua/v2/market/funding-rate": _funding,
    "/api/ua/v1/market/open-interest": _open_interest,
}
