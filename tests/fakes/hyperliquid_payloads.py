"""Hyperliquid's /info answers for :mod:`tests.fakes.exchanges` (POST with a JSON ``type``).

``metaAndAssetCtxs`` is a two-element list: ``[{"universe": [...]}, [asset context, ...]]``, the i-th
context belonging to the i-th universe entry (see the venue's info-endpoint docs). Units: ``funding`` is
the rate per hour, ``openInterest`` in coins, ``oraclePx`` the index, ``markPx`` the mark. A delisted
coin stays in the universe with ``isDelisted: true`` (its context keeps answering).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tests.fakes.exchange_payloads import Builder, Reply, num

if TYPE_CHECKING:
    from tests.fakes.exchanges import VenueState

_SZ_DECIMALS = {"BTC": 5, "ETH": 4, "SOL": 2}


def _meta_and_ctxs(state: VenueState, q: Mapping[str, Any], now_ms: int) -> Reply:
    if q.get("type") != "metaAndAssetCtxs":
        return 422, {"error": f"Failed to deserialize the JSON body into the target type: {q.get('type')!r}"}
    universe: list[dict[str, Any]] = []
    ctxs: list[dict[str, Any]] = []
    for p in state.perps:
        entry: dict[str, Any] = {
            "szDecimals": _SZ_DECIMALS.get(p.asset, 1),
            "name": p.asset,
            "maxLeverage": 40,
            "marginTableId": 56,
        }
        if p.status != "trading":
            entry["isDelisted"] = True
        universe.append(entry)
        hourly = p.funding_rate / p.interval_h  # the double's rate is per its interval; hyperliquid's per hour
        ctxs.append(
            {
                "funding": num(hourly),
                "openInterest": num(p.open_interest_base),
                "prevDayPx": num(p.index),
                "dayNtlVlm": "1000000.0",
                "premium": num((p.mark - p.index) / p.index),
                "oraclePx": num(p.index),
                "markPx": num(p.mark),
                "midPx": num(p.mark),
                "impactPxs": [num(p.mark), num(p.mark)],
                "dayBaseVlm": "10.0",
            }
        )
    return 200, [{"universe": universe, "marginTables": [], "collateralToken": 0}, ctxs]


HYPERLIQUID_ROUTES: dict[str, Builder] = {"/info": _meta_and_ctxs}
