"""Telegram and Discord in one process: a threshold set on Telegram fires to both platforms' subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.app import run
from core.keys import Keys
from tests.fakes.discord_server import DiscordDouble
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.telegram import BotApiDouble
from tests.local_bot import local_settings

ADMIN = 42
GUILD, CHANNEL, MANAGER = 9001, 9101, 77
MANAGE_GUILD = 0x20


@pytest.fixture
async def discord_double() -> AsyncIterator[DiscordDouble]:
    async with DiscordDouble() as dd:
        dd.add_guild(GUILD, channel_ids=[CHANNEL])
        dd.add_member(GUILD, MANAGER, permissions=MANAGE_GUILD, name="manager")
        with dd.patch_discord():
            yield dd


async def test_threshold_from_telegram_reaches_discord_channel_and_telegram_chat(
    exchanges: ExchangeDouble,
    telegram: BotApiDouble,
    discord_double: DiscordDouble,
    redis_url: str,
    redis: object,
    keys: Keys,
) -> None:
    for state in exchanges.venues.values():
        for p in state.perps:
            p.funding_rate = 0.0001
    settings = local_settings(
        exchanges,
        telegram,
        redis_url,
        keys,
        discord={"token": "discord-test-token-0123456789"},
        flows={"providers": []},
        alerts={"telegram_admins": [ADMIN], "default_rules": []},
    )
    stop = asyncio.Event()
    app = asyncio.create_task(run(settings, stop))
    try:
        await discord_double.wait_ready(timeout=10)
        for _ in range(100):  # the slash commands are registered once the client is ready
            if discord_double.commands:
                break
            await asyncio.sleep(0.1)
        res = await discord_double.interact(
            "subscribe",
            {"metric": "funding", "asset": "eth"},
            user_id=MANAGER,
            guild_id=GUILD,
            channel_id=CHANNEL,
            permissions=MANAGE_GUILD,
            timeout=10,
        )
        assert "funding ETH" in str(res["data"])
        telegram.push_message(501, "/subscribe funding eth", user_id=501)
        await telegram.wait_sent(1, chat_id=501)
        telegram.push_message(ADMIN, "/threshold set funding eth above 0.05% venue bybit", user_id=ADMIN)
        (ok,) = await telegram.wait_sent(1, chat_id=ADMIN)
        assert "Rule r1 set" in ok.plain and "(2 now)" in ok.plain  # both platforms' subscribers counted

        for p in exchanges.venues["bybit"].perps:
            if p.asset == "ETH":
                p.funding_rate = 0.0006
        (dc_alert,) = await discord_double.wait_channel_messages(CHANNEL, 1, timeout=15)
        tg_alert = (await telegram.wait_sent(2, chat_id=501, timeout=15))[1]
        embed = dc_alert["embeds"][0]
        assert "ETH funding above +0.0500%/8h" in embed["title"]
        assert "+0.0600%/8h" in embed["description"] and "bybit" in embed["description"]
        assert "ETH funding above +0.0500%/8h" in tg_alert.plain and "+0.0600%/8h" in tg_alert.plain
        await asyncio.sleep(1.5)
        assert len(discord_double.channel_messages[CHANNEL]) == 1 and len(telegram.sent_to(501)) == 2
    finally:
        stop.set()
        await asyncio.wait_for(app, 20)
