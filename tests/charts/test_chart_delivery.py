"""/chart end to end: a photo through the Bot API double (sendPhoto), an embed image through the Discord double."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image as PILImage

from core.charts.command import ChartCommands
from core.commands import CommandCore, CoreSettings
from core.store import MarketStore
from handlers.discord.bot import DiscordFrontend
from handlers.telegram.bot import TelegramFrontend
from tests.charts.conftest import NOW_MS, VENUES
from tests.charts.test_series import H, funding, write
from tests.fakes import discord_media, telegram_media
from tests.fakes.discord_server import DiscordDouble
from tests.fakes.telegram import TOKEN, BotApiDouble


def core_with(charts: ChartCommands, store: MarketStore) -> CommandCore:
    return CommandCore(
        store,
        CoreSettings(venues=VENUES, sources=charts.sources),
        charts.registry,
        clock_ms=lambda: NOW_MS,
        charts=charts,
    )


async def history(charts: ChartCommands, store: MarketStore) -> None:
    for i in range(12):
        ts = NOW_MS - (11 - i) * H
        await write(charts, store, "funding", [funding("okx", "BTC/USDT:USDT", 1e-4 * (i % 4), 28_800, ts)], now=ts)


@pytest.fixture
async def frontend(
    telegram: BotApiDouble, charts: ChartCommands, store: MarketStore
) -> AsyncIterator[TelegramFrontend]:
    telegram_media.install(telegram)
    fe = TelegramFrontend(
        core_with(charts, store),
        token=TOKEN,
        base_url=telegram.base_url,
        base_file_url=telegram.base_file_url,
        poll_timeout_s=0.5,
    )
    await fe.start()
    yield fe
    await fe.stop()


async def test_chart_is_a_telegram_photo(
    telegram: BotApiDouble, frontend: TelegramFrontend, charts: ChartCommands, store: MarketStore
) -> None:
    await history(charts, store)
    telegram.push_message(501, "/chart funding btc 1d", user_id=501)
    (photo,) = await telegram.wait_sent(1, chat_id=501, timeout=10)
    assert photo.method == "sendPhoto"
    img = PILImage.open(io.BytesIO(photo.params["photo"]["data"]))
    assert img.format == "PNG" and img.size == (1200, 750)
    assert "BTC funding" in photo.params["caption"] and "1d" in photo.params["caption"]
    # no or wrong words: one line saying what is accepted
    telegram.push_message(501, "/chart", user_id=501)
    telegram.push_message(501, "/chart funding btc 400d", user_id=501)
    telegram.push_message(501, "/chart gamma btc", user_id=501)
    usage, window, unknown = (await telegram.wait_sent(4, chat_id=501, timeout=10))[1:]
    assert "/chart funding <asset>" in usage.plain and "/chart basis <asset> curve" in usage.plain
    assert "from 1h to 90d" in window.plain
    assert "accepted are basis, funding, oi, flows" in unknown.plain  # the registry order


@pytest.fixture
async def discord_double() -> AsyncIterator[DiscordDouble]:
    async with DiscordDouble() as double:
        discord_media.install(double)
        double.add_guild(1000, channel_ids=[2000])
        double.add_member(1000, 8, name="member")
        with double.patch_discord():
            yield double


async def test_chart_is_a_discord_embed_image(
    discord_double: DiscordDouble, charts: ChartCommands, store: MarketStore
) -> None:
    await history(charts, store)
    fe = DiscordFrontend(core_with(charts, store), token="fake-token", guild_ready_timeout_s=0.05)
    await fe.start(ready_timeout_s=5)
    try:
        res = await discord_double.interact(
            "chart", {"args": "funding btc 1d"}, user_id=8, guild_id=1000, channel_id=2000
        )
    finally:
        await fe.stop()
    (embed,) = res["data"]["embeds"]
    assert embed["image"]["url"] == "attachment://funding-btc-1d.png"
    assert "BTC funding" in embed["title"]
    (file,) = discord_double.interaction_files[res["interaction_id"]]  # type: ignore[attr-defined]
    assert file["filename"] == "funding-btc-1d.png"
    assert PILImage.open(io.BytesIO(file["data"])).size == (1200, 750)
