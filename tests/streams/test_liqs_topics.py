"""liqs topics and replies before any liquidation was seen: assets are those with a listed perpetual."""

from __future__ import annotations

from redis.asyncio import Redis

from core.alert_commands import AlertCommands, AlertCommandSettings
from core.alerts.store import AlertStore
from core.context import ChatContext
from core.keys import Keys
from core.metrics.registry import default_registry
from core.models import FundingSample
from core.quotas import Quotas, QuotaSettings
from core.render import to_plain
from core.store import MarketStore
from tests.builders import command_core, sources, write_venue
from tests.streams.harness import now_ms

VENUES = ("binanceusdm", "okx")


async def test_subscribe_liqs_before_the_first_liquidation(redis: Redis, keys: Keys) -> None:
    store = MarketStore(redis, keys, retention_ms=86_400_000)
    t = now_ms()
    await write_venue(
        store,
        "okx",
        funding=[
            FundingSample("okx", "BTC/USDT:USDT", "BTC", "USDT", False, 0.0001, 28_800, None, None, 100.0, 100.0, t)
        ],
        now_ms=t,
    )
    registry = default_registry()
    quotas = Quotas(
        store, [], QuotaSettings(), market_metrics=["funding", "basis", "oi", "liqs"], listed_as={"liqs": "funding"}
    )
    alerts = AlertCommands(
        AlertStore(redis, keys), AlertCommandSettings(sources=sources(registry, VENUES)), registry, quotas=quotas
    )
    ctx = ChatContext(platform="tg", chat_id=7, user_id=7)
    ok = await alerts.subscribe(["liqs", "btc"], ctx)
    assert "liqs BTC" in to_plain(ok)
    refused = to_plain(await command_core(store, VENUES, alerts=False).run("liqs", ["zzz"]))
    assert "No venue lists a ZZZ perpetual" in refused and "btc" in refused
    quiet = to_plain(await command_core(store, VENUES, alerts=False).run("liqs", ["btc"]))
    assert "No BTC liquidation published in the last 24h" in quiet
