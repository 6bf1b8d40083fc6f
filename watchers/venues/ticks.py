"""What each venue streams of funding, mark and index (the ``funding`` feed) and of its dated futures'
prices against the index (the ``basis`` feed), and how those frames become samples.

A :class:`Ticks` spec names the ccxt.pro watches one feed needs (each runs in its own task and only
wakes the reader), the symbols it reads, a signature per symbol (the timestamps of the frames a
sample is built from: a sample is handed over when any of them is new) and the sample itself,
built with the same :func:`~watchers.venues.client.funding_sample` / ``basis_sample`` as the poll.

- binanceusdm: ``!markPrice@arr@1s``, every contract each second: perpetuals carry the funding
  rate (``r``) and next funding time (``T``), dated futures their mark (``p``) and index (``i``).
  The funding interval is the REST client's (binance lists only the symbols not on 8h).
  binancecoinm: the same frames on ``<symbol>@markPrice@1s`` for the contracts of the streamed
  assets (COIN-M documents per-symbol and per-pair mark price streams, not an all-market one).
- bybit: ``tickers.<symbol>`` for the contracts of the streamed assets, linear and inverse on their
  own connections (a snapshot, then deltas that ccxt merges): ``fundingRate``,
  ``fundingIntervalHour``, ``nextFundingTime``, ``markPrice``, ``indexPrice``.
- okx: ``funding-rate`` (rate, the settlement it applies to and the one after: the interval),
  ``mark-price`` and ``index-tickers`` (``BTC-USDT`` for USDT contracts, ``BTC-USD`` for the others,
  as the poll reads them) for the perpetuals, ``mark-price`` and ``index-tickers`` for the dated futures; a sample is
  the newest of each joined.
- deribit: ``ticker.<instrument>.100ms`` for the perpetuals (``funding_8h``, as the poll reads it)
  and the dated futures (``mark_price`` against ``estimated_delivery_price``).

Only live, USD-priced contracts are read, as in the poll.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from core.models import EIGHT_HOURS_S, BasisSample, FundingSample, Instrument
from watchers.venues.adapters.bybit import funding_interval_s
from watchers.venues.client import _instrument, basis_sample, funding_sample
from watchers.venues.common import integer as _i
from watchers.venues.common import interval_s as _interval
from watchers.venues.common import num as _f

if TYPE_CHECKING:
    from watchers.venues.streams import StreamClient

TICK_FEEDS = ("funding", "basis")

Watch = Callable[[], Awaitable[Any]]
Sample = FundingSample | BasisSample


def _ts(t: Any) -> Any:
    return t.get("timestamp") if isinstance(t, dict) else None


class Ticks:
    """One venue's ``funding`` or ``basis`` feed (see the module docstring)."""

    all_market: ClassVar[bool] = False  # one channel carries every contract: covered() is None

    def __init__(self, client: StreamClient, feed: str) -> None:
        self.c = client
        self.feed = feed
        self.ex: Any = client.exchange
        # the market list it was worked out from, until when it holds (the first expiry), wanted, symbols()
        self._listed: tuple[Any, float, frozenset[str], list[str]] | None = None

    # what to read --------------------------------------------------------------------------
    def _instrument(self, m: dict[str, Any]) -> Instrument | None:
        """The live, USD-priced perpetual (funding) or dated future (basis) ``m`` is, expired or not."""
        if not (m.get("swap") if self.feed == "funding" else m.get("type") == "future"):
            return None
        inst = _instrument(self.c.venue, m, self.c.live_status)
        return inst if inst is not None and inst.usd_quoted and inst.active else None

    def _listing(self) -> tuple[frozenset[str], list[str]]:
        """What :meth:`wants` and :meth:`symbols` answer, worked out once per market list and again when
        one of its futures expires: every frame wakes the reader, which would otherwise classify every
        market the venue lists again."""
        markets = self.ex.markets or {}
        now = time.time() * 1000
        if self._listed is None or self._listed[0] is not markets or now >= self._listed[1]:
            live = {s: inst for s, m in markets.items() if (inst := self._instrument(m)) is not None}
            ends = {s: math.inf if i.expiry_ms is None else i.expiry_ms for s, i in live.items()}
            wanted = frozenset(s for s, end in ends.items() if end > now)  # an expired future is not subscribed
            symbols = sorted(s for s in wanted if markets[s].get("base") in self.c.symbol_assets)
            self._listed = (markets, min((ends[s] for s in wanted), default=math.inf), wanted, symbols)
        return self._listed[2], self._listed[3]

    def wants(self, symbol: str) -> bool:
        """A live, USD-priced perpetual (funding) or dated future (basis) of this venue."""
        return symbol in self._listing()[0]

    def symbols(self) -> list[str]:
        """The contracts of the streamed assets this feed subscribes to (not used for an all-market one)."""
        return self._listing()[1]

    def covered(self) -> frozenset[str] | None:
        return None if self.all_market else frozenset(self.symbols())

    def candidates(self) -> Iterable[str]:
        return self.symbols()

    # per venue -------------------------------------------------------------------------------
    def watches(self) -> list[Watch]:
        raise NotImplementedError

    def signature(self, symbol: str) -> tuple[Any, ...] | None:
        """The timestamps of what the symbol's sample is built from; None while none has arrived."""
        ts = _ts(self.ex.tickers.get(symbol))
        return None if ts is None else (ts,)

    def sample(self, m: dict[str, Any]) -> Sample | None:
        raise NotImplementedError


