"""Bitget: the mix tickers per product type carry funding, mark, index and open interest in one call."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from watchers.errors import SourceError
from watchers.venues.adapters.base import BULK, Adapter, Serving
from watchers.venues.common import (
    BASIS,
    FUNDING,
    FUNDING_INFO,
    OI,
    PARTS,
    Snapshot,
    integer,
    interval_s,
    mapping,
    num,
)

log = logging.getLogger(__name__)

PRODUCT_TYPES = ("USDT-FUTURES", "USDC-FUTURES", "COIN-FUTURES")


class Bitget(Adapter):
    """``fetch_funding_rates(params={"productType": ...})`` reads /api/v2/mix/market/tickers: perpetuals'
    ``fundingRate`` with ``markPrice``/``indexPrice``, the coin-margined quarterlies' marks, and
    ``holdingAmount`` (open interest in coins). The interval in force and the next funding time come from
    ``fetch_funding_intervals`` (/api/v2/mix/market/current-fund-rate), re-read every
    ``funding_info_refresh_s`` (the venue shortens intervals when funding hits its cap); while it fails,
    the last known intervals stand, then the market list's ``fundInterval``."""

    venue = "bitget"
    label = "Bitget"
    serves: ClassVar[dict[str, Serving]] = {
        FUNDING: Serving(BULK, "mix tickers per product type, intervals from current-fund-rate"),
        BASIS: Serving(BULK, "mix tickers of the COIN-FUTURES quarterlies"),
        OI: Serving(BULK, "mix tickers holdingAmount"),
    }
    units = "holdingAmount in coins (linear and coin-margined alike); USD = coins x mark"
    # swap lists every mix product type, the quarterlies too
    ccxt_options: ClassVar[dict[str, Any]] = {"fetchMarkets": {"types": ["swap"]}}
    skip_currencies = True
    live_status = frozenset({"normal", ""})

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.intervals_s: dict[str, int] = {}
        self.next_funding_ms: dict[str, int] = {}
        self._read_s = -1e18

    async def _refresh_intervals(self, snap: Snapshot) -> None:
        c = self.c
        if time.monotonic() - self._read_s < c.funding_info_refresh_s:
            return
        self._read_s = time.monotonic()
        intervals: dict[str, int] = {}
        nexts: dict[str, int] = {}
        try:
            for product in PRODUCT_TYPES:
                found = mapping(
                    await c.call(c.exchange.fetch_funding_intervals, None, {"productType": product}),
                    f"{product} funding intervals",
                )
                for symbol, fi in found.items():
                    if not isinstance(fi, dict):
                        continue
                    if s := interval_s(fi.get("interval")):
                        intervals[symbol] = s
                    if nxt := integer(fi.get("fundingTimestamp")):
                        nexts[symbol] = nxt
        except SourceError as e:
            log.warning(
                "venue=%s funding intervals unavailable, keeping the %d known: %s", c.venue, len(self.intervals_s), e
            )
            snap.aux[FUNDING_INFO] = f"{type(e).__name__}: {e}"
            self._read_s -= max(0.0, c.funding_info_refresh_s - 60)  # try again in a minute
            return
        self.intervals_s, self.next_funding_ms = intervals, nexts
        snap.aux[FUNDING_INFO] = None

    def _next(self, symbol: str, interval: int | None) -> int | None:
        """The next settlement as last read, rolled forward by the interval once it has passed."""
        nxt = self.next_funding_ms.get(symbol)
        if nxt is None or not interval:
            return nxt
        now = int(time.time() * 1000)
        if nxt <= now:
            nxt += ((now - nxt) // (interval * 1000) + 1) * interval * 1000
        return nxt

    async def poll(self, snap: Snapshot) -> None:
        c = self.c
        await self._refresh_intervals(snap)

        async def tickers() -> None:
            for product in PRODUCT_TYPES:
                rates = mapping(
                    await c.call(c.exchange.fetch_funding_rates, None, {"productType": product}), f"{product} tickers"
                )
                for symbol, fr in rates.items():
                    m = c.market(symbol)
                    if m is None or not isinstance(fr, dict):
                        continue
                    info = fr.get("info") or {}
                    mark = num(fr.get("markPrice"))
                    if m.get("swap"):
                        hours = num((m.get("info") or {}).get("fundInterval"))
                        interval = self.intervals_s.get(symbol) or (int(hours * 3600) if hours else None)
                        c.perp(
                            m,
                            rate=fr.get("fundingRate"),
                            interval_s=interval,
                            next_ms=self._next(symbol, interval),
                            predicted=None,
                            mark=mark,
                            index=fr.get("indexPrice"),
                            ts=fr.get("timestamp") or info.get("ts"),
                            snap=snap,
                        )
                    else:
                        c.future(m, mark, fr.get("indexPrice"), info.get("ts"), snap)
                    c.oi(m, coins=num(info.get("holdingAmount")), usd=None, mark=mark, ts=info.get("ts"), snap=snap)

        await c.part(snap, PARTS, tickers)
