"""Wiring: one place that builds every client and owns every task's lifecycle."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import socket
import sys
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any, TextIO

import aiohttp
from redis.asyncio import Redis

from bot.embedded_redis import EmbeddedRedis
from bot.settings import Settings
from core.alert_commands import AlertCommands, AlertCommandSettings
from core.alerts.delivery import DeliveryWorker, Sender, ensure_group
from core.alerts.pacing import DISCORD_LIMITS, TELEGRAM_LIMITS, Limits
from core.alerts.rules import Rule, parse_rule
from core.alerts.service import AlertService
from core.alerts.service import AlertSettings as AlertServiceSettings
from core.alerts.store import AlertStore, FiredAlert
from core.commands import CommandCore, CoreSettings
from core.keys import Keys
from core.reply import Reply
from core.store import MarketStore
from handlers.console.push import ConsoleSender
from handlers.console.repl import Console
from handlers.discord.bot import DiscordFrontend, RedisSyncState
from handlers.discord.push import DiscordSender
from handlers.telegram.bot import TelegramFrontend
from handlers.telegram.push import TelegramSender
from watchers.flows import CoinMetricsProvider, CryptoQuantProvider, FlowProvider, GlassnodeProvider
from watchers.flows.watcher import FlowWatcher
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
    return not (settings.telegram.token or settings.discord.token) or stdin.isatty()


async def _stdin_reader(stack: AsyncExitStack) -> asyncio.StreamReader:
    """stdin as a stream; the pipe transport is closed when the stack unwinds."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stack.callback(transport.close)
    return reader


