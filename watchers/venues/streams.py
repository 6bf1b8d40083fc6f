"""One ccxt.pro exchange per venue for its public streams, turned into normalized events and samples.

Feeds (each an ``async () -> list`` that waits for the next batch):

- liquidations: binanceusdm / binancecoinm ``!forceOrder@arr`` (every symbol, at most one event per
  symbol per second), bybit ``allLiquidation.<symbol>`` for the perpetuals of ``symbol_assets`` (bybit
  has no all-market channel), okx ``liquidation-orders`` for SWAP. The side is the position that was
  liquidated: binance and okx report the order side (a forced SELL closes a long), bybit the
  position side (Buy = a long was liquidated). Sizes are contracts: coins for linear contracts
  (times the contract size), USD for inverse ones.
- funding and basis: what each venue streams of funding, mark, index and dated futures' prices, in
  :mod:`watchers.venues.ticks` (binance ``!markPrice@arr@1s`` for every contract; bybit, okx and
  deribit per contract of ``symbol_assets``, :meth:`StreamClient.covered`). Each watch a feed needs
  runs in its own task and only wakes the reader, which hands over every contract whose frames
  are new since its last read.

ccxt reconnects nothing by itself: a closed or failed connection rejects the pending watch with a
``NetworkError`` and the next watch dials again. :meth:`StreamClient.reset` drops every connection
(after a stall); the watcher calls the feeds again to resubscribe.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import ccxt.pro as ccxtpro

from core.liquidations import LiqEvent
from core.models import BasisSample, FundingSample
from watchers.errors import SourceError
from watchers.venues.adapters import ADAPTERS
from watchers.venues.adapters.base import DEFAULT_LIVE_STATUS
from watchers.venues.client import VenueClient, _instrument
from watchers.venues.common import integer as _i
from watchers.venues.common import num as _f
from watchers.venues.common import translate
from watchers.venues.ticks import TICK_FEEDS, TICKS, Ticks
from watchers.venues.urls import rewrite_rest_urls, rewrite_ws_urls

log = logging.getLogger(__name__)

LIQUIDATION_VENUES = ("binanceusdm", "binancecoinm", "bybit", "okx")
TICK_VENUES = tuple(TICKS)  # funding and basis

Feed = Callable[[], Awaitable[list[Any]]]


class StreamClient:
    """A ccxt.pro exchange for one venue's public streams."""

    def __init__(
        self,
        venue: str,
        *,
        timeout_s: float,
        ping_interval_s: float,
        rest_base_url: str | None = None,
        ws_base_url: str | None = None,
        symbol_assets: tuple[str, ...] = ("BTC", "ETH", "SOL"),
        rest: VenueClient | None = None,
    ) -> None:
        self.venue = venue
        cls = getattr(ccxtpro, venue)
        self.exchange: Any = cls(
            {
                "timeout": int(timeout_s * 1000),
                "enableRateLimit": True,
                "options": dict(ADAPTERS[venue].ccxt_options) if venue in ADAPTERS else {},
                "streaming": {"keepAlive": int(ping_interval_s * 1000)},
            }
        )
        if rest_base_url:
            self.exchange.urls["api"] = rewrite_rest_urls(self.exchange.urls["api"], rest_base_url)
        if ws_base_url:
            self.exchange.urls["api"]["ws"] = rewrite_ws_urls(self.exchange.urls["api"]["ws"], ws_base_url)
        self.symbol_assets = frozenset(a.upper() for a in symbol_assets)
        self.live_status = ADAPTERS[venue].live_status if venue in ADAPTERS else DEFAULT_LIVE_STATUS
        self.rest = rest  # the venue's REST client: its market list (no second load) and funding intervals
        self._queue: asyncio.Queue[list[Any] | BaseException] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_read: Any = None  # the newest liquidation already handed over
        spec = TICKS.get(venue)
        self._ticks: dict[str, Ticks] = {feed: spec(self, feed) for feed in TICK_FEEDS} if spec else {}
        self._pumps: dict[str, _Pump] = {}
        self._markets_ms: int | None = None  # the REST client's market list this client took (its load time)
        self._liq_symbols: frozenset[str] = frozenset()  # what bybit's liquidation tasks watch
        # feed -> symbol -> signature last handed over; kept across reconnects, so what ccxt still holds
        # from before a drop is not handed over again as if it were new
        self._seen: dict[str, dict[str, tuple[Any, ...]]] = {feed: {} for feed in self._ticks}

    def feeds(self) -> dict[str, Feed]:
        """The feeds this venue streams, by name (``liqs``, ``funding``, ``basis``)."""
        out: dict[str, Feed] = {}
        if self.venue in LIQUIDATION_VENUES:
            out["liqs"] = self.liquidations
        for feed in self._ticks:
            out[feed] = functools.partial(self.ticks, feed)
        return out

    def covered(self, feed: str) -> frozenset[str] | None:
        """The symbols a feed streams: None for every one of the venue's (an all-market channel)."""
        if self.exchange.markets is None:
            return None
        if feed in self._ticks:
            return self._ticks[feed].covered()
        return None if self.venue != "bybit" else frozenset(self._bybit_perps())

    def _bybit_perps(self) -> list[str]:
        return [
            s
            for s, m in self.exchange.markets.items()
            if m.get("swap") and m.get("base") in self.symbol_assets and self._usd_market(m)
        ]

    async def load_markets(self) -> None:
        """The REST client's market list when it has one (a stream then starts while REST is down, and follows
        its hourly refresh: new listings, delistings, expiries), else one load of its own."""
        rest = self.rest
        if rest is not None and rest.exchange.markets and rest.markets_loaded_ms != self._markets_ms:
            self.exchange.set_markets(rest.exchange.markets, rest.exchange.currencies)
            self._markets_ms = rest.markets_loaded_ms
            return
        if self.exchange.markets is not None:
            return
        try:
            await self.exchange.load_markets()
        except Exception as e:
            raise translate(self.venue, e) from e

    async def outdated(self, feed: str) -> bool:
        """Whether the contracts ``feed`` is subscribed to are no longer the ones to stream (a listing or a
        delisting since, a future expired): the watcher then resubscribes."""
        try:
            await self.load_markets()
        except SourceError:
            return False  # the markets we have still serve
        if feed in self._ticks:
            pump = self._pumps.get(feed)
            spec = self._ticks[feed]
            return pump is not None and not spec.all_market and frozenset(spec.symbols()) != pump.symbols
        if feed == "liqs" and self.venue == "bybit" and self._tasks:
            return frozenset(self._bybit_perps()) != self._liq_symbols
        return False

    def interval_of(self, symbol: str) -> int | None:
        """The funding interval the REST client last read (binance lists only the symbols not on 8h)."""
        intervals = getattr(self.rest.adapter, "funding_intervals_s", None) if self.rest is not None else None
        return intervals.get(symbol) if isinstance(intervals, dict) else None

    def last_message_ms(self) -> int | None:
        """The newest frame (data, ack or pong) on any of this venue's connections, None with none open."""
        times = [
            c.last_message_at or c.connectionEstablished or 0 for c in self.exchange.clients.values() if not c.closed()
        ]
        return max(times) if times else None

    async def reset(self) -> None:
        """Drop every connection and per-symbol task; the next feed call dials again and resubscribes."""
        await self._stop_tasks()
        try:
            await self.exchange.close_ws_clients()
        except Exception as e:  # closing a broken socket may raise; the clients are dropped regardless
            log.debug("venue=%s closing streams: %s", self.venue, e)
        self.exchange.clients = {}

    async def close(self) -> None:
        await self._stop_tasks()
        await self.exchange.close()

    async def _stop_tasks(self) -> None:
        tasks = self._tasks + [t for p in self._pumps.values() for t in p.tasks]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        self._pumps = {}
        self._queue = asyncio.Queue()

    async def _watch(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        await self.load_markets()
        try:
            return await fn(*args, **kwargs)
        except SourceError:
            raise
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise SourceError("the connection was closed under a pending watch") from None  # ccxt cancels on close
        except Exception as e:
            raise translate(self.venue, e) from e

    # liquidations ----------------------------------------------------------------------------
    async def liquidations(self) -> list[LiqEvent]:
        """The next batch of liquidations, normalized (unknown or non-USD contracts dropped)."""
        ex = self.exchange
        if self.venue != "bybit" and (waiting := self._events(self._unread())):
            return waiting  # frames that arrived after the last watch resolved
        if self.venue in ("binanceusdm", "binancecoinm"):
            await self._watch(ex.watch_liquidations_for_symbols, [])
        elif self.venue == "okx":
            await self._watch(ex.watch_liquidations_for_symbols, None, params={"type": "swap"})
        else:
            return await self._bybit_liquidations()
        return self._events(self._unread())

    def _unread(self) -> list[Any]:
        """What ccxt's liquidation cache got since the last read.

        A watch resolves with the first frame of a burst only (frames that arrive in one read of the
        socket find no pending future), but every frame is appended to the cache: read from there.
        """
        cache = self.exchange.liquidations or []
        fresh: list[Any] = []
        for item in reversed(cache):
            if item is self._last_read:
                break
            fresh.append(item)
        if cache:
            self._last_read = cache[-1]
        return fresh[::-1]

    async def _bybit_liquidations(self) -> list[LiqEvent]:
        """bybit streams liquidations per symbol: one watch per perpetual, merged through a queue."""
        await self.load_markets()
        if not self._tasks:
            queue = self._queue
            self._liq_symbols = frozenset(self._bybit_perps())
            for s in sorted(self._liq_symbols):
                self._tasks.append(asyncio.create_task(self._bybit_symbol(s, queue)))
        return await self._next()

    async def _next(self) -> list[Any]:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            await self._stop_tasks()
            raise item
        return item

    async def _bybit_symbol(self, symbol: str, queue: asyncio.Queue[list[Any] | BaseException]) -> None:
        try:
            while True:
                events = self._events(self._unread())
                if not events:
                    await self._watch(self.exchange.watch_liquidations, symbol)
                    events = self._events(self._unread())
                if events:
                    queue.put_nowait(events)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # handed to the feed's caller, which reconnects
            queue.put_nowait(e)

    def _usd_market(self, m: dict[str, Any]) -> bool:
        inst = _instrument(self.venue, m, self.live_status)
        return inst is not None and inst.usd_quoted

    def _events(self, raw: Any) -> list[LiqEvent]:
        out = []
        for liq in raw if isinstance(raw, list) else ():
            e = self._event(liq) if isinstance(liq, dict) else None
            if e is not None:
                out.append(e)
        return out

    def _event(self, liq: dict[str, Any]) -> LiqEvent | None:
        m = (self.exchange.markets or {}).get(liq.get("symbol"))
        contracts, price, ts = _f(liq.get("contracts")), _f(liq.get("price")), _i(liq.get("timestamp"))
        side = str(liq.get("side") or "").lower()
        if not m or not self._usd_market(m) or not contracts or not price or ts is None or contracts <= 0 or price <= 0:
            return None
        if self.venue == "bybit":
            position = {"buy": "long", "sell": "short"}.get(side)
        else:  # the order side: a forced sell closes a long
            position = {"sell": "long", "buy": "short"}.get(side)
        if position is None:
            return None
        size = _f(m.get("contractSize")) or 1.0
        if m.get("inverse"):
            usd = contracts * size
            coins = usd / price
        else:
            coins = contracts * size
            usd = coins * price
        return LiqEvent(
            venue=self.venue,
            symbol=str(m["symbol"]),
            asset=str(m["base"]),
            side=position,
            coins=coins,
            usd=usd,
            price=price,
            ts_ms=ts,
        )

    # funding and basis -----------------------------------------------------------------------
    async def ticks(self, feed: str) -> list[FundingSample | BasisSample]:
        """The next samples of ``feed``: every contract whose frames are new since the last read."""
        await self.load_markets()
        spec = self._ticks[feed]
        pump = self._pumps.get(feed)
        if pump is None:
            watches = spec.watches()
            if not watches:  # the watcher backs off and shows this in /status; the poll keeps the metric
                raise SourceError(f"{self.venue} lists no {feed} contract of {', '.join(sorted(self.symbol_assets))}")
            pump = self._pumps[feed] = _Pump(symbols=frozenset(spec.symbols()))
            for watch in watches:
                pump.tasks.append(asyncio.create_task(self._pump(watch, pump)))
        while True:
            out = self._read(spec, self._seen[feed])
            if out:
                return out
            if pump.error is not None:
                error = pump.error
                await self._stop_pump(feed)
                raise error
            await pump.dirty.wait()
            pump.dirty.clear()

    async def _pump(self, watch: Callable[[], Awaitable[Any]], pump: _Pump) -> None:
        """One watch, again and again: it only wakes the reader, which reads ccxt's caches.

        A watch resolves only for frames that find it pending; those that arrive in between update
        ccxt's caches silently, so the reader compares what is there, not what the watch returned.
        """
        try:
            while True:
                await self._watch(watch)
                pump.dirty.set()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # handed to the feed's caller, which reconnects
            pump.error = e
            pump.dirty.set()

    async def _stop_pump(self, feed: str) -> None:
        pump = self._pumps.pop(feed, None)
        if pump is not None:
            for t in pump.tasks:
                t.cancel()
            await asyncio.gather(*pump.tasks, return_exceptions=True)

    def _read(self, spec: Ticks, seen: dict[str, tuple[Any, ...]]) -> list[FundingSample | BasisSample]:
        markets = self.exchange.markets or {}
        out: list[FundingSample | BasisSample] = []
        for symbol in spec.candidates():
            m = markets.get(symbol)
            if m is None or not spec.wants(symbol):
                continue
            sig = spec.signature(symbol)
            if sig is None or seen.get(symbol) == sig:
                continue
            seen[symbol] = sig
            sample = spec.sample(m)
            if sample is not None:
                out.append(sample)
        return out


@dataclass
class _Pump:
    """One feed's watch tasks and the flag they raise on each frame."""

    symbols: frozenset[str] = frozenset()  # the contracts subscribed to
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    dirty: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None
