"""ExchangeDouble: one local aiohttp server answering REST calls in the real shapes of five venues.

ccxt's own request building and parsing run against it; point an exchange at it with
``watchers.venues.urls.rewrite_rest_urls``::

    async with ExchangeDouble() as double:
        ex = ccxt.async_support.okx({"options": {"fetchMarkets": {"types": ["swap", "future"]}}})
        ex.urls["api"] = rewrite_rest_urls(ex.urls["api"], double.url("okx"))

Paths: ``/<venue>/<the venue's real path>``, e.g. ``/binanceusdm/fapi/v1/premiumIndex``. Any other
path answers 404 and is appended to ``double.unknown`` (``"okx GET /api/v5/..."``).

ccxt calls served (ccxt 4.5.90), and the endpoints they hit:

* binanceusdm: ``load_markets`` (/fapi/v1/exchangeInfo), ``fetch_funding_rates`` (/fapi/v1/premiumIndex;
  also returns the dated futures, e.g. ``BTC/USDT:USDT-261225``, with mark/index but fundingRate None and
  fundingTimestamp 0), ``fetch_funding_intervals`` (/fapi/v1/fundingInfo; only non-8h perps, ``interval``
  "4h"), ``fetch_open_interest`` (/fapi/v1/openInterest; openInterestAmount in coin).
* binancecoinm: the same on /dapi/v1 (openInterestAmount in contracts of 100 USD for BTC, 10 USD others).
* okx (options ``{"fetchMarkets": {"types": ["swap", "future"]}}``): ``load_markets``
  (/api/v5/public/instruments?instType=SWAP and FUTURES), ``fetch_funding_rates``
  (/api/v5/public/funding-rate?instId=ANY: ``fundingTimestamp`` = upcoming settlement, ``interval`` from the
  fundingTime/nextFundingTime gap, ``nextFundingRate`` = predicted rate), ``fetch_mark_prices(params=
  {"instType": "SWAP"|"FUTURES"})`` (/api/v5/public/mark-price), ``publicGetMarketIndexTickers({"quoteCcy":
  "USD"|"USDT"})`` (/api/v5/market/index-tickers, raw envelope), ``fetch_open_interest``
  (/api/v5/public/open-interest: openInterestAmount = contracts, baseVolume = coin, openInterestValue = USD).
  All five work as written.
* bybit (options ``{"fetchMarkets": {"types": ["linear", "inverse"]}}``): ``load_markets``
  (/v5/market/instruments-info?category=..&limit=1000 plus a ``status=PreLaunch`` call per category, following
  ``nextPageCursor``), ``fetch_tickers(params={"category": "linear"|"inverse"})`` (/v5/market/tickers; funding
  rate, next funding time, interval and open interest only in ``ticker["info"]``).
* deribit: ``load_markets`` (/api/v2/public/get_currencies + one get_instruments without currency),
  ``fetch_tickers(params={"code": "BTC"|"ETH"|"USDC", "kind": "future"})``
  (/api/v2/public/get_book_summary_by_currency; the index and funding only in ``ticker["info"]``).

Which contracts a venue lists is derived from its :class:`VenueState`: binanceusdm ignores ``linear=False``
entries, binancecoinm ignores ``linear=True`` ones, deribit ignores linear futures (its linear perps are the
``*_USDC-PERPETUAL`` ones); okx and bybit list both (bybit linear futures are USDC-settled ``BTC-26DEC26``).
Payload builders and unit conventions live in :mod:`tests.fakes.exchange_payloads`. Hyperliquid (POST /info with a
JSON body), bitget, gate and kucoinfutures are registered from :mod:`tests.fakes.more_venues`.

``VenueState.path_faults`` fails one endpoint only (``{"/fapi/v1/fundingInfo": "404"}``), with the faults below
plus ``"404"``, ``"429"`` (rate limited) and ``"empty"`` (the right envelope with no rows).
``Perp.status``/``Future.status`` list a contract as delisting ("settling") or not yet trading ("pending") in
each venue's words, while the bulk price endpoints keep returning it, as the real venues do; ``Perp.quote``
lists a coin-quoted perpetual (binance ETHBTC).

Faults apply to every request of the venue (load_markets included) and show these ccxt reactions:
``"500"`` -> ``ccxt.ExchangeNotAvailable``; ``"429"``/``"418"`` -> that status with ``retry_after`` as
Retry-After; ``"huge"`` -> a 50 MB chunked JSON body (``huge_sent`` counts what was written); ``"timeout"``
(``delay_s`` > ccxt ``timeout``) ->
``ccxt.RequestTimeout``; ``"malformed"`` -> no exception at all, the call parses to ``{}``; ``"garbage"`` ->
binance* raise a bare ``KeyError`` from the parser (not a ccxt error), okx/bybit ``ccxt.ExchangeError``,
deribit parses to ``{}``.
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import json
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.fakes.exchange_payloads import GARBAGE, ROUTES
from tests.fakes.history_payloads import register as register_history_routes

register_history_routes(ROUTES)

__all__ = ["ExchangeDouble", "Future", "Perp", "VenueState", "default_state", "quarterly_expiries"]


@dataclass
class Perp:
    asset: str  # "BTC"
    mark: float
    index: float
    funding_rate: float  # fraction per interval, e.g. 0.0001
    next_funding_ms: int
    interval_h: int = 8  # 8, 4 or 1
    predicted_rate: float | None = None  # okx nextFundingRate, deribit current_funding; others ignore it
    open_interest_base: float = 1000.0  # in base units; converted to whatever unit the venue reports
    linear: bool = True  # USDT-margined (USDC on deribit) vs inverse coin-margined
    status: str = "trading"  # "trading", "settling" (delisting) or "pending" (not yet trading), in venue words
    quote: str | None = None  # a coin-quoted contract (binance ETHBTC: "BTC"); None = the venue's USD quote


@dataclass
class Future:
    asset: str
    expiry: dt.date  # settles 08:00 UTC that day
    mark: float
    index: float
    last: float | None = None  # defaults to mark
    linear: bool = True
    open_interest_base: float = 100.0
    status: str = "trading"
    quote: str | None = None


@dataclass
class VenueState:
    perps: list[Perp]
    futures: list[Future]
    fault: str | None = None  # None | "500" | "timeout" | "malformed" | "garbage" | "429" | "418" | "huge"
    delay_s: float = 0.0  # "timeout": sleep this long before answering normally
    retry_after: str | None = None  # "429"/"418": the Retry-After header sent (seconds or an HTTP date)
    huge_bytes: int = 50 * 1024 * 1024  # "huge": a JSON body this long, streamed in 1 MB chunks, no length
    clock_skew_ms: int = 0  # added to every timestamp the venue reports (a venue clock running ahead)
    huge_sent: int = 0  # bytes of "huge" bodies actually written (all requests) before the client hung up
    requests: list[str] = field(default_factory=list)  # "GET /fapi/v1/premiumIndex?symbol=..", no venue prefix
    page_size: int = 1000  # bybit instruments-info rows per page (lower it to exercise the cursor)
    path_faults: dict[str, str] = field(default_factory=dict)  # path -> fault for that endpoint only (+ "404", "empty")


FAULTS = (None, "500", "timeout", "malformed", "garbage", "429", "418", "huge")

_PRICES = {"BTC": 100_000.0, "ETH": 3_500.0, "SOL": 150.0}
_OI = {"BTC": 80_000.0, "ETH": 2_000_000.0, "SOL": 10_000_000.0}
_RATES = {"BTC": 0.0001, "ETH": 0.00008, "SOL": -0.00005}


def _last_friday(year: int, month: int) -> dt.date:
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    return last - dt.timedelta(days=(last.weekday() - calendar.FRIDAY) % 7)


def quarterly_expiries(now: dt.datetime, count: int = 2) -> list[dt.date]:
    """The next ``count`` last-Fridays of Mar/Jun/Sep/Dec whose 08:00 UTC settlement is after ``now``."""
    out: list[dt.date] = []
    year, month = now.year, now.month
    while len(out) < count:
        if month % 3 == 0:
            day = _last_friday(year, month)
            if dt.datetime.combine(day, dt.time(8), tzinfo=dt.UTC) > now:
                out.append(day)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def next_funding_ms(now: dt.datetime, interval_h: int = 8) -> int:
    """Next multiple of ``interval_h`` hours after ``now`` (UTC), in ms."""
    step = interval_h * 3_600_000
    now_ms = int(now.timestamp() * 1000)
    return (now_ms // step + 1) * step


def default_state(venue: str, now: dt.datetime | None = None) -> VenueState:
    """BTC, ETH, SOL perps and two quarterly futures for BTC and ETH, as the venue really lists them.

    binanceusdm: linear perps and USDT futures; binancecoinm: inverse perps and futures; okx and bybit:
    linear and inverse perps (inverse for BTC/ETH only on bybit) and futures of both kinds; deribit: BTC/ETH
    inverse perps, BTC/ETH/SOL USDC linear perps, inverse futures. Futures trade at a small contango.
    """
    if venue not in ExchangeDouble.VENUES:
        raise ValueError(f"unknown venue {venue!r}")
    now = now or dt.datetime.now(dt.UTC)
    nf = next_funding_ms(now)
    expiries = quarterly_expiries(now)

    def perp(asset: str, linear: bool) -> Perp:
        px = _PRICES[asset]
        return Perp(
            asset,
            mark=px * 1.0002,
            index=px,
            funding_rate=_RATES[asset],
            next_funding_ms=nf,
            open_interest_base=_OI[asset],
            linear=linear,
        )

    def future(asset: str, n: int, linear: bool) -> Future:
        px = _PRICES[asset]
        return Future(
            asset,
            expiries[n],
            mark=round(px * (1.01 + 0.01 * n), 2),
            index=px,
            linear=linear,
            open_interest_base=_OI[asset] / 20,
        )

    assets = ("BTC", "ETH", "SOL")
    dated = [(a, n) for a in ("BTC", "ETH") for n in range(len(expiries))]
    linear_perps = [perp(a, True) for a in assets]
    if venue == "binanceusdm":
        return VenueState(linear_perps, [future(a, n, True) for a, n in dated])
    if venue == "binancecoinm":
        return VenueState([perp(a, False) for a in assets], [future(a, n, False) for a, n in dated])
    if venue == "okx":
        return VenueState(
            linear_perps + [perp(a, False) for a in assets],
            [future(a, n, lin) for lin in (True, False) for a, n in dated],
        )
    if venue == "bybit":
        return VenueState(
            linear_perps + [perp(a, False) for a in ("BTC", "ETH")],
            [future(a, n, lin) for lin in (True, False) for a, n in dated],
        )
    return VenueState([perp(a, False) for a in ("BTC", "ETH")] + linear_perps, [future(a, n, False) for a, n in dated])


def empty_like(body: Any) -> Any:
    """The venue's envelope with its list of rows emptied (what a half-broken endpoint answers)."""
    if isinstance(body, list):
        return []
    if isinstance(body, dict):
        out = dict(body)
        for key in ("data", "result"):
            if isinstance(out.get(key), list):
                out[key] = []
            elif isinstance(out.get(key), dict) and isinstance(out[key].get("list"), list):
                out[key] = {**out[key], "list": []}
        return out
    return body


