"""Liquidations through the real ccxt.pro clients and the websocket double: windows, rules, replays."""

from __future__ import annotations

from redis.asyncio import Redis

from core.alerts.events import AlertEvent
from core.keys import Keys
from core.render import to_plain
from tests.builders import command_core
from tests.fakes.exchange_payloads import inverse_contract_usd
from tests.fakes.ws_exchanges import binance_force_order, bybit_liquidation, okx_liquidation
from tests.streams.harness import VENUES, Harness, harness, now_ms, until

BTC = 100_000.0
H = 3_600_000
TOPICS = {
    "binanceusdm": "!forceOrder@arr",
    "binancecoinm": "!forceOrder@arr",
    "bybit": "allLiquidation.BTCUSDT",
    "okx": "liquidation-orders:SWAP",
}
OKX_BTC_CT = 0.01  # coins per BTC-USDT-SWAP contract, as okx lists it


def k(x: float) -> str:
    """How the replies show thousands of dollars: $90.00k, $160.0k."""
    return f"${x / 1e3:,.{1 if x >= 1e5 else 2}f}k"


async def stored(h: Harness, n: int) -> None:
    async def count() -> bool:
        got = await h.events.since("BTC", VENUES, 0)
        return sum(len(v) for v in got.values()) >= n

    await until(count, what=f"{n} stored liquidations")


