"""Quotas through the command core, real Redis: listed assets only, per-chat caps, admin identities hidden."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from core.alert_commands import AlertCommands, AlertCommandSettings
from core.alerts.store import AlertStore
from core.commands import CommandCore, CoreSettings
from core.context import ChatContext
from core.keys import Keys
from core.metrics.registry import default_registry
from core.models import BasisSample, FundingSample
from core.quotas import Quotas, QuotaSettings
from core.render import to_plain
from core.store import MarketStore
from tests.builders import sources, write_venue

VENUES = ("okx",)
BOT_ADMIN = 987654321


def ctx(user: int, chat: int | None = None, *, admin_of_chat: bool = False) -> ChatContext:
    chat_id = user if chat is None else chat

    async def chat_admin() -> bool:
        return admin_of_chat

    return ChatContext(
        platform="tg",
        chat_id=chat_id,
        user_id=user,
        user_name=f"user{user}",
        is_group=chat_id < 0,
        chat_admin=chat_admin,
    )


def funding(asset: str) -> FundingSample:
    return FundingSample(
        venue="okx",
        symbol=f"{asset}/USDT:USDT",
        asset=asset,
        settle="USDT",
        inverse=False,
        rate_per_interval=0.0001,
        interval_s=28_800,
        next_funding_ms=None,
        predicted_rate=None,
        mark_usd=100.0,
        index_usd=100.0,
        ts_ms=1_000,
    )


def future(asset: str) -> BasisSample:
    return BasisSample(
        venue="okx",
        symbol=f"{asset}/USDT:USDT-261225",
        asset=asset,
        settle="USDT",
        inverse=False,
        expiry_ms=1_800_000_000_000,
        future_usd=101.0,
        index_usd=100.0,
        ts_ms=1_000,
    )


@pytest.fixture
async def core(redis: Redis, keys: Keys) -> CommandCore:
    market = MarketStore(redis, keys, retention_ms=86_400_000)
    await write_venue(
        market,
        "okx",
        [funding(a) for a in ("BTC", "ETH", "SOL", "DOGE")],
        [future(a) for a in ("BTC", "ETH", "SOL")],
        now_ms=1_000,
    )
    quotas = Quotas(market, ["BTC"], QuotaSettings(max_subscriptions_per_chat=3, max_rules_per_chat=2))
    registry = default_registry()
    src = sources(registry, VENUES)
    alerts = AlertCommands(
        AlertStore(redis, keys),
        AlertCommandSettings(sources=src, bot_admins={"tg": frozenset({str(BOT_ADMIN)})}),
        registry,
        quotas=quotas,
    )
    return CommandCore(
        market, CoreSettings(venues=VENUES, providers=("coinmetrics",), sources=src), registry, alerts=alerts
    )


async def test_only_listed_assets_can_be_subscribed_or_ruled(core: CommandCore, redis: Redis, keys: Keys) -> None:
    before = await redis.dbsize()
    for junk in ("zzz", "AAAAAAAAAAAAAA1", "X0"):
        r = await core.run("subscribe", ["all", junk], ctx(7))
        assert r.error and f"No watched source lists {junk.upper()}" in r.title and "e.g." in r.title
        assert "\n" not in r.title
    assert await redis.dbsize() == before  # nothing was written for them
    r = await core.run("subscribe", ["all", "eth"], ctx(7))  # no flows provider lists ETH: funding and basis only
    assert not r.error and "funding ETH" in r.title and "flows" not in r.title
    r = await core.run("threshold", ["set", "funding", "zzz", "above", "0.05%"], ctx(BOT_ADMIN))
    assert r.error and "No watched source lists ZZZ for funding" in r.title
    assert not (await core.run("threshold", ["set", "flows", "btc", "netflow", "above", "3000"], ctx(BOT_ADMIN))).error


async def test_per_chat_caps_on_subscriptions_and_rules(core: CommandCore) -> None:
    assert not (await core.run("subscribe", ["funding", "btc"], ctx(8))).error
    assert not (await core.run("subscribe", ["funding", "eth"], ctx(8))).error
    assert not (await core.run("subscribe", ["funding", "btc"], ctx(8))).error  # again: no new topic
    r = await core.run("subscribe", ["all", "sol"], ctx(8))  # would make 4 (SOL has funding and basis data only)
    assert r.error and "at most 3 topics" in r.title and "/unsubscribe" in r.title
    assert not (await core.run("subscribe", ["funding", "sol"], ctx(8))).error
    r = await core.run("subscribe", ["funding", "doge"], ctx(8))
    assert r.error and "at most 3 topics" in r.title

    group = ctx(9, -100, admin_of_chat=True)
    for n in range(2):
        assert not (await core.run("threshold", ["set", "funding", "btc", "above", f"0.0{n + 1}%"], group)).error
    r = await core.run("threshold", ["set", "funding", "btc", "above", "0.09%"], group)
    assert r.error and "2 rules already (the maximum)" in r.title


async def test_threshold_history_shows_admin_identities_to_admins_only(core: CommandCore) -> None:
    await core.run("threshold", ["set", "funding", "btc", "above", "0.05%"], ctx(BOT_ADMIN))
    await core.run("threshold", ["set", "funding", "eth", "above", "0.05%"], ctx(9, -100, admin_of_chat=True))
    member = to_plain(await core.run("threshold", ["history"], ctx(11, -100)))
    assert "bot admin" in member and "chat admin" in member
    assert (
        str(BOT_ADMIN) not in member
        and "user987654321" not in member
        and "user9" not in member
        and "tg:9" not in member
    )
    admin = to_plain(await core.run("threshold", ["history"], ctx(BOT_ADMIN, -100)))
    assert "tg:987654321 (user987654321)" in admin and "tg:9 (user9)" in admin
