"""Alert buttons: presses through the Bot API double (callback queries) and the Discord double (components).

A member of a group who presses Mute or Unsubscribe is refused and nothing changes; the group's
administrator's press mutes (or unsubscribes) and relabels the button in place; anyone's Chart
press posts the chart. ``/alerts charts on`` makes the chat's alerts arrive with their chart.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image as PILImage

from core.alert_commands import AlertCommands, AlertCommandSettings
from core.alerts.rules import Rule
from core.buttons import DATA_LIMIT, alert_actions, decode, with_actions
from core.charts.alert_charts import ChartingSender
from core.charts.command import ChartCommands
from core.commands import CommandCore, CoreSettings
from core.store import MarketStore
from handlers.discord.bot import DiscordFrontend
from handlers.discord.push import DiscordSender
from handlers.telegram.bot import TelegramFrontend
from handlers.telegram.push import TelegramSender
from tests.charts.conftest import NOW_MS, VENUES
from tests.charts.test_chart_delivery import history
from tests.events import event_for
from tests.fakes import discord_media, telegram_media
from tests.fakes.discord_server import DiscordDouble
from tests.fakes.telegram import TOKEN, BotApiDouble

GROUP, ADMIN, MEMBER = -100_777, 601, 602
RULE = Rule(
    id="r1",
    metric="funding",
    asset="BTC",
    kind="above",
    threshold=0.0005,
    venue="max",
    cooldown_s=3600,
    hysteresis=0.0001,
    selector="max",
)


def full_core(charts: ChartCommands, store: MarketStore) -> CommandCore:
    alerts = AlertCommands(charts.alert_store, AlertCommandSettings(sources=charts.sources), charts.registry)  # type: ignore[arg-type]
    return CommandCore(
        store,
        CoreSettings(venues=VENUES, sources=charts.sources),
        charts.registry,
        alerts=alerts,
        clock_ms=lambda: NOW_MS,
        charts=charts,
    )


def alert(charts: ChartCommands):  # type: ignore[no-untyped-def]
    return with_actions(charts.registry.render, charts.catalog.metrics)(event_for(RULE, ts_ms=NOW_MS))


def test_actions_fit_telegram_and_only_known_commands_come_back() -> None:
    actions = alert_actions(event_for(RULE), ("funding",))
    assert [a.label for a in actions] == ["Mute 1h", "Unsubscribe", "Chart"]
    assert all(len(("bw:" + a.command).encode()) <= DATA_LIMIT for a in actions)
    assert decode("bw:chart funding BTC") == ["chart", "funding", "BTC"]
    for forged in (
        "bw:threshold set funding btc above 1%",
        "bw:mute 30d",
        "bw:admin add 5",
        "page:alerts 2",
        "bw:" + "x" * 70,
    ):
        assert decode(forged) is None, forged


@pytest.fixture
async def tg(telegram: BotApiDouble, charts: ChartCommands, store: MarketStore) -> AsyncIterator[TelegramFrontend]:
    telegram_media.install(telegram)
    telegram.set_admins(GROUP, [ADMIN])
    fe = TelegramFrontend(
        full_core(charts, store),
        token=TOKEN,
        base_url=telegram.base_url,
        base_file_url=telegram.base_file_url,
        poll_timeout_s=0.5,
    )
    await fe.start()
    yield fe
    await fe.stop()


async def test_telegram_buttons_refuse_members_and_act_for_admins(
    telegram: BotApiDouble, tg: TelegramFrontend, charts: ChartCommands, store: MarketStore
) -> None:
    await history(charts, store)
    assert charts.alert_store is not None
    await charts.alert_store.subscribe(f"tg:{GROUP}", ["funding:BTC"])
    telegram.push_message(GROUP, "/help", user_id=MEMBER, chat_type="supergroup")  # the double learns the group
    await telegram.wait_sent(1, chat_id=GROUP, timeout=10)
    assert (await TelegramSender(tg.app.bot).send(GROUP, alert(charts))).outcome.value == "ok"
    msg = telegram.sent_to(GROUP)[-1]
    assert msg.reply_markup is not None
    (row,) = msg.reply_markup["inline_keyboard"]
    data = {b["text"]: b["callback_data"] for b in row}
    assert list(data) == ["Mute 1h", "Unsubscribe", "Chart"]

    # a member: refused in an alert box, nothing muted, nothing edited
    telegram_media.press(telegram, GROUP, msg.message_id, data["Mute 1h"], user_id=MEMBER)
    answer = await _answer(telegram, 1)
    assert answer.get("show_alert") is True and "administrators" in answer["text"]
    assert await charts.alert_store.mute_left_s(f"tg:{GROUP}") == 0 and not telegram.edits
    telegram_media.press(telegram, GROUP, msg.message_id, data["Unsubscribe"], user_id=MEMBER)
    assert "administrators" in (await _answer(telegram, 2))["text"]
    assert await charts.alert_store.topics_of(f"tg:{GROUP}") == ["funding:BTC"]

    # the group's administrator: muted for an hour, the button now says so
    telegram_media.press(telegram, GROUP, msg.message_id, data["Mute 1h"], user_id=ADMIN)
    assert "Muted for 1h" in (await _answer(telegram, 3))["text"]
    assert 3500 <= await charts.alert_store.mute_left_s(f"tg:{GROUP}") <= 3600
    await _wait(lambda: telegram.edits)
    (edit,) = telegram.edits
    assert [b["text"] for b in edit.reply_markup["inline_keyboard"][0]] == ["✓ Muted 1h", "Unsubscribe", "Chart"]

    # anyone may ask for the chart: a photo in reply to the alert
    photos = len(telegram.calls_to("sendPhoto"))
    telegram_media.press(telegram, GROUP, msg.message_id, data["Chart"], user_id=MEMBER)
    assert (await _answer(telegram, 4))["text"] == "Chart sent."
    await _wait(lambda: len(telegram.calls_to("sendPhoto")) > photos)
    photo = telegram.sent_to(GROUP)[-1]
    assert photo.method == "sendPhoto" and photo.params["reply_parameters"]["message_id"] == msg.message_id
    assert PILImage.open(io.BytesIO(photo.params["photo"]["data"])).size == (1200, 750)

    telegram_media.press(telegram, GROUP, msg.message_id, data["Unsubscribe"], user_id=ADMIN)
    assert "Unsubscribed" in (await _answer(telegram, 5))["text"]
    assert await charts.alert_store.topics_of(f"tg:{GROUP}") == []


async def test_alerts_charts_on_sends_the_alert_as_a_photo(
    telegram: BotApiDouble, tg: TelegramFrontend, charts: ChartCommands, store: MarketStore
) -> None:
    await history(charts, store)
    sender = ChartingSender(TelegramSender(tg.app.bot), charts)
    telegram.push_message(501, "/alerts charts on", user_id=501)
    (ok,) = await telegram.wait_sent(1, chat_id=501, timeout=10)
    assert "carry a chart" in ok.plain
    await sender.send(501, alert(charts))
    sent = telegram.sent_to(501)[-1]
    assert sent.method == "sendPhoto" and "BTC funding above" in sent.params["caption"]
    assert sent.reply_markup is not None  # the buttons stay on the photo
    assert PILImage.open(io.BytesIO(sent.params["photo"]["data"])).format == "PNG"
    # a member of a group may not change how the group's alerts look
    telegram.push_message(GROUP, "/alerts charts on", user_id=MEMBER, chat_type="supergroup")
    (refused,) = await telegram.wait_sent(1, chat_id=GROUP, timeout=10)
    assert "administrators" in refused.plain and not await charts.charts_on(f"tg:{GROUP}")
    telegram.push_message(501, "/alerts charts off", user_id=501)
    await telegram.wait_sent(3, chat_id=501, timeout=10)
    await sender.send(501, alert(charts))
    assert telegram.sent_to(501)[-1].method == "sendMessage"


async def _answer(telegram: BotApiDouble, n: int) -> dict:  # type: ignore[type-arg]
    await _wait(lambda: len(telegram.callback_answers) >= n)  # type: ignore[attr-defined]
    return telegram.callback_answers[n - 1]  # type: ignore[attr-defined,no-any-return]


async def _wait(predicate, within_s: float = 8.0) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import time

    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


# Discord -------------------------------------------------------------------------------------
GUILD, CHAN, MANAGER, DMEMBER = 1000, 2000, 7, 8


@pytest.fixture
async def dd() -> AsyncIterator[DiscordDouble]:
    async with DiscordDouble() as double:
        discord_media.install(double)
        double.add_guild(GUILD, channel_ids=[CHAN])
        double.add_member(GUILD, MANAGER, permissions=0x20, name="manager")
        double.add_member(GUILD, DMEMBER, name="member")
        with double.patch_discord():
            yield double


async def test_discord_components_refuse_members_and_act_for_managers(
    dd: DiscordDouble, charts: ChartCommands, store: MarketStore
) -> None:
    await history(charts, store)
    assert charts.alert_store is not None
    await charts.alert_store.subscribe(f"dc:{CHAN}", ["funding:BTC"])
    fe = DiscordFrontend(full_core(charts, store), token="fake-token", guild_ready_timeout_s=0.05)
    await fe.start(ready_timeout_s=5)
    try:
        assert (await DiscordSender(fe.client, fe.pacer).send(CHAN, alert(charts))).outcome.value == "ok"
        message = next(m for m in dd.messages.values() if m["channel_id"] == str(CHAN))
        (row,) = message["components"]
        ids = {b["label"]: b["custom_id"] for b in row["components"]}
        assert list(ids) == ["Mute 1h", "Unsubscribe", "Chart"]

        refused = await discord_media.press(dd, message, ids["Mute 1h"], user_id=DMEMBER, guild_id=GUILD)
        assert refused["type"] == 4 and refused["data"]["flags"] & 64  # only the presser sees it
        assert "administrators" in refused["data"]["content"]
        assert await charts.alert_store.mute_left_s(f"dc:{CHAN}") == 0

        done = await discord_media.press(dd, message, ids["Mute 1h"], user_id=MANAGER, guild_id=GUILD)
        assert done["type"] == 7  # the message is updated in place
        labels = [b["label"] for b in done["data"]["components"][0]["components"]]
        assert labels == ["✓ Muted 1h", "Unsubscribe", "Chart"]
        assert await charts.alert_store.mute_left_s(f"dc:{CHAN}") > 3500

        chart = await discord_media.press(dd, message, ids["Chart"], user_id=DMEMBER, guild_id=GUILD)
        assert chart["type"] == 4 and chart["data"]["embeds"][0]["image"]["url"].startswith("attachment://")
        (file,) = dd.interaction_files[chart["interaction_id"]]  # type: ignore[attr-defined]
        assert PILImage.open(io.BytesIO(file["data"])).size == (1200, 750)

        # /alerts charts on: the alert's last embed shows the chart, attached to the same message
        await charts.set_charts(f"dc:{CHAN}", True)
        sender = ChartingSender(DiscordSender(fe.client, fe.pacer), charts)
        assert (await sender.send(CHAN, alert(charts))).outcome.value == "ok"
        body = dd.channel_messages[CHAN][-1]
        assert body["embeds"][-1]["image"]["url"] == "attachment://funding-btc-7d.png"
        assert "BTC funding above" in body["embeds"][0]["title"] and body["components"]
        assert PILImage.open(io.BytesIO(dd.channel_files[CHAN][-1]["data"])).format == "PNG"
    finally:
        await fe.stop()
