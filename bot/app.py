"""Wiring: one place that builds every client and owns every task's lifecycle.

``run`` opens Redis, builds what every role shares (:class:`Wiring`), then asks each builder of
the process's role for its loops: ``WATCHER_KINDS`` for the data role (one builder per kind of
watcher), ``chat_loops`` for the chat role. A new watcher kind is one builder added to the tuple.
"""

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
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

import aiohttp
from redis.asyncio import Redis

from bot import observability as obs
from bot import redis_connect
from bot.embedded_redis import EmbeddedRedis
from bot.leases import LeaseKeeper, while_leased
from bot.settings import Settings
from bot.streams import stream_loops
from core.alert_commands import AlertCommands, AlertCommandSettings
from core.alerts.delivery import DeliveryWorker, Sender, ensure_group
from core.alerts.events import notice
from core.alerts.rules import parse_rule
from core.alerts.service import AlertService, AlertSettings
from core.alerts.store import AlertStore
from core.buttons import with_actions
from core.charts.alert_charts import ChartingSender
from core.charts.catalog import ChartCatalog
from core.charts.command import ChartCommands
from core.charts.service import ChartService
from core.commands import CommandCore, CoreSettings
from core.keys import Keys
from core.metrics.registry import Registry
from core.pacer import DISCORD_LIMITS, TELEGRAM_LIMITS
from core.quotas import Quotas
from core.shared_budget import SharedBudget
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
from watchers.options import OptionChainWatcher
from watchers.runner import run_periodic
from watchers.streams import StreamWatcher, owned
from watchers.venues import VenueClient, describe
from watchers.venues.options import OptionChainClient
from watchers.watched import WatchedAssets

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 5  # cheap, and a Redis restarted empty has the key back within seconds
HEARTBEAT_TTL_S = 60
HEARTBEAT_RETRY_S = 1
ROLES = ("all", "data", "chat")

Loop = Callable[..., Coroutine[Any, Any, None]]  # a task the process runs until ``stop=`` is set


@dataclass
class Wiring:
    """What every role of the process shares, built once."""

    settings: Settings
    stack: AsyncExitStack
    redis: Redis
    keys: Keys
    registry: Registry
    sources: dict[str, tuple[str, ...]]
    store: MarketStore
    alert_store: AlertStore
    core: CommandCore
    evaluator: AlertService
    session: aiohttp.ClientSession
    metrics: obs.Metrics
    leases: LeaseKeeper  # data replicas: one process polls each source; the others wait for its lease
    charts: ChartCommands
    groups: list[str] = field(default_factory=list)  # consumer groups of the platforms that will deliver
    streams: list[StreamWatcher] = field(default_factory=list)  # live streams own their metric of their venue
    venue_clients: dict[str, VenueClient] = field(default_factory=dict)


async def open_redis(settings: Settings, stack: AsyncExitStack, stop: asyncio.Event | None = None) -> Redis | None:
    """The configured Redis (waited for with backoff), or an embedded one started for this process.

    None when ``stop`` was set before Redis came up.
    """
    url = settings.redis.url
    if not url:
        embedded = EmbeddedRedis(settings.redis.data_dir)
        url = await embedded.start()
        stack.push_async_callback(embedded.stop)
    client = await redis_connect.connect(url, stop)
    if client is not None:
        stack.push_async_callback(redis_connect.close, client)
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
            every_s = HEARTBEAT_RETRY_S  # Redis back (maybe empty): recreate the key at once
        else:
            every_s = HEARTBEAT_EVERY_S
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except TimeoutError:
            pass


