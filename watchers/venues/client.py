"""One ccxt exchange per venue, turned into normalized funding, basis and open-interest samples.

Calls per poll (bulk endpoints wherever the venue has them):

- binanceusdm / binancecoinm: ``fetch_funding_rates()`` (premiumIndex without a symbol) gives
  every perpetual's funding, mark and index and every dated future's mark and index. Funding
  intervals come from ``fetch_funding_intervals()`` (fundingInfo lists only the symbols that are
  not 8h), re-read every ``funding_info_refresh_s`` and at once when a perpetual's next funding
  time moves by other than its known interval (the venue shortens intervals when funding hits
  its cap). Open interest has no bulk endpoint: one ``fetch_open_interest`` per contract of the
  assets in ``oi_assets``.
- okx: ``fetch_funding_rates()``, ``fetch_mark_prices`` for SWAP and FUTURES, the index
  tickers for USD and USDT quotes (the okx ticker carries neither mark nor index), and
  ``fetch_open_interests`` for SWAP and FUTURES (``oiCcy`` coins, ``oiUsd`` USD).
- bybit: ``fetch_tickers`` per category (linear, inverse): funding with the current interval
  (``fundingIntervalHour``), mark, index and open interest in one.
- deribit: ``fetch_tickers`` per currency with kind=future (book summary): perpetual
  ``funding_8h`` (the accrual over the last 8h, not a prediction), futures' mark with
  ``estimated_delivery_price`` as the index, and ``open_interest`` (USD for inverse, coins for
  USDC linear).

Only live, USD-priced contracts count: the bulk endpoints also return delisted, settling and
not-yet-trading contracts and coin-quoted ones (ETH/BTC); they are joined against the market
list and dropped. Each metric is a separate part of the poll: one failing endpoint marks only
the parts it feeds as failed, the rest of the venue is stored as usual.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import ccxt.async_support as ccxt

from core.models import EIGHT_HOURS_S, BasisSample, FundingSample, Instrument, OpenInterestSample
from watchers.errors import MalformedResponse, SourceError, SourceRejected, SourceUnavailable
from watchers.venues.urls import rewrite_rest_urls

log = logging.getLogger(__name__)


_MARKET_OPTIONS: dict[str, dict[str, Any]] = {
    "okx": {"fetchMarkets": {"types": ["swap", "future"]}},
    "bybit": {"fetchMarkets": {"types": ["linear", "inverse"]}},
}


FUNDING, BASIS, OI = "funding", "basis", "oi"
PARTS = (FUNDING, BASIS, OI)
FUNDING_INFO = "funding_intervals"  # binance's auxiliary endpoint: feeds intervals, degrades nothing else

# status words of contracts that trade now (ccxt sets ``active`` from these on most venues)
_LIVE_STATUS = {"TRADING", "Trading", "live", "open", ""}


@dataclass(slots=True)
class Part:
    """One metric's share of a poll: its samples, or why it failed (then nothing of it is stored)."""

    samples: list[Any] = field(default_factory=list)
    error: SourceError | None = None


