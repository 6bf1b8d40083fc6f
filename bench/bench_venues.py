"""Benchmark: one poll of each of the nine venues through the real ccxt against the local exchange double.

Prints per venue: requests per poll (market load excluded), samples per metric, and the median poll time
(request round trips on localhost plus ccxt's parsing and its rate limiter; the real venues add network
latency). Per-symbol calls (binance open interest) go to BTC, ETH and SOL only.

    .venv/bin/python -m bench.bench_venues [--polls 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from tests.fakes.exchanges import ExchangeDouble
from watchers.venues import ADAPTERS, VenueClient


async def main(polls: int) -> None:
    async with ExchangeDouble() as double:
        print(f"{'venue':<14} {'reqs/poll':>9} {'funding':>8} {'basis':>6} {'oi':>4} {'p50 ms':>7}  serves")
        for venue in ADAPTERS:
            client = VenueClient(venue, timeout_s=5.0, rest_base_url=double.url(venue), oi_assets=("BTC", "ETH", "SOL"))
            try:
                await client.load_markets()
                times, reqs = [], []
                snap = None
                for _ in range(polls):
                    t0 = time.perf_counter()
                    snap = await client.snapshot()
                    times.append((time.perf_counter() - t0) * 1000)
                    reqs.append(snap.requests)
                assert snap is not None
                counts = {m: (str(len(p.samples)) if p.error is None else "ERR") for m, p in snap.parts.items()}
                print(
                    f"{venue:<14} {statistics.median(reqs):>9.0f} {counts.get('funding', '-'):>8} "
                    f"{counts.get('basis', '-'):>6} {counts.get('oi', '-'):>4} {statistics.median(times):>7.1f}  "
                    f"{ADAPTERS[venue].summary()}"
                )
            finally:
                await client.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--polls", type=int, default=5)
    asyncio.run(main(ap.parse_args().polls))
