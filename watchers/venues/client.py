"""One ccxt exchange per venue, turned into normalized funding and basis samples.

Calls per poll (bulk endpoints only; never one request per symbol):

- binanceusdm / binancecoinm: ``fetch_funding_rates()`` (premiumIndex without a symbol) gives
  every perpetual's funding, mark and index and every dated future's mark and index.
  Funding intervals come from ``fetch_funding_intervals()`` at market load (the venue lists
  only symbols that differ from 8h).
- okx: ``fetch_funding_rates()``, ``fetch_mark_prices`` for SWAP and FUTURES, and the index
  tickers for USD and USDT quotes (the okx ticker carries neither mark nor index).
- bybit: ``fetch_tickers`` per category (linear, inverse): funding, mark and index in one.
- deribit: ``fetch_tickers`` per currency with kind=future (book summary): perpetual
  ``funding_8h`` (the accrual over the last 8h, not a prediction) and futures' mark with
  ``estimated_delivery_price`` as the index.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import ccxt.async_support as ccxt

from core.models import EIGHT_HOURS_S, BasisSample, FundingSample
from watchers.errors import MalformedResponse, SourceError, SourceRejected, SourceUnavailable
from watchers.venues.urls import rewrite_rest_urls

log = logging.getLogger(__name__)


_MARKET_OPTIONS: dict[str, dict[str, Any]] = {
    "okx": {"fetchMarkets": {"types": ["swap", "future"]}},
    "bybit": {"fetchMarkets": {"types": ["linear", "inverse"]}},
}


@dataclass(slots=True)
class Snapshot:
    """What one poll of a venue produced, before sanity checks."""

    funding: list[FundingSample] = field(default_factory=list)
    basis: list[BasisSample] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # symbols skipped for missing fields
    requests: int = 0


def _f(x: Any) -> float | None:
    """A float from a number or numeric string; None for None/'' or garbage."""
    if x is None or x == "" or isinstance(x, bool):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _i(x: Any) -> int | None:
    v = _f(x)
    return None if v is None else int(v)


def _interval_s(text: Any) -> int | None:
    """'8h' -> 28800, '4h' -> 14400, '30m' -> 1800."""
    if not isinstance(text, str) or len(text) < 2:
        return None
    num, unit = text[:-1], text[-1]
    mult = {"h": 3600, "m": 60, "d": 86400}.get(unit)
    n = _f(num)
    return int(n * mult) if mult and n else None


def translate(venue: str, e: BaseException) -> SourceError:
    """Map ccxt and parsing exceptions to the project's source errors."""
    name = type(e).__name__
    msg = str(e).replace("\n", " ")[:200]
    if isinstance(e, ccxt.RequestTimeout):
        return SourceUnavailable(f"timeout: {msg}")
    if isinstance(e, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return SourceRejected(f"{name}: {msg}")
    if isinstance(e, ccxt.NetworkError):  # includes DDoSProtection, RateLimitExceeded, ExchangeNotAvailable
        return SourceUnavailable(f"{name}: {msg}")
    if isinstance(e, ccxt.BadResponse | ccxt.NullResponse):
        return MalformedResponse(f"{name}: {msg}")
    if isinstance(e, ccxt.ExchangeError):
        return SourceUnavailable(f"{name}: {msg}")
    if isinstance(e, json.JSONDecodeError | KeyError | TypeError | ValueError | AttributeError | IndexError):
        return MalformedResponse(f"unexpected answer ({name}: {msg})")
    return SourceUnavailable(f"{name}: {msg}")


class VenueClient:
    """A ccxt exchange for one venue; shared by every watcher of that venue."""

    def __init__(self, venue: str, *, timeout_s: float, rest_base_url: str | None = None) -> None:
        self.venue = venue
        cls = getattr(ccxt, venue)
        self.exchange: Any = cls({
            "timeout": int(timeout_s * 1000),
            "enableRateLimit": True,
            "options": _MARKET_OPTIONS.get(venue, {}),
        })
        if rest_base_url:
            self.exchange.urls["api"] = rewrite_rest_urls(self.exchange.urls["api"], rest_base_url)
        self.funding_intervals_s: dict[str, int] = {}
        self.markets_loaded_ms: int | None = None
        self.requests = 0

    async def close(self) -> None:
        await self.exchange.close()

    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        try:
            return await fn(*args, **kwargs)
        except SourceError:
            raise
        except Exception as e:
            raise translate(self.venue, e) from e

    # markets --------------------------------------------------------------------------
    async def load_markets(self, *, reload: bool = False) -> int:
        """(Re)load the venue's derivative markets; returns how many perps and futures it lists."""
        before = self.requests
        markets = await self._call(self.exchange.load_markets, reload)
        if not isinstance(markets, dict) or not markets:
            raise MalformedResponse("market list is empty")
        if self.venue in ("binanceusdm", "binancecoinm"):
            intervals = await self._call(self.exchange.fetch_funding_intervals)
            self.funding_intervals_s = {
                sym: s for sym, fi in (intervals or {}).items()
                if isinstance(fi, dict) and (s := _interval_s(fi.get("interval")))
            }
        self.markets_loaded_ms = int(time.time() * 1000)
        # ccxt counts its own market calls as one; we count what we issued
        log.info("venue=%s markets loaded: %d derivatives (%d requests)", self.venue,
                 len(self.derivatives()), self.requests - before)
        return len(self.derivatives())

    def derivatives(self) -> dict[str, dict[str, Any]]:
        """Perpetual swaps and dated futures, by ccxt symbol."""
        return {s: m for s, m in (self.exchange.markets or {}).items()
                if (m.get("swap") or m.get("type") == "future") and m.get("active") is not False}

    def _market(self, symbol: str | None) -> dict[str, Any] | None:
        if not symbol:
            return None
        m = (self.exchange.markets or {}).get(symbol)
        if m is None or not (m.get("swap") or m.get("type") == "future"):
            return None
        return dict(m)

    def _future(self, m: dict[str, Any], price: Any, index: Any, ts: Any, snap: Snapshot) -> None:
        expiry = _i(m.get("expiry"))
        f, i = _f(price), _f(index)
        if expiry is None or f is None or i is None:
            snap.dropped.append(str(m["symbol"]))
            return
        snap.basis.append(BasisSample(
            venue=self.venue, symbol=m["symbol"], asset=m["base"], settle=m.get("settle") or m["quote"],
            inverse=bool(m.get("inverse")), expiry_ms=expiry, future_usd=f, index_usd=i,
            ts_ms=_i(ts) or int(time.time() * 1000),
        ))

    def _perp(self, m: dict[str, Any], *, rate: Any, interval_s: int | None, next_ms: Any, predicted: Any,
              mark: Any, index: Any, ts: Any, snap: Snapshot) -> None:
        r = _f(rate)
        if r is None:
            snap.dropped.append(str(m["symbol"]))
            return
        snap.funding.append(FundingSample(
            venue=self.venue, symbol=m["symbol"], asset=m["base"], settle=m.get("settle") or m["quote"],
            inverse=bool(m.get("inverse")), rate_per_interval=r, interval_s=interval_s or EIGHT_HOURS_S,
            next_funding_ms=_i(next_ms), predicted_rate=_f(predicted), mark_usd=_f(mark), index_usd=_f(index),
            ts_ms=_i(ts) or int(time.time() * 1000),
        ))

    # one poll -------------------------------------------------------------------------
    async def snapshot(self) -> Snapshot:
        """Poll the venue once: funding of every perpetual, price and index of every dated future."""
        if self.exchange.markets is None:
            await self.load_markets()
        start = self.requests
        snap = Snapshot()
        try:
            await getattr(self, f"_snapshot_{self.venue}")(snap)
        except SourceError:
            raise
        except Exception as e:  # a payload of the wrong shape surfaces as a TypeError/KeyError here
            raise translate(self.venue, e) from e
        finally:
            snap.requests = self.requests - start
        if not snap.funding and not snap.basis:
            raise MalformedResponse(f"no usable funding or futures data ({len(snap.dropped)} entries incomplete)")
        return snap

    async def _snapshot_binance(self, snap: Snapshot) -> None:
        rates = await self._call(self.exchange.fetch_funding_rates)
        if not isinstance(rates, dict):
            raise MalformedResponse("funding rates answer is not a mapping")
        for symbol, fr in rates.items():
            m = self._market(symbol)
            if m is None or not isinstance(fr, dict):
                continue
            if m.get("swap"):
                self._perp(m, rate=fr.get("fundingRate"), interval_s=self.funding_intervals_s.get(symbol),
                           next_ms=fr.get("fundingTimestamp"), predicted=None, mark=fr.get("markPrice"),
                           index=fr.get("indexPrice"), ts=fr.get("timestamp"), snap=snap)
            else:
                self._future(m, fr.get("markPrice"), fr.get("indexPrice"), fr.get("timestamp"), snap)

    _snapshot_binanceusdm = _snapshot_binance
    _snapshot_binancecoinm = _snapshot_binance

    async def _snapshot_okx(self, snap: Snapshot) -> None:
        ex = self.exchange
        rates = await self._call(ex.fetch_funding_rates)
        marks: dict[str, Any] = {}
        for inst_type in ("SWAP", "FUTURES"):
            marks.update(await self._call(ex.fetch_mark_prices, None, {"instType": inst_type}) or {})
        index: dict[str, float] = {}
        for quote in ("USD", "USDT"):
            raw = await self._call(ex.publicGetMarketIndexTickers, {"quoteCcy": quote})
            for row in raw.get("data", []) if isinstance(raw, dict) else []:
                px = _f(row.get("idxPx"))
                if px is not None:
                    index[str(row.get("instId"))] = px
        if not isinstance(rates, dict):
            raise MalformedResponse("funding rates answer is not a mapping")

        def idx(m: dict[str, Any]) -> float | None:
            quote = "USD" if m.get("inverse") else m.get("settle", "USDT")
            return index.get(f"{m['base']}-{quote}") or index.get(f"{m['base']}-USD")

        for symbol, fr in rates.items():
            m = self._market(symbol)
            if m is None or not m.get("swap") or not isinstance(fr, dict):
                continue
            mk = marks.get(symbol) or {}
            self._perp(m, rate=fr.get("fundingRate"), interval_s=_interval_s(fr.get("interval")),
                       next_ms=fr.get("fundingTimestamp"), predicted=fr.get("nextFundingRate"),
                       mark=mk.get("markPrice") if isinstance(mk, dict) else None, index=idx(m),
                       ts=fr.get("timestamp") or (mk.get("timestamp") if isinstance(mk, dict) else None), snap=snap)
        for symbol, mk in marks.items():
            m = self._market(symbol)
            if m is None or m.get("swap") or not isinstance(mk, dict):
                continue
            self._future(m, mk.get("markPrice"), idx(m), mk.get("timestamp"), snap)

    async def _snapshot_bybit(self, snap: Snapshot) -> None:
        for category in ("linear", "inverse"):
            tickers = await self._call(self.exchange.fetch_tickers, None, {"category": category})
            if not isinstance(tickers, dict):
                raise MalformedResponse(f"{category} tickers answer is not a mapping")
            for symbol, t in tickers.items():
                m = self._market(symbol)
                if m is None or not isinstance(t, dict):
                    continue
                info = t.get("info") or {}
                mark = t.get("markPrice") or info.get("markPrice")
                index = t.get("indexPrice") or info.get("indexPrice")
                if m.get("swap"):
                    minutes = _f((m.get("info") or {}).get("fundingInterval"))
                    self._perp(m, rate=info.get("fundingRate"), interval_s=int(minutes * 60) if minutes else None,
                               next_ms=info.get("nextFundingTime"), predicted=None, mark=mark, index=index,
                               ts=t.get("timestamp"), snap=snap)
                else:
                    self._future(m, mark, index, t.get("timestamp"), snap)

    async def _snapshot_deribit(self, snap: Snapshot) -> None:
        codes = sorted({str(m.get("settle")) for m in self.derivatives().values() if m.get("settle")})
        for code in codes:
            tickers = await self._call(self.exchange.fetch_tickers, None, {"code": code, "kind": "future"})
            if not isinstance(tickers, dict):
                raise MalformedResponse(f"{code} book summary is not a mapping")
            for symbol, t in tickers.items():
                m = self._market(symbol)
                if m is None or not isinstance(t, dict):
                    continue
                info = t.get("info") or {}
                index = info.get("estimated_delivery_price") or info.get("index_price")
                if m.get("swap"):
                    self._perp(m, rate=info.get("funding_8h"), interval_s=EIGHT_HOURS_S, next_ms=None,
                               predicted=None, mark=info.get("mark_price"), index=index,
                               ts=t.get("timestamp"), snap=snap)
                else:
                    self._future(m, info.get("mark_price"), index, t.get("timestamp"), snap)
