"""One ccxt exchange per venue, turned into normalized funding, basis and open-interest samples.

What a venue serves and how (bulk endpoints wherever it has them, per-symbol calls limited to the
watched assets, or not at all) lives in its adapter under :mod:`watchers.venues.adapters`; this
client holds what every venue shares: the ccxt exchange, the market list joined into
:class:`~core.models.Instrument` rows, and the helpers that turn a venue's fields into samples.

Only live, USD-priced contracts count: the bulk endpoints also return delisted, settling and
not-yet-trading contracts and coin-quoted ones (ETH/BTC); they are joined against the market
list and dropped. Each metric is a separate part of the poll: one failing endpoint marks only
the parts it feeds as failed, the rest of the venue is stored as usual.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt.async_support as ccxt

from core.bounds import clamp_ts_ms
from core.models import EIGHT_HOURS_S, BasisSample, FundingSample, Instrument, OpenInterestSample
from core.redaction import basic_auth, split_userinfo
from watchers.errors import MalformedResponse, RateLimited, SourceError
from watchers.http_limits import capped_session, limit_error
from watchers.venues.adapters import ADAPTERS, UnknownVenue
from watchers.venues.adapters.base import Adapter
from watchers.venues.common import (
    BASIS,
    FUNDING,
    FUNDING_INFO,
    OI,
    PARTS,
    Part,
    Snapshot,
    integer,
    num,
    translate,
)
from watchers.venues.urls import rewrite_rest_urls

__all__ = [
    "BASIS",
    "FUNDING",
    "FUNDING_INFO",
    "OI",
    "PARTS",
    "Part",
    "Snapshot",
    "UnknownVenue",
    "VenueClient",
    "translate",
]

log = logging.getLogger(__name__)

# metric -> the assets chats subscribe to or rules watch (read from Redis by the caller)
WatchedAssets = Callable[[str], Awaitable[frozenset[str]]]


class VenueClient:
    """A ccxt exchange for one venue; shared by every watcher of that venue."""

    def __init__(
        self,
        venue: str,
        *,
        timeout_s: float,
        rest_base_url: str | None = None,
        oi_assets: tuple[str, ...] = (),
        funding_info_refresh_s: float = 300.0,
        watched: WatchedAssets | None = None,
    ) -> None:
        cls = ADAPTERS.get(venue)
        if cls is None:
            raise UnknownVenue(venue)
        self.venue = venue
        self.adapter: Adapter = cls(self)
        config: dict[str, Any] = {
            "timeout": int(timeout_s * 1000),
            "enableRateLimit": True,
            "options": dict(cls.ccxt_options),
        }
        self.exchange: Any = getattr(ccxt, venue)(config)
        if cls.skip_currencies:
            self.exchange.has["fetchCurrencies"] = False
        if rest_base_url:
            # credentials of a relay URL travel as a header, so no URL ccxt prints carries them
            rest_base_url, creds = split_userinfo(rest_base_url)
            if creds is not None:
                self.exchange.headers = {**(self.exchange.headers or {}), "Authorization": basic_auth(creds)}
            self.exchange.urls["api"] = rewrite_rest_urls(self.exchange.urls["api"], rest_base_url)
        self.oi_assets = frozenset(a.upper() for a in oi_assets)
        self.watched = watched
        self.funding_info_refresh_s = funding_info_refresh_s
        self.instruments: dict[str, Instrument] = {}
        self.markets_loaded_ms: int | None = None
        self.requests = 0
        self._hold_until = 0.0  # monotonic time before which a Retry-After forbids requests
        self._last_status: int | None = None  # HTTP status of the last answer (okx reports a 429 as ExchangeError)
        parse_answer = self.exchange.on_rest_response

        def on_rest_response(code: Any, *rest: Any) -> Any:
            self._last_status = integer(code)
            return parse_answer(code, *rest)

        self.exchange.on_rest_response = on_rest_response

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics this venue serves."""
        return self.adapter.metrics()

    async def close(self) -> None:
        await self.exchange.close()

    async def call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """One ccxt call, counted; its exceptions translated into source errors."""
        held_s = self._hold_until - time.monotonic()
        if held_s > 0:  # the venue asked for a pause (Retry-After): no request of any part until it is over
            raise RateLimited(
                f"{self.venue}: holding requests {held_s:.0f}s more, as its Retry-After asked", retry_after_s=held_s
            )
        self.requests += 1
        self._last_status = None
        if self.exchange.session is None:  # ccxt keeps (and closes) a session it finds; ours caps answer sizes
            self.exchange.session = capped_session()
        try:
            return await fn(*args, **kwargs)
        except SourceError:
            raise
        except Exception as e:
            limited = limit_error(
                self.venue,
                e,
                self.exchange.last_response_headers,
                isinstance(e, ccxt.DDoSProtection | ccxt.RateLimitExceeded) or self._last_status in (418, 429),
            )
            if limited is not None and limited.retry_after_s > 0:
                self._hold_until = time.monotonic() + limited.retry_after_s
            raise (limited or translate(self.venue, e)) from e

    # markets --------------------------------------------------------------------------
    async def load_markets(self, *, reload: bool = False) -> int:
        """(Re)load the venue's market list; returns how many live USD-priced perps and futures it lists."""
        before = self.requests
        markets = await self.call(self.exchange.load_markets, reload)
        if not isinstance(markets, dict) or not markets:
            raise MalformedResponse("market list is empty")
        live = self.adapter.live_status
        self.instruments = {
            s: i
            for s, m in markets.items()
            if isinstance(m, dict) and (i := _instrument(self.venue, m, live)) is not None
        }
        self.markets_loaded_ms = int(time.time() * 1000)
        # ccxt counts its own market calls as one; we count what we issued
        log.info(
            "venue=%s markets loaded: %d live USD-priced derivatives of %d listed (%d requests)",
            self.venue,
            len(self.derivatives()),
            len(self.instruments),
            self.requests - before,
        )
        return len(self.derivatives())

    def derivatives(self) -> dict[str, Instrument]:
        """Live, USD-priced perpetual swaps and dated futures, by ccxt symbol."""
        return {s: i for s, i in self.instruments.items() if i.active and i.usd_quoted}

    def market(self, symbol: str | None) -> dict[str, Any] | None:
        """The ccxt market of a live, USD-priced derivative; None for anything else a bulk endpoint returns."""
        inst = self.instruments.get(symbol or "")
        if inst is None or not inst.active or not inst.usd_quoted:
            return None
        m = (self.exchange.markets or {}).get(symbol)
        return dict(m) if m else None

    def _listed(self, kind: str) -> int:
        return sum(1 for i in self.derivatives().values() if i.kind == kind)

    async def per_symbol_assets(self, metric: str) -> frozenset[str]:
        """Assets worth a per-symbol call: the configured ones plus those chats subscribe to or rules watch."""
        assets = set(self.oi_assets)
        if self.watched is not None:
            try:
                assets |= await self.watched(metric)
            except Exception as e:  # Redis away: the configured assets still get their calls
                log.warning("venue=%s watched assets unavailable, using the configured ones: %s", self.venue, e)
        return frozenset(assets)

    async def per_symbol_contracts(self, metric: str) -> list[tuple[str, Instrument]]:
        """The contracts a per-symbol metric polls this time: watched assets only, capped per poll."""
        assets = await self.per_symbol_assets(metric)
        chosen = [(s, i) for s, i in sorted(self.derivatives().items()) if i.asset in assets]
        cap = self.adapter.per_symbol_cap
        if len(chosen) > cap:
            log.warning(
                "venue=%s %s: %d contracts of the watched assets, polling the first %d this time",
                self.venue,
                metric,
                len(chosen),
                cap,
            )
        return chosen[:cap]

    # samples --------------------------------------------------------------------------
    def _contract(self, m: dict[str, Any], ts: Any) -> dict[str, Any]:
        return contract_fields(self.venue, m, ts)

    def future(self, m: dict[str, Any], price: Any, index: Any, ts: Any, snap: Snapshot) -> None:
        sample = basis_sample(self.venue, m, price=price, index=index, ts=ts)
        if sample is None:
            snap.dropped.append(str(m["symbol"]))
        else:
            snap.add(BASIS, sample)

    def perp(
        self,
        m: dict[str, Any],
        *,
        rate: Any,
        interval_s: int | None,
        next_ms: Any,
        predicted: Any,
        mark: Any,
        index: Any,
        ts: Any,
        snap: Snapshot,
    ) -> None:
        sample = funding_sample(
            self.venue,
            m,
            rate=rate,
            interval_s=interval_s,
            next_ms=next_ms,
            predicted=predicted,
            mark=mark,
            index=index,
            ts=ts,
        )
        if sample is None:
            snap.dropped.append(str(m["symbol"]))
        else:
            snap.add(FUNDING, sample)

    def oi(
        self, m: dict[str, Any], *, coins: float | None, usd: float | None, mark: float | None, ts: Any, snap: Snapshot
    ) -> None:
        """One contract's open interest; the missing unit is derived from the mark price."""
        if coins is None and usd is not None and mark:
            coins = usd / mark
        if usd is None and coins is not None and mark:
            usd = coins * mark
        if coins is None or usd is None:
            snap.dropped.append(str(m["symbol"]))
            return
        snap.add(
            OI,
            OpenInterestSample(
                **self._contract(m, ts),
                kind="swap" if m.get("swap") else "future",
                coins=coins,
                usd=usd,
            ),
        )

    # one poll -------------------------------------------------------------------------
    async def snapshot(self) -> Snapshot:
        """Poll the venue once; each metric is a part that fails alone. Raises when every part failed."""
        if self.exchange.markets is None or not self.instruments:
            await self.load_markets()
        start = self.requests
        snap = Snapshot(parts={m: Part() for m in self.metrics})
        try:
            await self.adapter.poll(snap)
        finally:
            snap.requests = self.requests - start
        expected = {FUNDING: self._listed("swap"), BASIS: self._listed("future")}
        for name, part in snap.parts.items():
            if part.error is None and not part.samples and expected.get(name, 0 if name != OI else 1):
                what = {FUNDING: "perpetuals' funding", BASIS: "dated futures' prices", OI: "open interest"}[name]
                n = expected.get(name)
                snap.parts[name] = Part(
                    error=MalformedResponse(
                        f"no usable {what} ({'of ' + str(n) + ' listed; ' if n else ''}"
                        f"{len(snap.dropped)} entries incomplete)"
                    )
                )
        errors = [p.error for p in snap.parts.values() if p.error is not None]
        if errors and len(errors) == len(snap.parts):
            raise errors[0]
        return snap

    async def part(self, snap: Snapshot, names: tuple[str, ...], fn: Callable[[], Awaitable[None]]) -> None:
        """Run one endpoint's share of the poll; its failure fails only the parts it feeds."""
        try:
            await fn()
        except Exception as e:  # a payload of the wrong shape surfaces as a TypeError/KeyError here
            err = e if isinstance(e, SourceError) else translate(self.venue, e)
            log.warning("venue=%s %s failed: %s", self.venue, "/".join(names), err)
            snap.fail(names, err)


