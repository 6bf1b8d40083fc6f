"""Bitget: the mix tickers per product type carry funding, mark, index and open interest in one call."""

from __future__ import annotations

from typing import Any, ClassVar

from watchers.venues.adapters.base import BULK, Adapter, Serving
from watchers.venues.common import BASIS, FUNDING, OI, PARTS, Snapshot, mapping, num

PRODUCT_TYPES = ("USDT-FUTURES", "USDC-FUTURES", "COIN-FUTURES")


class Bitget(Adapter):
    """``fetch_funding_rates(params={"productType": ...})`` reads /api/v2/mix/market/tickers: perpetuals'
    ``fundingRate`` with ``markPrice``/``indexPrice``, the coin-margined quarterlies' marks, and
    ``holdingAmount`` (open interest in coins). The interval is the market list's ``fundInterval`` (hours)."""

    venue = "bitget"
    label = "Bitget"
    serves: ClassVar[dict[str, Serving]] = {
        FUNDING: Serving(BULK, "mix tickers per product type"),
        BASIS: Serving(BULK, "mix tickers of the COIN-FUTURES quarterlies"),
        OI: Serving(BULK, "mix tickers holdingAmount"),
    }
    units = "holdingAmount in coins (linear and coin-margined alike); USD = coins x mark"
    # swap lists every mix product type, the quarterlies too
    ccxt_options: ClassVar[dict[str, Any]] = {"fetchMarkets": {"types": ["swap"]}}
    skip_currencies = True
    live_status = frozenset({"normal", ""})

    async def poll(self, snap: Snapshot) -> None:
        c = self.c

        async def tickers() -> None:
            for product in PRODUCT_TYPES:
                rates = mapping(await c.call(c.exchange.fetch_funding_rates, None, {"productType": product}),
                                f"{product} tickers")
                for symbol, fr in rates.items():
                    m = c.market(symbol)
                    if m is None or not isinstance(fr, dict):
                        continue
                    info = fr.get("info") or {}
                    mark = num(fr.get("markPrice"))
                    if m.get("swap"):
                        hours = num((m.get("info") or {}).get("fundInterval"))
                        c.perp(m, rate=fr.get("fundingRate"), interval_s=int(hours * 3600) if hours else None,
                               next_ms=None, predicted=None, mark=mark, index=fr.get("indexPrice"),
                               ts=fr.get("timestamp") or info.get("ts"), snap=snap)
                    else:
                        c.future(m, mark, fr.get("indexPrice"), info.get("ts"), snap)
                    c.oi(m, coins=num(info.get("holdingAmount")), usd=None, mark=mark, ts=info.get("ts"), snap=snap)

        await c.part(snap, PARTS, tickers)
