"""Funding and basis by websocket on every venue that streams them: okx's three channels joined,
deribit's ticker channels, binance's markPrice@1s for dated futures, bybit's futures tickers; the
poll keeps what the stream does not carry, takes over while it is down and hands back."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from core.keys import Keys
from core.models import BasisSample, FundingSample
from core.render import to_plain
from tests.builders import command_core, read
from tests.fakes.exchange_payloads import binance_symbol, bybit_symbol, deribit_name, okx_inst_id
from tests.fakes.exchanges import Future
from tests.fakes.ws_exchanges import (
    binance_mark_price,
    bybit_ticker,
    deribit_ticker,
    okx_funding_rate,
    okx_index,
    okx_mark_price,
)
from tests.streams.harness import FAST, Harness, harness, now_ms, until
from watchers.errors import SourceError
from watchers.streams import StreamWatcher
from watchers.venues import VenueClient

EIGHT_H = 28_800_000


def next_funding() -> int:
    return (now_ms() // EIGHT_H + 1) * EIGHT_H


def expiry_ms(f: Future) -> int:
    return int(dt.datetime.combine(f.expiry, dt.time(8), tzinfo=dt.UTC).timestamp() * 1000)


def btc_futures(h: Harness, venue: str) -> list[Future]:
    return [f for f in h.rest.venues[venue].futures if f.asset == "BTC"]


async def latest(h: Harness, metric: str, asset: str, venue: str) -> dict[str, Any]:
    got = await read(h.store, metric, asset, [venue], registry=h.registry)
    return {s.symbol: s for s in got.get(venue, ())}


def ann_mark(index: float, ann: float, f: Future) -> float:
    """The future price at which ``f`` trades at ``ann`` annualized basis now."""
    days = (expiry_ms(f) - now_ms()) / 86_400_000
    return round(index * (1 + ann * days / 365), 2)


async def test_okx_funding_rate_mark_and_index_join_into_one_sample(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        await h.rule("funding btc above 0.05% venue okx")
        t, nf = now_ms(), next_funding()
        state = h.ws.okx_state
        state["funding-rate:BTC-USDT-SWAP"] = okx_funding_rate("BTC-USDT-SWAP", 0.0002, nf, 4, t)
        state["funding-rate:BTC-USD-SWAP"] = okx_funding_rate("BTC-USD-SWAP", -0.0001, nf, 8, t)
        state["mark-price:BTC-USDT-SWAP"] = okx_mark_price("BTC-USDT-SWAP", 100_050.0, t)
        state["mark-price:BTC-USD-SWAP"] = okx_mark_price("BTC-USD-SWAP", 99_990.0, t)
        state["index-tickers:BTC-USDT"] = okx_index("BTC-USDT", 100_000.0, t)
        state["index-tickers:BTC-USD"] = okx_index("BTC-USD", 99_980.0, t)
        w = h.start("okx", "funding", h.funding_sink("okx"))
        await until(lambda: w.owns("funding"), what="the stream live")
        assert w.owns("funding") == {"BTC/USDT:USDT", "BTC/USD:BTC"}  # the perpetuals of BTC only

        async def both_stored() -> bool:
            return set(await latest(h, "funding", "BTC", "okx")) == {"BTC/USDT:USDT", "BTC/USD:BTC"}

        await until(both_stored, what="both perpetuals stored")
        rows: dict[str, FundingSample] = await latest(h, "funding", "BTC", "okx")
        usdt, inverse = rows["BTC/USDT:USDT"], rows["BTC/USD:BTC"]
        assert (usdt.rate_per_interval, usdt.interval_s, usdt.next_funding_ms) == (0.0002, 14_400, nf)
        assert (usdt.mark_usd, usdt.index_usd) == (100_050.0, 100_000.0)  # the USDT index
        assert (inverse.rate_per_interval, inverse.interval_s) == (-0.0001, 28_800)
        assert (inverse.mark_usd, inverse.index_usd) == (99_990.0, 99_980.0)  # the USD index
        assert await h.fired() == []

        # one channel moving is enough: a new rate alone, then a new index alone
        await h.ws.push("okx", "funding-rate:BTC-USDT-SWAP", okx_funding_rate("BTC-USDT-SWAP", 0.0004, nf, 4, t + 5))
        await until(lambda: h.fired(), within_s=3, what="the alert on the rate push")  # 0.04%/4h = 0.08%/8h
        (alert,) = await h.fired()
        assert alert["topic"] == "funding:BTC"
        await h.ws.push("okx", "index-tickers:BTC-USDT", okx_index("BTC-USDT", 100_040.0, now_ms()))

        async def index_moved() -> bool:
            return (await latest(h, "funding", "BTC", "okx"))["BTC/USDT:USDT"].index_usd == 100_040.0

        await until(index_moved, what="the index push stored")
        row = (await latest(h, "funding", "BTC", "okx"))["BTC/USDT:USDT"]
        assert row.rate_per_interval == 0.0004 and row.mark_usd == 100_050.0  # the other channels' newest kept
        assert len(await h.fired()) == 1


async def test_okx_basis_streams_every_future_and_fires_without_a_poll(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        await h.rule("basis btc above 60% venue okx")
        futures = btc_futures(h, "okx")
        t = now_ms()
        for f in futures:
            h.ws.okx_state[f"mark-price:{okx_inst_id(f)}"] = okx_mark_price(okx_inst_id(f), ann_mark(1e5, 0.1, f), t)
        h.ws.okx_state["index-tickers:BTC-USDT"] = okx_index("BTC-USDT", 100_000.0, t)
        h.ws.okx_state["index-tickers:BTC-USD"] = okx_index("BTC-USD", 100_000.0, t)
        w = h.start("okx", "basis", h.tick_sink("okx", "basis"))
        await until(lambda: w.owns("basis"), what="the stream live")
        symbols = w.owns("basis")
        assert isinstance(symbols, frozenset) and len(symbols) == len(futures) == 4  # USDT and inverse, 2 expiries

        async def all_stored() -> bool:
            return set(await latest(h, "basis", "BTC", "okx")) == symbols

        await until(all_stored, what="every future stored")
        rows: dict[str, BasisSample] = await latest(h, "basis", "BTC", "okx")
        for f in futures:
            (s,) = [s for s in rows.values() if s.expiry_ms == expiry_ms(f) and s.inverse == (not f.linear)]
            assert s.index_usd == 100_000.0 and abs(s.basis_annualized(now_ms(), 3) - 0.1) < 0.01
        assert await h.fired() == []

        near = min(futures, key=lambda f: (f.expiry, f.linear))
        hot = okx_mark_price(okx_inst_id(near), ann_mark(1e5, 0.8, near), now_ms())
        await h.ws.push("okx", f"mark-price:{okx_inst_id(near)}", hot)
        await until(lambda: h.fired(), within_s=3, what="the basis alert")
        (alert,) = await h.fired()
        assert alert["topic"] == "basis:BTC"


async def test_deribit_ticker_channels_feed_funding_and_basis_the_poll_keeps_the_rest(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        client = VenueClient("deribit", timeout_s=2.0, rest_base_url=h.rest.url("deribit"))
        streams: list[StreamWatcher] = []

        poll = h.poll(client, streams)
        try:
            await poll.poll_once()
            rest = h.rest.venues["deribit"]
            futures = btc_futures(h, "deribit")
            names = {"BTC-PERPETUAL", "BTC_USDC-PERPETUAL", *(deribit_name(f) for f in futures)}
            h.ws.deribit_names = names
            streams.append(h.start("deribit", "funding", h.funding_sink("deribit"), rest=client))
            streams.append(h.start("deribit", "basis", h.tick_sink("deribit", "basis"), rest=client))
            await until(pushed_then(h, futures, lambda: all(s.owns(s.sink.metric) for s in streams)), what="live")
            assert streams[0].owns("funding") == {"BTC/USD:BTC", "BTC/USDC:USDC"}
            assert streams[1].owns("basis") == {f"BTC/USD:BTC-{f.expiry:%y%m%d}" for f in futures}

            async def streamed() -> bool:
                await _push_all(h, futures)
                fund = await latest(h, "funding", "BTC", "deribit")
                basis = await latest(h, "basis", "BTC", "deribit")
                return (
                    fund.get("BTC/USD:BTC") is not None
                    and fund["BTC/USD:BTC"].rate_per_interval == 0.0004
                    and all(s.future_usd == 101_500.0 for s in basis.values())
                )

            await until(streamed, what="funding and basis from the ticker channels")
            # the poll: the streamed rows stay, ETH and open interest still come from it
            for p in rest.perps:
                p.funding_rate = 0.00002
            for f in rest.futures:
                f.mark = round(f.index * 1.007, 2)
            oi_before = await latest(h, "oi", "BTC", "deribit")
            await poll.poll_once()
            fund = await latest(h, "funding", "BTC", "deribit")
            assert fund["BTC/USD:BTC"].rate_per_interval == 0.0004
            assert {s.rate_per_interval for s in (await latest(h, "funding", "ETH", "deribit")).values()} == {0.00002}
            assert {s.future_usd for s in (await latest(h, "basis", "BTC", "deribit")).values()} == {101_500.0}
            assert {s.future_usd for s in (await latest(h, "basis", "ETH", "deribit")).values()} == {3524.5}
            assert set(await latest(h, "oi", "BTC", "deribit")) == set(oi_before)

            # the stream goes silent: the poll takes over, then hands back when it returns
            h.ws.stall("deribit")
            await until(lambda: not any(s.owns(s.sink.metric) for s in streams), within_s=5, what="the streams down")
            await poll.poll_once()
            fund = await latest(h, "funding", "BTC", "deribit")
            assert fund["BTC/USD:BTC"].rate_per_interval == 0.00002
            assert {s.future_usd for s in (await latest(h, "basis", "BTC", "deribit")).values()} == {100_700.0}
            h.ws.stall("deribit", False)
            back = pushed_then(h, futures, lambda: all(s.owns(s.sink.metric) for s in streams), funding=0.0005)
            await until(back, within_s=10, what="the streams back")

            async def handed_back() -> bool:
                await _push_all(h, futures, funding=0.0005)
                return (await latest(h, "funding", "BTC", "deribit"))["BTC/USD:BTC"].rate_per_interval == 0.0005

            await until(handed_back, what="the stream's rate again")
            await poll.poll_once()
            assert (await latest(h, "funding", "BTC", "deribit"))["BTC/USD:BTC"].rate_per_interval == 0.0005
        finally:
            await client.close()


async def _push_all(h: Harness, futures: list[Future], funding: float = 0.0004) -> None:
    """One ticker frame per BTC instrument (deribit sends each every 100 ms)."""
    t = now_ms()
    for name in ("BTC-PERPETUAL", "BTC_USDC-PERPETUAL"):
        frame = deribit_ticker(name, mark=100_030.0, index=100_000.0, ts_ms=t, funding_8h=funding)
        await h.ws.push("deribit", f"ticker.{name}.100ms", frame)
    for f in futures:
        frame = deribit_ticker(deribit_name(f), mark=101_500.0, index=100_000.0, ts_ms=t)
        await h.ws.push("deribit", f"ticker.{deribit_name(f)}.100ms", frame)


def pushed_then(
    h: Harness, futures: list[Future], check: Callable[[], Any], funding: float = 0.0004
) -> Callable[[], Awaitable[Any]]:
    """For ``until``: push a round of deribit tickers, then look."""

    async def go() -> Any:
        await _push_all(h, futures, funding)
        got = check()
        return (await got) if asyncio.iscoroutine(got) else got

    return go


async def test_a_refused_deribit_subscription_backs_off_and_never_goes_live(redis: Redis, keys: Keys) -> None:
    """deribit answers a JSON-RPC error; ccxt's reader stops at it, so the silent connection is replaced."""
    async with harness(redis, keys) as h:
        h.ws.deribit_names = set()  # the venue lists none of them (renamed, delisted)
        w = h.start("deribit", "funding", h.funding_sink("deribit"))
        await until(lambda: w.reconnects >= 2, within_s=8, what="two refused attempts")
        assert h.ws.connections["deribit"] >= 2 and w.since_ms is None  # never live
        assert not w.owns("funding") and w.last_error is not None
        assert any(m.get("method") == "public/subscribe" for v, m in h.ws.received if v == "deribit")
        assert await latest(h, "funding", "BTC", "deribit") == {}
        h.ws.deribit_names = None  # listed again: the next attempt subscribes and goes live
        await until(pushed_then(h, [], lambda: w.state == "live"), within_s=8, what="live again")