def _instrument(venue: str, m: dict[str, Any], live: frozenset[str]) -> Instrument | None:
    """The contract a ccxt market describes; None for what is not a perpetual or dated future (spot, options)."""
    kind = "swap" if m.get("swap") else "future" if m.get("type") == "future" else None
    if kind is None or not m.get("base"):
        return None
    info = m.get("info") or {}
    status = str(info.get("status") or info.get("contractStatus") or info.get("state") or "")
    return Instrument(
        venue=venue,
        symbol=str(m["symbol"]),
        asset=str(m["base"]),
        kind=kind,
        quote=str(m.get("quote") or ""),
        settle=str(m.get("settle") or m.get("quote") or ""),
        inverse=bool(m.get("inverse")),
        contract_size=num(m.get("contractSize")),
        status=status,
        active=m.get("active") is not False and status in live,
        expiry_ms=integer(m.get("expiry")) if kind == "future" else None,
    )


def contract_fields(venue: str, m: dict[str, Any], ts: Any) -> dict[str, Any]:
    """What every sample says about its contract, and its time (clamped: a venue's clock may run ahead)."""
    return {
        "venue": venue,
        "symbol": m["symbol"],
        "asset": m["base"],
        "settle": m.get("settle") or m["quote"],
        "inverse": bool(m.get("inverse")),
        "ts_ms": clamp_ts_ms(integer(ts), int(time.time() * 1000)),
    }


def basis_sample(venue: str, m: dict[str, Any], *, price: Any, index: Any, ts: Any) -> BasisSample | None:
    """A dated future's price against its index (polled or streamed); None when a figure is missing."""
    expiry = integer(m.get("expiry"))
    f, i = num(price), num(index)
    if expiry is None or f is None or i is None:
        return None
    return BasisSample(**contract_fields(venue, m, ts), expiry_ms=expiry, future_usd=f, index_usd=i)


def funding_sample(
    venue: str,
    m: dict[str, Any],
    *,
    rate: Any,
    interval_s: int | None,
    next_ms: Any,
    predicted: Any,
    mark: Any,
    index: Any,
    ts: Any,
) -> FundingSample | None:
    """A perpetual's funding rate with its interval, mark and index (polled or streamed); None without a rate."""
    r = num(rate)
    if r is None:
        return None
    return FundingSample(
        **contract_fields(venue, m, ts),
        rate_per_interval=r,
        interval_s=interval_s or EIGHT_HOURS_S,
        next_funding_ms=integer(next_ms),
        predicted_rate=num(predicted),
        mark_usd=num(mark),
        index_usd=num(index),
    )
