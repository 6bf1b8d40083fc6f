"""Binance USD-M and COIN-M.

``fetch_funding_rates()`` (premiumIndex without a symbol) gives every perpetual's funding, mark and
index and every dated future's mark and index. Funding intervals come from
``fetch_funding_intervals()`` (fundingInfo lists only the symbols that are not 8h), re-read every
``funding_info_refresh_s`` and at once when a perpetual's next funding time moves by other than its
known interval (the venue shortens intervals when funding hits its cap). Open interest has no bulk
endpoint: one ``fetch_open_interest`` per contract of the watched assets.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from core.models import EIGHT_HOURS_S
from watchers.errors import SourceError, SourceUnavailable
from watchers.venues.adapters.base import BULK, PER_SYMBOL, Adapter, Serving
from watchers.venues.common import BASIS, FUNDING, FUNDING_INFO, OI, Snapshot, integer, interval_s, mapping, num

log = logging.getLogger(__name__)


class Binance(Adapter):
    venue = "binanceusdm"
    label = "Binance USD-M"
    serves: ClassVar[dict[str, Serving]] = {
        FUNDING: Serving(BULK, "premiumIndex, intervals from fundingInfo"),
        BASIS: Serving(BULK, "premiumIndex marks of the quarterlies"),
        OI: Serving(PER_SYMBOL, "openInterest per contract of the watched assets"),
    }
    units = "openInterest in coins; mark from premiumIndex gives USD"

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.funding_intervals_s: dict[str, int] = {}
        self._intervals_read_s = -1e18  # monotonic time of the last fundingInfo read
        self._next_funding: dict[str, int] = {}

    async def _refresh_intervals(self, rates: dict[str, Any], snap: Snapshot) -> None:
        """Re-read fundingInfo when due or when a next funding time jumps; its failure keeps the known."""
        c = self.c
        jumped = []
        for symbol, fr in rates.items():
            nxt = integer(fr.get("fundingTimestamp")) if isinstance(fr, dict) else None
            if not nxt:
                continue
            prev = self._next_funding.get(symbol)
            self._next_funding[symbol] = nxt
            known_ms = self.funding_intervals_s.get(symbol, EIGHT_HOURS_S) * 1000
            if prev is not None and nxt != prev and nxt - prev != known_ms:
                jumped.append(symbol)
        due = time.monotonic() - self._intervals_read_s >= c.funding_info_refresh_s
        if not jumped and not due:
            return
        if jumped:
            log.info(
                "venue=%s next funding time moved off its interval for %s: re-reading intervals",
                c.venue,
                ", ".join(jumped[:5]),
            )
        self._intervals_read_s = time.monotonic()
        try:
            intervals = mapping(await c.call(c.exchange.fetch_funding_intervals), "funding intervals")
        except SourceError as e:
            log.warning(
                "venue=%s funding intervals unavailable, keeping the %d known: %s",
                c.venue,
                len(self.funding_intervals_s),
                e,
            )
            snap.aux[FUNDING_INFO] = f"{type(e).__name__}: {e}"
            self._intervals_read_s -= max(0.0, c.funding_info_refresh_s - 60)  # try again in a minute
            return
        # the venue lists only symbols that are not 8h: a symbol missing from the answer is back to 8h
        self.funding_intervals_s = {
            sym: s for sym, fi in intervals.items() if isinstance(fi, dict) and (s := interval_s(fi.get("interval")))
        }
        snap.aux[FUNDING_INFO] = None

    async def poll(self, snap: Snapshot) -> None:
        c = self.c
        marks: dict[str, float] = {}

        async def prices() -> None:
            rates = mapping(await c.call(c.exchange.fetch_funding_rates), "funding rates")
            await self._refresh_intervals(rates, snap)
            for symbol, fr in rates.items():
                m = c.market(symbol)
                if m is None or not isinstance(fr, dict):
                    continue
                if (mk := num(fr.get("markPrice"))) is not None:
                    marks[symbol] = mk
                if m.get("swap"):
                    c.perp(
                        m,
                        rate=fr.get("fundingRate"),
                        interval_s=self.funding_intervals_s.get(symbol),
                        next_ms=fr.get("fundingTimestamp"),
                        predicted=None,
                        mark=fr.get("markPrice"),
                        index=fr.get("indexPrice"),
                        ts=fr.get("timestamp"),
                        snap=snap,
                    )
                else:
                    c.future(m, fr.get("markPrice"), fr.get("indexPrice"), fr.get("timestamp"), snap)

        async def open_interest() -> None:
            for symbol, inst in await c.per_symbol_contracts(OI):
                m = c.market(symbol)
                oi = await c.call(c.exchange.fetch_open_interest, symbol)
                if m is None or not isinstance(oi, dict):
                    continue
                amount = num(oi.get("openInterestAmount"))
                if inst.inverse:  # COIN-M counts contracts of contract_size USD
                    usd = amount * inst.contract_size if amount is not None and inst.contract_size else None
                    c.oi(m, coins=None, usd=usd, mark=marks.get(symbol), ts=oi.get("timestamp"), snap=snap)
                else:
                    c.oi(m, coins=amount, usd=None, mark=marks.get(symbol), ts=oi.get("timestamp"), snap=snap)

        await c.part(snap, (FUNDING, BASIS), prices)
        if snap.parts[FUNDING].error is not None and not marks:
            snap.fail((OI,), SourceUnavailable("open interest needs the mark prices, whose endpoint failed"))
            return
        await c.part(snap, (OI,), open_interest)


class BinanceCoinM(Binance):
    venue = "binancecoinm"
    label = "Binance COIN-M"
    units = "openInterest in contracts of 100 USD (BTC) or 10 USD (others)"
