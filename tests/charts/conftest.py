"""Chart fixtures: the real store on the test Redis, a thread-pool chart service, the chart commands."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from core.alerts.store import AlertStore
from core.charts.catalog import ChartCatalog
from core.charts.command import ChartCommands
from core.charts.service import ChartService, ChartSettings
from core.keys import Keys
from core.metrics.registry import default_registry
from core.store import MarketStore
from tests.builders import sources

VENUES = ("binanceusdm", "okx", "bybit")
NOW_MS = 1_764_583_200_000  # 2025-12-01 10:00 UTC


@pytest.fixture
def store(redis: Redis, keys: Keys) -> MarketStore:
    return MarketStore(redis, keys, retention_ms=35 * 86_400_000)


@pytest.fixture
async def service() -> AsyncIterator[ChartService]:
    svc = ChartService(ChartSettings(workers=2, pool="thread"))
    yield svc
    await svc.close()


@pytest.fixture
def charts(store: MarketStore, service: ChartService) -> ChartCommands:
    reg = default_registry()
    src = sources(reg, VENUES)
    return ChartCommands(
        ChartCatalog(reg, src), service, store, reg, src, AlertStore(store.redis, store.keys), clock_ms=lambda: NOW_MS
    )