class ExchangeDouble:
    """Local HTTP server with one path prefix per venue; see the module docstring."""

    VENUES = ("binanceusdm", "binancecoinm", "okx", "bybit", "deribit")

    def __init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.venues: dict[str, VenueState] = {v: default_state(v, now) for v in self.VENUES}
        from tests.fakes.more_venues import more_states  # venues beside the five register their routes there

        self.venues.update(more_states(now))
        self.unknown: list[str] = []  # "<venue> GET /path?query" of every request no route answered
        self._runner: web.AppRunner | None = None
        self._base = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/{venue}/{tail:.*}", self._handle)
        # handler_cancellation: a client that gave up (timeout fault) must not keep close() waiting
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self._base = f"http://{host}:{sock.getsockname()[1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, venue: str) -> str:
        if not self._base:
            raise RuntimeError("ExchangeDouble not started")
        return f"{self._base}/{venue}"

    async def __aenter__(self) -> ExchangeDouble:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _huge(self, request: web.Request, state: VenueState) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = b"[" + b"1," * (512 * 1024 - 1)
        sent = 0
        try:
            while sent < state.huge_bytes:
                await resp.write(chunk)
                sent += len(chunk)
                state.huge_sent += len(chunk)
                chunk = b"1," * (512 * 1024)
            await resp.write(b"1]")
        except (ConnectionError, asyncio.CancelledError):
            return resp
        await resp.write_eof()
        return resp

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        venue = request.match_info["venue"]
        path = "/" + request.match_info["tail"]
        line = f"{request.method} {path}" + (f"?{request.query_string}" if request.query_string else "")
        state = self.venues.get(venue)
        if state is None:
            self.unknown.append(f"{venue} {line}")
            return web.json_response({"error": f"unknown venue {venue}"}, status=404)
        state.requests.append(line)
        fault = state.path_faults.get(path, state.fault)
        retry_after = {"Retry-After": state.retry_after} if state.retry_after is not None else {}
        if fault == "timeout":
            await asyncio.sleep(state.delay_s)
        elif fault == "500":
            return web.Response(status=500, text="Internal Server Error")
        elif fault == "429":  # rate limited, in gate's error words (the status alone maps to RateLimitExceeded)
            return web.json_response(
                {"label": "TOO_MANY_REQUESTS", "message": "Request Rate limit Exceeded"},
                status=429,
                headers=retry_after,
            )
        elif fault == "404":
            return web.Response(
                status=404, text="<html><body><h1>404 Not Found</h1></body></html>", content_type="text/html"
            )
        elif fault == "418":  # binance's ban after ignored 429s
            return web.Response(
                status=418,
                text='{"code":-1003,"msg":"Way too many requests; IP banned."}',
                content_type="application/json",
                headers=retry_after,
            )
        elif fault == "huge":
            return await self._huge(request, state)
        builder = ROUTES[venue].get(path)
        query: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:  # hyperliquid posts its query as JSON
            posted = await request.json()
            query.update(posted if isinstance(posted, dict) else {})
        if builder is None or request.method not in ("GET", "POST"):
            self.unknown.append(f"{venue} {line}")
            return web.json_response({"error": "not served by ExchangeDouble", "path": path}, status=404)
        if fault == "garbage":
            return web.json_response(GARBAGE)
        status, body = builder(state, query, int(time.time() * 1000) + state.clock_skew_ms)
        if fault == "empty":  # the right envelope with no rows in it
            body = empty_like(body)
        text = json.dumps(body, separators=(",", ":"))
        if fault == "malformed":
            text = text[: max(1, len(text) // 2)]
        return web.Response(status=status, text=text, content_type="application/json")

    @staticmethod
    def payload(venue: str, path: str, state: VenueState, query: dict[str, str] | None = None) -> Any:
        """The body the double would answer for ``path`` (no fault applied); handy in assertions."""
        return ROUTES[venue][path](state, query or {}, int(time.time() * 1000))[1]