async def build(settings: Settings, stack: AsyncExitStack, stop: asyncio.Event | None = None) -> Wiring | None:
    """Redis, the metric registry, the stores, the command core and the evaluator (None: stopped first)."""
    redis = await open_redis(settings, stack, stop)
    if redis is None:
        return None
    keys = Keys(prefix=settings.redis.key_prefix)
    registry = settings.registry()
    sources = settings.sources(registry)
    w, a, h = settings.watchers, settings.alerts, settings.history
    store = MarketStore(redis, keys, retention_ms=int(h.retention_days * 86_400_000))
    metrics = obs.Metrics()
    alert_store = obs.ObservedAlertStore(redis, keys, metrics)
    alert_commands = AlertCommands(
        alert_store,
        AlertCommandSettings(
            sources=sources,
            bot_admins={"tg": a.telegram_admins, "dc": a.discord_admins},
            default_cooldown_s=a.default_cooldown_s,
        ),
        registry,
        quotas=Quotas(
            store,
            settings.flows.assets if settings.flows.providers else (),
            settings.quotas,
            market_metrics=[m.name for m in registry if m.source_word != "provider"],
            listed_as={m.name: m.assets_of for m in registry if m.assets_of},
        ),
    )
    chart_service = ChartService(settings.charts)
    stack.push_async_callback(chart_service.close)
    charts = ChartCommands(
        ChartCatalog(registry, sources), chart_service, store, registry, sources, alert_store, history_step_s=h.step_s
    )
    core = obs.TimedCommandCore(
        store,
        CoreSettings(
            venues=w.venues,
            providers=settings.flows.providers,
            sources=sources,
            stale_after_s=w.stale_after_s,
            venue_notes=settings.venue_notes(),
        ),
        registry,
        alerts=alert_commands,
        charts=charts,
    )
    core.metrics = metrics
    evaluator = AlertService(
        alert_store,
        store,
        keys,
        registry,
        AlertSettings(
            sources=sources,
            history_assets=h.assets,
            history_step_s=h.step_s,
            history_retention_ms=int(h.retention_days * 86_400_000),
            # a venue silent for this long stops counting in aggregates (never less than 3 of its polls)
            stale_after_ms=int(
                1000 * max(w.stale_after_s, 3 * max([w.poll_interval_s, *w.venue_poll_interval_s.values()]))
            ),
        ),
    )
    session = aiohttp.ClientSession()
    stack.push_async_callback(session.close)
    return Wiring(
        settings,
        stack,
        redis,
        keys,
        registry,
        sources,
        store,
        alert_store,
        core,
        evaluator,
        session,
        metrics,
        LeaseKeeper(redis, keys.lease, [], ttl_s=settings.replicas.lease_ttl_s),
        charts,
    )


def _polled(wr: Wiring, name: str, step: Callable[[], Coroutine[Any, Any, object]]) -> Callable[[], Any]:
    """A watcher's step, timed for /metrics and run only while this process holds the source's lease."""
    wr.leases.sources.append(name)
    return wr.leases.polling(name, wr.metrics.timed_poll(name, step))


# data role: one builder per kind of watcher -------------------------------------------------
def market_loops(wr: Wiring) -> list[Loop]:
    """One watcher per venue: funding, basis and open interest from its bulk endpoints."""
    w, h = wr.settings.watchers, wr.settings.history
    cfg = MarketWatcherConfig(markets_refresh_s=w.markets_refresh_s, history_step_s=h.step_s, history_assets=h.assets)
    loops: list[Loop] = []
    for venue in wr.settings.unknown_venues:
        log.warning("venue=%s is not polled: %s", venue, describe(venue))
    watched = WatchedAssets(wr.redis, wr.keys)
    for venue in w.venues:
        log.info("venue=%s %s", venue, describe(venue))
        client = VenueClient(
            venue,
            timeout_s=w.request_timeout_s,
            rest_base_url=w.rest_base_urls.get(venue),
            oi_assets=w.oi_assets,
            funding_info_refresh_s=w.funding_info_refresh_s,
            watched=watched,
        )
        wr.stack.push_async_callback(client.close)
        wr.venue_clients[venue] = client
        watcher = MarketWatcher(
            client,
            wr.store,
            wr.registry,
            cfg,
            listeners=[wr.evaluator.on_samples],
            stream_owns=functools.partial(stream_owns, wr, venue),
        )
        loops.append(
            functools.partial(
                run_periodic,
                watcher.name,
                _polled(wr, watcher.name, watcher.poll_once),
                interval_s=w.venue_poll_interval_s.get(venue, w.poll_interval_s),
                max_backoff_s=w.max_backoff_s,
            )
        )
    return loops


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


def flow_loops(wr: Wiring) -> list[Loop]:
    """One watcher per flow provider; a rejected key is retried at the (slow) poll interval, never faster."""
    f, w = wr.settings.flows, wr.settings.watchers
    metric = wr.registry.find("flows")
    if metric is None:
        return []
    loops: list[Loop] = []
    for p in flow_providers(wr.settings, wr.session):
        fw = FlowWatcher(
            p,
            wr.store,
            metric,
            f.assets,
            days=f.days,
            listeners=[wr.evaluator.on_samples],
            on_rejected=functools.partial(notify_admins, wr.alert_store),
        )
        loops.append(
            functools.partial(
                run_periodic,
                fw.name,
                _polled(wr, fw.name, fw.poll_once),
                interval_s=f.poll_interval_s,
                max_backoff_s=max(f.poll_interval_s, w.max_backoff_s),
            )
        )
    return loops


