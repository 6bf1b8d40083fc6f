"""Public history endpoints of one venue through its ccxt exchange: settled funding, the dated
futures' basis (hourly mark and index klines, binance) and the perpetuals' open interest, page by page.

``fetch_funding_rate_history(symbol, since, limit, {"until": ...})`` on every venue that pages by
time: binanceusdm and binancecoinm ``/fundingRate`` (oldest first from ``startTime``), bybit
``/v5/market/funding/history`` (the newest ``limit`` rows of the window), deribit
``get_funding_rate_history`` (hourly rows of the 8h accrual, stored per 8h as the live poll does),
okx ``funding-rate-history`` (rows between the ``before`` and ``after`` cursors, newest first).
A page asks for a window of ``limit`` hours at most, so even a 1h-interval perpetual cannot
overflow a page and the answer is the whole window on every venue. Requests are spaced by
``min_interval_s`` (well inside the public limits; a 429 doubles it, up to 5 s); errors are
translated like the live poll's.

Open interest: ``fetch_open_interest_history(symbol, "5m", since, limit, {"until": ...})`` per
perpetual, where the endpoint gives both units: binanceusdm ``/futures/data/openInterestHist``
(``sumOpenInterest`` coins, ``sumOpenInterestValue`` USD; binance keeps the last 30 days),
binancecoinm (``sumOpenInterest`` contracts of ``contractSize`` USD, ``sumOpenInterestValue`` coins),
okx ``/api/v5/rubik/stat/contracts/open-interest-history`` (rows ``[ts, contracts, coins, USD]``),
bybit ``/v5/market/open-interest`` (coins linear, USD inverse: the other unit at the mark price,
the open of the 5m ``/v5/market/mark-price-kline`` candle starting then). deribit has none.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ccxt.async_support as ccxt

from core.models import EIGHT_HOURS_S, BasisSample, FundingSample, OpenInterestSample
from watchers.errors import MalformedResponse, SourceUnavailable
from watchers.venues.client import VenueClient
from watchers.venues.common import integer, num

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
MAX_INTERVAL_S = 5.0

# venue -> rows per page of its funding history endpoint
FUNDING_PAGE = {"binanceusdm": 1000, "binancecoinm": 1000, "bybit": 200, "deribit": 744, "okx": 100}
# venue -> hourly candles per page of its mark and index price klines (the dated futures' basis)
BASIS_PAGE = {"binanceusdm": 1000, "binancecoinm": 1000}
# venue -> 5-minute rows per page of its open-interest history (both units given: coins and USD); 5 minutes
# because /oi's changes and the change rules look for a total within minutes of "1h/24h/7d ago", as the live poll
# writes them
OI_STEP_MS = 300_000
# binance answers 400 to an open-interest history request starting before its last 30 days: ask from an hour after
BINANCE_OI_MS = (30 * 24 - 1) * HOUR_MS
OI_PAGE = {"binanceusdm": 500, "binancecoinm": 500, "bybit": 200, "okx": 100}
# venues whose open-interest history gives one unit (bybit: coins linear, USD inverse): the other from 5m mark klines
ONE_UNIT_OI = frozenset({"bybit"})
OI_TOTAL = "*total*"  # the open-interest metric's symbol of a venue's per-asset total
# venues whose history rows are the accrual over the last 8h (hourly on deribit), as the live poll stores them
ACCRUED_8H = frozenset({"deribit"})


@dataclass(frozen=True, slots=True)
class Page:
    samples: list[Any]  # FundingSample or BasisSample
    window_end_ms: int  # everything up to here is fetched


class HistoryClient:
    """Paged history of one venue; shares the live client's ccxt exchange, market list and error mapping."""

    def __init__(
        self,
        client: VenueClient,
        *,
        min_interval_s: float = 0.25,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.client = client
        self.clock_ms = clock_ms
        self.venue = client.venue
        self.min_interval_s = min_interval_s
        self._last_s = -1e18

    @property
    def supports_funding(self) -> bool:
        return self.venue in FUNDING_PAGE

    @property
    def supports_basis(self) -> bool:
        return self.venue in BASIS_PAGE

    @property
    def supports_oi(self) -> bool:
        return self.venue in OI_PAGE

    async def _get(self, fn: Any, *args: Any) -> Any:
        """One request through the live client's error mapping; a 429 doubles this venue's spacing for good."""
        await self._pace()
        try:
            return await self.client.call(fn, *args)
        except SourceUnavailable as e:
            if isinstance(e.__cause__, ccxt.DDoSProtection):  # RateLimitExceeded is one
                self.min_interval_s = min(MAX_INTERVAL_S, max(0.1, 2 * self.min_interval_s))
                log.warning("venue=%s rate limited: history requests now every %.2fs", self.venue, self.min_interval_s)
            raise

    async def _pace(self) -> None:
        wait = self._last_s + self.min_interval_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_s = time.monotonic()

    async def perpetuals(self, asset: str) -> list[str]:
        """The venue's live USD-priced perpetuals of ``asset`` (markets loaded on first use)."""
        return await self._listed(asset, "swap")

    async def futures(self, asset: str) -> list[str]:
        """The venue's live USD-priced dated futures of ``asset`` (expired ones are no longer listed)."""
        return await self._listed(asset, "future")

    async def _listed(self, asset: str, kind: str) -> list[str]:
        if not self.client.instruments:
            await self.client.load_markets()
        return sorted(s for s, i in self.client.derivatives().items() if i.kind == kind and i.asset == asset)

    async def basis_page(self, symbol: str, since_ms: int, end_ms: int) -> Page:
        """A dated future's hourly mark and index closes in one page window, joined into basis samples.

        A candle's close is known when its hour ends: the sample is stamped then (never earlier)."""
        limit = BASIS_PAGE[self.venue]
        window_end = min(end_ms, since_ms + limit * HOUR_MS - 1)
        inst = self.client.instruments.get(symbol)
        if inst is None or inst.expiry_ms is None:
            return Page([], window_end)
        ex = self.client.exchange
        closes = []
        for fetch in (ex.fetch_mark_ohlcv, ex.fetch_index_ohlcv):
            rows: Any = await self._get(fetch, symbol, "1h", since_ms, limit, {"until": window_end})
            if not isinstance(rows, list):
                raise MalformedResponse(f"{self.venue} klines for {symbol} are not a list")
            closes.append(
                {
                    t: c
                    for row in rows
                    if isinstance(row, list)
                    and len(row) > 4
                    and (t := integer(row[0])) is not None
                    and (c := num(row[4])) is not None
                }
            )
        mark, index = closes
        samples = [
            BasisSample(
                venue=self.venue,
                symbol=symbol,
                asset=inst.asset,
                settle=inst.settle,
                inverse=inst.inverse,
                expiry_ms=inst.expiry_ms,
                future_usd=mark[t],
                index_usd=index[t],
                ts_ms=t + HOUR_MS,
            )
            for t in sorted(mark.keys() & index.keys())
            if since_ms <= t <= window_end
        ]
        return Page(samples, window_end)

    async def funding_page(self, symbol: str, since_ms: int, end_ms: int) -> Page:
        """Settled funding of ``symbol`` in [since_ms, min(end_ms, since_ms + one page of hours))."""
        limit = FUNDING_PAGE[self.venue]
        window_end = min(end_ms, since_ms + limit * HOUR_MS - 1)
        await self._pace()
        # okx pages by cursors (rows older than ``after``); ccxt sends ``since`` as ``before`` (newer than)
        until = {"after": window_end + 1} if self.venue == "okx" else {"until": window_end}
        rows: Any = await self.client.call(
            self.client.exchange.fetch_funding_rate_history, symbol, since_ms, limit, until
        )
        if not isinstance(rows, list):
            raise MalformedResponse(f"{self.venue} funding history for {symbol} is not a list")
        inst = self.client.instruments.get(symbol)
        by_time: dict[int, float] = {}
        for row in rows:
            if not isinstance(row, dict):
                continue
            t, r = integer(row.get("timestamp")), num(row.get("fundingRate"))
            if t is not None and r is not None and since_ms <= t <= window_end:
                by_time[t] = r
        settled = sorted(by_time.items())
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(settled)]
        interval_s = EIGHT_HOURS_S if self.venue in ACCRUED_8H or not gaps else int(statistics.median(gaps) / 1000)
        samples = [
            FundingSample(
                venue=self.venue,
                symbol=symbol,
                asset=inst.asset if inst else symbol.split("/")[0],
                settle=inst.settle if inst else "",
                inverse=bool(inst and inst.inverse),
                rate_per_interval=r,
                interval_s=interval_s,
                next_funding_ms=None,
                predicted_rate=None,
                mark_usd=None,
                index_usd=None,
                ts_ms=t,
            )
            for t, r in settled
        ]
        return Page(samples, window_end)

    def _oi_units(self, symbol: str, row: dict[str, Any], mark: float | None) -> tuple[float, float] | None:
        """(coins, USD) of one open-interest history row, normalized like the live adapters."""
        inst = self.client.instruments.get(symbol)
        info = row.get("info")
        if self.venue in ONE_UNIT_OI:
            if not mark or mark <= 0:
                return None
            coins, usd = num(row.get("openInterestAmount")), num(row.get("openInterestValue"))
            if coins is None and usd is not None:
                coins = usd / mark
            elif usd is None and coins is not None:
                usd = coins * mark
        elif self.venue == "okx":
            if not isinstance(info, list) or len(info) < 4:
                return None
            coins, usd = num(info[2]), num(info[3])
        elif inst is not None and inst.inverse:  # COIN-M: contracts of contract_size USD; the value is in coins
            amount = num(row.get("openInterestAmount"))
            usd = amount * inst.contract_size if amount is not None and inst.contract_size else None
            coins = num(row.get("openInterestValue"))
        else:
            coins, usd = num(row.get("openInterestAmount")), num(row.get("openInterestValue"))
        return (coins, usd) if coins is not None and usd is not None else None

    async def oi_page(self, asset: str, symbols: list[str], since_ms: int, end_ms: int) -> Page:
        """The venue's total open interest of ``asset`` over ``symbols`` (its perpetuals), every 5 minutes.

        A total is stamped only at the times every symbol has a row: a partial sum is no total."""
        limit = OI_PAGE[self.venue]
        window_end = min(end_ms, since_ms + limit * OI_STEP_MS - 1)
        if self.venue.startswith("binance"):
            kept_from = self.clock_ms() - BINANCE_OI_MS
            if window_end < kept_from:  # older than binance keeps: nothing to ask for
                return Page([], window_end)
            since_ms = max(since_ms, kept_from)
        by_symbol: list[dict[int, tuple[float, float]]] = []
        for symbol in symbols:
            rows: Any = await self._get(
                self.client.exchange.fetch_open_interest_history, symbol, "5m", since_ms, limit, {"until": window_end}
            )
            if not isinstance(rows, list):
                raise MalformedResponse(f"{self.venue} open interest history for {symbol} is not a list")
            marks = await self._mark_opens(symbol, since_ms, limit, window_end) if self.venue in ONE_UNIT_OI else {}
            got: dict[int, tuple[float, float]] = {}
            for row in rows:
                if (
                    isinstance(row, dict)
                    and (t := integer(row.get("timestamp"))) is not None
                    and since_ms <= t <= window_end
                    and (units := self._oi_units(symbol, row, marks.get(t))) is not None
                ):
                    got[t] = units
            by_symbol.append(got)
        common = set.intersection(*(set(g) for g in by_symbol)) if by_symbol else set()
        samples = [
            OpenInterestSample(
                venue=self.venue,
                symbol=OI_TOTAL,
                asset=asset,
                settle="USD",
                inverse=False,
                kind="total",
                coins=sum(g[t][0] for g in by_symbol),
                usd=sum(g[t][1] for g in by_symbol),
                ts_ms=t,
            )
            for t in sorted(common)
        ]
        return Page(samples, window_end)

    async def _mark_opens(self, symbol: str, since_ms: int, limit: int, window_end: int) -> dict[int, float]:
        """The mark price at each 5-minute step of the window: the open of the candle starting then."""
        rows: Any = await self._get(
            self.client.exchange.fetch_mark_ohlcv, symbol, "5m", since_ms, limit, {"until": window_end}
        )
        if not isinstance(rows, list):
            raise MalformedResponse(f"{self.venue} mark klines for {symbol} are not a list")
        return {
            t: o
            for row in rows
            if isinstance(row, list)
            and len(row) > 1
            and (t := integer(row[0])) is not None
            and (o := num(row[1])) is not None
        }