class BinanceTicks(Ticks):
    all_market = True

    def watches(self) -> list[Watch]:
        return [self.ex.watch_mark_prices]

    def candidates(self) -> Iterable[str]:
        return list(self.ex.tickers)

    def sample(self, m: dict[str, Any]) -> Sample | None:
        info = (self.ex.tickers.get(m["symbol"]) or {}).get("info")
        if not isinstance(info, dict):
            return None
        ts = _i(info.get("E")) or int(time.time() * 1000)
        if self.feed == "basis":
            return basis_sample(self.c.venue, m, price=info.get("p"), index=info.get("i"), ts=ts)
        return funding_sample(
            self.c.venue,
            m,
            rate=info.get("r"),
            interval_s=self.c.interval_of(str(m["symbol"])) or EIGHT_HOURS_S,
            next_ms=info.get("T"),
            predicted=None,
            mark=info.get("p"),
            index=info.get("i"),
            ts=ts,
        )


class BinanceCoinmTicks(BinanceTicks):
    all_market = False

    def watches(self) -> list[Watch]:
        symbols = self.symbols()
        return [lambda: self.ex.watch_mark_prices(symbols)] if symbols else []

    def candidates(self) -> Iterable[str]:
        return self.symbols()


class BybitTicks(Ticks):
    def watches(self) -> list[Watch]:
        symbols = self.symbols()
        groups = [
            [s for s in symbols if not self.ex.markets[s].get("inverse")],
            [s for s in symbols if self.ex.markets[s].get("inverse")],
        ]
        return [self._watch(g) for g in groups if g]  # linear and inverse connect apart

    def _watch(self, group: list[str]) -> Watch:
        return lambda: self.ex.watch_tickers(group)

    def sample(self, m: dict[str, Any]) -> Sample | None:
        t = self.ex.tickers.get(m["symbol"]) or {}
        info = t.get("info") or {}
        ts = _i(t.get("timestamp")) or int(time.time() * 1000)
        if self.feed == "basis":
            return basis_sample(self.c.venue, m, price=info.get("markPrice"), index=info.get("indexPrice"), ts=ts)
        return funding_sample(
            self.c.venue,
            m,
            rate=info.get("fundingRate"),
            interval_s=funding_interval_s(info, m),
            next_ms=info.get("nextFundingTime"),
            predicted=None,
            mark=info.get("markPrice"),
            index=info.get("indexPrice"),
            ts=ts,
        )


