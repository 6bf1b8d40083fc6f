"""Benchmark: the rolling liquidation windows of one venue holding a cascade's worth of events.

Stores ``--events`` liquidations (default 80,000: about what binance publishes for BTC in a 24h
cascade, one per symbol per second at most) spread over the last 24h for one (asset, venue), in
real Redis, then times:

- ``LiquidationStore.windows()`` (what the stream sink calls on every batch and refresh), over
  ``--calls`` calls with ``now`` moving by a second each call;
- the full read: ``windows_of`` over every event of the last 24h read back with ``since()``;
- ``LiquidationStore.add()`` of a batch of ``--batch`` new events up to two minutes late.

It checks that both ways give the same windows (1e-6 relative), before and after the adds, and
prints p50/p99 in ms.

    .venv/bin/python -m bench.bench_liq_windows [--redis redis://127.0.0.1:6379/0] [--events 80000] [--calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from core.keys import Keys
from core.liquidations import LiqEvent, LiquidationStore, windows_of

ASSET, VENUE = "BTC", "binanceusdm"
DAY_MS = 86_400_000
FIELDS = ("long_1h", "short_1h", "long_4h", "short_4h", "long_24h", "short_24h", "count_24h")


def liq(rng: random.Random, ts_ms: int) -> LiqEvent:
    usd = rng.lognormvariate(8.5, 1.8)  # mostly a few thousand dollars, a long tail into the millions
    symbol = rng.choice(("BTC/USDT:USDT", "BTC/USDC:USDC"))
    return LiqEvent(VENUE, symbol, ASSET, rng.choice(("long", "short")), usd / 1e5, usd, 1e5, ts_ms)


async def timed(n: int, call: Callable[[int], Awaitable[object]]) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await call(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def show(label: str, ms: list[float]) -> None:
    q = statistics.quantiles(ms, n=100)
    print(f"{label:<46} n={len(ms):<4} p50 {statistics.median(ms):8.2f} ms   p99 {q[98]:8.2f} ms")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--events", type=int, default=80_000)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--full-calls", type=int, default=20)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--batches", type=int, default=200)
    args = ap.parse_args()

    rng = random.Random(1)
    keys = Keys(prefix=f"bench{uuid.uuid4().hex[:8]}")
    redis = Redis.from_url(args.redis)
    store = LiquidationStore(redis, keys)
    now = int(time.time() * 1000)
    try:
        events = [liq(rng, now - DAY_MS + i * DAY_MS // args.events + rng.randint(0, 999)) for i in range(args.events)]
        t0 = time.perf_counter()
        for i in range(0, len(events), 1000):
            await store.add(events[i : i + 1000], now_ms=now)
        print(f"stored {args.events:,} events over 24h in {time.perf_counter() - t0:.1f} s (batches of 1000)")

        async def full(i: int) -> object:
            got = await store.since(ASSET, [VENUE], now + i * 1000 - DAY_MS)
            return windows_of(VENUE, ASSET, got[VENUE], now + i * 1000)

        async def agree(i: int) -> None:
            (fast,) = await store.windows([(ASSET, VENUE)], now + i * 1000)
            slow = await full(i)
            worst = max(abs(getattr(fast, f) - getattr(slow, f)) / max(abs(getattr(slow, f)), 1e-9) for f in FIELDS)
            assert worst <= 1e-6, f"windows() and windows_of differ by {worst:.2e} relative"
            print(f"windows() equals windows_of(since()): count_24h {fast.count_24h:,}, worst relative gap {worst:.1e}")

        await agree(0)

        show("windows() [1 pair]", await timed(args.calls, lambda i: store.windows([(ASSET, VENUE)], now + i * 1000)))
        show("windows_of(since(24h)) [the full read]", await timed(args.full_calls, full))

        late = now + args.calls * 1000

        async def add(i: int) -> object:
            t = late + i * 1000
            batch = [liq(rng, t - rng.randint(0, 120_000)) for _ in range(args.batch)]
            added = await store.add(batch, now_ms=t)
            assert len(added) == len(batch)
            return added

        show(f"add() of {args.batch} new events", await timed(args.batches, add))
        await agree(args.calls + args.batches)
    finally:
        found = [k async for k in redis.scan_iter(match=f"{keys.prefix}:*")]
        if found:
            await redis.delete(*found)
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
