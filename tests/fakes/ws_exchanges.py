"""WsExchangeDouble: one local aiohttp websocket server speaking five venues' public stream frames.

ccxt.pro (4.5.90) runs its own subscribe, ping and parse code against it; point an exchange's
``urls['api']['ws']`` at ``double.ws_url(venue)`` with ``watchers.venues.urls.rewrite_ws_urls``
(the REST side stays on :class:`tests.fakes.exchanges.ExchangeDouble`, which lists the markets).

Paths ccxt builds from the rewritten URLs, and what each side of the conversation looks like:

* binanceusdm ``/binanceusdm/market/ws/<n>`` and binancecoinm ``/binancecoinm/ws/<n>``: the client
  sends ``{"method":"SUBSCRIBE","params":["!forceOrder@arr"],"id":1}``, the server acks
  ``{"result":null,"id":1}``; data frames are ``{"e":"forceOrder","E":..,"o":{"s":"BTCUSDT","S":"SELL",
  "o":"LIMIT","f":"IOC","q":"0.5","p":"99000","ap":"99100","X":"FILLED","l":"0.5","z":"0.5","T":..}}``
  and, for ``!markPrice@arr@1s``, an array of ``{"e":"markPriceUpdate","E":..,"s":"BTCUSDT","p":mark,
  "i":index,"P":settle,"r":rate,"T":next funding}``. Pings are websocket control frames.
* bybit ``/bybit/v5/public/linear`` (and ``/inverse``): ``{"op":"subscribe","args":["allLiquidation.BTCUSDT"],
  "req_id":"1"}`` acked with ``{"success":true,"ret_msg":"","conn_id":..,"req_id":"1","op":"subscribe"}``;
  ``{"op":"ping"}`` answered ``{"success":true,"ret_msg":"pong",..,"op":"ping"}``; liquidations
  ``{"topic":"allLiquidation.BTCUSDT","type":"snapshot","ts":..,"data":[{"T":..,"s":"BTCUSDT","S":"Buy",
  "v":"0.5","p":"99000"}]}`` (``S`` is the position side: Buy = a long was liquidated); ``tickers.BTCUSDT``
  starts with a snapshot (``bybit_tickers[id]``) and continues with deltas of the changed fields only.
* okx ``/okx/ws/v5/public``: ``{"op":"subscribe","args":[{"channel":"liquidation-orders","instType":"SWAP"}]}``
  acked ``{"event":"subscribe","arg":{..},"connId":..}``; text ``ping`` answered ``pong``; data
  ``{"arg":{..},"data":[{"details":[{"bkLoss":"0","bkPx":"99000","ccy":"","posSide":"long","side":"sell",
  "sz":"50","ts":".."}],"instFamily":"BTC-USDT","instId":"BTC-USDT-SWAP","instType":"SWAP","uly":"BTC-USDT"}]}``
  (``sz`` in contracts). Price channels, subscribed per instrument (``{"channel":"funding-rate",
  "instId":"BTC-USDT-SWAP"}``, ``mark-price``, and ``index-tickers`` with an index id such as
  ``BTC-USDT``): topics are ``<channel>:<instId>``; each subscription is answered with the frame
  stored in ``okx_state[topic]`` (okx pushes the current value at once), later ones by ``push``.
  With ``okx_inst_ids`` set, an instrument not in it is answered ``{"event":"error","code":"60018",..}``
  (as okx answers a delisted or expired one); ``bybit_symbols`` does the same for bybit topics.
* deribit ``/deribit/ws/api/v2`` (JSON-RPC 2.0): ``{"jsonrpc":"2.0","method":"public/subscribe",
  "params":{"channels":["ticker.BTC-PERPETUAL.100ms"]},"id":1}`` answered ``{"jsonrpc":"2.0","id":1,
  "result":["ticker.BTC-PERPETUAL.100ms"],"usIn":..,"usOut":..,"usDiff":..,"testnet":false}``;
  notifications ``{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-PERPETUAL.100ms",
  "data":{"timestamp":..,"instrument_name":"BTC-PERPETUAL","mark_price":..,"index_price":..,
  "estimated_delivery_price":..,"funding_8h":..,"current_funding":..,...}}}``; keepalive by websocket ping
  frames. A channel that names no instrument the venue lists is refused with a JSON-RPC error.

Test controls: ``push_*`` send to every connection subscribed to the topic; ``drop(venue)`` closes the
venue's connections (ccxt sees code 1006); ``stall(venue)`` keeps them open but silent (no data, no
pongs); ``replay[venue]`` frames are sent right after each subscription ack, as venues that replay
recent events on connect do. ``connections[venue]`` counts handshakes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web

__all__ = [
    "WsExchangeDouble",
    "binance_force_order",
    "binance_mark_price",
    "bybit_liquidation",
    "bybit_ticker",
    "bybit_ticker_delta",
    "deribit_ticker",
    "okx_funding_rate",
    "okx_index",
    "okx_liquidation",
    "okx_mark_price",
]


def _ms() -> int:
    return int(time.time() * 1000)


def binance_force_order(symbol_id: str, side: str, qty: float, price: float, ts_ms: int) -> dict[str, Any]:
    """A forceOrder event: ``side`` is the order side (SELL closes a long)."""
    return {
        "e": "forceOrder",
        "E": ts_ms + 2,
        "o": {
            "s": symbol_id,
            "S": side,
            "o": "LIMIT",
            "f": "IOC",
            "q": str(qty),
            "p": str(price * 0.995),
            "ap": str(price),
            "X": "FILLED",
            "l": str(qty),
            "z": str(qty),
            "T": ts_ms,
        },
    }


def bybit_liquidation(symbol_id: str, side: str, size: float, price: float, ts_ms: int) -> dict[str, Any]:
    """An allLiquidation frame: ``side`` is the position side (Buy = a long was liquidated)."""
    return {
        "topic": f"allLiquidation.{symbol_id}",
        "type": "snapshot",
        "ts": ts_ms + 3,
        "data": [{"T": ts_ms, "s": symbol_id, "S": side, "v": str(size), "p": str(price)}],
    }


def okx_liquidation(inst_id: str, pos_side: str, contracts: float, price: float, ts_ms: int) -> dict[str, Any]:
    """A liquidation-orders frame for one SWAP instrument."""
    family = inst_id.rsplit("-", 1)[0]
    return {
        "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
        "data": [
            {
                "details": [
                    {
                        "bkLoss": "0",
                        "bkPx": str(price),
                        "ccy": "",
                        "posSide": pos_side,
                        "side": "sell" if pos_side == "long" else "buy",
                        "sz": str(contracts),
                        "ts": str(ts_ms),
                    }
                ],
                "instFamily": family,
                "instId": inst_id,
                "instType": "SWAP",
                "uly": family,
            }
        ],
    }


def binance_mark_price(
    symbol_id: str, mark: float, index: float, rate: float, next_ms: int, ts_ms: int
) -> dict[str, Any]:
    return {
        "e": "markPriceUpdate",
        "E": ts_ms,
        "s": symbol_id,
        "p": f"{mark:.8f}",
        "i": f"{index:.8f}",
        "P": f"{index:.8f}",
        "r": f"{rate:.8f}",
        "T": next_ms,
    }


def bybit_ticker(
    symbol_id: str, *, mark: float, index: float, rate: float, next_ms: int, interval_h: int = 8
) -> dict[str, Any]:
    """A ``tickers.<symbol>`` snapshot's data (linear or inverse perpetual)."""
    return {
        "symbol": symbol_id,
        "tickDirection": "PlusTick",
        "price24hPcnt": "0.01",
        "lastPrice": str(mark),
        "prevPrice24h": str(mark),
        "highPrice24h": str(mark),
        "lowPrice24h": str(mark),
        "prevPrice1h": str(mark),
        "markPrice": str(mark),
        "indexPrice": str(index),
        "openInterest": "1000",
        "openInterestValue": "1e8",
        "turnover24h": "0",
        "volume24h": "0",
        "nextFundingTime": str(next_ms),
        "fundingRate": str(rate),
        "fundingIntervalHour": str(interval_h),
        "bid1Price": str(mark),
        "bid1Size": "1",
        "ask1Price": str(mark),
        "ask1Size": "1",
    }


