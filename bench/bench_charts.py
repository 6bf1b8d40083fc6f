"""Benchmark: chart render time per chart kind and window, and a command's reply latency while charts draw.

Loads a real Redis with what the watchers would hold after 90 days for BTC: 5 venues with two
perpetuals each (funding), four dated futures each (basis), one open-interest total each, with
5-minute history for the last 7 days and hourly history for 90 days, plus 365 days of flows.
Then times /chart (Redis read + series + drawing in the chart pool, cache off) for every kind at
1d, 30d and 90d (flows: 7d, 30d, 90d), and the latency of /funding btc alone and while 10
different charts are being drawn.

    .venv/bin/python -m bench.bench_charts [--redis redis://127.0.0.1:6379/0] [--runs 20] [--pool process]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import math
import statistics
import time
import uuid

from redis.asyncio import Redis

from core.charts.catalog import ChartCatalog
from core.charts.command import ChartCommands
from core.charts.service import ChartService, ChartSettings
from core.commands import CommandCore, CoreSettings
from core.context import CONSOLE
from core.keys import Keys
from core.metrics.registry import default_registry
from core.models import MS_PER_DAY, BasisSample, FlowDay, FundingSample, OpenInterestSample
from core.store import MarketStore

VENUES = ("binanceusdm", "binancecoinm", "okx", "bybit", "deribit")
FINE_MS, HOUR_MS = 300_000, 3_600_000


async def load(redis: Redis, store: MarketStore, now: int) -> int:
    """Latest samples through the store; history members written straight into both history tiers."""
    reg = default_registry()
    fund, basis, oi = reg.get("funding"), reg.get("basis"), reg.get("oi")
    pipe = redis.pipeline(transaction=False)
    members = 0
    for vi, venue in enumerate(VENUES):
        perps = [
            FundingSample(venue, f"BTC/{q}:{q}", "BTC", q, q == "BTC", 0.0001, 28_800, None, None, 1e5, 1e5, now)
            for q in ("USDT", "USDC")
        ]
        futures = [
            BasisSample(
                venue,
                f"BTC/USDT:USDT-Q{k}",
                "BTC",
                "USDT",
                False,
                now + k * 45 * MS_PER_DAY,
                1e5 * (1 + 0.01 * k),
                1e5,
                now,
            )
            for k in range(1, 5)
        ]
        totals = [OpenInterestSample(venue, "BTC/USDT:USDT", "BTC", "USDT", False, "swap", 1e4, 1e9 * (vi + 1), now)]
        await store.write_samples(fund, venue, perps, now_ms=now)
        await store.write_samples(basis, venue, futures, now_ms=now)
        await store.write_samples(oi, venue, totals, now_ms=now)
        for key, step, span in (
            (store.keys.history, FINE_MS, 7 * MS_PER_DAY),
            (functools.partial(store.keys.history_tier, "1h"), HOUR_MS, 90 * MS_PER_DAY),
            (functools.partial(store.keys.history_tier, "6h"), 6 * HOUR_MS, 90 * MS_PER_DAY),
        ):
            for t in range(now - span, now, step):
                wave = math.sin(t / 3e8 + vi)
                for s in perps:
                    pipe.zadd(key("funding", "BTC", venue), {f"{t}|{s.symbol}|{1e-4 * wave!r}|28800": t})
                for s in futures:
                    pipe.zadd(
                        key("basis", "BTC", venue),
                        {f"{t}|{s.symbol}|{s.future_usd * (1 + 0.001 * wave)!r}|{1e5!r}|{s.expiry_ms}": t},
                    )
                pipe.zadd(key("oi", "BTC", venue), {f"{t}|{1e9 * (vi + 1) * (1 + 0.05 * wave)!r}|1e4": t})
                members += 7
            await pipe.execute()
    today = dt.datetime.fromtimestamp(now / 1000, dt.UTC).date()
    days = [
        FlowDay(
            "coinmetrics",
            "BTC",
            (today - dt.timedelta(days=d)).isoformat(),
            now - d * MS_PER_DAY,
            1e4,
            9e3,
            1e3 * math.sin(d / 5),
            2e6 - d * 10,
            None,
        )
        for d in range(365, 0, -1)
    ]
    await store.write_samples(reg.get("flows"), "coinmetrics", days, now_ms=now, replace=False)
    return members


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--pool", default="process", choices=("process", "thread"))
    args = ap.parse_args()
    redis = Redis.from_url(args.redis)
    keys = Keys(prefix=f"bench{uuid.uuid4().hex[:8]}")
    store = MarketStore(redis, keys, retention_ms=35 * MS_PER_DAY)
    now = int(time.time() * 1000)
    reg = default_registry()
    sources = {m.name: ("coinmetrics",) if m.source_word == "provider" else VENUES for m in reg}
    service = ChartService(ChartSettings(workers=2, pool=args.pool, cache_s=0, max_pending=64))
    charts = ChartCommands(ChartCatalog(reg, sources), service, store, reg, sources)
    core = CommandCore(store, CoreSettings(venues=VENUES, sources=sources), reg, charts=charts)
    try:
        t0 = time.perf_counter()
        members = await load(redis, store, now)
        print(f"loaded {members:,} history members in {time.perf_counter() - t0:.1f}s; pool={args.pool}, 2 workers")
        service.start()
        await asyncio.sleep(3)  # both workers up and warm
        print(f"{'chart':<26}{'window':>8}{'points':>9}{'p50 ms':>9}{'p99 ms':>9}")
        for words in (["funding", "btc"], ["funding", "btc", "ann"], ["basis", "btc"], ["oi", "btc"]):
            for window in ("1d", "30d", "90d"):
                await timed(charts, [*words[:2], window, *words[2:]], args.runs)
        await timed(charts, ["basis", "btc", "curve"], args.runs)
        for window in ("7d", "30d", "90d"):
            await timed(charts, ["flows", "btc", window], args.runs)

        alone = [await latency(core) for _ in range(200)]
        busy: list[float] = []
        for round_ in range(5):
            asks = [
                asyncio.create_task(
                    charts.chart(["funding", "btc", f"{80 + i}d", *(["ann"] if round_ % 2 else [])], CONSOLE)
                )
                for i in range(10)
            ]
            await asyncio.sleep(0.005)  # the charts are read and queued in the pool
            while not all(t.done() for t in asks):
                busy.append(await latency(core))
                await asyncio.sleep(0.005)
            await asyncio.gather(*asks)
        print(
            f"/funding btc reply alone:              p50 {pct(alone, 0.5):.2f} ms  p99 {pct(alone, 0.99):.2f} ms "
            f"(n={len(alone)})"
        )
        print(
            f"/funding btc reply while 10 charts draw: p50 {pct(busy, 0.5):.2f} ms  p99 {pct(busy, 0.99):.2f} ms  "
            f"max {max(busy):.2f} ms (n={len(busy)})"
        )
    finally:
        await service.close()
        batch = [k async for k in redis.scan_iter(match=f"{keys.prefix}:*", count=1000)]
        for i in range(0, len(batch), 500):
            await redis.delete(*batch[i : i + 500])
        await redis.aclose()


async def timed(charts: ChartCommands, words: list[str], runs: int) -> None:
    chart, req = charts.parse(words)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        reply = await charts.chart(words, CONSOLE)
        times.append((time.perf_counter() - t) * 1000)
        assert reply.image is not None
    raw = await chart.load(charts.source(req.metric), req, charts.clock_ms())
    points = chart.figure(raw, req, [], charts.clock_ms()).points
    name = " ".join(w for w in words if w not in (req.window,)) if req.window_s else " ".join(words)
    print(
        f"{name:<26}{req.window if req.window_s else '':>8}{points:>9,}{statistics.median(times):>9.1f}"
        f"{pct(times, 0.99):>9.1f}"
    )


async def latency(core: CommandCore) -> float:
    t = time.perf_counter()
    reply = await core.run("funding", ["btc"])
    assert not reply.error, reply.title
    return (time.perf_counter() - t) * 1000


if __name__ == "__main__":
    asyncio.run(main())
