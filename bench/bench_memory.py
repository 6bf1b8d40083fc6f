"""Benchmark: Redis memory per 1,000 subscribers and per tracked series per day, on a redis-server of its own.

- Subscribers: 1,000 chats through ``AlertStore.subscribe``, each to ``all btc`` (funding, basis, open
  interest and flows: 4 topics), then 1,000 more each to one topic of its own asset (a long tail of topics).
- Series: one contract's history as the watchers write it (``MarketStore.write_samples``, one point per
  ``history.step_s``, default 300 s: 288 points a day), for funding and for basis, 100 contracts each.

Memory is Redis's ``used_memory`` before and after (a fresh server, so nothing else moves it).

    .venv/bin/python -m bench.bench_memory [--step-s 300]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import tempfile
import time

from redis.asyncio import Redis

from core.alerts.store import AlertStore
from core.keys import Keys
from core.metrics.registry import default_registry
from core.models import MS_PER_DAY, BasisSample, FundingSample
from core.store import MarketStore

SERIES = 100


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def used(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def subscribers(redis: Redis, keys: Keys) -> tuple[float, float]:
    store = AlertStore(redis, keys)
    before = await used(redis)
    for chat in range(1000):
        await store.subscribe(f"tg:{100_000_000 + chat}", ["funding:BTC", "basis:BTC", "oi:BTC", "flows:BTC"])
    shared = (await used(redis) - before) / 1000
    before = await used(redis)
    for chat in range(1000):
        await store.subscribe(f"tg:{200_000_000 + chat}", [f"funding:A{chat:04d}"])
    tail = (await used(redis) - before) / 1000
    return shared * 1000, tail * 1000


def funding(i: int, ts: int) -> FundingSample | BasisSample:
    return FundingSample(
        venue="binanceusdm",
        symbol=f"A{i:03d}/USDT:USDT",
        asset=f"A{i:03d}",
        settle="USDT",
        inverse=False,
        rate_per_interval=0.0001 + i * 1e-7 + (ts % 997) * 1e-9,
        interval_s=28_800,
        next_funding_ms=ts + 3_600_000,
        predicted_rate=None,
        mark_usd=100.0 + i,
        index_usd=100.0,
        ts_ms=ts,
    )


def future(i: int, ts: int) -> FundingSample | BasisSample:
    return BasisSample(
        venue="binanceusdm",
        symbol=f"A{i:03d}/USDT:USDT-270326",
        asset=f"A{i:03d}",
        settle="USDT",
        inverse=False,
        expiry_ms=1_806_000_000_000,
        future_usd=101.0 + i + (ts % 991) * 1e-3,
        index_usd=100.0 + i,
        ts_ms=ts,
    )


async def series(redis: Redis, keys: Keys, step_s: float) -> tuple[float, float, int]:
    store = MarketStore(redis, keys, retention_ms=35 * MS_PER_DAY)
    registry = default_registry()
    points = int(86_400 / step_s)
    start = int(time.time() * 1000) - MS_PER_DAY
    out = []
    for metric, make in (("funding", funding), ("basis", future)):
        m = registry.get(metric)
        before = await used(redis)
        for n in range(points):
            ts = start + int(n * step_s * 1000)
            samples = [make(i, ts) for i in range(SERIES)]
            await store.write_samples(m, "binanceusdm", samples, history=m.history_samples(samples), now_ms=ts)
        out.append((await used(redis) - before) / SERIES)
    return out[0], out[1], points


def _start_server(port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        from bot.embedded_redis import find_redis_server

        binary = find_redis_server()
    return subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tempfile.mkdtemp(prefix="bw-bench-"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--step-s", type=float, default=300.0, help="history.step_s (default 300)")
    args = parser.parse_args()
    port = _free_port()
    proc = _start_server(port)
    try:
        redis = Redis(port=port)
        for _ in range(100):
            try:
                await redis.ping()
                break
            except Exception:
                await asyncio.sleep(0.05)
        keys = Keys(prefix="bench")
        shared, tail = await subscribers(redis, keys)
        f_day, b_day, points = await series(redis, keys, args.step_s)
        version = (await redis.info("server"))["redis_version"]
        await redis.aclose()
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"redis-server {version}, used_memory deltas")
    print(f"1,000 subscribers to 'all btc' (4 shared topics each): {shared / 1024:.0f} KiB")
    print(f"1,000 subscribers to one topic each (1,000 distinct topics): {tail / 1024:.0f} KiB")
    print(
        f"one funding series, one day at step {args.step_s:g}s ({points} points): {f_day / 1024:.1f} KiB "
        f"({f_day / points:.0f} B/point; 35-day retention: {35 * f_day / 1024 / 1024:.2f} MiB)"
    )
    print(
        f"one basis series, one day at step {args.step_s:g}s ({points} points): {b_day / 1024:.1f} KiB "
        f"({b_day / points:.0f} B/point; 35-day retention: {35 * b_day / 1024 / 1024:.2f} MiB)"
    )


if __name__ == "__main__":
    asyncio.run(main())
