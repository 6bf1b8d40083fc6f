"""Funding by binance's markPrice@1s stream: coalesced upserts, rules without a poll, REST fallback and hand-back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from core.keys import Keys
from core.render import to_plain
from tests.builders import command_core, read
from tests.fakes.ws_exchanges import binance_mark_price, bybit_ticker, bybit_ticker_delta
from tests.streams.harness import FAST, Harness, harness, now_ms, until
from watchers.errors import SourceError
from watchers.streams import StreamWatcher
from watchers.venues import VenueClient

TOPIC = "!markPrice@arr@1s"
STREAM_RATE = 0.0003


@contextlib.asynccontextmanager
async def ticking(h: Harness, rate: list[float], every_s: float = 0.05) -> AsyncIterator[None]:
    """The venue's 1 Hz feed (faster here): every perpetual's mark, index and ``rate[0]``."""

    next_ms = (now_ms() // 28_800_000 + 1) * 28_800_000

    async def tick() -> None:
        while True:
            t = now_ms()
            await h.ws.push(
                "binanceusdm",
                TOPIC,
                [
                    binance_mark_price("BTCUSDT", 100_020.0, 100_000.0, rate[0], next_ms, t),
                    binance_mark_price("ETHUSDT", 3_500.5, 3_500.0, 0.0001, next_ms, t),
                ],
            )
            await asyncio.sleep(every_s)

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def btc_rate(h: Harness) -> float | None:
    got = await read(h.store, "funding", "BTC", ["binanceusdm"], registry=h.registry)
    rows = [s for s in got.get("binanceusdm", ()) if s.symbol == "BTC/USDT:USDT"]
    return rows[0].rate_per_interval if rows else None


async def rate_is(h: Harness, rate: float) -> bool:
    return await btc_rate(h) == rate


async def test_rest_fallback_takes_over_and_hands_back(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        rest_rate = next(p.funding_rate for p in h.rest.venues["binanceusdm"].perps if p.asset == "BTC")
        stream: list[StreamWatcher] = []
        client = VenueClient("binanceusdm", timeout_s=2.0, rest_base_url=h.rest.url("binanceusdm"))
        poll = h.poll(client, stream)
        try:
            await poll.poll_once()
            assert await btc_rate(h) == rest_rate
            stream.append(h.start("binanceusdm", "funding", h.funding_sink("binanceusdm")))
            rate = [STREAM_RATE]
            async with ticking(h, rate):
                await until(lambda: stream[0].owns("funding"), what="the stream live")
                await until(lambda: rate_is(h, STREAM_RATE), what="the streamed rate stored")
                await poll.poll_once()
                assert await btc_rate(h) == STREAM_RATE  # the poll leaves a live stream's metric alone
                h.ws.stall("binanceusdm")
                await until(lambda: not stream[0].owns("funding"), within_s=5, what="the stream down")
                await poll.poll_once()
                assert await btc_rate(h) == rest_rate  # fallback: the poll writes funding again
                h.ws.stall("binanceusdm", False)
                await until(lambda: stream[0].owns("funding"), within_s=5, what="the stream back")
                await until(lambda: rate_is(h, STREAM_RATE), what="the stream's rate again")
                await poll.poll_once()
                assert await btc_rate(h) == STREAM_RATE
            assert stream[0].reconnects >= 1
        finally:
            await client.close()


async def test_coalesced_writes_and_alert_without_waiting_for_a_poll(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        await h.rule("funding btc above 0.05%")
        sink = h.funding_sink("binanceusdm", refresh_s=60)
        w = h.start("binanceusdm", "funding", sink)
        rate = [0.0001]
        async with ticking(h, rate, every_s=0.02):
            await until(lambda: sink.writes >= 1 and w.messages >= 20, what="twenty ticks")
            assert sink.writes == 1  # nothing moved beyond the tolerance: one write for twenty ticks
            assert await h.fired() == []
            rate[0] = 0.0007
            await until(lambda: h.fired(), within_s=3, what="the alert")
        assert sink.writes == 2
        (alert,) = await h.fired()
        assert alert["topic"] == "funding:BTC"
        assert await btc_rate(h) == 0.0007
        # history as the poll keeps it: one point per history step (300 s by default), not one per write
        assert len(await h.store.read_history("funding", "BTC", "binanceusdm", 0)) == 1


async def test_bybit_tickers_own_their_symbols_and_the_poll_keeps_the_rest(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        await h.rule("funding btc above 0.05% venue bybit")
        nf = (now_ms() // 28_800_000 + 1) * 28_800_000
        for sym in ("BTCUSDT", "BTCUSD"):
            h.ws.bybit_tickers[sym] = bybit_ticker(sym, mark=100_010.0, index=100_000.0, rate=0.0002, next_ms=nf)
        client = VenueClient("bybit", timeout_s=2.0, rest_base_url=h.rest.url("bybit"))
        stream: list[StreamWatcher] = []
        poll = h.poll(client, stream, evaluate=True)
        try:
            await poll.poll_once()
            stream.append(h.start("bybit", "funding", h.funding_sink("bybit")))
            await until(lambda: stream[0].owns("funding"), what="the stream live")
            assert stream[0].owns("funding") == {"BTC/USDT:USDT", "BTC/USD:BTC"}  # the perpetuals of BTC only

            async def rates(asset: str) -> dict[str, float]:
                got = await read(h.store, "funding", asset, ["bybit"], registry=h.registry)
                return {s.symbol: s.rate_per_interval for s in got.get("bybit", ())}

            async def snapshots_stored() -> bool:
                return await rates("BTC") == {"BTC/USDT:USDT": 0.0002, "BTC/USD:BTC": 0.0002}

            await until(snapshots_stored, what="the snapshots stored")
            for p in h.rest.venues["bybit"].perps:
                p.funding_rate = 0.00009
            await poll.poll_once()
            assert await rates("BTC") == {"BTC/USDT:USDT": 0.0002, "BTC/USD:BTC": 0.0002}  # streamed rows stay
            assert set((await rates("ETH")).values()) == {0.00009}  # the rest comes from the poll
            assert await h.fired() == []

            await h.ws.push("bybit", "tickers.BTCUSDT", bybit_ticker_delta("BTCUSDT", now_ms(), fundingRate="0.0006"))
            await until(lambda: h.fired(), within_s=3, what="the alert on the delta")
            got = await read(h.store, "funding", "BTC", ["bybit"], registry=h.registry)
            (linear,) = [s for s in got["bybit"] if s.symbol == "BTC/USDT:USDT"]
            assert linear.rate_per_interval == 0.0006 and linear.mark_usd == 100_010.0  # the delta merged in
        finally:
            await client.close()


async def test_streamed_rows_stay_current_while_the_rest_poll_fails(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        client = VenueClient("binanceusdm", timeout_s=2.0, rest_base_url=h.rest.url("binanceusdm"))
        stream: list[StreamWatcher] = []
        poll = h.poll(client, stream)
        core = command_core(h.store, ["binanceusdm"], alerts=False)
        try:
            await poll.poll_once()
            h.rest.venues["binanceusdm"].fault = "500"
            with pytest.raises(SourceError):
                await poll.poll_once()
            down = to_plain(await core.run("funding", ["btc"]))
            assert "binance*" in down and "not current" in down
            # the stream takes the markets the poll loaded: it starts while REST is down
            stream.append(h.start("binanceusdm", "funding", h.funding_sink("binanceusdm"), rest=client))
            async with ticking(h, [STREAM_RATE]):
                await until(lambda: rate_is(h, STREAM_RATE), what="the streamed rate stored")
                await asyncio.sleep(FAST.publish_every_s * 2)  # the stream's health published
                with pytest.raises(SourceError):
                    await poll.poll_once()  # REST still down
                await asyncio.sleep(FAST.publish_every_s * 2)
                live = to_plain(await core.run("funding", ["btc"]))
                assert "binance*" not in live and "not current" not in live, live
                assert f"Mean {STREAM_RATE * 100:+.4f}%/8h" in live
        finally:
            await client.close()


async def test_a_crossing_inside_a_burst_is_not_left_for_the_next_frame(redis: Redis, keys: Keys) -> None:
    """Frames arriving while the previous batch is stored find no pending watch; they still count at once."""
    async with harness(redis, keys) as h:
        await h.rule("funding btc above 0.05%")
        h.start("binanceusdm", "funding", h.funding_sink("binanceusdm"))
        await h.ws.wait_subscribed("binanceusdm", TOPIC)
        nf = (now_ms() // 28_800_000 + 1) * 28_800_000
        for i, rate in enumerate((0.0001, 0.0001, 0.0002, 0.0007)):  # back to back, no frame after the last
            t = now_ms() + i
            frame = [binance_mark_price("BTCUSDT", 100_000.0 + i, 100_000.0, rate, nf, t)]
            await h.ws.push("binanceusdm", TOPIC, frame)
        await until(lambda: h.fired(), within_s=2, what="the alert from the last frame of the burst")
        assert await btc_rate(h) == 0.0007
