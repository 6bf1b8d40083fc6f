"""``python -m bot backfill``: the venues' and flow providers' public history into the bot's Redis."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from typing import TextIO

import aiohttp
from redis.asyncio import Redis

from bot.app import flow_providers
from bot.embedded_redis import EmbeddedRedis
from bot.settings import Settings
from core.history.csvdata import parse_utc_ms
from core.keys import Keys
from core.store import MarketStore
from watchers.backfill import Backfill
from watchers.errors import SourceError
from watchers.venues import VenueClient
from watchers.venues.history import HistoryClient

DAY_MS = 86_400_000


def parser(settings: Settings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bot backfill",
        description="Fetch history (funding settlements, dated futures' basis, perpetuals' "
        "open interest, flow days) into the bot's Redis; "
        "resumable and idempotent: run the same command again after a stop.",
    )
    p.add_argument("--asset", required=True, help="base asset, e.g. btc")
    p.add_argument("--from", dest="start", required=True, help="first UTC day, e.g. 2024-01-01")
    p.add_argument("--to", dest="end", required=True, help="last UTC day (inclusive), e.g. 2024-03-31")
    p.add_argument(
        "--venues",
        default=",".join(settings.watchers.venues),
        help="comma-separated venues (default: the watched ones)",
    )
    p.add_argument("--no-flows", action="store_true", help="skip the flow providers")
    p.add_argument(
        "--min-interval",
        type=float,
        default=0.25,
        help="seconds between two history requests to one venue (default 0.25)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=5,
        help="retries of a failing request (timeouts, 5xx, 429), with backoff from 1s (default 5)",
    )
    return p


class Progress:
    """A bar redrawn in place on a terminal; a plain line per tenth of the work otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last_tenth = -1

    def __call__(self, done: int, total: int, what: str) -> None:
        frac = done / total if total else 1.0
        if self.tty:
            bar = "#" * int(frac * 30)
            self.out.write(f"\r[{bar:<30}] {done}/{total} {what[:40]:<40}")
            if done >= total:
                self.out.write("\n")
        elif int(frac * 10) != self._last_tenth or done >= total:
            self._last_tenth = int(frac * 10)
            self.out.write(f"backfill: {done}/{total} steps ({frac:.0%}) {what}\n")
        self.out.flush()


@contextlib.asynccontextmanager
async def _redis(settings: Settings) -> AsyncIterator[Redis]:
    """The configured Redis; else the bot's embedded one (the running bot's server when it is up)."""
    if settings.redis.url:
        client = Redis.from_url(settings.redis.url, decode_responses=False)
        try:
            yield client
        finally:
            await client.aclose()
        return
    embedded = EmbeddedRedis(settings.redis.data_dir)
    client = Redis(unix_socket_path=str(embedded.socket))
    try:
        running = embedded.socket.exists() and bool(await client.ping())
    except Exception:  # a socket left over from a crash: nobody answers
        running = False
    await client.aclose()
    if not running:
        await embedded.start()
    client = Redis.from_url(embedded.url, decode_responses=False)
    try:
        yield client
    finally:
        await client.aclose()
        if not running:
            await embedded.stop()


async def run_backfill(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    try:
        start_ms, end_ms = parse_utc_ms(args.start), parse_utc_ms(args.end) + DAY_MS - 1
    except ValueError:
        print("error: --from and --to are UTC days such as 2024-01-01", file=sys.stderr)
        return 2
    now = int(time.time() * 1000)
    retention_ms = int(settings.history.retention_days * DAY_MS)
    if end_ms < start_ms:
        print("error: --to must not be before --from", file=sys.stderr)
        return 2
    if start_ms < now - retention_ms:
        print(
            f"error: --from {args.start} is older than [history] retention_days = {settings.history.retention_days:g}"
            f" (the store keeps {settings.history.retention_days:g} days): raise it to at least "
            f"{(now - start_ms) // DAY_MS + 1} to keep this backfill",
            file=sys.stderr,
        )
        return 2
    venues = [v.strip() for v in args.venues.split(",") if v.strip()]
    unknown = [v for v in venues if v not in settings.watchers.venues]
    if unknown:
        print(
            f"error: --venues {','.join(unknown)}: accepted are the watched venues "
            f"{', '.join(settings.watchers.venues)}",
            file=sys.stderr,
        )
        return 2
    w = settings.watchers
    clients = [VenueClient(v, timeout_s=w.request_timeout_s, rest_base_url=w.rest_base_urls.get(v)) for v in venues]
    try:
        async with _redis(settings) as redis, aiohttp.ClientSession() as session:
            keys = Keys(prefix=settings.redis.key_prefix)
            store = MarketStore(redis, keys, retention_ms=retention_ms)
            providers = [] if args.no_flows else flow_providers(settings, session)
            job = Backfill(
                store,
                keys,
                settings.registry(),
                [HistoryClient(c, min_interval_s=args.min_interval) for c in clients],
                providers,
                asset=args.asset,
                start_ms=start_ms,
                end_ms=end_ms,
                progress=Progress(out),
                max_retries=max(0, args.retries),
            )
            try:
                report = await job.run()
            except SourceError as e:
                print(
                    f"\nbackfill stopped: {type(e).__name__}: {e}. What was fetched is kept; run the same command "
                    "again to resume.",
                    file=sys.stderr,
                )
                return 1
    finally:
        for c in clients:
            await c.close()
    for part, n in sorted(report.stored.items()):
        print(f"{part}: {n} stored", file=out)
    for why in report.skipped:
        print(f"skipped {why}", file=out)
    if report.resumed:
        print(f"resumed {len(report.resumed)} parts from their checkpoints", file=out)
    print(f"done: {sum(report.stored.values())} rows, {report.requests} requests", file=out)
    return 0


def main(argv: list[str], settings: Settings) -> int:
    args = parser(settings).parse_args(argv)
    try:
        return asyncio.run(run_backfill(args, settings, sys.stdout))
    except KeyboardInterrupt:
        print(
            "\nbackfill interrupted: what was fetched is kept; run the same command again to resume.", file=sys.stderr
        )
        return 1
