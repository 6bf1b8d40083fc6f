"""What the websocket double streams for :mod:`bench.bench_stream`, per venue, and the frame that crosses the rule.

Each load lists its contracts on the REST double (so the bot's market load and poll see them),
seeds the double's subscription snapshots, streams plain frames at the venue's own cadence, and
pushes BTC's funding above or below the rule ``funding btc above 0.05%``:

- binanceusdm: ``!markPrice@arr@1s``, one frame per second with every perpetual (``symbols`` of them).
- okx: per instrument, ``mark-price`` at 1 Hz for every perpetual and future of the streamed assets,
  ``index-tickers`` at 1 Hz for each index they settle against, ``funding-rate`` every 30 s per
  perpetual (as okx pushes it: every 30 to 90 s), each spread over its period; the crossing is a
  ``funding-rate`` frame for ``BTC-USDT-SWAP`` on its 8h interval.
- deribit: ``ticker.<instrument>.100ms`` at 10 Hz for every perpetual and future the venue lists
  (BTC and ETH inverse perpetuals and futures, USDC perpetuals for the other assets); the crossing
  is a ``BTC-PERPETUAL`` ticker whose ``funding_8h`` is above the threshold.

Every mark and index takes a small random step on each frame (about 3 bp a second), so most rows are rewritten.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.fakes.exchange_payloads import deribit_name, okx_inst_id
from tests.fakes.exchanges import ExchangeDouble, Future, Perp, next_funding_ms
from tests.fakes.ws_exchanges import (
    WsExchangeDouble,
    binance_mark_price,
    deribit_ticker,
    okx_funding_rate,
    okx_index,
    okx_mark_price,
)

LOW, HIGH = 0.0001, 0.0007  # per 8h; the rule is at 0.05% with a 0.01% re-arm band
DEFAULT_SYMBOLS = {"binanceusdm": 200, "okx": 200, "deribit": 40}
OKX_FUNDING_EVERY_S = 30


def _ms() -> int:
    return int(time.time() * 1000)


def _extra(count: int) -> list[str]:
    return [f"X{i:03d}" for i in range(max(0, count))]


def _perp(asset: str, i: int, nf: int, linear: bool = True) -> Perp:
    return Perp(asset, mark=10.0 + i, index=10.0 + i, funding_rate=LOW, next_funding_ms=nf, linear=linear)


async def _spread(period_s: float, slices: int, push_slice: Callable[[int], Awaitable[None]]) -> None:
    """``push_slice(k)`` for k = 0..slices-1 evenly over each ``period_s``, on a clock that does not drift."""
    step = period_s / slices
    start = time.monotonic()
    n = 0
    while True:
        await push_slice(n % slices)
        n += 1
        await asyncio.sleep(max(0.0, start + n * step - time.monotonic()))


class Load:
    """One venue's streamed contracts, plain frames and crossing frame."""

    venue: str
    rule: str
    metrics: tuple[str, ...] = ("funding", "basis")  # the rows counted as rewritten in the CPU window

    def __init__(self, rest: ExchangeDouble, ws: WsExchangeDouble, symbols: int) -> None:
        self.rest, self.ws = rest, ws
        self.state = rest.venues[self.venue]
        self.nf = next_funding_ms(dt.datetime.now(dt.UTC))
        self.btc_rate = LOW
        self.rng = random.Random(7)
        self.assets: list[str] = []

    def walk(self, px: float, bp: float) -> float:
        return px * (1 + self.rng.uniform(-bp * 1e-4, bp * 1e-4))

    # what the bench reads ---------------------------------------------------------------------
    @property
    def instruments(self) -> int:
        raise NotImplementedError

    def describe(self) -> str:
        """The ``stream:`` line's first half."""
        raise NotImplementedError

    def config(self) -> str:
        """Extra ``[streams]`` keys."""
        return f"symbol_assets = {self.assets!r}\n".replace("'", '"')

    async def subscribed(self) -> None:
        """Until the bot subscribed to the channels the crossing and the plain frames go to."""
        raise NotImplementedError

    async def stream(self) -> None:
        """Plain frames until cancelled."""
        raise NotImplementedError

    async def cross(self, high: bool) -> None:
        """BTC's funding above the rule (``high``), or back under its re-arm band."""
        raise NotImplementedError