async def test_binance_dated_futures_stream_on_the_mark_price_channel(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        await h.rule("basis btc above 60%")
        futures = btc_futures(h, "binanceusdm")
        w = h.start("binanceusdm", "basis", h.tick_sink("binanceusdm", "basis"))
        await h.ws.wait_subscribed("binanceusdm", "!markPrice@arr@1s")

        async def tick(ann: float) -> None:
            t = now_ms()
            frames = [binance_mark_price("BTCUSDT", 100_020.0, 100_000.0, 0.0001, next_funding(), t)]
            for f in futures:  # dated contracts: no funding rate, next funding 0
                frame = binance_mark_price(binance_symbol(f), ann_mark(1e5, ann, f), 100_000.0, 0, 0, t)
                frame["r"], frame["T"] = "", 0
                frames.append(frame)
            await h.ws.push("binanceusdm", "!markPrice@arr@1s", frames)

        async def stored() -> bool:
            await tick(0.2)
            return len(await latest(h, "basis", "BTC", "binanceusdm")) == len(futures)

        await until(stored, what="the futures stored")
        assert w.owns("basis") is True  # an all-market channel: the poll leaves binance basis alone
        rows = await latest(h, "basis", "BTC", "binanceusdm")
        assert all(abs(s.basis_annualized(now_ms(), 3) - 0.2) < 0.01 for s in rows.values())
        assert await latest(h, "funding", "BTC", "binanceusdm") == {}  # the perpetual is the funding feed's
        await tick(0.9)
        await until(lambda: h.fired(), within_s=3, what="the basis alert")
        reply = to_plain(await command_core(h.store, ["binanceusdm"], alerts=False).run("basis", ["btc"]))
        assert "+90." in reply, reply


async def test_bybit_futures_tickers_feed_basis(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        futures = btc_futures(h, "bybit")
        for f in futures:
            data = bybit_ticker(bybit_symbol(f), mark=ann_mark(1e5, 0.15, f), index=100_000.0, rate=0, next_ms=0)
            data.update(fundingRate="", nextFundingTime="0", deliveryTime=str(expiry_ms(f)))
            h.ws.bybit_tickers[bybit_symbol(f)] = data
        w = h.start("bybit", "basis", h.tick_sink("bybit", "basis"))
        await until(lambda: w.owns("basis"), what="the stream live")
        assert w.owns("basis") == frozenset(
            f"BTC/{'USDC:USDC' if f.linear else 'USD:BTC'}-{f.expiry:%y%m%d}" for f in futures
        )

        async def stored() -> bool:
            return len(await latest(h, "basis", "BTC", "bybit")) == len(futures)

        await until(stored, what="the futures' snapshots stored")
        rows = await latest(h, "basis", "BTC", "bybit")
        assert all(abs(s.basis_annualized(now_ms(), 3) - 0.15) < 0.01 for s in rows.values())


async def test_binance_coinm_streams_its_contracts_per_symbol(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        futures = btc_futures(h, "binancecoinm")
        funding = h.start("binancecoinm", "funding", h.funding_sink("binancecoinm"))
        basis = h.start("binancecoinm", "basis", h.tick_sink("binancecoinm", "basis"))
        topics = ["btcusd_perp@markPrice@1s", *(f"{binance_symbol(f).lower()}@markPrice@1s" for f in futures)]
        for topic in topics:
            await h.ws.wait_subscribed("binancecoinm", topic)

        async def tick() -> None:
            t = now_ms()
            await h.ws.push("binancecoinm", topics[0], binance_mark_price("BTCUSD_PERP", 100_030, 1e5, 3e-4, 0, t))
            for f, topic in zip(futures, topics[1:], strict=True):
                frame = binance_mark_price(binance_symbol(f), ann_mark(1e5, 0.25, f), 100_000.0, 0, 0, t)
                frame["r"], frame["T"] = "", 0
                await h.ws.push("binancecoinm", topic, frame)

        async def stored() -> bool:
            await tick()
            fund = await latest(h, "funding", "BTC", "binancecoinm")
            return len(fund) == 1 and len(await latest(h, "basis", "BTC", "binancecoinm")) == len(futures)

        await until(stored, what="the perpetual and the futures stored")
        assert funding.owns("funding") == {"BTC/USD:BTC"}
        assert basis.owns("basis") == {f"BTC/USD:BTC-{f.expiry:%y%m%d}" for f in futures}
        (perp,) = (await latest(h, "funding", "BTC", "binancecoinm")).values()
        assert perp.rate_per_interval == 3e-4 and perp.mark_usd == 100_030
        rows = await latest(h, "basis", "BTC", "binancecoinm")
        assert all(abs(s.basis_annualized(now_ms(), 3) - 0.25) < 0.01 for s in rows.values())


async def test_a_venue_listing_no_contract_of_the_streamed_assets_says_so(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        client = h.client("deribit")
        client.symbol_assets = frozenset({"DOGE"})
        w = StreamWatcher(client, "basis", h.tick_sink("deribit", "basis"), h.health, FAST)
        h.tasks.append(asyncio.create_task(w.run(stop=h.stop)))
        await until(lambda: w.reconnects >= 1, what="the feed refused")
        assert w.last_error is not None and "deribit lists no basis contract of DOGE" in w.last_error
        assert h.ws.connections["deribit"] == 0 and not w.owns("basis")


async def test_duplicate_and_out_of_order_ticker_frames_change_nothing(redis: Redis, keys: Keys) -> None:
    async with harness(redis, keys) as h:
        await h.rule("funding btc above 0.05% venue deribit")
        sink = h.funding_sink("deribit", refresh_s=60)
        w = h.start("deribit", "funding", sink)
        topic = "ticker.BTC-PERPETUAL.100ms"
        await h.ws.wait_subscribed("deribit", topic)
        t = now_ms()

        async def perp() -> FundingSample | None:
            return (await latest(h, "funding", "BTC", "deribit")).get("BTC/USD:BTC")

        frame = deribit_ticker("BTC-PERPETUAL", mark=100_030.0, index=1e5, ts_ms=t, funding_8h=0.0002)
        await h.ws.push("deribit", topic, frame)
        await until(perp, what="the first frame stored")
        for _ in range(5):  # the same frame again: nothing new
            await h.ws.push("deribit", topic, frame)
        # an older frame (what a venue may replay on connect) with a crossing rate: dropped
        old = deribit_ticker("BTC-PERPETUAL", mark=100_030.0, index=1e5, ts_ms=t - 60_000, funding_8h=0.0009)
        await h.ws.push("deribit", topic, old)
        await until(lambda: sink.dropped_stale == 1, what="the old frame dropped")
        assert w.messages == 2 and sink.writes == 1  # the duplicates woke nothing
        stored = await perp()
        assert stored is not None and stored.rate_per_interval == 0.0002 and await h.fired() == []
        new = deribit_ticker("BTC-PERPETUAL", mark=100_030.0, index=1e5, ts_ms=t + 100, funding_8h=0.0009)
        await h.ws.push("deribit", topic, new)
        await until(lambda: h.fired(), what="the alert on the newer frame")


async def test_streamed_contracts_stay_current_while_the_venue_poll_fails(redis: Redis, keys: Keys) -> None:
    """A per-contract stream: its rows are newer than the poll's failure and count; the polled rest is marked."""
    async with harness(redis, keys) as h:
        client = VenueClient("deribit", timeout_s=2.0, rest_base_url=h.rest.url("deribit"))
        poll = h.poll(client, [])
        core = command_core(h.store, ["deribit"], alerts=False)
        try:
            await poll.poll_once()
            h.rest.venues["deribit"].fault = "500"
            with pytest.raises(SourceError):
                await poll.poll_once()
            assert "deribit*" in to_plain(await core.run("funding", ["btc"]))
            w = h.start("deribit", "funding", h.funding_sink("deribit"), rest=client)
            await until(pushed_then(h, [], lambda: w.owns("funding")), what="the stream live")

            async def streamed() -> bool:
                await _push_all(h, [], funding=0.0004)
                return "+0.0400%" in to_plain(await core.run("funding", ["btc"]))

            await until(streamed, what="the streamed rate in /funding")
            btc = to_plain(await core.run("funding", ["btc"]))
            assert "deribit*" not in btc and "Mean +0.0400%/8h" in btc and "not current" not in btc, btc
            eth = to_plain(await core.run("funding", ["eth"]))
            assert "deribit*" in eth and "not current" in eth, eth  # ETH is not streamed: the poll's old rows
            # a poll failing again right now: the live stream still vouches for its contracts at once
            with pytest.raises(SourceError):
                await poll.poll_once()
            btc = to_plain(await core.run("funding", ["btc"]))
            assert "deribit*" not in btc and "Mean +0.0400%/8h" in btc, btc
        finally:
            await client.close()


async def test_a_delisted_future_leaves_the_subscription_at_the_next_market_refresh(redis: Redis, keys: Keys) -> None:
    """okx refuses a subscription naming a contract it no longer lists (60018, which fails the whole
    connection's watches): the stream follows the REST client's market refresh and subscribes afresh."""
    async with harness(redis, keys) as h:
        client = VenueClient("okx", timeout_s=2.0, rest_base_url=h.rest.url("okx"))
        try:
            await client.load_markets()
            futures = btc_futures(h, "okx")
            t = now_ms()
            for f in futures:
                h.ws.okx_state[f"mark-price:{okx_inst_id(f)}"] = okx_mark_price(okx_inst_id(f), 101_000.0, t)
            h.ws.okx_state["index-tickers:BTC-USDT"] = okx_index("BTC-USDT", 100_000.0, t)
            h.ws.okx_state["index-tickers:BTC-USD"] = okx_index("BTC-USD", 100_000.0, t)
            w = h.start("okx", "basis", h.tick_sink("okx", "basis"), rest=client)
            await until(lambda: w.owns("basis"), what="the stream live")
            owned = w.owns("basis")
            assert isinstance(owned, frozenset) and len(owned) == 4

            gone = futures[0]
            state = h.rest.venues["okx"]
            state.futures = [f for f in state.futures if f is not gone]
            h.ws.okx_inst_ids = {okx_inst_id(x) for x in (*state.perps, *state.futures)}
            await client.load_markets(reload=True)  # the poll's hourly refresh

            async def resubscribed() -> bool:
                live = [c.topics for c in h.ws.live["okx"]]
                return bool(live) and all(f"mark-price:{okx_inst_id(gone)}" not in t for t in live)

            await until(resubscribed, what="a subscription without the delisted future")

            async def live_without_it() -> bool:
                for f in futures[1:]:
                    frame = okx_mark_price(okx_inst_id(f), 101_100.0, now_ms())
                    await h.ws.push("okx", f"mark-price:{okx_inst_id(f)}", frame)
                return w.state == "live" and w.owns("basis") == owned - {_okx_symbol(gone)}

            await until(live_without_it, what="live without it")
            assert w.reconnects == 0  # a deliberate resubscription, no failure
            assert not any(m.get("event") == "error" for v, m in h.ws.received if v == "okx")
        finally:
            await client.close()


def _okx_symbol(f: Future) -> str:
    return f"BTC/{'USDT:USDT' if f.linear else 'USD:BTC'}-{f.expiry:%y%m%d}"


async def test_a_failed_poll_leaves_only_the_streamed_contracts_in_the_rules(redis: Redis, keys: Keys) -> None:
    """The contracts no stream feeds stop counting in rules when the venue's poll fails; the streamed ones stay."""
    async with harness(redis, keys) as h:
        client = VenueClient("deribit", timeout_s=2.0, rest_base_url=h.rest.url("deribit"))
        streams: list[StreamWatcher] = []
        poll = h.poll(client, streams, evaluate=True)
        try:
            await poll.poll_once()
            streams.append(h.start("deribit", "funding", h.funding_sink("deribit"), rest=client))
            await until(pushed_then(h, [], lambda: streams[0].owns("funding")), what="the stream live")

            def counted(asset: str) -> set[str]:
                return {s.symbol for s in h.svc.latest.get(("funding", asset), {}).get("deribit", ())}

            await until(pushed_then(h, [], lambda: counted("BTC") == {"BTC/USD:BTC", "BTC/USDC:USDC"}))
            assert counted("ETH")  # from the poll
            h.rest.venues["deribit"].fault = "500"
            with pytest.raises(SourceError):
                await poll.poll_once()
            assert counted("ETH") == set()  # the poll's last values count no more
            assert counted("BTC") == {"BTC/USD:BTC", "BTC/USDC:USDC"}  # the stream's still do
            h.rest.venues["deribit"].fault = None
            await poll.poll_once()
            assert counted("ETH") and counted("BTC") == {"BTC/USD:BTC", "BTC/USDC:USDC"}
        finally:
            await client.close()


async def test_what_a_feed_reads_follows_the_market_list_and_the_expiries(redis: Redis, keys: Keys) -> None:
    """The contracts a feed reads are worked out once per market list, again when ccxt holds another
    and when one of its futures expires."""
    async with harness(redis, keys) as h:
        client = h.client("okx")
        await client.load_markets()
        assert client.covered("funding") == {"BTC/USDT:USDT", "BTC/USD:BTC"}
        assert client.covered("funding") == {"BTC/USDT:USDT", "BTC/USD:BTC"}  # the same list: the same answer
        markets = client.exchange.markets
        client.exchange.set_markets([m for s, m in markets.items() if s != "BTC/USD:BTC"])
        assert client.covered("funding") == {"BTC/USDT:USDT"}
        futures = client.covered("basis") or frozenset()
        assert len(futures) == 4
        near = min(futures)
        soon = dict(client.exchange.markets[near], expiry=now_ms() + 300)
        client.exchange.set_markets([*(m for s, m in client.exchange.markets.items() if s != near), soon])
        assert client.covered("basis") == futures
        await asyncio.sleep(0.4)  # the same market list, past that future's expiry
        assert client.covered("basis") == futures - {near}