def bybit_ticker_delta(symbol_id: str, ts_ms: int, **changed: str) -> dict[str, Any]:
    """A ``tickers.<symbol>`` delta: only the fields that changed (``fundingRate="0.0006"``)."""
    return {
        "topic": f"tickers.{symbol_id}",
        "type": "delta",
        "cs": ts_ms,
        "ts": ts_ms,
        "data": {"symbol": symbol_id, **changed},
    }


def okx_funding_rate(inst_id: str, rate: float, funding_ms: int, interval_h: int, ts_ms: int) -> dict[str, Any]:
    """A ``funding-rate`` push: ``fundingTime`` is the settlement the rate applies to, ``nextFundingTime`` the next."""
    return {
        "arg": {"channel": "funding-rate", "instId": inst_id},
        "data": [
            {
                "formulaType": "withRate",
                "fundingRate": f"{rate:.10f}",
                "fundingTime": str(funding_ms),
                "impactValue": "",
                "instId": inst_id,
                "instType": "SWAP",
                "interestRate": "0.0001",
                "maxFundingRate": "0.00375",
                "method": "current_period",
                "minFundingRate": "-0.00375",
                "nextFundingRate": "",
                "nextFundingTime": str(funding_ms + interval_h * 3_600_000),
                "premium": "0.0001",
                "settFundingRate": f"{rate:.10f}",
                "settState": "settled",
                "ts": str(ts_ms),
            }
        ],
    }