async def test_windows_summed_per_venue_and_threshold_fires_once(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        await h.rule("liqs btc above 150k 1h")
        await h.rule("liqs btc short above 45k 24h")
        for v in VENUES:
            h.start(v, "liqs", h.liq_sink(v, max_event_age_s=86_400))
        for v, topic in TOPICS.items():
            await h.ws.wait_subscribed(v, topic)
        t = now_ms()
        binance = TOPICS["binanceusdm"]
        await h.ws.push("binanceusdm", binance, binance_force_order("BTCUSDT", "SELL", 0.5, BTC, t - 60_000))
        await h.ws.push("binanceusdm", binance, binance_force_order("BTCUSDT", "BUY", 0.3, BTC, t - 2 * H))
        await h.ws.push(
            "binancecoinm", TOPICS["binancecoinm"], binance_force_order("BTCUSD_PERP", "BUY", 10, BTC, t - 10 * H)
        )
        await h.ws.push("bybit", TOPICS["bybit"], bybit_liquidation("BTCUSDT", "Sell", 0.2, BTC, t - 30_000))
        await h.ws.push("okx", TOPICS["okx"], okx_liquidation("BTC-USDT-SWAP", "long", 50, BTC, t - 10_000))
        await stored(h, 5)
        # 1h: binance long 50k, bybit short 20k, okx long 0.5 BTC = 50k: 120k, under 150k
        # 24h shorts: binance 30k + binance-cm 10 x 100 USD + bybit 20k = 51k, over 45k
        await until(lambda: h.fired(), what="the 24h short rule")
        (first,) = await h.fired()
        e = AlertEvent.from_json(first["event"])
        assert e.field == "short:86400" and abs(e.value - (30_000 + 10 * inverse_contract_usd("BTC") + 20_000)) < 1e-6

        await h.ws.push("binanceusdm", TOPICS["binanceusdm"], binance_force_order("BTCUSDT", "SELL", 0.4, BTC, t))
        await until(lambda: len_fired(h, 2), what="the 1h rule")
        alerts = await h.fired()
        e = AlertEvent.from_json(alerts[1]["event"])
        assert e.field == "total:3600" and abs(e.value - (50_000 + 20_000 + 50 * OKX_BTC_CT * BTC + 40_000)) < 1e-6
        text = to_plain(h.registry.render(e))
        assert f"BTC liquidations above {k(150_000)} in 1h" in text and f"Now {k(160_000)}" in text
        assert "lower bounds" in text

        # the same frames again (a venue replaying after a reconnect): stored once, nothing fires again
        await h.ws.push("binanceusdm", TOPICS["binanceusdm"], binance_force_order("BTCUSDT", "SELL", 0.4, BTC, t))
        await h.ws.push("okx", TOPICS["okx"], okx_liquidation("BTC-USDT-SWAP", "long", 50, BTC, t - 10_000))
        await until(lambda: h.svc.latest.get(("liqs", "BTC")) is not None)
        await h.ws.push("bybit", TOPICS["bybit"], bybit_liquidation("BTCUSDT", "Sell", 0.01, BTC, t))  # a marker
        await stored(h, 7)
        assert len(await h.fired()) == 2
        got = await h.events.since("BTC", VENUES, 0)
        assert sum(len(v) for v in got.values()) == 7  # 6 events and the marker; the replays added nothing

        core = command_core(h.store, VENUES, alerts=False)
        reply = to_plain(await core.run("liqs", ["btc"]))
        lines = reply.splitlines()
        binance = next(line for line in lines if line.lstrip().startswith("binance ") and "$" in line)
        # binance: long 1h 90k, short 1h 0, long 4h 90k, short 4h 30k, long 24h 90k, short 24h 30k
        assert binance.split()[1:] == [k(90_000), "$0", k(90_000), k(30_000), k(90_000), k(30_000)]
        total = next(line for line in lines if line.lstrip().startswith("total"))
        long_1h, short_1h = 90_000 + 50_000, 20_000 + 1_000  # bybit's marker is 0.01 BTC short
        short_24h = 30_000 + 10 * inverse_contract_usd("BTC") + 20_000 + 1_000
        assert total.split()[1:] == [
            k(long_1h),
            k(short_1h),
            k(long_1h),
            k(short_1h + 30_000),
            k(long_1h),
            k(short_24h),
        ]
        assert "lower bounds" in reply and "at most one liquidation per symbol per second" in reply
        largest = reply.split("Largest single liquidations")[1]
        rows = [line.split() for line in largest.splitlines() if "$" in line]
        assert [r[3] for r in rows] == [k(50_000), k(50_000), k(40_000), k(30_000), k(20_000)]
        assert {r[0] for r in rows[:2]} == {"binance", "okx"} and rows[2][:3] == ["binance", "long", "0.4"]


async def len_fired(h: Harness, n: int) -> bool:
    return len(await h.fired()) >= n


async def test_replay_on_connect_stale_and_duplicate_frames_dropped(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        t = now_ms()
        old = okx_liquidation("BTC-USDT-SWAP", "short", 20, BTC, t - 10 * 60_000)  # 10 minutes old on arrival
        seen = okx_liquidation("ETH-USDT-SWAP", "long", 30, 3_500.0, t)
        h.ws.replay["okx"] = [old]
        sink = h.liq_sink("okx", max_event_age_s=60)
        h.start("okx", "liqs", sink)
        await h.ws.wait_subscribed("okx", TOPICS["okx"])
        await until(lambda: sink.dropped_stale == 1, what="the replayed old frame dropped")
        await h.ws.push("okx", TOPICS["okx"], seen)
        await until(lambda: h.events.since("ETH", ["okx"], 0), what="the fresh event")
        h.ws.replay["okx"] = [seen]  # after the reconnect the venue replays what we already have
        await h.ws.drop("okx")
        await until(lambda: h.ws.connections["okx"] >= 2 and sink.dropped_duplicate == 1, what="the replay deduped")
        assert await h.events.since("BTC", ["okx"], 0) == {}
        (eth,) = (await h.events.since("ETH", ["okx"], 0))["okx"]
        assert eth.side == "long" and abs(eth.coins - 30 * 0.1) < 1e-9 and abs(eth.usd - 3 * 3_500.0) < 1e-6


async def test_two_processes_agree_on_one_set_of_events(redis: Redis, keys: Keys) -> None:
    """Two watchers on one venue (two processes sharing Redis) store each event once and see the same windows."""
    async with harness(redis, keys) as h:
        a, b = h.liq_sink("binanceusdm"), h.liq_sink("binanceusdm")
        h.start("binanceusdm", "liqs", a)
        h.start("binanceusdm", "liqs", b)
        await until(
            lambda: sum(TOPICS["binanceusdm"] in c.topics for c in h.ws.live["binanceusdm"]) == 2,
            what="two subscriptions",
        )
        t = now_ms()
        for i in range(3):
            sent = await h.ws.push(
                "binanceusdm", TOPICS["binanceusdm"], binance_force_order("BTCUSDT", "SELL", 0.1 * (i + 1), BTC, t + i)
            )
            assert sent == 2
        await until(lambda: a.dropped_duplicate + b.dropped_duplicate == 3, what="each event seen twice")
        (events,) = (await h.events.since("BTC", ["binanceusdm"], 0)).values()
        assert len(events) == 3
        (w,) = await h.events.windows([("BTC", "binanceusdm")], now_ms())
        assert abs(w.long_1h - (0.1 + 0.2 + 0.3) * BTC) < 1e-6 and w.short_24h == 0