@dataclass(slots=True)
class Snapshot:
    """What one poll of a venue produced, before sanity checks."""

    parts: dict[str, Part] = field(default_factory=lambda: {p: Part() for p in PARTS})
    aux: dict[str, str | None] = field(default_factory=dict)  # auxiliary endpoint -> None (ok) or its error
    dropped: list[str] = field(default_factory=list)  # symbols skipped for missing fields
    requests: int = 0

    @property
    def funding(self) -> list[FundingSample]:
        return self.parts[FUNDING].samples

    @property
    def basis(self) -> list[BasisSample]:
        return self.parts[BASIS].samples

    @property
    def oi(self) -> list[OpenInterestSample]:
        return self.parts[OI].samples

    def fail(self, names: tuple[str, ...], error: SourceError) -> None:
        for n in names:
            self.parts[n] = Part(error=error)


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

    def __init__(self, venue: str, *, timeout_s: float, rest_base_url: str | None = None,
                 oi_assets: tuple[str, ...] = (), funding_info_refresh_s: float = 300.0) -> None:
        self.venue = venue
        cls = getattr(ccxt, venue)
        self.exchange: Any = cls({
            "timeout": int(timeout_s * 1000),
            "enableRateLimit": True,
            "options": _MARKET_OPTIONS.get(venue, {}),
        })
        if rest_base_url:
            self.exchange.urls["api"] = rewrite_rest_urls(self.exchange.urls["api"], rest_base_url)
        self.oi_assets = frozenset(a.upper() for a in oi_assets)
        self.funding_info_refresh_s = funding_info_refresh_s
        self.funding_intervals_s: dict[str, int] = {}
        self._intervals_read_s = -1e18  # monotonic time of the last fundingInfo read
        self._next_funding: dict[str, int] = {}
        self.instruments: dict[str, Instrument] = {}
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
        """(Re)load the venue's market list; returns how many live USD-priced perps and futures it lists."""
        before = self.requests
        markets = await self._call(self.exchange.load_markets, reload)
        if not isinstance(markets, dict) or not markets:
            raise MalformedResponse("market list is empty")
        self.instruments = {s: i for s, m in markets.items()
                            if isinstance(m, dict) and (i := _instrument(self.venue, m)) is not None}
        self.markets_loaded_ms = int(time.time() * 1000)
        # ccxt counts its own market calls as one; we count what we issued
        log.info("venue=%s markets loaded: %d live USD-priced derivatives of %d listed (%d requests)", self.venue,
                 len(self.derivatives()), len(self.instruments), self.requests - before)
        return len(self.derivatives())

    def derivatives(self) -> dict[str, Instrument]:
        """Live, USD-priced perpetual swaps and dated futures, by ccxt symbol."""
        return {s: i for s, i in self.instruments.items() if i.active and i.usd_quoted}

    def _market(self, symbol: str | None) -> dict[str, Any] | None:
        """The ccxt market of a live, USD-priced derivative; None for anything else a bulk endpoint returns."""
        inst = self.instruments.get(symbol or "")
        if inst is None or not inst.active or not inst.usd_quoted:
            return None
        m = (self.exchange.markets or {}).get(symbol)
        return dict(m) if m else None

    def _listed(self, kind: str) -> int:
        return sum(1 for i in self.derivatives().values() if i.kind == kind)

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

    def _oi(self, m: dict[str, Any], *, coins: float | None, usd: float | None, mark: float | None, ts: Any,
            snap: Snapshot) -> None:
        """One contract's open interest; the missing unit is derived from the mark price."""
        if coins is None and usd is not None and mark:
            coins = usd / mark
        if usd is None and coins is not None and mark:
            usd = coins * mark
        if coins is None or usd is None:
            snap.dropped.append(str(m["symbol"]))
            return
        snap.oi.append(OpenInterestSample(
            venue=self.venue, symbol=m["symbol"], asset=m["base"], settle=m.get("settle") or m["quote"],
            inverse=bool(m.get("inverse")), kind="swap" if m.get("swap") else "future", coins=coins, usd=usd,
            ts_ms=_i(ts) or int(time.time() * 1000),
        ))

    # one poll -------------------------------------------------------------------------
    async def snapshot(self) -> Snapshot:
        """Poll the venue once; each metric is a part that fails alone. Raises when every part failed."""
        if self.exchange.markets is None or not self.instruments:
            await self.load_markets()
        start = self.requests
        snap = Snapshot()
        try:
            await getattr(self, f"_snapshot_{self.venue}")(snap)
        finally:
            snap.requests = self.requests - start
        expected = {FUNDING: self._listed("swap"), BASIS: self._listed("future")}
        for name, part in snap.parts.items():
            if part.error is None and not part.samples and expected.get(name, 0 if name != OI else 1):
                what = {FUNDING: "perpetuals' funding", BASIS: "dated futures' prices", OI: "open interest"}[name]
                n = expected.get(name)
                snap.parts[name] = Part(error=MalformedResponse(
                    f"no usable {what} ({'of ' + str(n) + ' listed; ' if n else ''}"
                    f"{len(snap.dropped)} entries incomplete)"))
        errors = [p.error for p in snap.parts.values() if p.error is not None]
        if len(errors) == len(snap.parts):
            raise errors[0]
        return snap

    async def _part(self, snap: Snapshot, names: tuple[str, ...], fn: Callable[[], Awaitable[None]]) -> None:
        """Run one endpoint's share of the poll; its failure fails only the parts it feeds."""
        try:
            await fn()
        except Exception as e:  # a payload of the wrong shape surfaces as a TypeError/KeyError here
            err = e if isinstance(e, SourceError) else translate(self.venue, e)
            log.warning("venue=%s %s failed: %s", self.venue, "/".join(names), err)
            snap.fail(names, err)

    async def _refresh_intervals(self, rates: dict[str, Any], snap: Snapshot) -> None:
        """Re-read binance's fundingInfo when due or when a next funding time jumps; its failure keeps the known."""
        jumped = []
        for symbol, fr in rates.items():
            nxt = _i(fr.get("fundingTimestamp")) if isinstance(fr, dict) else None
            if not nxt:
                continue
            prev = self._next_funding.get(symbol)
            self._next_funding[symbol] = nxt
            known_ms = self.funding_intervals_s.get(symbol, EIGHT_HOURS_S) * 1000
            if prev is not None and nxt != prev and nxt - prev != known_ms:
                jumped.append(symbol)
        due = time.monotonic() - self._intervals_read_s >= self.funding_info_refresh_s
        if not jumped and not due:
            return
        if jumped:
            log.info("venue=%s next funding time moved off its interval for %s: re-reading intervals", self.venue,
                     ", ".join(jumped[:5]))
        self._intervals_read_s = time.monotonic()
        try:
            intervals = await self._call(self.exchange.fetch_funding_intervals)
            if not isinstance(intervals, dict):
                raise MalformedResponse("funding intervals answer is not a mapping")
        except SourceError as e:
            log.warning("venue=%s funding intervals unavailable, keeping the %d known: %s", self.venue,
                        len(self.funding_intervals_s), e)
            snap.aux[FUNDING_INFO] = f"{type(e).__name__}: {e}"
            self._intervals_read_s -= max(0.0, self.funding_info_refresh_s - 60)  # try again in a minute
            return
        # the venue lists only symbols that are not 8h: a symbol missing from the answer is back to 8h
        self.funding_intervals_s = {sym: s for sym, fi in intervals.items()
                                    if isinstance(fi, dict) and (s := _interval_s(fi.get("interval")))}
        snap.aux[FUNDING_INFO] = None

    async def _snapshot_binance(self, snap: Snapshot) -> None:
        marks: dict[str, float] = {}

        async def prices() -> None:
            rates = await self._call(self.exchange.fetch_funding_rates)
            if not isinstance(rates, dict):
                raise MalformedResponse("funding rates answer is not a mapping")
            await self._refresh_intervals(rates, snap)
            for symbol, fr in rates.items():
                m = self._market(symbol)
                if m is None or not isinstance(fr, dict):
                    continue
                if (mk := _f(fr.get("markPrice"))) is not None:
                    marks[symbol] = mk
                if m.get("swap"):
                    self._perp(m, rate=fr.get("fundingRate"), interval_s=self.funding_intervals_s.get(symbol),
                               next_ms=fr.get("fundingTimestamp"), predicted=None, mark=fr.get("markPrice"),
                               index=fr.get("indexPrice"), ts=fr.get("timestamp"), snap=snap)
                else:
                    self._future(m, fr.get("markPrice"), fr.get("indexPrice"), fr.get("timestamp"), snap)

        async def open_interest() -> None:
            for symbol, inst in sorted(self.derivatives().items()):
                if inst.asset not in self.oi_assets:
                    continue
                m = self._market(symbol)
                oi = await self._call(self.exchange.fetch_open_interest, symbol)
                if m is None or not isinstance(oi, dict):
                    continue
                amount = _f(oi.get("openInterestAmount"))
                if inst.inverse:  # COIN-M counts contracts of contract_size USD
                    usd = amount * inst.contract_size if amount is not None and inst.contract_size else None
                    self._oi(m, coins=None, usd=usd, mark=marks.get(symbol), ts=oi.get("timestamp"), snap=snap)
                else:
                    self._oi(m, coins=amount, usd=None, mark=marks.get(symbol), ts=oi.get("timestamp"), snap=snap)

        await self._part(snap, (FUNDING, BASIS), prices)
        if snap.parts[FUNDING].error is not None and not marks:
            snap.fail((OI,), SourceUnavailable("open interest needs the mark prices, whose endpoint failed"))
            return
        await self._part(snap, (OI,), open_interest)

    _snapshot_binanceusdm = _snapshot_binance
    _snapshot_binancecoinm = _snapshot_binance

    async def _snapshot_okx(self, snap: Snapshot) -> None:
        ex = self.exchange
        marks: dict[str, Any] = {}
        index: dict[str, float] = {}

        def idx(m: dict[str, Any]) -> float | None:
            quote = "USD" if m.get("inverse") else m.get("settle", "USDT")
            return index.get(f"{m['base']}-{quote}") or index.get(f"{m['base']}-USD")

        async def mark_and_index() -> None:
            for inst_type in ("SWAP", "FUTURES"):
                marks.update(await self._call(ex.fetch_mark_prices, None, {"instType": inst_type}) or {})
            for quote in ("USD", "USDT"):
                raw = await self._call(ex.publicGetMarketIndexTickers, {"quoteCcy": quote})
                for row in raw.get("data", []) if isinstance(raw, dict) else []:
                    px = _f(row.get("idxPx"))
                    if px is not None:
                        index[str(row.get("instId"))] = px
            for symbol, mk in marks.items():
                m = self._market(symbol)
                if m is None or m.get("swap") or not isinstance(mk, dict):
                    continue
                self._future(m, mk.get("markPrice"), idx(m), mk.get("timestamp"), snap)

        async def funding() -> None:
            rates = await self._call(ex.fetch_funding_rates)
            if not isinstance(rates, dict):
                raise MalformedResponse("funding rates answer is not a mapping")
            for symbol, fr in rates.items():
                m = self._market(symbol)
                if m is None or not m.get("swap") or not isinstance(fr, dict):
                    continue
                mk = marks.get(symbol) or {}
                self._perp(m, rate=fr.get("fundingRate"), interval_s=_interval_s(fr.get("interval")),
                           next_ms=fr.get("fundingTimestamp"), predicted=fr.get("nextFundingRate"),
                           mark=mk.get("markPrice") if isinstance(mk, dict) else None, index=idx(m),
                           ts=fr.get("timestamp") or (mk.get("timestamp") if isinstance(mk, dict) else None), snap=snap)

        async def open_interest() -> None:
            for inst_type in ("SWAP", "FUTURES"):
                found = await self._call(ex.fetch_open_interests, None, {"instType": inst_type})
                for symbol, oi in (found or {}).items() if isinstance(found, dict) else ():
                    m = self._market(symbol)
                    if m is None or not isinstance(oi, dict):
                        continue
                    info = oi.get("info") or {}
                    mk = marks.get(symbol)
                    self._oi(m, coins=_f(info.get("oiCcy")), usd=_f(info.get("oiUsd")),
                             mark=_f(mk.get("markPrice")) if isinstance(mk, dict) else None,
                             ts=oi.get("timestamp"), snap=snap)

        await self._part(snap, (BASIS,), mark_and_index)
        await self._part(snap, (FUNDING,), funding)
        await self._part(snap, (OI,), open_interest)

    async def _snapshot_bybit(self, snap: Snapshot) -> None:
        async def tickers() -> None:
            for category in ("linear", "inverse"):
                found = await self._call(self.exchange.fetch_tickers, None, {"category": category})
                if not isinstance(found, dict):
                    raise MalformedResponse(f"{category} tickers answer is not a mapping")
                for symbol, t in found.items():
                    m = self._market(symbol)
                    if m is None or not isinstance(t, dict):
                        continue
                    info = t.get("info") or {}
                    mark = t.get("markPrice") or info.get("markPrice")
                    index = t.get("indexPrice") or info.get("indexPrice")
                    if m.get("swap"):
                        # the ticker carries the interval in force now; the market list only as of its last load
                        hours = _f(info.get("fundingIntervalHour"))
                        minutes = _f((m.get("info") or {}).get("fundingInterval"))
                        interval = int(hours * 3600) if hours else int(minutes * 60) if minutes else None
                        self._perp(m, rate=info.get("fundingRate"), interval_s=interval,
                                   next_ms=info.get("nextFundingTime"), predicted=None, mark=mark, index=index,
                                   ts=t.get("timestamp"), snap=snap)
                    else:
                        self._future(m, mark, index, t.get("timestamp"), snap)
                    oi = _f(info.get("openInterest"))
                    if m.get("inverse"):  # inverse contracts are 1 USD each
                        self._oi(m, coins=None, usd=oi, mark=_f(mark), ts=t.get("timestamp"), snap=snap)
                    else:
                        self._oi(m, coins=oi, usd=_f(info.get("openInterestValue")), mark=_f(mark),
                                 ts=t.get("timestamp"), snap=snap)

        await self._part(snap, PARTS, tickers)

    async def _snapshot_deribit(self, snap: Snapshot) -> None:
        async def book() -> None:
            codes = sorted({i.settle for i in self.derivatives().values() if i.settle})
            for code in codes:
                found = await self._call(self.exchange.fetch_tickers, None, {"code": code, "kind": "future"})
                if not isinstance(found, dict):
                    raise MalformedResponse(f"{code} book summary is not a mapping")
                for symbol, t in found.items():
                    m = self._market(symbol)
                    if m is None or not isinstance(t, dict):
                        continue
                    info = t.get("info") or {}
                    index = info.get("estimated_delivery_price") or info.get("index_price")
                    mark = _f(info.get("mark_price"))
                    if m.get("swap"):
                        self._perp(m, rate=info.get("funding_8h"), interval_s=EIGHT_HOURS_S, next_ms=None,
                                   predicted=None, mark=mark, index=index, ts=t.get("timestamp"), snap=snap)
                    else:
                        self._future(m, mark, index, t.get("timestamp"), snap)
                    oi = _f(info.get("open_interest"))
                    if m.get("inverse"):  # inverse: USD; USDC linear: coins
                        self._oi(m, coins=None, usd=oi, mark=mark, ts=t.get("timestamp"), snap=snap)
                    else:
                        self._oi(m, coins=oi, usd=None, mark=mark, ts=t.get("timestamp"), snap=snap)

        await self._part(snap, PARTS, book)


def _instrument(venue: str, m: dict[str, Any]) -> Instrument | None:
    """The contract a ccxt market describes; None for what is not a perpetual or dated future (spot, options)."""
    kind = "swap" if m.get("swap") else "future" if m.get("type") == "future" else None
    if kind is None or not m.get("base"):
        return None
    info = m.get("info") or {}
    status = str(info.get("status") or info.get("contractStatus") or info.get("state") or "")
    return Instrument(
        venue=venue, symbol=str(m["symbol"]), asset=str(m["base"]), kind=kind, quote=str(m.get("quote") or ""),
        settle=str(m.get("settle") or m.get("quote") or ""), inverse=bool(m.get("inverse")),
        contract_size=_f(m.get("contractSize")), status=status,
        active=m.get("active") is not False and status in _LIVE_STATUS,
        expiry_ms=_i(m.get("expiry")) if kind == "future" else None,
    )
