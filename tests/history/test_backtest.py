"""/backtest: a rule run by the live engine over the stored history, in the command core and on Telegram."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from redis.asyncio import Redis

from bot.app import run
from core.keys import Keys
from core.metrics.registry import default_registry
from core.models import FlowDay, FundingSample, OpenInterestSample
from core.render import fmt_duration, to_plain
from core.store import MarketStore
from tests.builders import command_core
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.telegram import BotApiDouble
from tests.local_bot import local_settings

REGISTRY = default_registry()
HOUR = 3_600_000


def stamp(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


def funding(venue: str, rate: float, ts_ms: int) -> FundingSample:
    return FundingSample(
        venue=venue,
        symbol="BTC/USDT:USDT",
        asset="BTC",
        settle="USDT",
        inverse=False,
        rate_per_interval=rate,
        interval_s=28_800,
        next_funding_ms=None,
        predicted_rate=None,
        mark_usd=50_000.0,
        index_usd=50_000.0,
        ts_ms=ts_ms,
    )


def hourly_rates() -> list[float]:
    """96 hours: 0.05%/8h, with 0.15% for hours 10-13 and 0.12% for hours 50-52; 0.095% at hour 30."""
    rates = [0.0005] * 96
    for h in range(10, 14):
        rates[h] = 0.0015
    for h in range(50, 53):
        rates[h] = 0.0012
    rates[30] = 0.00095  # above the re-arm level, below the threshold: never fires
    return rates


async def seed_funding(store: MarketStore, venue: str, first_ms: int, now_ms: int) -> list[int]:
    m = REGISTRY.get("funding")
    times = [first_ms + h * HOUR for h in range(96)]
    await store.write_samples(
        m,
        venue,
        [],
        now_ms=now_ms,
        replace=False,
        history=[funding(venue, r, t) for r, t in zip(hourly_rates(), times, strict=True)],
    )
    return times


def expected(times: list[int], threshold: float, band: float) -> tuple[list[int], list[tuple[int, int]]]:
    """Above-rule semantics: fires when strictly above the threshold while armed, re-arms strictly below
    threshold - band; in alert from a firing to its re-arm."""
    armed, fired, periods, start = True, [], [], 0
    for t, v in zip(times, hourly_rates(), strict=True):
        if armed and v > threshold:
            armed, start = False, t
            fired.append(t)
        elif not armed and v < threshold - band:
            armed = True
            periods.append((start, t))
    return fired, periods


async def test_backtest_funding_counts_times_and_longest(redis: Redis, keys: Keys) -> None:
    store = MarketStore(redis, keys, retention_ms=40 * 86_400_000)
    now = int(time.time() * 1000)
    first = now - 98 * HOUR
    times = await seed_funding(store, "okx", first, now)
    await seed_funding(store, "bybit", first, now)  # another venue: not in a rule naming okx
    core = command_core(store, ("okx", "bybit"), clock_ms=lambda: now)
    text = to_plain(await core.run("backtest", ["funding", "btc", "above", "0.1%", "venue", "okx", "5d"]))
    fired, periods = expected(times, 0.001, REGISTRY.get("funding").default_hysteresis)
    assert len(fired) == 2
    assert "Would have fired 2 times" in text and f"first {stamp(fired[0])}, last {stamp(fired[-1])}" in text
    longest = max(b - a for a, b in periods)
    assert f"Longest time in alert: {fmt_duration(longest / 1000)} (from {stamp(fired[0])})" in text, text
    assert "+0.1500%/8h" in text and "+0.1200%/8h" in text
    # a threshold above every value never fires; 90d reports how much history there was
    quiet = to_plain(await core.run("backtest", ["funding", "btc", "above", "0.2%", "90d"]))
    assert "Would not have fired over stored history from" in quiet and "of the 90d asked" in quiet


async def test_backtest_flows_each_day_once_and_bad_input(redis: Redis, keys: Keys) -> None:
    store = MarketStore(redis, keys, retention_ms=40 * 86_400_000)
    now = int(time.time() * 1000)
    today = dt.datetime.now(dt.UTC).date()
    nets = [1000, 4000, 5000, -200, 3500, 100, 2000, 6000]
    days = []
    for i, net in enumerate(nets):
        day = today - dt.timedelta(days=len(nets) - i)
        published = int(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(4, 0), dt.UTC).timestamp() * 1000)
        days.append(
            FlowDay(
                "coinmetrics", "BTC", day.isoformat(), published, 10_000.0 + net, 10_000.0, float(net), 2e6, 40_000.0
            )
        )
    await store.write_samples(REGISTRY.get("flows"), "coinmetrics", days, now_ms=now, replace=False)
    core = command_core(store, ("okx",), clock_ms=lambda: now)
    text = to_plain(await core.run("backtest", ["flows", "btc", "netflow", "above", "3000", "30d"]))
    above = [d for d in days if d.netflow is not None and d.netflow > 3000 and d.available_ms <= now]
    assert f"Would have fired {len(above)} times" in text
    assert f"first {stamp(above[0].available_ms)}, last {stamp(above[-1].available_ms)}" in text
    assert "Longest run: 2 days in a row." in text  # the 2nd and 3rd days
    for d in above:
        assert d.day in text
    bad = await core.run("backtest", ["funding", "btc", "above", "0.1", "90d"])
    assert bad.error and "needs a % sign" in bad.title
    assert "Usage: /backtest" in (await core.run("backtest", ["funding"])).title
    assert "1d to 365d" in (await core.run("backtest", ["funding", "btc", "above", "0.1%", "900d"])).title
    none = await core.run("backtest", ["oi", "btc", "above", "30b", "7d"])
    assert none.error and "No stored oi history for BTC" in none.title
    # the scratch keys are gone: only what the test wrote is left
    assert not [k async for k in redis.scan_iter(match=f"{keys.prefix}:backtest:*")]


async def test_backtest_on_telegram(
    exchanges: ExchangeDouble, telegram: BotApiDouble, redis_url: str, redis: Redis, keys: Keys
) -> None:
    for v in ExchangeDouble.VENUES:
        for p in exchanges.venues[v].perps:
            p.funding_rate = 0.0001
    now = int(time.time() * 1000)
    store = MarketStore(redis, keys, retention_ms=40 * 86_400_000)
    times = await seed_funding(store, "okx", now - 98 * HOUR, now)
    settings = local_settings(exchanges, telegram, redis_url, keys, alerts={"default_rules": []})
    stop = asyncio.Event()
    app = asyncio.create_task(run(settings, stop))
    try:
        telegram.push_message(501, "/backtest funding btc above 0.1% venue okx 5d", user_id=501)
        (sent,) = await telegram.wait_sent(1, chat_id=501, timeout=15)
        fired, _ = expected(times, 0.001, REGISTRY.get("funding").default_hysteresis)
        assert "Backtest: funding BTC above +0.1000%/8h (okx)" in sent.plain, sent.plain
        assert "Would have fired 2 times" in sent.plain and f"last {stamp(fired[-1])}" in sent.plain
        assert "Longest time in alert: 4h00m" in sent.plain
    finally:
        stop.set()
        await asyncio.wait_for(app, 15)


async def test_backtest_open_interest_totals(redis: Redis, keys: Keys) -> None:
    """Open interest keeps one total per venue in history: a rule on the sum across venues replays from it."""
    store = MarketStore(redis, keys, retention_ms=40 * 86_400_000)
    now = int(time.time() * 1000)
    oi = REGISTRY.get("oi")
    times = [now - (48 - h) * HOUR for h in range(48)]
    totals = {"okx": [10e9] * 48, "bybit": [15e9] * 48}
    for h in range(20, 26):
        totals["bybit"][h] = 21e9  # the sum crosses 30b for six hours
    for venue, usd in totals.items():
        await store.write_samples(
            oi,
            venue,
            [],
            now_ms=now,
            replace=False,
            history=[
                OpenInterestSample(venue, "*total*", "BTC", "USD", False, "total", u / 50_000, u, t)
                for u, t in zip(usd, times, strict=True)
            ],
        )
    core = command_core(store, ("okx", "bybit"), clock_ms=lambda: now)
    text = to_plain(await core.run("backtest", ["oi", "btc", "above", "30b", "3d"]))
    assert "Would have fired 1 time over" in text, text
    # the sum is first above 30b once bybit's hour 20 total is in (okx's total of that hour is already there,
    # or bybit's arrives first and okx's previous total still counts: either way the first alert is hour 20)
    assert f"first {stamp(times[20])}" in text
    # in alert until the sum is back under 30b less the 2% band, at hour 26
    assert f"Longest time in alert: {fmt_duration((times[26] - times[20]) / 1000)}" in text
