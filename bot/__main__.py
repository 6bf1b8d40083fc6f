"""Command line: ``python -m bot [--config PATH] [run|check-config|healthcheck]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path

from bot.settings import ConfigError, Settings, load_settings


def _setup_logging(settings: Settings, levels: dict[str, str], fmt: str, console: bool) -> None:
    from bot import logsetup
    from bot.redaction import configured_secrets

    log_file = logsetup.console_log_path(settings.redis.data_dir) if console else None
    notice = None
    if log_file is not None:
        print(f"Logging to {log_file}; warnings show here as lines starting with '!'.", flush=True)

        def notice(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

    logsetup.setup(
        level=settings.log_level,
        levels=levels,
        fmt=fmt,
        secrets=configured_secrets(settings),
        log_file=log_file,
        notice=notice,
    )


async def _serve(settings: Settings, platforms: tuple[str, ...] | None, role: str) -> None:
    from bot.app import run

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop, platforms=platforms, role=role)


async def _healthcheck(settings: Settings, role: str) -> int:
    from redis.exceptions import RedisError

    from bot.embedded_redis import EmbeddedRedis
    from bot.redis_connect import RedisUnavailable, client_for, close, describe, ping_once
    from core.keys import Keys

    url = settings.redis.url or EmbeddedRedis(settings.redis.data_dir).url
    client = client_for(url)
    try:
        await ping_once(client, url)
        raw = await client.get(Keys(prefix=settings.redis.key_prefix).heartbeat(role))
    except RedisUnavailable as e:
        print(f"unhealthy: {e}")
        return 1
    except (RedisError, OSError) as e:
        print(f"unhealthy: {describe(url, e)}")
        return 1
    finally:
        await close(client)
    if raw is None:
        print("unhealthy: no heartbeat in Redis")
        return 1
    print(f"healthy: heartbeat {time.time() - int(raw) / 1000:.0f}s ago")
    return 0


TOOLS = ("replay", "backfill")  # commands with options of their own, after the global ones


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tool = next((i for i, a in enumerate(argv) if a in TOOLS), None)
    if tool is not None:
        return _tool(argv[tool], argv[:tool], argv[tool + 1 :])
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    parser.add_argument("--config", type=Path, default=None, help="TOML config file (see config.example.toml)")
    parser.add_argument(
        "--platforms",
        default=None,
        metavar="LIST",
        help="comma-separated subset of telegram,discord,console to run (default: every platform "
        "the config enables, console when no chat token is set or stdin is a terminal)",
    )
    parser.add_argument(
        "--role",
        default="all",
        choices=["all", "data", "chat"],
        help="all (default): everything in one process; data: watchers and rule evaluation only "
        "(any number: one polls, the others stand by); chat: chat front ends and alert delivery "
        "only (any number)",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text (default) or json: one JSON object per line with venue, asset, chat, alert fields",
    )
    parser.add_argument(
        "--log-level",
        default="",
        metavar="SPEC",
        help="LEVEL, or component=LEVEL pairs, e.g. watchers=DEBUG,telegram=WARNING "
        "(default: log_level from the config)",
    )
    parser.add_argument("command", nargs="?", default="run", choices=["run", "check-config", "healthcheck"])
    args = parser.parse_args(argv)
    platforms = None
    if args.platforms is not None:
        platforms = tuple(p.strip() for p in args.platforms.split(",") if p.strip())
        bad = [p for p in platforms if p not in ("telegram", "discord", "console")]
        if bad:
            print(
                f"error: --platforms {','.join(bad)} is not accepted: use telegram, discord, console", file=sys.stderr
            )
            return 2
    from bot.logsetup import parse_levels

    try:
        levels = parse_levels(args.log_level)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print("config ok")
        return 0
    if args.command == "healthcheck":
        return asyncio.run(_healthcheck(settings, "bot" if args.role == "all" else args.role))
    from bot.app import console_wanted
    from bot.startup_errors import describe

    console = args.role != "data" and (
        console_wanted(settings, sys.stdin) if platforms is None else "console" in platforms
    )
    _setup_logging(settings, levels, args.log_format, console)
    try:
        asyncio.run(_serve(settings, platforms, args.role))
    except KeyboardInterrupt:
        pass
    except Exception as e:  # through logging, whose filter masks secrets, never as a bare traceback
        line = describe(e)
        if line is None:
            logging.getLogger("bot").critical("stopped by an unexpected error", exc_info=e)
        else:
            logging.getLogger("bot").error("cannot start: %s", line)
        return 1
    return 0


def _tool(name: str, head: list[str], rest: list[str]) -> int:
    """``[--config PATH] replay|backfill ...``: one-shot tools sharing the bot's settings."""
    parser = argparse.ArgumentParser(prog="python -m bot")
    parser.add_argument("--config", type=Path, default=None)
    args = parser.parse_args(head)
    try:
        settings = load_settings(args.config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if name == "backfill":
        from bot.backfill_cli import main as backfill_main

        return backfill_main(rest, settings)
    from bot.replay_cli import main as replay_main

    return replay_main(rest, settings)


if __name__ == "__main__":
    sys.exit(main())
