"""What the bot is doing, seen from outside: ``/healthz`` and Prometheus ``/metrics`` on an aiohttp server.

Series (one registry per process, no global state):

    basiswatch_source_poll_seconds{source}            histogram of poll durations (this process's polls)
    basiswatch_source_poll_errors_total{source}       failed polls (this process)
    basiswatch_source_data_age_seconds{source}        since the source's last successful poll (any process)
    basiswatch_source_errors{source}                  the source's error count as recorded in Redis
    basiswatch_alerts_fired_total{metric}             alerts this process put on the stream
    basiswatch_deliveries_total{platform,outcome}     sends by outcome: ok, retry, gone, migrated, failed, error
    basiswatch_delivery_rate_limited_total{platform}  429s answered by a platform
    basiswatch_stream_length                          entries on the alert stream
    basiswatch_stream_pending{group}                  delivered to a consumer, not yet acknowledged
    basiswatch_stream_lag{group}                      entries the group has not read yet
    basiswatch_command_seconds{command}               command latency through the command core
    basiswatch_redis_up                               1 when the last scrape reached Redis

Gauges read from Redis (data age, stream state) are refreshed at each scrape, so every process,
data or chat, shows the whole deployment's sources and stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from redis.asyncio import Redis

from core.alerts.delivery import Outcome, Sender, SendResult
from core.alerts.events import AlertEvent
from core.alerts.store import AlertStore
from core.commands import CommandCore
from core.context import CONSOLE, ChatContext
from core.keys import Keys
from core.reply import Reply
from core.store import MarketStore

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_PORT = 9108
SCRAPE_REDIS_TIMEOUT_S = 2.0


class Metrics:
    """The process's metrics and the hooks that feed them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.poll_seconds = Histogram(
            "basiswatch_source_poll_seconds",
            "Poll duration per source",
            ["source"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.poll_errors = Counter("basiswatch_source_poll_errors", "Failed polls per source", ["source"], registry=r)
        self.data_age = Gauge(
            "basiswatch_source_data_age_seconds",
            "Seconds since the source's last successful poll",
            ["source"],
            registry=r,
        )
        self.source_errors = Gauge(
            "basiswatch_source_errors", "Errors recorded for the source in Redis", ["source"], registry=r
        )
        self.alerts_fired = Counter(
            "basiswatch_alerts_fired", "Alerts put on the stream per metric", ["metric"], registry=r
        )
        self.deliveries = Counter(
            "basiswatch_deliveries", "Alert sends by platform and outcome", ["platform", "outcome"], registry=r
        )
        self.rate_limited = Counter(
            "basiswatch_delivery_rate_limited", "429s answered by a platform", ["platform"], registry=r
        )
        self.stream_length = Gauge("basiswatch_stream_length", "Entries on the alert stream", registry=r)
        self.stream_pending = Gauge(
            "basiswatch_stream_pending", "Entries read but not acknowledged", ["group"], registry=r
        )
        self.stream_lag = Gauge("basiswatch_stream_lag", "Entries a group has not read yet", ["group"], registry=r)
        self.command_seconds = Histogram(
            "basiswatch_command_seconds",
            "Command latency",
            ["command"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        self.redis_up = Gauge("basiswatch_redis_up", "1 when the last scrape reached Redis", registry=r)

    def timed_poll(self, source: str, step: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """``step`` with its duration and failures recorded under ``source``."""
        hist, errors = self.poll_seconds.labels(source), self.poll_errors.labels(source)

        async def timed() -> T:
            t0 = time.perf_counter()
            try:
                return await step()
            except Exception:
                errors.inc()
                raise
            finally:
                hist.observe(time.perf_counter() - t0)

        return timed

    async def refresh(self, redis: Redis, keys: Keys, store: MarketStore, groups: Iterable[str]) -> None:
        """Read the shared state (source health, stream) from Redis into the gauges."""
        try:
            async with asyncio.timeout(SCRAPE_REDIS_TIMEOUT_S):
                names = sorted(
                    x.decode() if isinstance(x, bytes) else str(x) for x in await redis.smembers(keys.sources())
                )
                now = time.time()
                for h in await store.read_health(names):
                    if h.last_ok_ms is not None:
                        self.data_age.labels(h.name).set(max(0.0, now - h.last_ok_ms / 1000))
                    self.source_errors.labels(h.name).set(h.errors)
                self.stream_length.set(await redis.xlen(keys.alerts()))
                wanted = set(groups)
                try:
                    infos = await redis.xinfo_groups(keys.alerts())
                except Exception:  # no stream yet
                    infos = []
                for info in infos:
                    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in info.items()}
                    name = d.get("name")
                    name = name.decode() if isinstance(name, bytes) else str(name)
                    if wanted and name not in wanted:
                        continue
                    self.stream_pending.labels(name).set(int(d.get("pending") or 0))
                    if d.get("lag") is not None:
                        self.stream_lag.labels(name).set(int(d["lag"]))
            self.redis_up.set(1)
        except Exception as e:  # a scrape must answer even with Redis down
            self.redis_up.set(0)
            log.debug("metrics: Redis state not refreshed: %s", e)


class ObservedAlertStore(AlertStore):
    """The alert store, counting fired alerts per metric."""

    def __init__(self, redis: Redis, keys: Keys, metrics: Metrics) -> None:
        super().__init__(redis, keys)
        self.metrics = metrics

    async def commit(self, *args: Any, **kwargs: Any) -> list[str]:
        """``AlertStore.commit(states, events, ...)``; counts the events it committed."""
        ids = await super().commit(*args, **kwargs)
        events: Sequence[AlertEvent] = args[1] if len(args) > 1 else kwargs.get("events", ())
        for event in events:
            self.metrics.alerts_fired.labels(event.metric).inc()
        return ids


class ObservedSender:
    """A platform sender whose outcomes are counted."""

    def __init__(self, inner: Sender, group: str, metrics: Metrics) -> None:
        self.inner = inner
        self.platform = inner.platform
        self.group = group
        self.metrics = metrics

    async def wait_turn(self, chat_id: int, thread_id: int | None = None) -> None:
        await self.inner.wait_turn(chat_id, thread_id)

    async def send(self, chat_id: int, reply: Reply, thread_id: int | None = None) -> SendResult:
        try:
            result = await self.inner.send(chat_id, reply, thread_id)
        except Exception:
            self.metrics.deliveries.labels(self.group, "error").inc()
            raise
        self.metrics.deliveries.labels(self.group, result.outcome.value).inc()
        if result.outcome is Outcome.RETRY and (result.retry_after_s > 0 or "429" in result.detail):
            self.metrics.rate_limited.labels(self.group).inc()
        return result


class TimedCommandCore(CommandCore):
    """The command core, timing every command (unknown names share one label)."""

    metrics: Metrics | None = None

    async def run(self, name: str, args: list[str], ctx: ChatContext = CONSOLE) -> Reply:
        if self.metrics is None:
            return await super().run(name, args, ctx)
        label = name.lower() if name.lower() in self.names else "unknown"
        t0 = time.perf_counter()
        try:
            return await super().run(name, args, ctx)
        finally:
            self.metrics.command_seconds.labels(label).observe(time.perf_counter() - t0)


class ObservabilityServer:
    """The aiohttp app serving ``/healthz`` and ``/metrics``; started and stopped by the caller."""

    def __init__(
        self, metrics: Metrics, redis: Redis, keys: Keys, store: MarketStore, *, role: str, groups: Sequence[str] = ()
    ) -> None:
        self.metrics, self.redis, self.keys, self.store = metrics, redis, keys, store
        self.role = role
        self.groups = list(groups)
        self.started_s = time.time()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> bool:
        """Listen on ``host:port``; False (and a warning) when the port is taken: the bot runs on without it."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            log.warning(
                "observability: cannot listen on %s:%d (%s); /metrics and /healthz are off", host, port, e.strerror or e
            )
            return False
        self._runner = runner
        server = site._server  # aiohttp exposes the bound port only here
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        log.info("observability: /healthz and /metrics on %s:%d", host, self.port)
        return True

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        doc: dict[str, Any] = {"role": self.role, "uptime_s": int(time.time() - self.started_s)}
        try:
            async with asyncio.timeout(SCRAPE_REDIS_TIMEOUT_S):
                await self.redis.ping()
            doc["redis"] = "ok"
            status = 200
        except Exception as e:
            doc["redis"] = f"unreachable ({type(e).__name__})"
            status = 503
        return web.Response(status=status, text=json.dumps(doc), content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        await self.metrics.refresh(self.redis, self.keys, self.store, self.groups)
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
