"""The real discord.py client (Client + CommandTree) against the local DiscordDouble."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakes.discord_server import DiscordDouble

GUILD = 1000
CHAN = 2000
CHAN2 = 2001
ADMIN = 7
USER = 8
MANAGE_GUILD = 0x20


class _Bot(discord.Client):
    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.ready_event = asyncio.Event()
        _register_commands(self.tree)

    async def on_ready(self) -> None:
        self.ready_event.set()


def _register_commands(tree: app_commands.CommandTree[_Bot]) -> None:
    symbols = ["BTC", "ETH", "SOL", "BNB"]

    @tree.command(name="ping", description="Ping with a symbol")
    @app_commands.describe(symbol="Ticker")
    async def ping(interaction: discord.Interaction, symbol: str) -> None:
        embed = discord.Embed(title="pong", description=f"basis for {symbol}", colour=0x00FF00)
        embed.add_field(name="symbol", value=symbol, inline=True)
        embed.add_field(name="user", value=str(interaction.user.id), inline=True)
        await interaction.response.send_message(embed=embed)

    @ping.autocomplete("symbol")
    async def ping_symbol(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=s, value=s) for s in symbols if s.startswith(current.upper())]

    @tree.command(name="config", description="Admin only")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def config(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("configured", ephemeral=True)

    @config.error
    async def config_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.MissingPermissions):
            await interaction.response.send_message(f"denied: {','.join(error.missing_permissions)}", ephemeral=True)

    @tree.command(name="slow", description="Deferred then followup")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await asyncio.sleep(0.01)
        await interaction.followup.send(embed=discord.Embed(title="late"))

    @tree.command(name="edit", description="Deferred then edit")
    async def edit(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(content="done")

    alerts = app_commands.Group(name="alerts", description="Alert rules")

    @alerts.command(name="add", description="Add a rule")
    async def alerts_add(interaction: discord.Interaction, symbol: str, threshold: float, hours: int = 1) -> None:
        await interaction.response.send_message(
            f"{symbol}|{threshold!r}|{hours!r}|{type(threshold).__name__}|{interaction.guild_id}"
        )

    tree.add_command(alerts)


@pytest.fixture
async def dd() -> AsyncIterator[DiscordDouble]:
    async with DiscordDouble() as double:
        double.add_guild(GUILD, channel_ids=[CHAN, CHAN2])
        double.add_member(GUILD, ADMIN, permissions=MANAGE_GUILD, name="admin")
        double.add_member(GUILD, USER, name="user")
        with double.patch_discord():
            yield double


@pytest.fixture
async def bot(dd: DiscordDouble) -> AsyncIterator[_Bot]:
    client = _Bot()
    task = asyncio.create_task(client.start("fake-token"))
    ready = asyncio.create_task(client.ready_event.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    try:
        if task in done:
            task.result()  # surface the startup error
        assert ready in done, "on_ready was not dispatched"
        yield client
    finally:
        ready.cancel()
        await client.close()
        await asyncio.wait_for(task, 5)


async def test_login_gateway_and_ready(dd: DiscordDouble, bot: _Bot) -> None:
    assert bot.user is not None and bot.user.id == DiscordDouble.BOT_USER_ID and bot.user.bot
    assert bot.application_id == DiscordDouble.APP_ID
    assert ("GET", "/users/@me") in dd.requests
    assert ("GET", "/oauth2/applications/@me") in dd.requests
    conn = dd.gateway_connections[0]
    assert conn["v"] == "10" and conn["encoding"] == "json"
    assert conn["compress"] in ("zlib-stream", "zstd-stream")  # asked for, but text frames are accepted
    identify = next(p for p in dd.gateway_received if p["op"] == 2)
    assert identify["d"]["token"] == "fake-token"
    assert identify["d"]["intents"] == discord.Intents.default().value

    guild = bot.get_guild(GUILD)
    assert guild is not None and not guild.unavailable and guild.name == "Traders"
    assert [c.id for c in guild.text_channels] == [CHAN, CHAN2]
    # Intents.default() has no GUILD_MEMBERS: like Discord, only the bot's own member is sent.
    assert guild.get_member(ADMIN) is None and guild.member_count == 4
    assert any(r.permissions.manage_guild for r in guild.roles)
    me = guild.me
    assert me is not None and me.guild_permissions.send_messages and me.guild_permissions.embed_links
    assert bot.latency < 5
    await dd.wait_ready(timeout=1)


async def test_tree_sync_registers_commands(dd: DiscordDouble, bot: _Bot) -> None:
    synced = await bot.tree.sync()
    assert dd.sync_count == 1
    assert sorted(c["name"] for c in dd.commands) == ["alerts", "config", "edit", "ping", "slow"]
    assert {c.name: c.id for c in synced} == {c["name"]: int(c["id"]) for c in dd.commands}
    ping = next(c for c in dd.commands if c["name"] == "ping")
    assert ping["options"][0]["name"] == "symbol" and ping["options"][0]["autocomplete"] is True
    first_ids = {c["name"]: c["id"] for c in dd.commands}
    await bot.tree.sync()
    assert dd.sync_count == 2
    assert {c["name"]: c["id"] for c in dd.commands} == first_ids  # upsert keeps ids
    assert ("PUT", f"/applications/{DiscordDouble.APP_ID}/commands") in dd.requests

    await bot.tree.sync(guild=discord.Object(GUILD))
    assert dd.guild_sync_count == 1 and dd.guild_commands[GUILD] == []


async def test_slash_command_returns_embed(dd: DiscordDouble, bot: _Bot) -> None:
    await bot.tree.sync()
    result = await dd.interact("ping", {"symbol": "BTC"}, user_id=USER, guild_id=GUILD, channel_id=CHAN)
    assert result["type"] == 4 and not result["deferred"]
    (embed,) = result["data"]["embeds"]
    assert embed["title"] == "pong" and embed["description"] == "basis for BTC"
    assert embed["color"] == 0x00FF00
    assert embed["fields"] == [
        {"name": "symbol", "value": "BTC", "inline": True},
        {"name": "user", "value": str(USER), "inline": True},
    ]
    assert result["followups"] == []
    assert any(p.endswith("/callback") for _, p in dd.requests)


async def test_autocomplete(dd: DiscordDouble, bot: _Bot) -> None:
    await bot.tree.sync()
    choices = await dd.autocomplete("ping", "symbol", "b", user_id=USER, guild_id=GUILD, channel_id=CHAN)
    assert choices == [{"name": "BTC", "value": "BTC"}, {"name": "BNB", "value": "BNB"}]


async def test_has_permissions_check(dd: DiscordDouble, bot: _Bot) -> None:
    await bot.tree.sync()
    denied = await dd.interact("config", user_id=USER, guild_id=GUILD, channel_id=CHAN)
    assert denied["data"]["content"] == "denied: manage_guild"
    assert denied["data"]["flags"] == 64  # ephemeral
    ok = await dd.interact("config", user_id=ADMIN, guild_id=GUILD, channel_id=CHAN)
    assert ok["data"]["content"] == "configured"
    forced = await dd.interact("config", user_id=USER, guild_id=GUILD, channel_id=CHAN, permissions=MANAGE_GUILD)
    assert forced["data"]["content"] == "configured"
    owner = await dd.interact("config", user_id=1, guild_id=GUILD, channel_id=CHAN)
    assert owner["data"]["content"] == "configured"


async def test_deferred_followup_and_edit(dd: DiscordDouble, bot: _Bot) -> None:
    await bot.tree.sync()
    slow = await dd.interact("slow", user_id=USER, guild_id=GUILD, channel_id=CHAN)
    assert slow["type"] == 5 and slow["deferred"]
    assert slow["data"]["embeds"][0]["title"] == "late"
    assert len(slow["followups"]) == 1

    edited = await dd.interact("edit", user_id=USER, guild_id=GUILD, channel_id=CHAN)
    assert edited["type"] == 5 and edited["data"]["content"] == "done"
    assert edited["edits"] == [{"content": "done"}] or edited["edits"][0]["content"] == "done"


async def test_group_subcommand_typed_options(dd: DiscordDouble, bot: _Bot) -> None:
    await bot.tree.sync()
    res = await dd.interact(
        "alerts",
        {"symbol": "ETH", "threshold": 2, "hours": 4},
        subcommand="add",
        user_id=USER,
        guild_id=GUILD,
        channel_id=CHAN,
    )
    assert res["data"]["content"] == f"ETH|2.0|4|float|{GUILD}"
    with pytest.raises(ValueError, match="missing required"):
        await dd.interact("alerts", {"symbol": "ETH"}, subcommand="add", user_id=USER, guild_id=GUILD, channel_id=CHAN)
    with pytest.raises(ValueError, match="unknown option"):
        await dd.interact("ping", {"sym": "ETH"}, user_id=USER, guild_id=GUILD, channel_id=CHAN)


async def test_dm_interaction(dd: DiscordDouble, bot: _Bot) -> None:
    await bot.tree.sync()
    res = await dd.interact("ping", {"symbol": "SOL"}, user_id=USER, guild_id=None, channel_id=555)
    assert res["data"]["embeds"][0]["fields"][0]["value"] == "SOL"


async def test_partial_messageable_send(dd: DiscordDouble, bot: _Bot) -> None:
    channel = bot.get_partial_messageable(CHAN)
    msg = await channel.send("x")
    assert msg.content == "x" and msg.channel.id == CHAN
    assert msg.author.id == DiscordDouble.BOT_USER_ID
    embed = discord.Embed(title="Funding spike", description="BTC-PERP 0.12%")
    embed.add_field(name="venue", value="binance")
    await channel.send(embed=embed)
    msgs = await dd.wait_channel_messages(CHAN, 2)
    assert msgs[0]["content"] == "x"
    assert msgs[1]["embeds"][0]["title"] == "Funding spike"
    assert msgs[1]["embeds"][0]["fields"] == [{"name": "venue", "value": "binance", "inline": True}]
    edited = await msg.edit(content="y")
    assert edited.content == "y"
    await msg.delete()
    # a real TextChannel from the cache works too
    guild = bot.get_guild(GUILD)
    assert guild is not None
    text = guild.get_channel(CHAN2)
    assert isinstance(text, discord.TextChannel)
    await text.send("hello")
    assert (await dd.wait_channel_messages(CHAN2))[0]["content"] == "hello"


async def test_429_with_via_is_retried(dd: DiscordDouble, bot: _Bot) -> None:
    dd.fail_next(CHAN, 429, retry_after=0.1)
    start = time.monotonic()
    msg = await bot.get_partial_messageable(CHAN).send("after limit")
    assert time.monotonic() - start >= 0.1
    assert msg.content == "after limit"
    assert dd.too_many_requests == 1
    assert dd.requests.count(("POST", f"/channels/{CHAN}/messages")) == 2
    assert [m["content"] for m in dd.channel_messages[CHAN]] == ["after limit"]


async def test_429_without_via_is_not_retried(dd: DiscordDouble, bot: _Bot) -> None:
    dd.fail_next(CHAN, 429, via=False)
    with pytest.raises(discord.HTTPException) as exc:
        await bot.get_partial_messageable(CHAN).send("x")
    assert exc.value.status == 429
    assert dd.requests.count(("POST", f"/channels/{CHAN}/messages")) == 1


async def test_403_and_404(dd: DiscordDouble, bot: _Bot) -> None:
    dd.fail_next(CHAN, 403)
    with pytest.raises(discord.Forbidden) as forbidden:
        await bot.get_partial_messageable(CHAN).send("x")
    assert forbidden.value.code == 50001
    dd.fail_next(CHAN, 404)
    with pytest.raises(discord.NotFound) as missing:
        await bot.get_partial_messageable(CHAN).send("x")
    assert missing.value.code == 10003
    assert CHAN not in dd.channel_messages
    await bot.get_partial_messageable(CHAN).send("ok now")
    assert len(dd.channel_messages[CHAN]) == 1


async def test_500_is_retried_by_discord_py(dd: DiscordDouble, bot: _Bot) -> None:
    dd.fail_next(CHAN, 500)
    await bot.get_partial_messageable(CHAN).send("x")  # discord.py sleeps 1s, then retries
    assert dd.requests.count(("POST", f"/channels/{CHAN}/messages")) == 2


async def test_enforced_limits_are_respected_by_discord_py(dd: DiscordDouble, bot: _Bot) -> None:
    dd.enforce_limits(per_channel=2, per_channel_window_s=0.3, global_per_s=50)
    channel = bot.get_partial_messageable(CHAN)
    start = time.monotonic()
    await asyncio.gather(*(channel.send(f"m{i}") for i in range(5)))
    assert time.monotonic() - start >= 0.5  # 3 windows of 2 requests
    assert len(dd.channel_messages[CHAN]) == 5
    assert dd.too_many_requests == 0  # the headers let discord.py pace itself


async def test_raw_http_headers_and_enforced_429() -> None:
    async with DiscordDouble() as dd, aiohttp.ClientSession() as session:
        dd.add_guild(GUILD, channel_ids=[CHAN])
        dd.enforce_limits(per_channel=1, per_channel_window_s=5.0)
        url = f"{dd.rest_base}/channels/{CHAN}/messages"
        async with session.post(url, json={"content": "a"}) as r1:
            assert r1.status == 200
            assert r1.headers["Content-Type"] == "application/json"
            for h in ("Limit", "Remaining", "Reset", "Reset-After", "Bucket"):
                assert f"X-RateLimit-{h}" in r1.headers
            assert r1.headers["X-RateLimit-Limit"] == "1" and r1.headers["X-RateLimit-Remaining"] == "0"
            assert (await r1.json())["content"] == "a"
        async with session.post(url, json={"content": "b"}) as r2:
            assert r2.status == 429 and r2.headers["Via"] == "1.1 google"
            body = await r2.json()
            assert body["message"] == "You are being rate limited." and body["global"] is False
            assert 0 < body["retry_after"] <= 5.0
        assert dd.too_many_requests == 1
        async with session.get(f"{dd.rest_base}/channels/999") as r3:
            assert r3.status == 404 and (await r3.json())["code"] == 10003
        async with session.get(f"{dd.rest_base}/nope") as r4:
            assert r4.status == 404 and r4.headers["Content-Type"] == "application/json"


async def test_interact_without_client_fails_fast() -> None:
    async with DiscordDouble() as dd:
        dd.add_guild(GUILD, channel_ids=[CHAN])
        with pytest.raises(RuntimeError, match="no identified gateway session"):
            await dd.interact("ping", {"symbol": "x"}, user_id=USER, guild_id=GUILD, channel_id=CHAN)


async def test_members_intent_chunks_and_caches_members(dd: DiscordDouble) -> None:
    intents = discord.Intents.default()
    intents.members = True
    client = discord.Client(intents=intents, guild_ready_timeout=0.05)
    ready = asyncio.Event()

    async def on_ready() -> None:
        ready.set()

    client.on_ready = on_ready  # type: ignore[attr-defined]
    task = asyncio.create_task(client.start("fake-token"))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        assert any(p["op"] == 8 for p in dd.gateway_received)  # chunk request answered
        guild = client.get_guild(GUILD)
        assert guild is not None and guild.chunked
        admin, user = guild.get_member(ADMIN), guild.get_member(USER)
        assert admin is not None and admin.guild_permissions.manage_guild
        assert user is not None and not user.guild_permissions.manage_guild
    finally:
        await client.close()
        await asyncio.wait_for(task, 5)


async def test_privileged_intents_can_be_refused(dd: DiscordDouble) -> None:
    dd.allow_privileged_intents = False
    client = discord.Client(intents=discord.Intents.all())
    try:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            await asyncio.wait_for(client.start("fake-token"), 5)
    finally:
        await client.close()


async def test_late_interaction_callback_is_unknown(dd: DiscordDouble, bot: _Bot) -> None:
    dd.interaction_ack_timeout = 0.0  # every callback is "too late" (Discord allows 3s)
    with pytest.raises(TimeoutError, match="callback to /ping"):
        await dd.interact("ping", {"symbol": "BTC"}, user_id=USER, guild_id=GUILD, channel_id=CHAN, timeout=0.5)
    callbacks = [e for e in dd.request_log if e["path"].endswith("/callback")]
    assert callbacks and callbacks[0]["status"] == 404