class BinanceLoad(Load):
    venue = "binanceusdm"
    rule = "funding btc above 0.05% cooldown 0m"
    metrics = ("funding",)
    topic = "!markPrice@arr@1s"

    def __init__(self, rest: ExchangeDouble, ws: WsExchangeDouble, symbols: int) -> None:
        super().__init__(rest, ws, symbols)
        self.extra = _extra(symbols - len(self.state.perps))
        self.state.perps += [_perp(a, i, self.nf) for i, a in enumerate(self.extra)]
        self.ids = [f"{p.asset}USDT" for p in self.state.perps if p.linear]
        self.assets = ["BTC", "ETH", "SOL", *self.extra]
        self.marks = {sym: 100_000.0 if sym == "BTCUSDT" else 10.0 for sym in self.ids}

    @property
    def instruments(self) -> int:
        return len(self.ids)

    def describe(self) -> str:
        return f"{len(self.ids)} symbols at 1 Hz"

    def config(self) -> str:
        return ""  # binance streams every contract on one channel

    def frame(self, move: bool = True) -> list[dict[str, object]]:
        t = _ms()
        if move:
            for sym in self.ids:
                self.marks[sym] = self.walk(self.marks[sym], 3)
        return [
            binance_mark_price(
                sym, self.marks[sym], self.marks[sym] * 0.9998, self.btc_rate if sym == "BTCUSDT" else LOW, self.nf, t
            )
            for sym in self.ids
        ]

    async def subscribed(self) -> None:
        await self.ws.wait_subscribed(self.venue, self.topic, within_s=30)

    async def stream(self) -> None:
        while True:
            await self.ws.push(self.venue, self.topic, self.frame())
            await asyncio.sleep(1.0)

    async def cross(self, high: bool) -> None:
        self.btc_rate = HIGH if high else LOW
        await self.ws.push(self.venue, self.topic, self.frame(move=False))


class OkxLoad(Load):
    venue = "okx"
    rule = "funding btc above 0.05% venue okx cooldown 0m"
    btc = "BTC-USDT-SWAP"

    def __init__(self, rest: ExchangeDouble, ws: WsExchangeDouble, symbols: int) -> None:
        super().__init__(rest, ws, symbols)
        extra = _extra(symbols - len(self.state.perps) - len(self.state.futures))
        self.state.perps += [_perp(a, i, self.nf) for i, a in enumerate(extra)]
        self.assets = sorted({x.asset for x in [*self.state.perps, *self.state.futures]})
        self.perps = [okx_inst_id(p) for p in self.state.perps]
        self.futures = [okx_inst_id(f) for f in self.state.futures]
        items: list[Perp | Future] = [*self.state.perps, *self.state.futures]
        self.marks = {okx_inst_id(x): x.mark for x in items}
        self.index = {f"{x.asset}-{'USDT' if x.linear else 'USD'}": x.index for x in items}
        t = _ms()
        for inst, mark in self.marks.items():
            ws.okx_state[f"mark-price:{inst}"] = okx_mark_price(inst, mark, t)
        for inst in self.perps:
            ws.okx_state[f"funding-rate:{inst}"] = self.funding(inst, t)
        for idx, px in self.index.items():
            ws.okx_state[f"index-tickers:{idx}"] = okx_index(idx, px, t)

    @property
    def instruments(self) -> int:
        return len(self.marks)

    def describe(self) -> str:
        return (
            f"okx {self.instruments} instruments ({len(self.perps)} perpetuals, {len(self.futures)} futures):"
            f" mark-price at 1 Hz each, index-tickers at 1 Hz ({len(self.index)} indexes),"
            f" funding-rate every {OKX_FUNDING_EVERY_S} s per perpetual"
        )

    def funding(self, inst: str, t: int) -> dict[str, Any]:
        rate = self.btc_rate if inst == self.btc else LOW
        return okx_funding_rate(inst, rate, self.nf, 8, t)

    async def subscribed(self) -> None:
        await self.ws.wait_subscribed(self.venue, f"funding-rate:{self.btc}", within_s=30)
        await self.ws.wait_subscribed(self.venue, f"mark-price:{self.futures[-1]}", within_s=30)

    async def stream(self) -> None:
        marks, indexes = list(self.marks), list(self.index)
        slices = 10

        async def prices(k: int) -> None:  # a tenth of the instruments and indexes every 100 ms
            t = _ms()
            for inst in marks[k::slices]:
                self.marks[inst] = self.walk(self.marks[inst], 3)
                await self.ws.push(self.venue, f"mark-price:{inst}", okx_mark_price(inst, self.marks[inst], t))
            for idx in indexes[k::slices]:
                self.index[idx] = self.walk(self.index[idx], 3)
                await self.ws.push(self.venue, f"index-tickers:{idx}", okx_index(idx, self.index[idx], t))

        async def funding(k: int) -> None:  # one perpetual after the other over 30 s
            inst = self.perps[k]
            await self.ws.push(self.venue, f"funding-rate:{inst}", self.funding(inst, _ms()))

        await asyncio.gather(_spread(1.0, slices, prices), _spread(OKX_FUNDING_EVERY_S, len(self.perps), funding))

    async def cross(self, high: bool) -> None:
        self.btc_rate = HIGH if high else LOW
        await self.ws.push(self.venue, f"funding-rate:{self.btc}", self.funding(self.btc, _ms()))