async def heartbeat(redis: Redis, keys: Keys, role: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await redis.set(keys.heartbeat(role), int(time.time() * 1000), ex=HEARTBEAT_TTL_S)
        except Exception as e:  # a Redis hiccup must not end the process; the healthcheck sees the gap
            log.warning("heartbeat: %s", e)
        try:
            await asyncio.wait_for(stop.wait(), HEARTBEAT_EVERY_S)
        except TimeoutError:
            pass


def flow_providers(settings: Settings, session: aiohttp.ClientSession) -> list[FlowProvider]:
    """One client per configured flow provider, sharing the process's HTTP session."""
    f = settings.flows
    lag_s = f.publication_lag_h * 3600
    out: list[FlowProvider] = []
    for name in f.providers:
        kw: dict[str, Any] = {"publication_lag_s": lag_s}
        if name in f.base_urls:
            kw["base_url"] = f.base_urls[name]
        if name == "coinmetrics":
            out.append(CoinMetricsProvider(session, **kw))
        elif name == "glassnode":
            out.append(GlassnodeProvider(session, f.glassnode_api_key.get(), **kw))
        else:
            out.append(CryptoQuantProvider(session, f.cryptoquant_api_key.get(), **kw))
    return out


ROLES = ("all", "data", "chat")


async def run(settings: Settings, stop: asyncio.Event, *, console: bool | None = None,
              platforms: tuple[str, ...] | None = None, role: str = "all") -> None:
    """Run watchers and front ends until ``stop`` is set; release everything on the way out.

    ``platforms`` (telegram, discord, console) narrows what the config enables, as the CLI flag does.
    ``role``: "data" runs the watchers and rule evaluation only (run exactly one per Redis), "chat" the
    front ends and alert delivery only (delivery may run in several), "all" both.
    """
    data_role, chat_role = role in ("all", "data"), role in ("all", "chat")
    async with AsyncExitStack() as stack:
        redis = await open_redis(settings, stack)
        keys = Keys(prefix=settings.redis.key_prefix)
        store = MarketStore(redis, keys, retention_ms=int(settings.history.retention_days * 86_400_000))
        a, w, f = settings.alerts, settings.watchers, settings.flows
        alert_store = AlertStore(redis, keys)
        alert_commands = AlertCommands(alert_store, AlertCommandSettings(
            venues=w.venues,
            bot_admins={"tg": a.telegram_admins, "dc": a.discord_admins},
            default_cooldown_s=a.default_cooldown_s,
            default_hysteresis={"funding": a.funding_hysteresis, "basis": a.basis_hysteresis},
            providers=f.providers,
        ))
        core = CommandCore(store, CoreSettings(
            venues=w.venues, providers=f.providers,
            basis_min_days=settings.basis.min_days_to_expiry,
            stale_after_s=settings.basis.stale_after_s,
        ), alerts=alert_commands)
        evaluator = AlertService(alert_store, store, keys, AlertServiceSettings(
            venues=w.venues,
            basis_min_days=settings.basis.min_days_to_expiry,
            history_assets=settings.history.assets,
            history_step_s=settings.history.step_s,
            history_retention_ms=int(settings.history.retention_days * 86_400_000),
            # a venue silent for this long stops counting in aggregates (never less than 3 of its polls)
            stale_after_ms=int(1000 * max(settings.basis.stale_after_s,
                                          3 * max([w.poll_interval_s, *w.venue_poll_interval_s.values()]))),
        ))
        await install_default_rules(alert_store, settings)

        want_tg = chat_role and bool(settings.telegram.token) and (platforms is None or "telegram" in platforms)
        want_dc = chat_role and bool(settings.discord.token) and (platforms is None or "discord" in platforms)
        if console is None:
            console = console_wanted(settings, sys.stdin) if platforms is None else "console" in platforms
        console = console and chat_role
        # every platform that will consume gets its group before any evaluation, even when a separate
        # process delivers, so no alert fired from now on is missed
        groups = (["telegram"] if settings.telegram.token else []) + (["discord"] if settings.discord.token else []) \
            + (["console"] if console else [])
        for group in groups:
            await ensure_group(redis, keys.alerts(), group)
        if data_role:
            await evaluator.start()
            stack.push_async_callback(evaluator.stop)
        gc.freeze()  # rules and markets loaded at start live for the process: keep them out of GC scans

        cfg = MarketWatcherConfig(
            markets_refresh_s=w.markets_refresh_s,
            history_step_s=settings.history.step_s,
            history_assets=settings.history.assets,
            max_abs_funding=settings.sanity.max_abs_funding_per_interval,
            max_deviation=settings.sanity.max_deviation_from_index,
        )
        watchers = []
        for venue in w.venues if data_role else ():
            client = VenueClient(venue, timeout_s=w.request_timeout_s, rest_base_url=w.rest_base_urls.get(venue))
            stack.push_async_callback(client.close)
            watchers.append(MarketWatcher(client, store, cfg, listeners=[evaluator.on_samples]))
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)
        flow_watchers = [
            FlowWatcher(p, store, f.assets, days=f.days, listeners=[evaluator.on_flow_days],
                        on_rejected=functools.partial(notify_admins, alert_store))
            for p in (flow_providers(settings, session) if data_role else [])
        ]

        senders: list[tuple[str, Sender, Limits, frozenset[str]]] = []
        if want_tg:
            telegram = TelegramFrontend(core, token=settings.telegram.token.get(),
                                        base_url=settings.telegram.base_url,
                                        base_file_url=settings.telegram.base_file_url,
                                        poll_timeout_s=settings.telegram.poll_timeout_s)
            await telegram.start()
            stack.push_async_callback(telegram.stop)
            senders.append(("telegram", TelegramSender(telegram.app.bot),
                            replace(TELEGRAM_LIMITS, global_per_s=a.telegram_rate_per_s), a.telegram_admins))
        if want_dc:
            discord_fe = DiscordFrontend(core, token=settings.discord.token.get(),
                                         application_id=settings.discord.application_id,
                                         guild_ids=list(settings.discord.guild_ids) or None,
                                         sync_state=RedisSyncState(redis, keys.discord_commands()))
            await discord_fe.start()
            stack.push_async_callback(discord_fe.stop)
            senders.append(("discord", DiscordSender(discord_fe.client),
                            replace(DISCORD_LIMITS, global_per_s=a.discord_rate_per_s), a.discord_admins))
        if console:
            senders.append(("console", ConsoleSender(_write_stdout), CONSOLE_LIMITS, frozenset()))

        consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        async with asyncio.TaskGroup() as tg:
            for watcher in watchers:
                interval = w.venue_poll_interval_s.get(watcher.venue, w.poll_interval_s)
                tg.create_task(run_periodic(watcher.name, watcher.poll_once, interval_s=interval,
                                            max_backoff_s=w.max_backoff_s, stop=stop))
            for fw in flow_watchers:  # a rejected key is retried at the (slow) poll interval, never faster
                tg.create_task(run_periodic(fw.name, fw.poll_once, interval_s=f.poll_interval_s,
                                            max_backoff_s=max(f.poll_interval_s, w.max_backoff_s), stop=stop))
            tg.create_task(heartbeat(redis, keys, "bot" if role == "all" else role, stop))
            for group, sender, limits, admins in senders:
                worker = DeliveryWorker(alert_store, sender, group=group, consumer=consumer, limits=limits,
                                        claim_idle_ms=int(a.claim_idle_s * 1000), admins=admins)
                tg.create_task(worker.run(stop))
            if console:
                tg.create_task(Console(core, await _stdin_reader(stack), _write_stdout).run(stop))
            log.info("running: %d venue watcher(s), %d flow provider(s), delivery to %s",
                     len(watchers), len(flow_watchers), ", ".join(g for g, *_ in senders) or "nobody")
            await stop.wait()
        log.info("shutting down")


async def notify_admins(store: AlertStore, source: str, error: str) -> None:
    """Tell the bot admins, once, that a provider refused its key (put on the alert stream like an alert)."""
    now = int(time.time() * 1000)
    rule = Rule(id="system", metric="system", asset="", kind="notice", threshold=0.0, venue="", cooldown_s=0,
                hysteresis=0.0, scope="admins")
    reply = Reply(title=f"⚠️ {source}: the provider refused the request",
                  blocks=(f"{error}\nCheck the key in the config ([flows]) or the environment; the watcher "
                          "keeps retrying at its poll interval. /status shows the current state.",))
    await store.commit([], [FiredAlert(rule, reply, now)])


async def install_default_rules(store: AlertStore, settings: Settings) -> None:
    """Install the config's default rules once each (a rule an admin deleted stays deleted)."""
    a = settings.alerts
    now = int(time.time() * 1000)
    for text in a.default_rules:
        if await store.claim_default(text):
            rule = parse_rule(text.split(), rule_id=await store.next_rule_id(), venues=settings.watchers.venues,
                              default_cooldown_s=a.default_cooldown_s,
                              default_hysteresis={"funding": a.funding_hysteresis, "basis": a.basis_hysteresis},
                              now_ms=now, created_by="config", providers=settings.flows.providers)
            await store.save_rule(rule, who="config", action="installed default", now_ms=now)
            log.info("alerts: installed default rule %s: %s", rule.id, rule.describe())


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
