"""``python -m bot replay``: what the rules would have fired over recorded data, printed one line per alert."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from bot.embedded_redis import EmbeddedRedis
from bot.settings import Settings
from core.alerts.service import AlertSettings
from core.history.csvdata import load_dir, parse_utc_ms
from core.history.replay import ReplayResult, drop_keys, replay, scratch_keys
from core.history.report import alert_line, stale_after_ms
from core.history.rulesfile import parse_rules_toml, rule_texts
from core.keys import Keys
from core.reply import UserError

DAY_MS = 86_400_000


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bot replay", description="Replay recorded data (CSV, see README) through the alert rules."
    )
    p.add_argument("--data", type=Path, required=True, help="folder with funding*.csv, *flows*.csv, spot*.csv")
    p.add_argument("--from", dest="start", required=True, help="first UTC day, e.g. 2021-04-01")
    p.add_argument("--to", dest="end", required=True, help="last UTC day (inclusive), e.g. 2021-04-30")
    p.add_argument("--rules", type=Path, required=True, help='TOML file: rules = ["funding btc above 0.05%%"]')
    p.add_argument("--chart", type=Path, default=None, help="write a PNG of the price with the alerts marked")
    p.add_argument(
        "--redis-url",
        default=None,
        help="use this Redis (a scratch key prefix, dropped afterwards) instead of a throwaway embedded one",
    )
    return p


async def run_replay(args: argparse.Namespace, settings: Settings, out: list[str]) -> ReplayResult:
    """Load, replay, format; alert lines are appended to ``out``."""
    try:
        start_ms = parse_utc_ms(args.start)
        end_ms = parse_utc_ms(args.end) + DAY_MS
    except ValueError:
        raise UserError("--from and --to are UTC days such as 2021-04-01") from None
    if end_ms <= start_ms:
        raise UserError("--to must not be before --from")
    registry = settings.registry()
    data = load_dir(args.data, registry, start_ms, end_ms)
    sources = {m.name: tuple(sorted(data.sources.get(m.name, ()))) for m in registry}
    try:
        text = args.rules.read_text()
    except OSError as e:
        raise UserError(f"--rules {args.rules}: {e.strerror}") from None
    rules = parse_rules_toml(
        text,
        registry=registry,
        sources=sources,
        default_cooldown_s=settings.alerts.default_cooldown_s,
        name=args.rules.name,
    )
    words = {r.id: line for r, line in zip(rules, rule_texts(text), strict=True)}
    alert_settings = AlertSettings(
        sources=sources,
        history_assets=(),
        history_step_s=settings.history.step_s,
        history_retention_ms=int(settings.history.retention_days * DAY_MS),
        stale_after_ms=stale_after_ms(data.batches, registry),
    )
    embedded: EmbeddedRedis | None = None
    with tempfile.TemporaryDirectory(prefix="basiswatch-replay-") as tmp:
        if args.redis_url:
            url = args.redis_url
        else:
            embedded = EmbeddedRedis(tmp)
            url = await embedded.start()
        client = Redis.from_url(url, decode_responses=False)
        keys = scratch_keys(Keys(prefix=settings.redis.key_prefix))
        try:
            result = await replay(
                client, keys, registry, rules, data.batches, settings=alert_settings, start_ms=start_ms, end_ms=end_ms
            )
        finally:
            await drop_keys(client, keys)
            await client.aclose()
            if embedded is not None:
                await embedded.stop()
    out += [alert_line(e, registry, words) for e in result.events]
    if args.chart is not None:
        from bot.replay_chart import draw

        draw(
            args.chart,
            data.prices,
            result.events,
            words,
            title=f"{args.start} to {args.end}: {len(result.events)} alerts from {len(rules)} rules",
        )
    print(
        f"# {len(result.events)} alerts from {len(rules)} rules over {result.samples} samples "
        f"({', '.join(data.files)}; {data.skipped} rows failed sanity checks)",
        file=sys.stderr,
    )
    return result


def main(argv: list[str], settings: Settings) -> int:
    args = parser().parse_args(argv)
    lines: list[str] = []
    t0 = time.perf_counter()
    try:
        asyncio.run(run_replay(args, settings, lines))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    print(f"# replayed in {time.perf_counter() - t0:.2f}s", file=sys.stderr)
    return 0