class DeribitLoad(Load):
    venue = "deribit"
    rule = "funding btc above 0.05% venue deribit cooldown 0m"
    btc = "BTC-PERPETUAL"

    def __init__(self, rest: ExchangeDouble, ws: WsExchangeDouble, symbols: int) -> None:
        super().__init__(rest, ws, symbols)
        listed: list[Perp | Future] = [*self.state.perps, *(f for f in self.state.futures if not f.linear)]
        extra = _extra(symbols - len(listed))
        more = [_perp(a, i, self.nf) for i, a in enumerate(extra)]  # USDC linear perpetuals
        self.state.perps += more
        listed += more
        self.assets = sorted({x.asset for x in listed})
        self.perps = {deribit_name(p) for p in self.state.perps}
        self.marks = {deribit_name(x): x.mark for x in listed}
        self.index = {x.asset: x.index for x in listed}
        self.asset = {deribit_name(x): x.asset for x in listed}
        ws.deribit_names = set(self.marks)

    @property
    def instruments(self) -> int:
        return len(self.marks)

    def describe(self) -> str:
        futures = len(self.marks) - len(self.perps)
        return (
            f"deribit {self.instruments} instruments ({len(self.perps)} perpetuals, {futures} futures):"
            " ticker.<instrument>.100ms at 10 Hz each"
        )

    def frame(self, name: str, t: int) -> dict[str, Any]:
        rate = (self.btc_rate if name == self.btc else LOW) if name in self.perps else None
        index = self.index[self.asset[name]]
        return deribit_ticker(name, mark=self.marks[name], index=index, ts_ms=t, funding_8h=rate)

    async def subscribed(self) -> None:
        await self.ws.wait_subscribed(self.venue, f"ticker.{self.btc}.100ms", within_s=30)

    async def stream(self) -> None:
        async def round_(_: int) -> None:
            t = _ms()
            for asset in self.index:
                self.index[asset] = self.walk(self.index[asset], 1)
            for name in self.marks:
                self.marks[name] = self.walk(self.marks[name], 1)
                await self.ws.push(self.venue, f"ticker.{name}.100ms", self.frame(name, t))

        await _spread(0.1, 1, round_)

    async def cross(self, high: bool) -> None:
        self.btc_rate = HIGH if high else LOW
        await self.ws.push(self.venue, f"ticker.{self.btc}.100ms", self.frame(self.btc, _ms()))


LOADS: dict[str, type[Load]] = {"binanceusdm": BinanceLoad, "okx": OkxLoad, "deribit": DeribitLoad}
