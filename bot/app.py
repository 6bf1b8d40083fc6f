"""Wiring: one place that builds every client and owns every task's lifecycle."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import sys
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import TextIO

from redis.asyncio import Redis

from bot.embedded_redis import EmbeddedRedis
from bot.settings import Settings
from core.alert_commands import AlertCommands, AlertCommandSettings
from core.alerts.delivery import DeliveryWorker, ensure_group
from core.alerts.pacing import TELEGRAM_LIMITS, Limits
from core.alerts.rules import parse_rule
from core.alerts.service import AlertService
from core.alerts.service import AlertSettings as AlertServiceSettings
from core.alerts.store import AlertStore
from core.commands import CommandCore, CoreSettings
from core.keys import Keys
from core.store import MarketStore
from handlers.console.push import ConsoleSender
from handlers.console.repl import Console
from handlers.telegram.bot import TelegramFrontend
from handlers.telegram.push import TelegramSender
from watchers.market import MarketWatcher, MarketWatcherConfig
from watchers.runner import run_periodic
from watchers.venues import VenueClient

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 15
HEARTBEAT_TTL_S = 60
CONSOLE_LIMITS = Limits(global_per_s=50.0, private=(), group=())


async def open_redis(settings: Settings, stack: AsyncExitStack) -> Redis:
    """The configured Redis, or an embedded one started for this process."""
    url = settings.redis.url
    if not url:
        embedded = EmbeddedRedis(settings.redis.data_dir)
        url = await embedded.start()
        stack.push_async_callback(embedded.stop)
    client = Redis.from_url(url, decode_responses=False)
    stack.push_async_callback(client.aclose)
    await client.ping()
    return client


def console_wanted(settings: Settings, stdin: TextIO) -> bool:
    mode = settings.console.enabled
    if mode != "auto":
        return mode == "on"
    return not settings.telegram.token or stdin.isatty()


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def heartbeat(redis: Redis, keys: Keys, role: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await redis.set(keys.heartbeat(role), int(time.time() * 1000), ex=HEARTBEAT_TTL_S)
        try:
            await asyncio.wait_for(stop.wait(), HEARTBEAT_EVERY_S)
        except TimeoutError:
            pass


async def run(settings: Settings, stop: asyncio.Event, *, console: bool | None = None) -> None:
    """Run watchers and front ends until ``stop`` is set; release everything on the way out."""
    async with AsyncExitStack() as stack:
        redis = await open_redis(settings, stack)
        keys = Keys(prefix=settings.redis.key_prefix)
        store = MarketStore(redis, keys, retention_ms=int(settings.history.retention_days * 86_400_000))
        a = settings.alerts
        alert_store = AlertStore(redis, keys)
        alert_commands = AlertCommands(alert_store, AlertCommandSettings(
            venues=settings.watchers.venues,
            bot_admins={"tg": a.telegram_admins, "dc": a.discord_admins},
            default_cooldown_s=a.default_cooldown_s,
            default_hysteresis={"funding": a.funding_hysteresis, "basis": a.basis_hysteresis},
        ))
        core = CommandCore(store, CoreSettings(
            venues=settings.watchers.venues,
            basis_min_days=settings.basis.min_days_to_expiry,
            stale_after_s=settings.basis.stale_after_s,
        ), alerts=alert_commands)
        evaluator = AlertService(alert_store, store, keys, AlertServiceSettings(
            venues=settings.watchers.venues,
            basis_min_days=settings.basis.min_days_to_expiry,
            history_assets=settings.history.assets,
            history_step_s=settings.history.step_s,
            history_retention_ms=int(settings.history.retention_days * 86_400_000),
        ))
        await install_default_rules(alert_store, settings)
        use_console = console_wanted(settings, sys.stdin) if console is None else console
        groups = (["telegram"] if settings.telegram.token else []) + (["console"] if use_console else [])
        for group in groups:  # before any evaluation, so no alert fired from now on is missed
            await ensure_group(redis, keys.alerts(), group)
        await evaluator.start()
        gc.freeze()  # rules and markets loaded at start live for the process: keep them out of GC scans
        w = settings.watchers
        cfg = MarketWatcherConfig(
            markets_refresh_s=w.markets_refresh_s,
            history_step_s=settings.history.step_s,
            history_assets=settings.history.assets,
            max_abs_funding=settings.sanity.max_abs_funding_per_interval,
            max_deviation=settings.sanity.max_deviation_from_index,
        )
        watchers = []
        for venue in w.venues:
            client = VenueClient(venue, timeout_s=w.request_timeout_s, rest_base_url=w.rest_base_urls.get(venue))
            stack.push_async_callback(client.close)
            watchers.append(MarketWatcher(client, store, cfg, listeners=[evaluator.on_samples]))

        telegram: TelegramFrontend | None = None
        if settings.telegram.token:
            telegram = TelegramFrontend(core, token=settings.telegram.token.get(),
                                        base_url=settings.telegram.base_url,
                                        base_file_url=settings.telegram.base_file_url,
                                        poll_timeout_s=settings.telegram.poll_timeout_s)
            await telegram.start()
            stack.push_async_callback(telegram.stop)

        consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        async with asyncio.TaskGroup() as tg:
            for watcher in watchers:
                interval = w.venue_poll_interval_s.get(watcher.venue, w.poll_interval_s)
                tg.create_task(run_periodic(watcher.name, watcher.poll_once, interval_s=interval,
                                            max_backoff_s=w.max_backoff_s, stop=stop))
            tg.create_task(heartbeat(redis, keys, "bot", stop))
            claim_idle_ms = int(a.claim_idle_s * 1000)
            if telegram:
                limits = replace(TELEGRAM_LIMITS, global_per_s=a.telegram_rate_per_s)
                worker = DeliveryWorker(alert_store, TelegramSender(telegram.app.bot), group="telegram",
                                        consumer=consumer, limits=limits, claim_idle_ms=claim_idle_ms)
                tg.create_task(worker.run(stop))
            if use_console:
                reader = await _stdin_reader()
                tg.create_task(Console(core, reader, _write_stdout).run(stop))
                console_worker = DeliveryWorker(alert_store, ConsoleSender(_write_stdout), group="console",
                                                consumer=consumer, limits=CONSOLE_LIMITS, claim_idle_ms=claim_idle_ms)
                tg.create_task(console_worker.run(stop))
            log.info("running: %d venue watcher(s), telegram=%s, console=%s",
                     len(watchers), "on" if telegram else "off", "on" if use_console else "off")
            await stop.wait()
        log.info("shutting down")


async def install_default_rules(store: AlertStore, settings: Settings) -> None:
    """Install the config's default rules once each (a rule an admin deleted stays deleted)."""
    a = settings.alerts
    now = int(time.time() * 1000)
    for text in a.default_rules:
        if await store.claim_default(text):
            rule = parse_rule(text.split(), rule_id=await store.next_rule_id(), venues=settings.watchers.venues,
                              default_cooldown_s=a.default_cooldown_s,
                              default_hysteresis={"funding": a.funding_hysteresis, "basis": a.basis_hysteresis},
                              now_ms=now, created_by="config")
            await store.save_rule(rule, who="config", action="installed default", now_ms=now)
            log.info("alerts: installed default rule %s: %s", rule.id, rule.describe())


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
