"""The Discord front end: the real discord.py client against DiscordDouble, a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import discord
import pytest
from redis.asyncio import Redis

from core.alerts.store import AlertStore
from core.commands import CommandCore, CommandSpec
from core.keys import Keys
from core.models import MS_PER_DAY, BasisSample, FundingSample
from core.store import MarketStore
from handlers.discord import commands as slash_module
from handlers.discord.bot import DiscordFrontend, RedisSyncState
from tests.builders import command_core, write_venue
from tests.fakes.discord_server import DiscordDouble

NOW = 1_790_000_000_000
VENUES = ("binanceusdm", "okx", "deribit")
GUILD, CHAN, CHAN2 = 1000, 2000, 2001
MANAGER, MEMBER, BOT_ADMIN = 7, 8, 9
MANAGE_GUILD = 0x20


def perp(
    venue: str, asset: str, rate: float, *, interval_h: int = 8, mark: float = 100.0, index: float = 100.0
) -> FundingSample:
    return FundingSample(
        venue=venue,
        symbol=f"{asset}/USDT:USDT",
        asset=asset,
        settle="USDT",
        inverse=False,
        rate_per_interval=rate,
        interval_s=interval_h * 3600,
        next_funding_ms=NOW + 3 * 3600_000,
        predicted_rate=None,
        mark_usd=mark,
        index_usd=index,
        ts_ms=NOW - 4000,
    )


def fut(venue: str, asset: str, price: float, index: float, days: float) -> BasisSample:
    return BasisSample(
        venue=venue,
        symbol=f"{asset}/USD:{asset}-{days:.0f}",
        asset=asset,
        settle=asset,
        inverse=True,
        expiry_ms=NOW + int(days * MS_PER_DAY),
        future_usd=price,
        index_usd=index,
        ts_ms=NOW - 2000,
    )


async def make_core(redis: Redis, keys: Keys, venues: tuple[str, ...] = VENUES) -> CommandCore:
    """Samples written through the store, an alert side with one bot admin by config id."""
    store = MarketStore(redis, keys, retention_ms=MS_PER_DAY)
    await write_venue(
        store,
        "binanceusdm",
        [perp("binanceusdm", "BTC", 0.0001, mark=60_100, index=60_000), perp("binanceusdm", "SOL", 0.0002)],
        [fut("binanceusdm", "BTC", 61_000, 60_000, 91)],
        now_ms=NOW,
    )
    await write_venue(
        store,
        "okx",
        [perp("okx", "BTC", 0.0003, interval_h=4), perp("okx", "ETH", -0.0001)],
        [fut("okx", "BTC", 60_600, 60_000, 91)],
        now_ms=NOW,
    )
    return command_core(store, venues, admins={"dc": frozenset({str(BOT_ADMIN)})}, clock_ms=lambda: NOW)


@pytest.fixture
async def dd() -> AsyncIterator[DiscordDouble]:
    async with DiscordDouble() as double:
        double.add_guild(GUILD, channel_ids=[CHAN, CHAN2])
        double.add_member(GUILD, MANAGER, permissions=MANAGE_GUILD, name="manager")
        double.add_member(GUILD, MEMBER, name="member")
        double.add_member(GUILD, BOT_ADMIN, name="botadmin")
        with double.patch_discord():
            yield double


@asynccontextmanager
async def running(core: CommandCore, **kwargs: Any) -> AsyncIterator[DiscordFrontend]:
    fe = DiscordFrontend(core, token="fake-token", guild_ready_timeout_s=0.05, **kwargs)
    await fe.start(ready_timeout_s=5)
    try:
        yield fe
    finally:
        await fe.stop()


@pytest.fixture
async def core(redis: Redis, keys: Keys) -> CommandCore:
    return await make_core(redis, keys)


@pytest.fixture
async def frontend(dd: DiscordDouble, core: CommandCore) -> AsyncIterator[DiscordFrontend]:
    async with running(core) as fe:
        yield fe


def text_of(result: dict[str, Any]) -> str:
    embeds = result["data"].get("embeds") or []
    return "\n".join(
        "\n".join(filter(None, (e.get("title"), e.get("description"), (e.get("footer") or {}).get("text"))))
        for e in embeds
    )


async def ask(
    dd: DiscordDouble,
    name: str,
    options: dict[str, Any] | None = None,
    *,
    user: int = MEMBER,
    guild: int | None = GUILD,
    channel: int = CHAN,
    sub: str | None = None,
) -> dict[str, Any]:
    return await dd.interact(name, options, user_id=user, guild_id=guild, channel_id=channel, subcommand=sub)


async def test_ready_then_commands_synced_only_when_definitions_change(
    dd: DiscordDouble, redis: Redis, keys: Keys
) -> None:
    state = RedisSyncState(redis, f"{keys.base}:discord:commands")
    core = await make_core(redis, keys)
    async with running(core, sync_state=state) as fe:
        assert fe.client.is_ready() and fe.client.application_id == DiscordDouble.APP_ID
        assert dd.sync_count == 1
    assert sorted(c["name"] for c in dd.commands) == sorted(c.name for c in core.specs)
    by_name = {c["name"]: c for c in dd.commands}
    basis_opt = by_name["basis"]["options"][0]
    assert basis_opt["name"] == "asset" and basis_opt["required"] and basis_opt["autocomplete"]
    metric = by_name["subscribe"]["options"][0]
    assert [ch["value"] for ch in metric["choices"]] == ["basis", "funding", "oi", "flows", "gamma", "liqs", "all"]
    assert [o["name"] for o in by_name["threshold"]["options"]] == ["set", "list", "del", "history"]
    assert [o["name"] for o in by_name["admin"]["options"]] == ["add", "remove", "list"]
    venue = next(o for o in by_name["threshold"]["options"][0]["options"] if o["name"] == "venue")
    assert [c["value"] for c in venue["choices"]] == [*VENUES, "max", "min", "mean", "sum"]
    assert await state.get() == fe.definition_hash()

    async with running(await make_core(redis, keys), sync_state=state):  # same definitions: no upload
        assert dd.sync_count == 1
    changed = await make_core(redis, keys, venues=(*VENUES, "bybit"))  # a new venue choice
    async with running(changed, sync_state=state) as fe:
        assert dd.sync_count == 2
        res = await ask(dd, "help")  # the re-synced commands answer
        assert "/basis <asset>" in text_of(res)
    assert await state.get() == fe.definition_hash()


async def test_guild_ids_sync_to_those_guilds(dd: DiscordDouble, core: CommandCore) -> None:
    async with running(core, guild_ids=[GUILD]):
        assert dd.guild_sync_count == 1 and dd.commands == []  # global list cleared
        assert {c["name"] for c in dd.guild_commands[GUILD]} == {c.name for c in core.specs}
        assert "BTC funding" in text_of(await ask(dd, "funding", {"asset": "btc"}))


async def test_basis_embed_has_the_independently_computed_figures(dd: DiscordDouble, frontend: DiscordFrontend) -> None:
    res = await ask(dd, "basis", {"asset": "btc"})
    assert res["type"] == 4 and not res["data"].get("flags")
    (embed,) = res["data"]["embeds"]
    assert embed["title"] == "BTC basis · 2 futures on 2 venues"
    desc = embed["description"]
    assert "```" in desc  # tables as code blocks
    assert f"{1000 / 60000 * 100:+.2f}%" in desc and f"{1000 / 60000 * 365 / 91 * 100:+.1f}%" in desc  # binance
    assert f"{600 / 60000 * 100:+.2f}%" in desc and f"{600 / 60000 * 365 / 91 * 100:+.1f}%" in desc  # okx
    assert "61,000" in desc and "60,600" in desc and f"{100 / 60000 * 100:+.3f}%" in desc  # perp premium
    assert embed["footer"]["text"].startswith("Data age 2s–4s")


async def test_funding_status_help(dd: DiscordDouble, frontend: DiscordFrontend) -> None:
    funding = text_of(await ask(dd, "funding", {"asset": "BTC"}))
    assert "BTC funding · 2 perps on 2 venues" in funding
    assert "+0.0100%" in funding and f"{0.0001 * 3 * 365 * 100:+.1f}%" in funding
    assert "+0.0300%" in funding and f"{0.0003 * 6 * 365 * 100:+.1f}%" in funding
    assert f"Mean {(0.0001 + 0.0006) / 2 * 100:+.4f}%/8h" in funding
    status = text_of(await ask(dd, "status", guild=None, channel=555))  # a DM works the same
    assert "Data sources" in status and "binance" in status and "waiting" in status
    help_text = text_of(await ask(dd, "help"))
    assert all(f"/{c.name}" in help_text for c in frontend.core.specs)


@pytest.mark.parametrize(("asset", "fragment"), [("b$c", "is not an asset ticker"), ("doge", "No venue lists DOGE")])
async def test_bad_input_gets_a_short_ephemeral_error(
    dd: DiscordDouble, frontend: DiscordFrontend, asset: str, fragment: str
) -> None:
    res = await ask(dd, "funding", {"asset": asset})
    assert res["data"]["flags"] == 64
    (embed,) = res["data"]["embeds"]
    assert fragment in embed["description"] and "title" not in embed and len(embed["description"]) < 300


async def test_threshold_set_rights(dd: DiscordDouble, frontend: DiscordFrontend, core: CommandCore) -> None:
    rule = {"rule": "funding btc above 0.05%"}
    refused = await ask(dd, "threshold", rule, sub="set", user=MEMBER)
    assert refused["data"]["flags"] == 64 and "Only bot admins" in text_of(refused)
    store = AlertStore(core.store.redis, core.store.keys)
    assert (await store.load_rules())[1] == []

    chat = await ask(dd, "threshold", rule, sub="set", user=MANAGER)  # Manage Server in this guild
    assert not chat["data"].get("flags") and "Rule r1 set: funding BTC above +0.0500%/8h" in text_of(chat)
    forced = await dd.interact(
        "threshold",
        {"metric": "basis", "asset": "eth", "condition": "below", "value": "-5%", "venue": "okx"},
        subcommand="set",
        user_id=MEMBER,
        guild_id=GUILD,
        channel_id=CHAN2,
        permissions=MANAGE_GUILD,
    )
    assert "Rule r2 set: basis ETH below -5.0% (okx)" in text_of(forced)
    glob = await ask(dd, "threshold", {"rule": "set basis btc above 40%", "cooldown": "2h"}, sub="set", user=BOT_ADMIN)
    assert "Global: every chat subscribed to basis BTC" in text_of(glob)

    rules = {r.id: r for r in (await store.load_rules())[1]}
    assert (rules["r1"].scope, rules["r1"].target) == ("chat", f"dc:{CHAN}")
    assert (rules["r2"].scope, rules["r2"].target) == ("chat", f"dc:{CHAN2}")
    assert (rules["r3"].scope, rules["r3"].target, rules["r3"].cooldown_s) == ("global", "", 7200)
    assert rules["r1"].created_by == f"dc:{MANAGER} (manager)"

    denied = await ask(dd, "threshold", {"id": "r1"}, sub="del", user=MEMBER)
    assert denied["data"]["flags"] == 64 and "r1" in rules
    listed = text_of(await ask(dd, "threshold", sub="list", user=MEMBER))
    assert "r1" in listed and "r3" in listed and "r2" not in listed  # r2 belongs to the other channel
    assert "Rule r1 deleted" in text_of(await ask(dd, "threshold", {"id": "r1"}, sub="del", user=MANAGER))


async def test_mute_and_admin_rights(dd: DiscordDouble, frontend: DiscordFrontend) -> None:
    refused = await ask(dd, "mute", {"duration": "2h"}, user=MEMBER)
    assert refused["data"]["flags"] == 64 and "administrators" in text_of(refused)
    assert "Muted for 2h" in text_of(await ask(dd, "mute", {"duration": "2h"}, user=MANAGER))
    assert "Muted for 1d" in text_of(
        await ask(dd, "mute", {"duration": "1d"}, user=MEMBER, guild=None, channel=556)
    )  # a DM is the user's own chat
    manager_admin = await ask(dd, "admin", {"user_id": "42"}, sub="add", user=MANAGER)
    assert manager_admin["data"]["flags"] == 64  # Manage Server does not make bot admins
    assert "User 42 is now a bot admin" in text_of(await ask(dd, "admin", {"user_id": "42"}, sub="add", user=BOT_ADMIN))
    assert "Added by command: 42" in text_of(await ask(dd, "admin", sub="list", user=42))


async def test_subscribe_unsubscribe_alerts(dd: DiscordDouble, frontend: DiscordFrontend, core: CommandCore) -> None:
    refused = await ask(dd, "subscribe", {"metric": "all", "asset": "btc"}, user=MEMBER)
    assert "Only this group's administrators" in text_of(refused) and refused["data"]["flags"] == 64
    res = await ask(dd, "subscribe", {"metric": "all", "asset": "btc"}, user=MANAGER)
    want = "This group will receive basis BTC, funding BTC, oi BTC, flows BTC, gamma BTC, liqs BTC alerts"
    assert want in text_of(res)
    store = AlertStore(core.store.redis, core.store.keys)
    assert await store.topics_of(f"dc:{CHAN}") == [
        "basis:BTC",
        "flows:BTC",
        "funding:BTC",
        "gamma:BTC",
        "liqs:BTC",
        "oi:BTC",
    ]
    listing = text_of(await ask(dd, "alerts"))
    assert "Subscribed: basis BTC, flows BTC, funding BTC, gamma BTC, liqs BTC, oi BTC" in listing
    assert "Unsubscribed from basis BTC" in text_of(
        await ask(dd, "unsubscribe", {"metric": "basis", "asset": "btc"}, user=MANAGER)
    )
    assert "Unsubscribed from flows BTC, funding BTC, gamma BTC, liqs BTC, oi BTC" in text_of(
        await ask(dd, "unsubscribe", {"metric": "all"}, user=MANAGER)
    )
    assert await store.topics_of(f"dc:{CHAN}") == []


async def test_asset_autocomplete_from_known_assets(dd: DiscordDouble, frontend: DiscordFrontend) -> None:
    def ac(name: str, value: str, **kw: Any) -> Any:
        return dd.autocomplete(name, "asset", value, user_id=MEMBER, guild_id=GUILD, channel_id=CHAN, **kw)

    assert await ac("funding", "") == [{"name": a, "value": a} for a in ("BTC", "ETH", "SOL")]
    assert await ac("funding", "e") == [{"name": "ETH", "value": "ETH"}]
    assert await ac("basis", "") == [{"name": "BTC", "value": "BTC"}]  # assets with dated futures
    assert await ac("subscribe", "", options={"metric": "basis"}) == [{"name": "BTC", "value": "BTC"}]
    assert await ac("threshold", "s", options={"metric": "funding"}, subcommand="set") == [
        {"name": "SOL", "value": "SOL"}
    ]


async def test_slow_answer_is_deferred_then_sent(dd: DiscordDouble, frontend: DiscordFrontend) -> None:
    frontend.defer_after_s = 0.0  # anything not answered at once is "thinking..." first
    res = await ask(dd, "funding", {"asset": "eth"})
    assert res["type"] == 5 and res["deferred"]
    assert "ETH funding" in text_of(res)


async def test_unexpected_failure_still_answers(
    dd: DiscordDouble, frontend: DiscordFrontend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(*args: Any) -> Any:
        raise ConnectionError("redis went away")

    monkeypatch.setattr(frontend.core, "run", boom)
    res = await ask(dd, "status")
    assert res["data"]["flags"] == 64 and "Something went wrong" in text_of(res)


async def test_bad_token_fails_start_cleanly(dd: DiscordDouble, core: CommandCore) -> None:
    dd.token = "the-real-token"
    fe = DiscordFrontend(core, token="wrong", guild_ready_timeout_s=0.05)
    with pytest.raises(discord.LoginFailure):
        await fe.start(ready_timeout_s=5)
    assert fe.client.is_closed() and dd.sync_count == 0


def test_a_new_core_command_gets_a_slash_command() -> None:
    from core.commands import command_specs
    from core.metrics.registry import default_registry

    registry = default_registry()
    metrics = ("basis", "funding", "oi", "flows")
    extra = (CommandSpec("movers", "<window> [count]", "/movers 1h", "biggest funding changes"),)
    specs = (*command_specs(registry, metrics), *extra)
    defs = {
        d.path: d for d in slash_module.slash_definitions(specs, ["oi", "movers", "basis"], registry, metrics, VENUES)
    }
    assert set(defs) == {("oi",), ("movers",), ("basis",)}
    asset, period = defs[("oi",)].options
    assert asset.name == "asset" and asset.required and asset.assets == ("oi",) and not period.required
    assert defs[("oi",)].args({"asset": "btc"}) == ["btc"]
    assert defs[("oi",)].args({"asset": "btc", "period": "7d"}) == ["btc", "7d"]
    assert defs[("movers",)].args({"args": " 1h  5 "}) == ["1h", "5"]  # free text for other shapes
    threshold = slash_module.slash_definitions(specs, ["threshold"], registry, metrics, VENUES)[0]
    assert threshold.args(
        {"metric": "funding", "asset": "btc", "condition": "above", "value": "0.05%", "venue": "okx", "cooldown": "2h"}
    ) == ["set", "funding", "btc", "above", "0.05%", "venue", "okx", "cooldown", "2h"]