def okx_mark_price(inst_id: str, mark: float, ts_ms: int) -> dict[str, Any]:
    """A ``mark-price`` push (SWAP or FUTURES, from the instrument id)."""
    inst_type = "SWAP" if inst_id.endswith("-SWAP") else "FUTURES"
    return {
        "arg": {"channel": "mark-price", "instId": inst_id},
        "data": [{"instType": inst_type, "instId": inst_id, "markPx": str(mark), "ts": str(ts_ms)}],
    }


def okx_index(index_id: str, px: float, ts_ms: int) -> dict[str, Any]:
    """An ``index-tickers`` push for ``BTC-USDT`` / ``BTC-USD``."""
    return {
        "arg": {"channel": "index-tickers", "instId": index_id},
        "data": [
            {
                "instId": index_id,
                "idxPx": str(px),
                "high24h": str(px),
                "low24h": str(px),
                "open24h": str(px),
                "sodUtc0": str(px),
                "sodUtc8": str(px),
                "ts": str(ts_ms),
            }
        ],
    }


def deribit_ticker(
    name: str, *, mark: float, index: float, ts_ms: int, funding_8h: float | None = None, delivery: float | None = None
) -> dict[str, Any]:
    """A ``ticker.<name>.100ms`` notification; perpetuals carry ``funding_8h`` and ``current_funding``."""
    data: dict[str, Any] = {
        "timestamp": ts_ms,
        "stats": {"volume_usd": 1e8, "volume": 1000.0, "price_change": 0.5, "low": mark, "high": mark},
        "state": "open",
        "settlement_price": index,
        "open_interest": 1e8,
        "min_price": mark * 0.97,
        "max_price": mark * 1.03,
        "mark_price": mark,
        "last_price": mark,
        "instrument_name": name,
        "index_price": index,
        "estimated_delivery_price": index if delivery is None else delivery,
        "best_bid_price": mark - 0.5,
        "best_bid_amount": 1000.0,
        "best_ask_price": mark + 0.5,
        "best_ask_amount": 1000.0,
    }
    if funding_8h is not None:
        data.update(funding_8h=funding_8h, current_funding=funding_8h / 8, interest_value=0.0)
    return {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"channel": f"ticker.{name}.100ms", "data": data},
    }


@dataclass
class _Conn:
    venue: str
    ws: web.WebSocketResponse
    topics: set[str] = field(default_factory=set)


