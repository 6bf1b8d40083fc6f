"""Benchmark: rule evaluation cost with 100,000 rules across 200 topics, against a real Redis.

200 topics = 100 assets x (funding, basis); 500 rules per topic mixing above/below/crosses,
aggregates (max/min/mean) and named venues. One batch = one venue's poll: fresh funding and
basis samples for all 100 assets, handed to ``AlertService.on_samples`` exactly as the market
watcher does (one call per metric), including writing the fired alert events to the stream.

    .venv/bin/python -m bench.bench_rules [--redis URL] [--batches 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import time
import uuid

from redis.asyncio import Redis

from core.alerts.rules import Rule
from core.alerts.service import AlertService, AlertSettings
from core.alerts.store import AlertStore
from core.keys import Keys
from core.metrics.registry import default_registry
from core.models import MS_PER_DAY, BasisSample, FundingSample
from core.store import MarketStore

VENUES = ("binanceusdm", "binancecoinm", "okx", "bybit", "deribit")
ASSETS = [f"A{i:03d}" for i in range(100)]
RULES_PER_TOPIC = 500


REGISTRY = default_registry()


def make_rules(rng: random.Random) -> list[Rule]:
    rules = []
    n = 0
    for asset in ASSETS:
        for metric in ("funding", "basis"):
            scale = 0.001 if metric == "funding" else 0.5
            for _ in range(RULES_PER_TOPIC):
                n += 1
                kind = rng.choice(("above", "above", "below", "crosses"))
                venue = rng.choice(("max", "min", "mean", *VENUES))
                rules.append(
                    Rule(
                        id=f"r{n}",
                        metric=metric,
                        asset=asset,
                        kind=kind,
                        threshold=rng.uniform(-scale, scale),
                        venue=venue,
                        cooldown_s=3600,
                        hysteresis=scale * 0.05,
                        scope="global",
                        selector=REGISTRY.get(metric).selector_for(kind, venue),
                    )
                )
    return rules


def batch(
    venue: str, rng: random.Random, now: int, drift: float, noise: float
) -> tuple[list[FundingSample], list[BasisSample]]:
    funding, basis = [], []
    for asset in ASSETS:
        funding.append(
            FundingSample(
                venue=venue,
                symbol=f"{asset}/USDT:USDT",
                asset=asset,
                settle="USDT",
                inverse=False,
                rate_per_interval=rng.gauss(drift * 0.001, 0.0001 * noise),
                interval_s=28_800,
                next_funding_ms=None,
                predicted_rate=None,
                mark_usd=100.0,
                index_usd=100.0,
                ts_ms=now,
            )
        )
        for q in (1, 2):
            price = 100.0 * (1 + rng.gauss(drift * 0.5, 0.05 * noise) * 90 * q / 365)
            basis.append(
                BasisSample(
                    venue=venue,
                    symbol=f"{asset}/USDT:USDT-Q{q}",
                    asset=asset,
                    settle="USDT",
                    inverse=False,
                    expiry_ms=now + 90 * q * MS_PER_DAY,
                    future_usd=price,
                    index_usd=100.0,
                    ts_ms=now,
                )
            )
    return funding, basis


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--batches", type=int, default=200)
    args = ap.parse_args()
    redis = Redis.from_url(args.redis)
    keys = Keys(prefix=f"bench{uuid.uuid4().hex[:8]}")
    rng = random.Random(1)
    store = AlertStore(redis, keys)
    rules = make_rules(rng)
    try:
        pipe = redis.pipeline(transaction=False)
        for i in range(0, len(rules), 5000):
            pipe.hset(keys.rules(), mapping={r.id: r.to_json() for r in rules[i : i + 5000]})
        await pipe.execute()
        clock = [int(time.time() * 1000)]
        svc = AlertService(
            store,
            MarketStore(redis, keys, retention_ms=MS_PER_DAY),
            keys,
            REGISTRY,
            AlertSettings(sources={"funding": VENUES, "basis": VENUES}, history_assets=()),
            clock_ms=lambda: clock[0],
        )
        t0 = time.perf_counter()
        await svc.start()
        print(f"{len(svc.engine)} rules across {len(ASSETS) * 2} topics loaded in {time.perf_counter() - t0:.2f} s")

        async def poll(venue: str, funding: list[FundingSample], basis: list[BasisSample]) -> int:
            return await svc.on_samples("funding", venue, funding) + await svc.on_samples("basis", venue, basis)

        for venue in VENUES:  # every venue reports once, so aggregates see all of them
            await poll(venue, *batch(venue, rng, clock[0], 0.0, 0.1))
        gc.freeze()  # the bot does the same after loading rules: 100k long-lived objects leave the GC's scans
        scenarios = (
            ("quiet (values move a little between polls)", lambda i: 0.0, 0.1),
            ("choppy (noise as wide as the hysteresis bands)", lambda i: 0.0, 1.0),
            ("trending (values sweep through thresholds)", lambda i: (i % 40 - 20) / 20, 1.0),
        )
        for label, drift_of, noise in scenarios:
            times, fired = [], 0
            for i in range(args.batches):
                clock[0] += 1000
                venue = VENUES[i % len(VENUES)]
                funding, basis = batch(venue, rng, clock[0], drift_of(i), noise)
                t = time.perf_counter()
                fired += await poll(venue, funding, basis)
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            print(
                f"{label}: {args.batches} batches of {len(ASSETS)} assets x (1 perp + 2 futures): "
                f"p50 {statistics.median(times):.2f} ms  p99 {times[int(len(times) * 0.99) - 1]:.2f} ms  "
                f"max {times[-1]:.2f} ms  alerts fired {fired} ({fired / args.batches:.1f}/batch)"
            )
    finally:
        batch_keys = [k async for k in redis.scan_iter(match=f"{keys.prefix}:*", count=1000)]
        for i in range(0, len(batch_keys), 1000):
            await redis.delete(*batch_keys[i : i + 1000])
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
