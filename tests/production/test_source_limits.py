"""Exchanges that misbehave: 429/418 with Retry-After, a 50 MB answer, clocks ahead, absurd prices."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
import tracemalloc

import pytest
from redis.asyncio import Redis

from core.bounds import out_of_bounds
from core.keys import Keys
from core.metrics.registry import default_registry
from core.models import BasisSample, FundingSample
from core.store import MarketStore
from tests.builders import read
from tests.fakes.exchanges import ExchangeDouble
from watchers.errors import RateLimited, SourceUnavailable
from watchers.http_limits import retry_after_s
from watchers.market import MarketWatcher, MarketWatcherConfig
from watchers.runner import run_periodic
from watchers.venues import VenueClient


@pytest.fixture
async def store(redis: Redis, keys: Keys) -> MarketStore:
    return MarketStore(redis, keys, retention_ms=86_400_000)


@pytest.mark.parametrize("status", ["429", "418"])
async def test_retry_after_holds_the_next_poll(exchanges: ExchangeDouble, store: MarketStore, status: str) -> None:
    """The venue says 'come back in 1 s': polling at 50 ms with a 100 ms backoff cap still waits 1 s."""
    venue = "binanceusdm"
    state = exchanges.venues[venue]
    state.fault, state.retry_after = status, "1"
    client = VenueClient(venue, timeout_s=1.0, rest_base_url=exchanges.url(venue))
    watcher = MarketWatcher(client, store, default_registry(), MarketWatcherConfig())
    try:
        with pytest.raises(RateLimited) as info:
            await watcher.poll_once()
        assert info.value.retry_after_s == 1.0 and "retry after 1s" in str(info.value)
        state.requests.clear()
        stop = asyncio.Event()
        loop = asyncio.create_task(
            run_periodic(watcher.name, watcher.poll_once, interval_s=0.05, max_backoff_s=0.1, stop=stop)
        )
        await asyncio.sleep(0.8)
        assert state.requests == []  # held: not one request reaches the venue during its Retry-After
        state.fault = None
        await asyncio.sleep(0.8)
        stop.set()
        await loop
        assert len(state.requests) > 3  # polling resumed after the wait
    finally:
        await client.close()


def test_retry_after_forms() -> None:
    now = time.time()
    assert retry_after_s({"retry-after": "7"}) == 7.0
    assert retry_after_s({"Retry-After": email.utils.formatdate(now + 30, usegmt=True)}, now_s=now) == pytest.approx(
        30, abs=1
    )
    assert retry_after_s({"Retry-After": "999999"}) == 3600.0  # capped
    assert retry_after_s({"Retry-After": "soon"}) is None and retry_after_s({}) is None


async def test_fifty_megabyte_answer_is_refused_without_buffering_it(
    exchanges: ExchangeDouble, store: MarketStore
) -> None:
    venue = "okx"
    client = VenueClient(venue, timeout_s=5.0, rest_base_url=exchanges.url(venue))
    watcher = MarketWatcher(client, store, default_registry(), MarketWatcherConfig())
    try:
        await watcher.poll_once()  # markets loaded
        exchanges.venues[venue].fault = "huge"
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            with pytest.raises(SourceUnavailable, match="over the 16 MB cap"):
                await watcher.poll_once()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        elapsed = time.perf_counter() - t0
    finally:
        await client.close()
    # the server's own chunks count in this process too; the client never held the whole answer
    assert peak < 40 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"
    requests = len([r for r in exchanges.venues[venue].requests if "markets" not in r])
    assert exchanges.venues[venue].huge_sent < requests * 24 * 1024 * 1024  # each answer abandoned near the cap
    assert elapsed < 5


async def test_timestamps_from_the_future_are_clamped(exchanges: ExchangeDouble, store: MarketStore) -> None:
    """A venue clock an hour ahead: stored as now, so the data ages once the venue goes silent."""
    venue = "bybit"
    exchanges.venues[venue].clock_skew_ms = 3_600_000
    client = VenueClient(venue, timeout_s=1.0, rest_base_url=exchanges.url(venue))
    watcher = MarketWatcher(client, store, default_registry(), MarketWatcherConfig())
    try:
        await watcher.poll_once()
        polled_ms = time.time() * 1000
        funding, basis = await read(store, "funding", "BTC", [venue]), await read(store, "basis", "BTC", [venue])
        stamps = [s.ts_ms for s in funding[venue]] + [s.ts_ms for s in basis[venue]]
        assert stamps and max(stamps) <= polled_ms
        exchanges.venues[venue].fault = "500"  # silent from now on
        await asyncio.sleep(1.1)
        with pytest.raises(SourceUnavailable):
            await watcher.poll_once()
        funding = await read(store, "funding", "BTC", [venue])
        age_s = (time.time() * 1000 - max(s.ts_ms for s in funding[venue])) / 1000
        assert age_s >= 1.0
    finally:
        await client.close()


async def test_absurd_prices_are_rejected_even_when_mark_and_index_agree(
    exchanges: ExchangeDouble, store: MarketStore, caplog: pytest.LogCaptureFixture
) -> None:
    s = FundingSample(
        venue="okx",
        symbol="BTC/USDT:USDT",
        asset="BTC",
        settle="USDT",
        inverse=False,
        rate_per_interval=0.0001,
        interval_s=28_800,
        next_funding_ms=None,
        predicted_rate=None,
        mark_usd=1e308,
        index_usd=1e308,
        ts_ms=1,
    )
    assert "outside the possible range" in (default_registry().get("funding").problem(s) or "")
    b = BasisSample(
        venue="okx",
        symbol="BTC/USDT:USDT-261225",
        asset="BTC",
        settle="USDT",
        inverse=False,
        expiry_ms=1_800_000_000_000,
        future_usd=1e308,
        index_usd=1e308,
        ts_ms=1,
    )
    assert "outside the possible range" in (default_registry().get("basis").problem(b) or "")
    assert out_of_bounds("price_usd", float("inf")) is not None and out_of_bounds("price_usd", 100_000.0) is None

    venue = "binanceusdm"
    for p in exchanges.venues[venue].perps:
        if p.asset == "BTC":
            p.mark = p.index = 1e308
    client = VenueClient(venue, timeout_s=1.0, rest_base_url=exchanges.url(venue))
    watcher = MarketWatcher(client, store, default_registry(), MarketWatcherConfig())
    caplog.set_level(logging.WARNING)
    try:
        assert await watcher.poll_once() > 0  # ETH and SOL still stored
    finally:
        await client.close()
    assert not (await read(store, "funding", "BTC", [venue])).get(venue)
    assert (await read(store, "funding", "ETH", [venue]))[venue]
    assert "outside the possible range" in caplog.text


async def test_retry_after_on_one_endpoint_holds_every_request_to_the_venue(
    exchanges: ExchangeDouble, store: MarketStore
) -> None:
    """okx rate-limits open interest only: that poll still stores funding, then nothing is asked for 1 s."""
    venue = "okx"
    state = exchanges.venues[venue]
    client = VenueClient(venue, timeout_s=1.0, rest_base_url=exchanges.url(venue))
    watcher = MarketWatcher(client, store, default_registry(), MarketWatcherConfig())
    try:
        await client.load_markets()
        state.path_faults, state.retry_after = {"/api/v5/public/open-interest": "429"}, "1"
        assert await watcher.poll_once() > 0  # funding and basis stored, open interest rate limited
        state.requests.clear()
        with pytest.raises(RateLimited) as info:
            await watcher.poll_once()
        assert state.requests == [] and 0 < info.value.retry_after_s <= 1
        await asyncio.sleep(info.value.retry_after_s + 0.05)
        state.path_faults = {}
        assert await watcher.poll_once() > 0 and state.requests
    finally:
        await client.close()
