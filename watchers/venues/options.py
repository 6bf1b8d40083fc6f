"""Deribit's option chains through ccxt, in bulk: instruments at market load, one book summary per currency.

Calls: ``load_markets`` (``/public/get_instruments``, every kind; the option markets give strike,
expiry and call/put) at start and every ``markets_refresh_s``, then per refresh one
``/public/get_book_summary_by_currency?currency=BTC&kind=option`` per currency, whose rows give
``open_interest`` (coins), ``mark_iv`` (percent), ``underlying_price`` (the forward F) and
``estimated_delivery_price`` (the index). ccxt's ``fetch_option_chain`` leaves the IV empty,
so the raw endpoint is read and joined to the markets by instrument name. A row whose instrument
is not in the loaded markets is skipped (listed since the last load) and triggers a reload.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import ccxt.async_support as ccxt

from core.gamma import OptionSample
from watchers.errors import MalformedResponse, SourceError
from watchers.venues.common import integer, num, translate
from watchers.venues.urls import rewrite_rest_urls

log = logging.getLogger(__name__)

VENUE = "deribit"


class OptionChainClient:
    """One ccxt deribit exchange reading option chains; ``chain(currency)`` is one request."""

    def __init__(
        self, *, timeout_s: float, rest_base_url: str | None = None, markets_refresh_s: float = 3600.0
    ) -> None:
        self.venue = VENUE
        self.exchange: Any = ccxt.deribit({"timeout": int(timeout_s * 1000), "enableRateLimit": True})
        if rest_base_url:
            self.exchange.urls["api"] = rewrite_rest_urls(self.exchange.urls["api"], rest_base_url)
        self.markets_refresh_s = markets_refresh_s
        self.options: dict[str, dict[str, Any]] = {}  # instrument name -> ccxt option market
        self.loaded_s = -1e18
        self.requests = 0
        self._reload = False

    async def close(self) -> None:
        await self.exchange.close()

    async def _call(self, fn: Any, *args: Any) -> Any:
        self.requests += 1
        try:
            return await fn(*args)
        except SourceError:
            raise
        except Exception as e:
            raise translate(self.venue, e) from e

    async def load_markets(self) -> int:
        """(Re)load the instruments when due; returns how many options are listed."""
        if self.options and not self._reload and time.monotonic() - self.loaded_s < self.markets_refresh_s:
            return len(self.options)
        markets = await self._call(self.exchange.load_markets, True)
        if not isinstance(markets, dict) or not markets:
            raise MalformedResponse("market list is empty")
        options = {
            str(m.get("id")): m
            for m in markets.values()
            if isinstance(m, dict) and m.get("option") and m.get("strike") and m.get("expiry")
        }
        if not options and self.options:
            raise MalformedResponse("market list has no options any more")
        self.options, self.loaded_s, self._reload = options, time.monotonic(), False
        log.info("venue=%s option markets loaded: %d", self.venue, len(options))
        return len(options)

    async def chain(self, currency: str) -> tuple[list[OptionSample], int]:
        """Every listed option of ``currency`` with its OI, IV and prices; also how many rows were skipped."""
        raw = await self._call(
            self.exchange.publicGetGetBookSummaryByCurrency, {"currency": currency, "kind": "option"}
        )
        rows = raw.get("result") if isinstance(raw, dict) else None
        if not isinstance(rows, list):
            raise MalformedResponse(f"{currency} option book summary has no result list")
        now = int(time.time() * 1000)
        out: list[OptionSample] = []
        skipped = 0
        for row in rows:
            m = self.options.get(str(row.get("instrument_name"))) if isinstance(row, dict) else None
            if m is None:
                skipped += 1
                continue
            oi, iv = num(row.get("open_interest")), num(row.get("mark_iv"))
            fwd, index = num(row.get("underlying_price")), num(row.get("estimated_delivery_price"))
            if oi is None or iv is None or fwd is None or index is None:
                skipped += 1
                continue
            out.append(
                OptionSample(
                    venue=self.venue,
                    symbol=str(m["symbol"]),
                    asset=str(m["base"]),
                    strike=float(m["strike"]),
                    expiry_ms=int(m["expiry"]),
                    call=m.get("optionType") == "call",
                    open_interest=oi,
                    mark_iv_pct=iv,
                    underlying_usd=fwd,
                    index_usd=index,
                    ts_ms=integer(row.get("creation_timestamp")) or now,
                )
            )
        unknown = [
            str(r.get("instrument_name"))
            for r in rows
            if isinstance(r, dict) and str(r.get("instrument_name")) not in self.options
        ]
        if unknown:
            self._reload = True  # newly listed options: read the instruments again next refresh
            log.info(
                "venue=%s asset=%s %d options not in the loaded markets (e.g. %s): reloading next refresh",
                self.venue,
                currency,
                len(unknown),
                unknown[0],
            )
        return out, skipped
