"""Windows read from the per-minute sums equal ``windows_of`` over the same events, whatever their order."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence

import pytest
from redis.asyncio import Redis

from core.keys import Keys
from core.liquidations import KEEP_MS, SIDES, WINDOWS_S, LiqEvent, LiquidationStore, LiqWindows, windows_of

NOW = 1_780_000_017_345  # not on a minute boundary: every window has a partial first minute
MIN = 60_000
FIELDS = ("long_1h", "short_1h", "long_4h", "short_4h", "long_24h", "short_24h")
PAIRS = (("BTC", "binanceusdm"), ("BTC", "okx"), ("ETH", "binanceusdm"))


def event(rng: random.Random, ts: int, asset: str = "BTC", venue: str = "binanceusdm") -> LiqEvent:
    usd = rng.choice((rng.uniform(50, 5_000), rng.uniform(5_000, 2e6), rng.lognormvariate(9, 2)))
    return LiqEvent(venue, f"{asset}/USDT:USDT", asset, rng.choice(SIDES), usd / 1e5, usd, 1e5, ts)


def edge_times(rng: random.Random, now: int, n: int) -> list[int]:
    """Times around every window's start and the minute boundaries next to it, plus some anywhere in 24h+."""
    out = []
    for _ in range(n):
        start = now - rng.choice(WINDOWS_S) * 1000
        around = rng.choice((start, start // MIN * MIN, start // MIN * MIN + MIN, now, now // MIN * MIN))
        out.append(
            rng.choice(
                (
                    around + rng.randint(-3, 3),  # the exact ms either side of an edge
                    around + rng.randint(-90_000, 90_000),
                    now - rng.randint(-30_000, 86_400_000 + 600_000),
                )
            )
        )
    return out


def same(got: LiqWindows, want: LiqWindows) -> None:
    assert (got.venue, got.asset, got.ts_ms, got.count_24h) == (want.venue, want.asset, want.ts_ms, want.count_24h)
    for f in FIELDS:
        a, b = getattr(got, f), getattr(want, f)
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6), f"{f}: {a} != {b}"


async def check(store: LiquidationStore, events: Iterable[LiqEvent], nows: Sequence[int]) -> None:
    """Every pair's windows at each ``now`` equal windows_of over the expected events of that pair."""
    by_pair: dict[tuple[str, str], list[LiqEvent]] = {p: [] for p in PAIRS}
    for e in events:
        by_pair[(e.asset, e.venue)].append(e)
    for now in nows:
        got = await store.windows(PAIRS, now)
        for w, (asset, venue) in zip(got, PAIRS, strict=True):
            same(w, windows_of(venue, asset, by_pair[(asset, venue)], now))


@pytest.mark.parametrize("seed", range(6))
async def test_random_events_across_the_window_edges(redis: Redis, keys: Keys, seed: int) -> None:
    rng = random.Random(seed)
    store = LiquidationStore(redis, keys)
    events = list({event(rng, ts, *rng.choice(PAIRS)) for ts in edge_times(rng, NOW, rng.choice((50, 400, 2_000)))})
    rng.shuffle(events)
    for i in range(0, len(events), 97):  # batches mixing pairs, in no time order
        added = await store.add(events[i : i + 97], now_ms=NOW)
        assert added == events[i : i + 97]
    hour = NOW // 3_600_000 * 3_600_000
    nows = [NOW, NOW // MIN * MIN, NOW // MIN * MIN - 1, hour, hour - 1, NOW + rng.randint(1, 3_000_000), NOW - 999]
    await check(store, events, nows)
    assert sum(w.count_24h for w in await store.windows(PAIRS, NOW)) > 0


async def test_replays_and_a_second_process_count_once(redis: Redis, keys: Keys, redis_url: str) -> None:
    rng = random.Random(11)
    store = LiquidationStore(redis, keys)
    events = [event(rng, ts, *rng.choice(PAIRS)) for ts in edge_times(rng, NOW, 600)]
    assert await store.add(events, now_ms=NOW) == events
    other = Redis.from_url(redis_url)
    try:
        replica = LiquidationStore(other, keys)
        replayed = events[::3] + events[::2]
        rng.shuffle(replayed)
        for i in range(0, len(replayed), 40):
            assert await replica.add(replayed[i : i + 40], now_ms=NOW + 1_000) == []
        assert await store.add(events[:5] + events[:5], now_ms=NOW) == []
        fresh = event(rng, NOW - 5_000)
        assert await replica.add([fresh, fresh], now_ms=NOW) == [fresh]  # twice in one batch: once
        await check(store, [*events, fresh], [NOW, NOW + 7_777])
        await check(replica, [*events, fresh], [NOW])
    finally:
        await other.aclose()


async def test_late_events_land_in_their_own_minute(redis: Redis, keys: Keys) -> None:
    """Events up to two minutes late, arriving after the windows were read, across the edges of every window."""
    rng = random.Random(5)
    store = LiquidationStore(redis, keys)
    seen: list[LiqEvent] = []
    now = NOW - 3_600_000
    while now < NOW:
        now += rng.randint(200, 40_000)
        batch = list({event(rng, now - rng.randint(0, 120_000), *rng.choice(PAIRS)) for _ in range(rng.randint(1, 8))})
        for w in WINDOWS_S:  # late events at this window's start
            batch.append(event(rng, now - w * 1000 - rng.randint(-120_000, 120_000), *rng.choice(PAIRS)))
        batch = list(set(batch))
        assert await store.add(batch, now_ms=now) == batch
        seen += batch
        if rng.random() < 0.2:
            await check(store, seen, [now])
    await check(store, seen, [now, now + 59_999, now + 60_000])


async def test_flushed_redis_is_empty_then_counts_only_what_comes_after(redis: Redis, keys: Keys) -> None:
    rng = random.Random(3)
    store = LiquidationStore(redis, keys)
    before = [event(rng, ts, *rng.choice(PAIRS)) for ts in edge_times(rng, NOW, 300)]
    await store.add(before, now_ms=NOW)
    await redis.delete(*[k async for k in redis.scan_iter(match=f"{keys.prefix}:*")])  # FLUSHDB, for this prefix
    for w in await store.windows(PAIRS, NOW):
        same(w, windows_of(w.venue, w.asset, [], NOW))
        assert w.count_24h == 0
    after = [event(rng, ts, *rng.choice(PAIRS)) for ts in edge_times(rng, NOW + 60_000, 300)]
    assert await store.add(after, now_ms=NOW + 60_000) == after
    await check(store, after, [NOW + 60_000])
    assert await store.add(before[:20], now_ms=NOW + 60_000) == before[:20]  # new again: the flush forgot them
    await check(store, after + before[:20], [NOW + 60_000])


async def test_events_without_sums_are_summed_again_and_sums_without_events_dropped(redis: Redis, keys: Keys) -> None:
    """A Redis written before the sums existed (events only), or one that lost the events' key."""
    rng = random.Random(8)
    store = LiquidationStore(redis, keys)
    old = [event(rng, ts) for ts in edge_times(rng, NOW, 800)]
    await redis.zadd(keys.liq_events("BTC", "binanceusdm"), {e.to_json(): e.ts_ms for e in old})
    await check(store, old, [NOW, NOW + 90_000])
    assert await redis.exists(keys.liq_sums("BTC", "binanceusdm"))
    more = [event(rng, NOW + 1_000 + i) for i in range(10)]
    await store.add(more, now_ms=NOW + 20_000)
    await check(store, old + more, [NOW + 20_000])

    await redis.zadd(keys.liq_events("ETH", "binanceusdm"), {event(rng, NOW, "ETH").to_json(): NOW})
    await store.windows(PAIRS, NOW)
    await redis.delete(keys.liq_events("ETH", "binanceusdm"))
    await check(store, old + more, [NOW + 20_000])
    assert not await redis.exists(keys.liq_sums("ETH", "binanceusdm"))


async def test_old_events_and_their_sums_trimmed(redis: Redis, keys: Keys) -> None:
    rng = random.Random(21)
    store = LiquidationStore(redis, keys)
    key, sums = keys.liq_events("BTC", "okx"), keys.liq_sums("BTC", "okx")
    added: list[LiqEvent] = []
    now = NOW - 2 * 86_400_000
    while now < NOW:  # 48h of events, a batch every 10 minutes on average
        now += rng.randint(1, 1_200_000)
        batch = [event(rng, now - rng.randint(0, 120_000), "BTC", "okx") for _ in range(5)]
        added += await store.add(batch, now_ms=now)
    kept = (await store.since("BTC", ["okx"], 0))["okx"]
    assert min(e.ts_ms for e in kept) > now - KEEP_MS and len(kept) < len(added)
    fields = await redis.hgetall(sums)
    keep_minute = int(fields.pop(b"keep")) // MIN
    minutes = {int(f.split(b":")[0]): int(v) for f, v in fields.items() if f.endswith(b":n") and f[:1] != b"h"}
    hours = {int(f[1:].split(b":")[0]): int(v) for f, v in fields.items() if f.endswith(b":n") and f[:1] == b"h"}
    assert min(minutes) >= keep_minute and min(hours) >= keep_minute // 60  # the older ones are gone
    assert sum(minutes.values()) == sum(1 for e in added if e.ts_ms // MIN >= keep_minute)
    assert sum(hours.values()) == sum(1 for e in added if e.ts_ms // MIN // 60 >= keep_minute // 60)
    await check(store, kept, [now, now - 1_800_000])
    (w,) = await store.windows([("BTC", "okx")], now)
    assert w.count_24h == sum(1 for e in kept if now - e.ts_ms <= 86_400_000) < len(kept)

    assert await store.add([event(rng, now - KEEP_MS, "BTC", "okx")], now_ms=now) == []  # past what is kept
    await store.add([event(rng, now + 2 * KEEP_MS, "BTC", "okx")], now_ms=now + 2 * KEEP_MS)  # everything before goes
    assert len((await store.since("BTC", ["okx"], 0))["okx"]) == 1
    assert len(await redis.hkeys(sums)) == 5  # keep, and the event's minute and hour: its side and its count
    await redis.delete(key)
    assert await store.windows([("BTC", "okx")], now + 2 * KEEP_MS) == [windows_of("okx", "BTC", [], now + 2 * KEEP_MS)]


async def test_an_event_no_window_counts_is_kept_not_counted(redis: Redis, keys: Keys) -> None:
    rng = random.Random(2)
    store = LiquidationStore(redis, keys)
    odd = LiqEvent("binanceusdm", "BTC/USDT:USDT", "BTC", "both", 1.0, 1e5, 1e5, NOW - 1_000)
    events = [event(rng, NOW - 2_000), odd, event(rng, NOW - 86_400_000 + 500)]
    assert await store.add(events, now_ms=NOW) == events
    await check(store, events, [NOW])
    assert len((await store.since("BTC", ["binanceusdm"], 0))["binanceusdm"]) == 3


async def test_a_non_finite_amount_is_refused_before_anything_is_written(redis: Redis, keys: Keys) -> None:
    rng = random.Random(4)
    store = LiquidationStore(redis, keys)
    bad = LiqEvent("okx", "BTC/USDT:USDT", "BTC", "long", 1.0, math.inf, 1e5, NOW)
    with pytest.raises(ValueError, match="non-finite"):
        await store.add([event(rng, NOW, "BTC", "okx"), bad], now_ms=NOW)
    assert await store.since("BTC", ["okx"], 0) == {}
    assert not await redis.exists(keys.liq_sums("BTC", "okx"))
