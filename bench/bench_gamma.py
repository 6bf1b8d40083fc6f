"""Benchmark: dealer gamma on a chain of Deribit's real size, through the command core against a real Redis.

Loads a BTC chain of 12 expiries x 36 strikes, calls and puts (864 options, about Deribit's BTC
listing) plus funding, basis and open interest on 5 venues and 120 global rules on those topics,
then times the flip-level search, ``/gamma btc`` and ``/summary btc`` and counts Redis round trips
per command.

    .venv/bin/python -m bench.bench_gamma [--redis redis://127.0.0.1:6379/0] [--calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from redis.asyncio import Redis

from core.alerts.rules import parse_rule
from core.alerts.store import AlertStore
from core.commands import CommandCore, CoreSettings
from core.gamma import OptionSample, flip_level
from core.keys import Keys
from core.metrics.registry import default_registry
from core.models import MS_PER_DAY, BasisSample, FundingSample, OpenInterestSample
from core.store import MarketStore

VENUES = ("binanceusdm", "binancecoinm", "okx", "bybit", "deribit")
SPOT = 100_000.0


def chain(now: int) -> list[OptionSample]:
    out = []
    for e, days in enumerate((1, 2, 3, 7, 14, 21, 28, 56, 91, 119, 182, 273)):
        fwd = SPOT * (1 + 0.08 * days / 365)
        for i in range(36):
            k = SPOT * (0.55 + i * 0.03)
            for call in (True, False):
                oi = 50 + 400 * (1 if (k > SPOT) == call else 0.6) * (1 - abs(k / SPOT - 1))
                out.append(
                    OptionSample(
                        "deribit",
                        f"BTC-{e}-{k:.0f}-{'C' if call else 'P'}",
                        "BTC",
                        k,
                        now + days * MS_PER_DAY,
                        call,
                        max(oi, 1.0),
                        45 + 30 * abs(k / SPOT - 1),
                        fwd,
                        SPOT,
                        now,
                    )
                )
    return out


async def load(store: MarketStore, now: int) -> list[OptionSample]:
    reg = default_registry()
    for venue in VENUES:
        f = FundingSample(venue, "BTC/USDT:USDT", "BTC", "USDT", False, 0.0001, 28_800, None, None, SPOT, SPOT, now)
        b = [
            BasisSample(
                venue,
                f"BTC/USDT:USDT-Q{q}",
                "BTC",
                "USDT",
                False,
                now + q * 90 * MS_PER_DAY,
                SPOT * (1 + 0.01 * q),
                SPOT,
                now,
            )
            for q in (1, 2, 3)
        ]
        o = OpenInterestSample(venue, "BTC/USDT:USDT", "BTC", "USDT", False, "swap", 1000.0, 1e8, now)
        for name, samples in (("funding", [f]), ("basis", b), ("oi", [o])):
            await store.write_samples(reg.get(name), venue, samples, now_ms=now)
    opts = chain(now)
    await store.write_samples(reg.get("gamma"), "deribit", opts, now_ms=now)
    return opts


def pct(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    redis = Redis.from_url(args.redis, decode_responses=False)
    keys = Keys(prefix=f"bench{uuid.uuid4().hex[:8]}")
    store = MarketStore(redis, keys, retention_ms=MS_PER_DAY)
    now = int(time.time() * 1000)
    opts = await load(store, now)
    reg = default_registry()
    sources = {m.name: () if m.overview else ("deribit",) if m.fixed_sources else VENUES for m in reg}
    core = CommandCore(store, CoreSettings(venues=VENUES, sources=sources), reg)
    alerts = AlertStore(redis, keys)
    rules = [
        "funding btc above 0.01%",
        "basis btc above 40%",
        "oi btc above 30b",
        "gamma btc below -50m",
        "gamma btc flip",
        "all(basis btc above 40%; funding btc above 0.05%; flows btc netflow above 3000)",
    ]
    for i, text in enumerate(rules * 20):  # 120 global rules on the factors' topics
        rule = parse_rule(
            text.split(),
            registry=reg,
            sources=sources | {"flows": ("coinmetrics",)},
            rule_id=f"r{i}",
            default_cooldown_s=3600,
            now_ms=now,
            created_by="bench",
        )
        await alerts.save_rule(rule, who="bench", action="set", now_ms=now)

    writes = [0]
    conn_cls = redis.connection_pool.connection_class
    original = conn_cls.send_packed_command

    async def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        writes[0] += 1
        return await original(self, command, check_health)

    conn_cls.send_packed_command = counting  # counts wire writes (round trips) only
    try:
        lat = []
        for _ in range(20):
            t0 = time.perf_counter()
            flip_level(opts, now, SPOT)
            lat.append((time.perf_counter() - t0) * 1000)
        print(f"{len(opts)} options; flip level search: p50 {statistics.median(lat):.1f} ms  max {max(lat):.1f} ms")
        for name in ("gamma", "summary"):
            for _ in range(5):
                await core.run(name, ["btc"])
            lat = []
            writes[0] = 0
            for _ in range(args.calls):
                t0 = time.perf_counter()
                reply = await core.run(name, ["btc"])
                lat.append((time.perf_counter() - t0) * 1000)
                assert not reply.error, reply.title
            trips = writes[0] / args.calls
            print(
                f"/{name} btc: {args.calls} calls  p50 {statistics.median(lat):.2f} ms  p99 {pct(lat, 0.99):.2f} ms  "
                f"max {max(lat):.2f} ms  Redis round trips/command {trips:.2f}"
            )
    finally:
        conn_cls.send_packed_command = original
        batch = [k async for k in redis.scan_iter(match=f"{keys.prefix}:*")]
        if batch:
            await redis.delete(*batch)
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