class OkxTicks(Ticks):
    @staticmethod
    def index_id(m: dict[str, Any]) -> str:
        """The index a contract is read against: ``BTC-USDT`` for USDT ones, ``BTC-USD`` for the rest (inverse,
        USDC), as the poll reads them (it fetches the USD and USDT index tickers)."""
        quote = "USDT" if not m.get("inverse") and m.get("settle") == "USDT" else "USD"
        return f"{m['base']}-{quote}"

    def watches(self) -> list[Watch]:
        symbols = self.symbols()
        out: list[Watch] = [lambda: self.ex.watch_mark_prices(symbols)]
        if self.feed == "funding":
            out.append(lambda: self.ex.watch_funding_rates(symbols))
        indexes = sorted({self.index_id(self.ex.markets[s]) for s in symbols})
        if indexes:
            out.append(lambda: self._watch_index(indexes))
        return out

    async def _watch_index(self, ids: list[str]) -> Any:
        """``index-tickers`` by index id: ccxt files each under ``BTC/USDT`` (an index is no market it lists)."""
        ex = self.ex
        hashes = ["index-tickers::" + i.replace("-", "/") for i in ids]
        request = {"op": "subscribe", "args": [{"channel": "index-tickers", "instId": i} for i in ids]}
        return await ex.watch_multiple(ex.get_url("index-tickers", "public"), hashes, request, hashes)

    def _index(self, m: dict[str, Any]) -> tuple[Any, float | None]:
        t = self.ex.tickers.get(self.index_id(m).replace("-", "/"))
        info = t.get("info") if isinstance(t, dict) else None
        return (_ts(t), _f(info.get("idxPx"))) if isinstance(info, dict) else (None, None)

    def _rate(self, symbol: str) -> dict[str, Any]:
        fr = self.ex.fundingRates.get(symbol) if isinstance(self.ex.fundingRates, dict) else None
        return fr if isinstance(fr, dict) else {}

    def signature(self, symbol: str) -> tuple[Any, ...] | None:
        m = self.ex.markets[symbol]
        mark_ts = _ts(self.ex.tickers.get(symbol))
        if self.feed == "funding":
            info = self._rate(symbol).get("info") or {}
            rate_ts = (info.get("ts"), info.get("fundingRate"), info.get("fundingTime"))
            return None if info.get("fundingRate") is None else (rate_ts, mark_ts, self._index(m)[0])
        return None if mark_ts is None else (mark_ts, self._index(m)[0])

    def sample(self, m: dict[str, Any]) -> Sample | None:
        t = self.ex.tickers.get(m["symbol"]) or {}
        mark_ts, mark = _i(t.get("timestamp")), t.get("markPrice")
        index_ts, index = self._index(m)
        if self.feed == "basis":
            ts = max(x for x in (mark_ts, _i(index_ts), 0) if x is not None) or None
            return basis_sample(self.c.venue, m, price=mark, index=index, ts=ts)
        fr = self._rate(m["symbol"])
        info = fr.get("info") or {}
        ts = max(x for x in (_i(info.get("ts")), mark_ts, 0) if x is not None) or None
        return funding_sample(
            self.c.venue,
            m,
            rate=fr.get("fundingRate"),
            interval_s=_interval(fr.get("interval")),
            next_ms=fr.get("fundingTimestamp"),
            predicted=fr.get("nextFundingRate"),
            mark=mark,
            index=index,
            ts=ts,
        )


class DeribitTicks(Ticks):
    def watches(self) -> list[Watch]:
        symbols = self.symbols()
        return [lambda: self.ex.watch_tickers(symbols, {"interval": "100ms"})] if symbols else []

    def sample(self, m: dict[str, Any]) -> Sample | None:
        t = self.ex.tickers.get(m["symbol"]) or {}
        info = t.get("info") or {}
        index = info.get("estimated_delivery_price") or info.get("index_price")
        ts = t.get("timestamp") or info.get("timestamp")
        if self.feed == "basis":
            return basis_sample(self.c.venue, m, price=info.get("mark_price"), index=index, ts=ts)
        return funding_sample(
            self.c.venue,
            m,
            rate=info.get("funding_8h"),
            interval_s=EIGHT_HOURS_S,
            next_ms=None,
            predicted=None,
            mark=info.get("mark_price"),
            index=index,
            ts=ts,
        )


TICKS: dict[str, type[Ticks]] = {
    "binanceusdm": BinanceTicks,
    "binancecoinm": BinanceCoinmTicks,
    "bybit": BybitTicks,
    "okx": OkxTicks,
    "deribit": DeribitTicks,
}
