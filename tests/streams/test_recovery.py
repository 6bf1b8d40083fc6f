"""A stream that is closed or goes silent is replaced; /status shows each stream's state."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from core.keys import Keys
from core.render import to_plain
from tests.builders import command_core
from tests.fakes.ws_exchanges import binance_force_order, bybit_liquidation, okx_liquidation
from tests.streams.harness import FAST, VENUES, harness, now_ms, until
from watchers.streams import StreamWatcher


async def test_closed_connection_recovers_and_resubscribes(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        w = h.start("binanceusdm", "liqs", h.liq_sink("binanceusdm"))
        await h.ws.wait_subscribed("binanceusdm", "!forceOrder@arr")
        await h.ws.drop("binanceusdm")
        await until(lambda: w.reconnects == 1 and h.ws.connections["binanceusdm"] == 2, what="a reconnect")
        await h.ws.wait_subscribed("binanceusdm", "!forceOrder@arr")
        await h.ws.push("binanceusdm", "!forceOrder@arr", binance_force_order("BTCUSDT", "SELL", 1, 100_000, now_ms()))
        await until(lambda: h.events.since("BTC", ["binanceusdm"], 0), what="an event after the reconnect")
        await until(lambda: w.state == "live")
        await until(lambda: w._published_messages >= 1, what="health published")
        reply = to_plain(await command_core(h.store, VENUES, alerts=False).run("status", []))
        row = next(line for line in reply.splitlines() if "binance liqs" in line)
        assert row.split()[2] == "live" and row.split()[-1] == "1"  # state, reconnects
        assert "Websocket streams" in reply


async def test_silent_stall_is_detected_and_replaced(redis: Redis, keys: Keys) -> None:
    """No frame for stall_after_s (ccxt's own pings far apart): the watcher drops the connection and redials."""
    async with harness(redis, keys) as h:
        sink = h.liq_sink("okx")
        w = h.start("okx", "liqs", sink, ping_interval_s=60)
        await h.ws.wait_subscribed("okx", "liquidation-orders:SWAP")
        await h.ws.push("okx", "liquidation-orders:SWAP", okx_liquidation("BTC-USDT-SWAP", "long", 1, 1e5, now_ms()))
        await until(lambda: w.state == "live")
        h.ws.stall("okx")
        await until(lambda: w.reconnects >= 1, within_s=5, what="the stall detected")
        assert w.last_error is not None and "StreamStalled" in w.last_error
        assert not w.owns("liqs")
        h.ws.stall("okx", False)
        await until(lambda: h.ws.connections["okx"] >= 2)
        await h.ws.wait_subscribed("okx", "liquidation-orders:SWAP")
        await h.ws.push("okx", "liquidation-orders:SWAP", okx_liquidation("ETH-USDT-SWAP", "short", 2, 3500, now_ms()))
        await until(lambda: h.events.since("ETH", ["okx"], 0), what="data after the stall")
        assert w.state == "live" and w.owns("liqs")


async def test_bybit_per_symbol_stream_recovers(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        w = h.start("bybit", "liqs", h.liq_sink("bybit"))
        await h.ws.wait_subscribed("bybit", "allLiquidation.BTCUSDT")
        await h.ws.drop("bybit")
        await until(lambda: w.reconnects >= 1)
        await h.ws.wait_subscribed("bybit", "allLiquidation.BTCUSDT")
        await h.ws.push("bybit", "allLiquidation.BTCUSDT", bybit_liquidation("BTCUSDT", "Buy", 0.3, 100_000, now_ms()))
        await until(lambda: h.events.since("BTC", ["bybit"], 0))
        (e,) = (await h.events.since("BTC", ["bybit"], 0))["bybit"]
        assert e.side == "long" and abs(e.usd - 30_000) < 1e-6


async def test_garbage_frames_never_count_and_the_stream_recovers(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        await h.rule("liqs btc above 1m 1h")
        sink = h.liq_sink("binanceusdm")
        w = h.start("binanceusdm", "liqs", sink)
        topic = "!forceOrder@arr"
        await h.ws.wait_subscribed("binanceusdm", topic)
        t = now_ms()
        await h.ws.push("binanceusdm", topic, binance_force_order("BTCUSDT", "SELL", 1e9, 100_000, t))  # $1e14
        bad = binance_force_order("BTCUSDT", "SELL", 1, 100_000, t)
        bad["o"]["ap"] = "abc"
        await h.ws.push("binanceusdm", topic, bad)
        await h.ws.push("binanceusdm", topic, binance_force_order("ETHUSDT", "BUY", 2, 3_500, t))
        await until(lambda: h.events.since("ETH", ["binanceusdm"], 0), what="the good frame")
        assert sink.rejected == 1 and await h.events.since("BTC", ["binanceusdm"], 0) == {}
        await h.ws.push_raw("binanceusdm", "garbage")
        await h.ws.push_raw("binanceusdm", '{"e":"forceOrder","o":{"s":')  # truncated JSON: ccxt's reader dies
        await until(lambda: w.reconnects >= 1, within_s=5, what="the silent connection replaced")
        await h.ws.wait_subscribed("binanceusdm", topic)
        await h.ws.push("binanceusdm", topic, binance_force_order("SOLUSDT", "SELL", 10, 150, now_ms()))
        await until(lambda: h.events.since("SOL", ["binanceusdm"], 0), within_s=8, what="data after the garbage")
        assert w.state == "live" and await h.fired() == []


async def test_a_standby_replica_streams_only_while_it_holds_the_venue(redis: Redis, keys: Keys) -> None:
    """With data replicas, the process holding the venue's poll lease streams it; the others stand by."""
    async with harness(redis, keys) as h:
        held = [False]
        w = StreamWatcher(h.client("okx"), "liqs", h.liq_sink("okx"), h.health, FAST, allowed=lambda: held[0])
        h.tasks.append(asyncio.create_task(w.run(stop=h.stop)))
        await until(lambda: w.state == "standby")
        await asyncio.sleep(0.3)
        assert h.ws.connections["okx"] == 0
        held[0] = True
        await h.ws.wait_subscribed("okx", "liquidation-orders:SWAP")
        held[0] = False
        await until(lambda: w.state == "standby" and not h.ws.live["okx"], what="the connection handed back")
        assert w.reconnects == 0  # standing by is not a failure