def option_loops(wr: Wiring) -> list[Loop]:
    """Deribit's option chains for dealer gamma: one book summary per currency per refresh."""
    metric, w = wr.registry.find("gamma"), wr.settings.watchers
    if metric is None or not wr.sources.get("gamma"):
        return []
    client = OptionChainClient(
        timeout_s=w.request_timeout_s,
        rest_base_url=w.rest_base_urls.get("deribit"),
        markets_refresh_s=w.markets_refresh_s,
    )
    wr.stack.push_async_callback(client.close)
    watcher = OptionChainWatcher(
        client, wr.store, metric, metric.options["currencies"], listeners=[wr.evaluator.on_samples]
    )
    return [
        functools.partial(
            run_periodic,
            watcher.name,
            _polled(wr, watcher.name, watcher.poll_once),
            interval_s=metric.options["refresh_s"],
            max_backoff_s=max(metric.options["refresh_s"], w.max_backoff_s),
        )
    ]


def stream_owns(wr: Wiring, venue: str, metric: str) -> bool | frozenset[str]:
    """What of ``metric`` a live stream of ``venue`` feeds now: True (all of it), some symbols, or False."""
    return owned(wr.streams, venue, metric)


WATCHER_KINDS: tuple[Callable[[Wiring], list[Loop]], ...] = (market_loops, flow_loops, option_loops, stream_loops)


# chat role ------------------------------------------------------------------------------------
async def chat_loops(wr: Wiring, *, telegram: bool, discord: bool, console: bool, consumer: str) -> list[Loop]:
    """Front ends (started here) and one delivery worker per platform."""
    s, a = wr.settings, wr.settings.alerts
    senders: list[tuple[str, Sender, frozenset[str]]] = []
    loops: list[Loop] = []
    if telegram:  # every process sending with a token shares its budget through Redis
        tg_limits = replace(TELEGRAM_LIMITS, global_per_s=a.telegram_rate_per_s)
        tg = TelegramFrontend(
            wr.core,
            token=s.telegram.token.get(),
            base_url=s.telegram.base_url,
            base_file_url=s.telegram.base_file_url,
            poll_timeout_s=s.telegram.poll_timeout_s,
            limits=tg_limits,
            shared=SharedBudget(wr.redis, wr.keys, "tg", tg_limits),
        )
        await tg.start(poll=False)  # polling starts once this process holds the poller lease
        wr.stack.push_async_callback(tg.stop)
        # chat replicas: one polls Telegram, the others stand by (and deliver)
        poller = LeaseKeeper(wr.redis, wr.keys.lease, ["telegram-poller"], ttl_s=s.replicas.lease_ttl_s)
        loops.append(functools.partial(while_leased, poller, "telegram-poller", tg.start_polling, tg.stop_polling))
        senders.append(("telegram", TelegramSender(tg.app.bot), a.telegram_admins))
    if discord:
        dc_limits = replace(DISCORD_LIMITS, global_per_s=a.discord_rate_per_s)
        dc = DiscordFrontend(
            wr.core,
            token=s.discord.token.get(),
            application_id=s.discord.application_id,
            guild_ids=list(s.discord.guild_ids) or None,
            sync_state=RedisSyncState(wr.redis, wr.keys.discord_commands()),
            limits=dc_limits,
            shared=SharedBudget(wr.redis, wr.keys, "dc", dc_limits),
        )
        await dc.start(connect=False)  # the gateway connects once this process holds the gateway lease
        wr.stack.push_async_callback(dc.stop)
        # every gateway session of a token receives each slash command: one replica connects, the others wait
        gateway = LeaseKeeper(wr.redis, wr.keys.lease, ["discord-gateway"], ttl_s=s.replicas.lease_ttl_s)
        loops.append(
            functools.partial(while_leased, gateway, "discord-gateway", dc.connect_gateway, dc.disconnect_gateway)
        )
        senders.append(("discord", DiscordSender(dc.client, dc.pacer), a.discord_admins))
    if console:
        senders.append(("console", ConsoleSender(_write_stdout, s.charts.files_dir), frozenset()))
    # alerts carry buttons (Mute 1h, Unsubscribe, Chart) and, for chats that asked, their chart
    render = with_actions(wr.registry.render, wr.charts.catalog.metrics)
    for group, sender, admins in senders:
        sender = obs.ObservedSender(ChartingSender(sender, wr.charts), group, wr.metrics)
        worker = DeliveryWorker(
            wr.alert_store,
            sender,
            group=group,
            consumer=consumer,
            claim_idle_ms=int(a.claim_idle_s * 1000),
            admins=admins,
            render=render,
        )
        loops.append(worker.run)
    if console:
        repl = Console(wr.core, await _stdin_reader(wr.stack), _write_stdout, files_dir=s.charts.files_dir)
        loops.append(repl.run)
    return loops


