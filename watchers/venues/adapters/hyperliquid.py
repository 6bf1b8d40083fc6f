"""Hyperliquid: one POST to /info (``metaAndAssetCtxs``) carries every perpetual's funding, mark,
oracle price and open interest; funding settles every hour; no dated futures."""

from __future__ import annotations

from typing import Any, ClassVar

from watchers.venues.adapters.base import BULK, NOT_SERVED, Adapter, Serving
from watchers.venues.common import BASIS, FUNDING, OI, Snapshot, interval_s, mapping, num

HOUR_S = 3600


class Hyperliquid(Adapter):
    """``fetch_funding_rates()``: ``funding`` is the rate per hour, ``oraclePx`` the index, and the same
    asset contexts' ``openInterest`` (coins) is read from it, so one call serves both metrics."""

    venue = "hyperliquid"
    label = "Hyperliquid"
    serves: ClassVar[dict[str, Serving]] = {
        FUNDING: Serving(BULK, "metaAndAssetCtxs, hourly funding"),
        BASIS: Serving(NOT_SERVED, "no dated futures listed"),
        OI: Serving(BULK, "metaAndAssetCtxs openInterest"),
    }
    units = "openInterest in coins; USD = coins x mark"
    # perpetuals only: no spot, no builder-deployed dexes
    ccxt_options: ClassVar[dict[str, Any]] = {"fetchMarkets": {"types": ["swap"]}}
    skip_currencies = True

    async def poll(self, snap: Snapshot) -> None:
        c = self.c

        async def contexts() -> None:
            rates = mapping(await c.call(c.exchange.fetch_funding_rates), "asset contexts")
            for symbol, fr in rates.items():
                m = c.market(symbol)
                if m is None or not isinstance(fr, dict):
                    continue
                info = fr.get("info") or {}
                mark = num(fr.get("markPrice"))
                c.perp(
                    m,
                    rate=fr.get("fundingRate"),
                    interval_s=interval_s(fr.get("interval")) or HOUR_S,
                    next_ms=fr.get("fundingTimestamp"),
                    predicted=None,
                    mark=mark,
                    index=fr.get("indexPrice"),
                    ts=None,
                    snap=snap,
                )
                c.oi(m, coins=num(info.get("openInterest")), usd=None, mark=mark, ts=None, snap=snap)

        await c.part(snap, (FUNDING, OI), contexts)
