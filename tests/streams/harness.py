"""Stream watchers against the local REST and websocket doubles, with the real store and evaluator."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from core.alerts.service import AlertService, AlertSettings
from core.alerts.store import AlertStore
from core.keys import Keys
from core.liquidations import LiquidationStore
from core.metrics.registry import Registry, default_registry
from core.models import MS_PER_DAY
from core.store import MarketStore
from core.streams import StreamHealthStore
from tests.builders import rule_from, sources
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.ws_exchanges import WsExchangeDouble
from watchers.market import MarketWatcher, MarketWatcherConfig
from watchers.streams import LiquidationSink, Sink, StreamConfig, StreamWatcher, TickSink, owned
from watchers.venues import VenueClient
from watchers.venues.streams import StreamClient

VENUES = ("binanceusdm", "binancecoinm", "bybit", "okx", "deribit")
FAST = StreamConfig(
    stall_after_s=1.0, reconnect_base_s=0.05, max_backoff_s=0.2, publish_every_s=0.1, resubscribe_check_s=0.2
)


def now_ms() -> int:
    return int(time.time() * 1000)


async def until(check: Callable[[], Any], within_s: float = 10.0, what: str = "condition") -> None:
    """Wait until ``check()`` (sync or async) is truthy."""
    deadline = time.monotonic() + within_s
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Harness:
    redis: Redis
    keys: Keys
    rest: ExchangeDouble
    ws: WsExchangeDouble
    registry: Registry = field(default_factory=default_registry)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    clients: list[StreamClient] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.store = MarketStore(self.redis, self.keys, retention_ms=2 * MS_PER_DAY)
        self.alerts = AlertStore(self.redis, self.keys)
        self.events = LiquidationStore(self.redis, self.keys)
        self.health = StreamHealthStore(self.redis, self.keys)
        self.svc = AlertService(
            self.alerts, self.store, self.keys, self.registry, AlertSettings(sources=sources(self.registry, VENUES))
        )

    async def rule(self, text: str) -> None:
        rule = rule_from(text, rule_id=await self.alerts.next_rule_id(), venues=VENUES, now_ms=now_ms())
        await self.alerts.save_rule(rule, who="t", action="set", now_ms=now_ms())

    def client(self, venue: str, ping_interval_s: float = 0.2, rest: VenueClient | None = None) -> StreamClient:
        c = StreamClient(
            venue,
            timeout_s=2.0,
            ping_interval_s=ping_interval_s,
            rest_base_url=self.rest.url(venue),
            ws_base_url=self.ws.ws_url(venue),
            symbol_assets=("BTC",),
            rest=rest,
        )
        self.clients.append(c)
        return c

    def liq_sink(self, venue: str, **kw: Any) -> LiquidationSink:
        return LiquidationSink(venue, self.events, self.store, self.registry.get("liqs"), self.svc.on_samples, **kw)

    def funding_sink(self, venue: str, **kw: Any) -> TickSink:
        return self.tick_sink(venue, "funding", **kw)

    def tick_sink(self, venue: str, metric: str, **kw: Any) -> TickSink:
        return TickSink(venue, self.store, self.registry.get(metric), self.svc.on_samples, **kw)

    def poll(self, client: VenueClient, streams: list[StreamWatcher], *, evaluate: bool = False) -> MarketWatcher:
        """The venue's market watcher as the bot wires it: it leaves to ``streams`` what they feed now."""
        return MarketWatcher(
            client,
            self.store,
            self.registry,
            MarketWatcherConfig(history_step_s=0),
            listeners=[self.svc.on_samples] if evaluate else [],
            stream_owns=functools.partial(owned, streams, client.venue),
        )

    def start(
        self,
        venue: str,
        feed: str,
        sink: Sink,
        config: StreamConfig = FAST,
        ping_interval_s: float = 0.2,
        rest: VenueClient | None = None,
    ) -> StreamWatcher:
        w = StreamWatcher(self.client(venue, ping_interval_s, rest), feed, sink, self.health, config)
        self.tasks.append(asyncio.create_task(w.run(stop=self.stop)))
        return w

    async def fired(self) -> list[dict[str, str]]:
        entries = await self.redis.xrange(self.keys.alerts())
        return [{k.decode(): v.decode() for k, v in f.items()} for _id, f in entries]


@asynccontextmanager
async def harness(redis: Redis, keys: Keys) -> AsyncIterator[Harness]:
    async with ExchangeDouble() as rest, WsExchangeDouble() as ws:
        h = Harness(redis, keys, rest, ws)
        await h.svc.start()
        try:
            yield h
        finally:
            h.stop.set()
            await asyncio.wait_for(asyncio.gather(*h.tasks), 10)
            for c in h.clients:
                await c.close()
            await h.svc.stop()
