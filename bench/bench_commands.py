"""Benchmark: /basis btc, /funding btc and /oi btc through the command core against a real Redis.

Loads 5 venues x 400 instruments (100 assets, each one perpetual and three dated futures per venue,
with open interest for every contract and a week of open-interest history for BTC), then times
3,000 calls of each command and counts Redis round trips per command.

    .venv/bin/python -m bench.bench_commands [--redis redis://127.0.0.1:6379/0] [--calls 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from dataclasses import replace

from redis.asyncio import Redis

from core.commands import CommandCore, CoreSettings
from core.keys import Keys
from core.metrics.registry import default_registry
from core.models import MS_PER_DAY, BasisSample, FundingSample, OpenInterestSample
from core.store import MarketStore

VENUES = ("binanceusdm", "binancecoinm", "okx", "bybit", "deribit")
ASSETS = ["BTC", "ETH", "SOL", *(f"A{i:02d}" for i in range(97))]
REGISTRY = default_registry()


async def load(store: MarketStore, now: int) -> None:
    oi_metric = REGISTRY.get("oi")
    for venue in VENUES:
        funding, basis, oi = [], [], []
        for i, asset in enumerate(ASSETS):
            px = 100.0 + i
            funding.append(
                FundingSample(
                    venue=venue,
                    symbol=f"{asset}/USDT:USDT",
                    asset=asset,
                    settle="USDT",
                    inverse=False,
                    rate_per_interval=0.0001 * (i % 5),
                    interval_s=28_800,
                    next_funding_ms=now + 3_600_000,
                    predicted_rate=None,
                    mark_usd=px * 1.001,
                    index_usd=px,
                    ts_ms=now,
                )
            )
            for q in range(1, 4):
                basis.append(
                    BasisSample(
                        venue=venue,
                        symbol=f"{asset}/USDT:USDT-Q{q}",
                        asset=asset,
                        settle="USDT",
                        inverse=False,
                        expiry_ms=now + q * 90 * MS_PER_DAY,
                        future_usd=px * (1 + 0.01 * q),
                        index_usd=px,
                        ts_ms=now,
                    )
                )
            for sym in (f"{asset}/USDT:USDT", *(f"{asset}/USDT:USDT-Q{q}" for q in range(1, 4))):
                oi.append(
                    OpenInterestSample(
                        venue=venue,
                        symbol=sym,
                        asset=asset,
                        settle="USDT",
                        inverse=False,
                        kind="swap",
                        coins=1000.0 + i,
                        usd=(1000.0 + i) * px,
                        ts_ms=now,
                    )
                )
        await store.write_samples(REGISTRY.get("funding"), venue, funding, now_ms=now)
        await store.write_samples(REGISTRY.get("basis"), venue, basis, now_ms=now)
        # a week of BTC totals every 5 minutes, as the watcher keeps them
        btc = [s for s in oi if s.asset == "BTC"]
        history = [
            replace(t, ts_ms=now - k * 300_000, usd=t.usd * (1 - k / 100_000))
            for t in oi_metric.history_samples(btc)
            for k in range(1, 7 * 288)
        ]
        await store.write_samples(oi_metric, venue, oi, now_ms=now, history=history)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--calls", type=int, default=3000)
    args = ap.parse_args()
    redis = Redis.from_url(args.redis)
    keys = Keys(prefix=f"bench{uuid.uuid4().hex[:8]}")
    store = MarketStore(redis, keys, retention_ms=MS_PER_DAY)
    now = int(time.time() * 1000)
    await load(store, now)
    sources = {m.name: VENUES for m in REGISTRY}
    core = CommandCore(store, CoreSettings(venues=VENUES, sources=sources), REGISTRY)

    writes = [0]
    conn_cls = redis.connection_pool.connection_class
    original = conn_cls.send_packed_command

    async def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        writes[0] += 1
        return await original(self, command, check_health)

    conn_cls.send_packed_command = counting  # counts wire writes (round trips) only
    try:
        print(
            f"Redis {args.redis}; {len(VENUES)} venues x {len(ASSETS) * 4} instruments loaded "
            f"({len(VENUES) * len(ASSETS)} perps, {len(VENUES) * len(ASSETS) * 3} futures, open interest of each)"
        )
        for name in ("basis", "funding", "oi"):
            for _ in range(200):  # warm-up
                await core.run(name, ["btc"])
            lat = []
            writes[0] = 0
            for _ in range(args.calls):
                t0 = time.perf_counter()
                reply = await core.run(name, ["btc"])
                lat.append((time.perf_counter() - t0) * 1000)
                assert not reply.error
            trips = writes[0] / args.calls
            print(
                f"/{name} btc: {args.calls} calls  p50 {statistics.median(lat):.3f} ms  "
                f"p99 {pct(lat, 0.99):.3f} ms  max {max(lat):.3f} ms  Redis round trips/command {trips:.2f}"
            )
    finally:
        conn_cls.send_packed_command = original
        batch = [k async for k in redis.scan_iter(match=f"{keys.prefix}:*")]
        if batch:
            await redis.delete(*batch)
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