class WsExchangeDouble:
    """The local websocket server; ``async with WsExchangeDouble() as ws: ws.ws_url("okx")``."""

    VENUES = ("binanceusdm", "binancecoinm", "bybit", "okx", "deribit")

    def __init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_get("/{venue}/{tail:.*}", self._handle)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.live: dict[str, list[_Conn]] = defaultdict(list)
        self.connections: dict[str, int] = defaultdict(int)
        self.stalled: set[str] = set()
        self.replay: dict[str, list[Any]] = defaultdict(list)
        self.bybit_tickers: dict[str, dict[str, Any]] = {}  # symbol id -> the snapshot sent on subscription
        self.okx_state: dict[str, Any] = {}  # "mark-price:BTC-USDT-SWAP" -> the frame sent on subscription
        self.deribit_names: set[str] | None = None  # instruments deribit lists (None: any); others are refused
        self.okx_inst_ids: set[str] | None = None  # instIds okx lists (None: any); others answered error 60018
        self.bybit_symbols: set[str] | None = None  # symbols bybit lists (None: any); others refused
        self.received: list[tuple[str, Any]] = []

    async def __aenter__(self) -> WsExchangeDouble:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started just above
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for conns in self.live.values():
            for c in list(conns):
                await c.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def ws_url(self, venue: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{venue}"

    def subscribed(self, venue: str, topic: str) -> bool:
        return any(topic in c.topics for c in self.live.get(venue, ()))

    async def wait_subscribed(self, venue: str, topic: str, within_s: float = 10.0) -> None:
        deadline = time.monotonic() + within_s
        while not self.subscribed(venue, topic):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{venue}: nobody subscribed to {topic}")
            await asyncio.sleep(0.01)

    # controls -----------------------------------------------------------------------------
    async def push(self, venue: str, topic: str, frame: Any) -> int:
        """Send ``frame`` to every live, not stalled connection subscribed to ``topic``; returns how many."""
        if venue in self.stalled:
            return 0
        text = json.dumps(frame, separators=(",", ":"))
        sent = 0
        for c in list(self.live.get(venue, ())):
            if topic in c.topics and not c.ws.closed:
                await c.ws.send_str(text)
                sent += 1
        return sent

    async def push_raw(self, venue: str, text: str) -> None:
        """Send ``text`` as it is (garbage, truncated JSON) to every live connection of the venue."""
        for c in list(self.live.get(venue, ())):
            if not c.ws.closed:
                await c.ws.send_str(text)

    async def drop(self, venue: str) -> None:
        """Close the venue's connections abruptly."""
        for c in list(self.live.get(venue, ())):
            await c.ws.close(code=1011)

    def stall(self, venue: str, on: bool = True) -> None:
        """Keep the venue's connections open but send nothing (no data, no pongs) while on."""
        (self.stalled.add if on else self.stalled.discard)(venue)

    async def _deribit_subscribe(self, c: _Conn, msg: dict[str, Any]) -> None:
        channels = list((msg.get("params") or {}).get("channels") or [])
        us = _ms() * 1000
        envelope = {"jsonrpc": "2.0", "id": msg.get("id"), "usIn": us, "usOut": us + 90, "usDiff": 90, "testnet": False}
        names = self.deribit_names
        if names is not None and any(ch.split(".")[1] not in names for ch in channels):
            reason = {"reason": "wrong format", "param": "channels"}
            error = {"message": "Invalid params", "data": reason, "code": -32602}
            await c.ws.send_str(json.dumps({**envelope, "error": error}))
            return
        c.topics.update(channels)
        await c.ws.send_str(json.dumps({**envelope, "result": channels}))

    # protocol --------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        venue = request.match_info["venue"]
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        self.connections[venue] += 1
        conn = _Conn(venue, ws)
        self.live[venue].append(conn)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.PING:
                    if venue not in self.stalled:
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
        finally:
            self.live[venue].remove(conn)
        return ws

    async def _on_text(self, c: _Conn, text: str) -> None:
        if text == "ping":  # okx's text ping
            if c.venue not in self.stalled:
                await c.ws.send_str("pong")
            return
        msg = json.loads(text)
        self.received.append((c.venue, msg))
        if c.venue in ("binanceusdm", "binancecoinm"):
            if msg.get("method") == "SUBSCRIBE":
                c.topics.update(msg.get("params", []))
                await c.ws.send_str(json.dumps({"result": None, "id": msg.get("id")}))
        elif c.venue == "bybit":
            op = msg.get("op")
            if op == "ping":
                if c.venue not in self.stalled:
                    await c.ws.send_str(
                        json.dumps(
                            {
                                "success": True,
                                "ret_msg": "pong",
                                "conn_id": "double",
                                "req_id": msg.get("req_id"),
                                "op": "ping",
                            }
                        )
                    )
                return
            if op == "subscribe":
                known = self.bybit_symbols
                refused = [t for t in msg.get("args", []) if known is not None and t.split(".", 1)[1] not in known]
                if refused:
                    reply = {"success": False, "ret_msg": f"Invalid symbol :[{','.join(refused)}]", "conn_id": "double"}
                    await c.ws.send_str(json.dumps({**reply, "req_id": msg.get("req_id"), "op": "subscribe"}))
                    return
                c.topics.update(msg.get("args", []))
                await c.ws.send_str(
                    json.dumps(
                        {
                            "success": True,
                            "ret_msg": "",
                            "conn_id": "double",
                            "req_id": msg.get("req_id"),
                            "op": "subscribe",
                        }
                    )
                )
                for topic in msg.get("args", []):  # a tickers subscription starts with a full snapshot
                    data = self.bybit_tickers.get(topic.split(".", 1)[1]) if topic.startswith("tickers.") else None
                    if data is not None:
                        await c.ws.send_str(
                            json.dumps({"topic": topic, "type": "snapshot", "cs": _ms(), "ts": _ms(), "data": data})
                        )
        elif c.venue == "okx" and msg.get("op") == "subscribe":
            for arg in msg.get("args", []):
                inst, listed = arg.get("instId"), self.okx_inst_ids
                if listed is not None and inst and arg.get("channel") != "index-tickers" and inst not in listed:
                    text = f"Wrong URL or channel:{arg.get('channel')},instId:{inst} doesn't exist."
                    await c.ws.send_str(json.dumps({"event": "error", "code": "60018", "msg": text, "connId": "d"}))
                    continue
                topic = arg.get("channel", "") + ":" + (arg.get("instType") or arg.get("instId") or "")
                c.topics.add(topic)
                await c.ws.send_str(json.dumps({"event": "subscribe", "arg": arg, "connId": "double"}))
                if topic in self.okx_state and c.venue not in self.stalled:
                    await c.ws.send_str(json.dumps(self.okx_state[topic], separators=(",", ":")))
        elif c.venue == "deribit" and msg.get("method") == "public/subscribe":
            await self._deribit_subscribe(c, msg)
        for frame in self.replay.get(c.venue, ()):
            await c.ws.send_str(json.dumps(frame, separators=(",", ":")))
