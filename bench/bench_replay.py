"""Benchmark: replay one year of 8h funding on 5 venues plus daily flows through 1,000 rules.

The data is written as the CSVs ``python -m bot replay`` reads (mean-reverting random walks:
funding around 0.01%/8h with a spread of about 0.025%, daily netflow around zero), the rules mix
above/below/crosses thresholds where admins set them on each venue and on the aggregates, a few
change rules, and flow rules on every series. The timed run is the
command's own path: load the CSVs, start a throwaway embedded Redis, replay, print.

Then ``/backtest funding btc above 0.05% 90d`` through the command core over 35 days of stored
history (the default retention) at the live 5-minute step: 5 venues x 4 BTC perpetuals.

    .venv/bin/python -m bench.bench_replay [--rules 1000] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import random
import tempfile
import time
from pathlib import Path

from bot.replay_cli import run_replay
from bot.settings import Settings

VENUES = ("binance", "bybit", "okx", "gate", "kucoin")
START = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
DAYS = 365


def write_data(folder: Path, rng: random.Random) -> int:
    rows = 0
    with (folder / "funding_8h.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ts_utc", "venue", "symbol", "rate_per_8h"])
        level = dict.fromkeys(VENUES, 0.0001)
        for i in range(DAYS * 3):
            ts = (START + dt.timedelta(hours=8 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for v in VENUES:
                level[v] = max(-0.003, min(0.003, level[v] * 0.97 + 0.000003 + rng.gauss(0, 0.00006)))
                w.writerow([ts, v, "BTC/USDT:USDT", f"{level[v]:.8f}"])
                rows += 1
    with (folder / "exchange_flows_1d.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "date",
                "available_at_utc",
                "inflow_btc",
                "outflow_btc",
                "netflow_btc",
                "exchange_balance_btc",
                "price_usd",
            ]
        )
        balance = 2_000_000.0
        for i in range(DAYS):
            day = START + dt.timedelta(days=i)
            inflow, outflow = 20_000 + rng.gauss(0, 3000), 20_000 + rng.gauss(0, 3000)
            balance += inflow - outflow
            published = day + dt.timedelta(days=1, hours=4, minutes=rng.randrange(60))
            w.writerow(
                [
                    day.date().isoformat(),
                    published.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    f"{inflow:.2f}",
                    f"{outflow:.2f}",
                    f"{inflow - outflow:.2f}",
                    f"{balance:.2f}",
                    "30000",
                ]
            )
            rows += 1
    return rows


def write_rules(path: Path, n: int, rng: random.Random) -> None:
    texts = []
    for i in range(n):
        if i % 10 == 9:
            texts.append(
                rng.choice(
                    (
                        f"flows btc netflow above {rng.randrange(2000, 9000)}",
                        f"flows btc netflow below {rng.randrange(-9000, -2000)}",
                        f"flows btc inflow above {rng.randrange(25_000, 32_000)}",
                        f"flows btc outflow above {rng.randrange(25_000, 32_000)}",
                    )
                )
            )
            continue
        where = rng.choice((*VENUES, "max", "min", "mean"))
        if i % 25 == 0:
            texts.append(f"funding btc change {rng.uniform(0.01, 0.05):.3f}% 1d venue {where}")
        elif i % 10 == 0:
            texts.append(f"funding btc crosses {rng.uniform(-0.02, 0.05):.4f}% venue {where}")
        elif i % 2:
            texts.append(f"funding btc above {rng.uniform(0.02, 0.15):.4f}% venue {where}")
        else:
            texts.append(f"funding btc below {rng.uniform(-0.1, 0.01):.4f}% venue {where}")
    path.write_text("rules = [\n" + "".join(f'  "{t}",\n' for t in texts) + "]\n")


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rules", type=int, default=1000)
    p.add_argument("--redis-url", default=None, help="default: a throwaway embedded Redis, as the command uses")
    opts = p.parse_args()
    rng = random.Random(14)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = write_data(folder, rng)
        write_rules(folder / "rules.toml", opts.rules, rng)
        args = argparse.Namespace(
            data=folder,
            start=START.date().isoformat(),
            end=(START + dt.timedelta(days=DAYS - 1)).date().isoformat(),
            rules=folder / "rules.toml",
            chart=None,
            redis_url=opts.redis_url,
        )
        lines: list[str] = []
        t0 = time.perf_counter()
        result = await run_replay(args, Settings(), lines)
        elapsed = time.perf_counter() - t0
    print(
        f"replay: {rows:,} CSV rows ({DAYS} days of 8h funding on {len(VENUES)} venues + daily flows), "
        f"{opts.rules:,} rules, {result.batches:,} batches -> {len(result.events):,} alerts in {elapsed:.2f} s "
        f"(goal < 5 s; includes reading the CSVs and starting the embedded Redis)"
    )
    await bench_backtest(opts.redis_url)


async def bench_backtest(redis_url: str | None) -> None:
    from redis.asyncio import Redis

    from bot.embedded_redis import EmbeddedRedis
    from core.history.replay import drop_keys, scratch_keys
    from core.keys import Keys
    from core.metrics.registry import default_registry
    from core.models import FundingSample
    from core.store import MarketStore
    from tests.builders import command_core

    registry = default_registry()
    funding = registry.get("funding")
    rng = random.Random(15)
    with tempfile.TemporaryDirectory() as tmp:
        embedded = None if redis_url else EmbeddedRedis(tmp)
        url = redis_url or await embedded.start()  # type: ignore[union-attr]
        client = Redis.from_url(url, decode_responses=False)
        keys = scratch_keys(Keys(prefix="bench"))
        try:
            store = MarketStore(client, keys, retention_ms=40 * 86_400_000)
            now = int(time.time() * 1000)
            step = 300_000
            n = 35 * 86_400_000 // step
            symbols = ("BTC/USDT:USDT", "BTC/USDC:USDC", "BTC/USD:BTC", "BTC/USDT:USDT-2")
            for v in VENUES:
                level = 0.0001
                history = []
                for i in range(n):
                    level = max(-0.003, min(0.003, level * 0.999 + 0.0000001 + rng.gauss(0, 0.00001)))
                    for sym in symbols:
                        history.append(
                            FundingSample(
                                v,
                                sym,
                                "BTC",
                                sym.split(":")[1],
                                sym.endswith("BTC"),
                                level,
                                28_800,
                                None,
                                None,
                                None,
                                None,
                                now - (n - i) * step,
                            )
                        )
                for k in range(0, len(history), 20_000):
                    await store.write_samples(
                        funding, v, [], now_ms=now, replace=False, history=history[k : k + 20_000]
                    )
            core = command_core(store, VENUES, clock_ms=lambda: now)
            t0 = time.perf_counter()
            reply = await core.run("backtest", ["funding", "btc", "above", "0.05%", "90d"])
            elapsed = time.perf_counter() - t0
        finally:
            await drop_keys(client, keys)
            await client.aclose()
            if embedded is not None:
                await embedded.stop()
    print(
        f"backtest: /backtest funding btc above 0.05% 90d over {n * len(VENUES) * len(symbols):,} stored samples "
        f"(35 days, 5 min, {len(VENUES)} venues x {len(symbols)} perps) answered in {elapsed:.2f} s: "
        f"{reply.blocks[0] if reply.blocks else reply.title}"
    )


if __name__ == "__main__":
    asyncio.run(main())