async def run(
    settings: Settings,
    stop: asyncio.Event,
    *,
    console: bool | None = None,
    platforms: tuple[str, ...] | None = None,
    role: str = "all",
) -> None:
    """Run watchers and front ends until ``stop`` is set; release everything on the way out.

    ``platforms`` (telegram, discord, console) narrows what the config enables, as the CLI flag does.
    ``role``: "data" runs the watchers and rule evaluation only (any number per Redis: one holds the sources'
    leases and polls, the others stand by), "chat" the front ends and alert delivery only (any number; one
    polls Telegram), "all" both.
    """
    data_role, chat_role = role in ("all", "data"), role in ("all", "chat")
    async with AsyncExitStack() as stack:
        built = await build(settings, stack, stop)
        if built is None:
            return
        wr = built
        await install_default_rules(wr)
        want_tg = chat_role and bool(settings.telegram.token) and (platforms is None or "telegram" in platforms)
        want_dc = chat_role and bool(settings.discord.token) and (platforms is None or "discord" in platforms)
        if console is None:
            console = console_wanted(settings, sys.stdin) if platforms is None else "console" in platforms
        console = console and chat_role
        # every platform that will consume gets its group before any evaluation, even when a separate
        # process delivers, so no alert fired from now on is missed
        groups = (
            (["telegram"] if settings.telegram.token else [])
            + (["discord"] if settings.discord.token else [])
            + (["console"] if console else [])
        )
        for group in groups:
            await ensure_group(wr.redis, wr.keys.alerts(), group)
        port = settings.observability.port
        port = (0 if console else obs.DEFAULT_PORT) if port is None else port
        if port:
            server = obs.ObservabilityServer(wr.metrics, wr.redis, wr.keys, wr.store, role=role, groups=groups)
            if await server.start(settings.observability.host, port):
                stack.push_async_callback(server.stop)
        loops: list[Loop] = []
        if data_role:
            await wr.evaluator.start()
            stack.push_async_callback(wr.evaluator.stop)
            for kind in WATCHER_KINDS:
                loops += kind(wr)
            loops.append(wr.leases.run)
        gc.freeze()  # rules and markets loaded at start live for the process: keep them out of GC scans
        if chat_role:
            consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
            loops += await chat_loops(wr, telegram=want_tg, discord=want_dc, console=console, consumer=consumer)
        hb_role = "bot" if role == "all" else role
        loops.append(functools.partial(heartbeat, wr.redis, wr.keys, hb_role))
        async with asyncio.TaskGroup() as tg:
            for loop in loops:
                tg.create_task(loop(stop=stop))
            log.info("running role=%s: %d task(s), metrics %s", role, len(loops), ", ".join(wr.registry.names))
            await stop.wait()
        log.info("shutting down")


async def notify_admins(store: AlertStore, source: str, error: str) -> None:
    """Tell the bot admins, once, that a provider refused its key (put on the alert stream like an alert)."""
    event = notice(
        f"⚠️ {source}: the provider refused the request",
        f"{error}\nCheck the key in the config ([flows]) or the environment; the watcher keeps retrying "
        "at its poll interval. /status shows the current state.",
        int(time.time() * 1000),
    )
    await store.commit([], [event])


async def install_default_rules(wr: Wiring) -> None:
    """Install the config's default rules once each (a rule an admin deleted stays deleted)."""
    a = wr.settings.alerts
    now = int(time.time() * 1000)
    for text in a.default_rules:
        if await wr.alert_store.claim_default(text):
            rule = parse_rule(
                text.split(),
                registry=wr.registry,
                sources=wr.sources,
                rule_id=await wr.alert_store.next_rule_id(),
                default_cooldown_s=a.default_cooldown_s,
                now_ms=now,
                created_by="config",
            )
            await wr.alert_store.save_rule(rule, who="config", action="installed default", now_ms=now)
            log.info("alerts: installed default rule %s: %s", rule.id, rule.describe())


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
