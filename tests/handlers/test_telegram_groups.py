"""What real Telegram groups send: commands for other bots, edits, anonymous admins, channels, forum topics,
"next page" buttons. The real PTB front end against the Bot API double, the real command core on real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from core.alerts.delivery import DeliveryWorker
from core.alerts.rules import Rule
from core.alerts.store import AlertStore
from core.keys import Keys
from core.pacer import Limits
from core.store import MarketStore
from handlers.telegram.bot import TelegramFrontend
from handlers.telegram.push import TelegramSender
from tests.builders import command_core
from tests.events import event_for, tagged
from tests.fakes.telegram import TOKEN, BotApiDouble, Sent

VENUES = ("binanceusdm", "okx")
BOT_ADMIN = 42
GROUP = -1001234500
CHANNEL = -1009876500
MEMBER, GROUP_ADMIN = 700, 701
# these tests are about who may do what, not pacing: short windows keep them quick
FAST = Limits(global_per_s=200.0, private=((1, 0.02),), group=((1, 0.02),))


@pytest.fixture
def store(redis: Redis, keys: Keys) -> AlertStore:
    return AlertStore(redis, keys)


@pytest.fixture
async def frontend(
    redis: Redis, keys: Keys, store: AlertStore, telegram: BotApiDouble
) -> AsyncIterator[TelegramFrontend]:
    core = command_core(MarketStore(redis, keys, retention_ms=1), VENUES, admins={"tg": frozenset({str(BOT_ADMIN)})})
    fe = TelegramFrontend(
        core,
        token=TOKEN,
        base_url=telegram.base_url,
        base_file_url=telegram.base_file_url,
        poll_timeout_s=1,
        limits=FAST,
    )
    telegram.set_admins(GROUP, [GROUP_ADMIN])
    await fe.start()
    try:
        yield fe
    finally:
        await fe.stop()


async def say(tg: BotApiDouble, chat_id: int, text: str, *, user: int = MEMBER, **kw: object) -> Sent:
    seen = len(tg.sent_to(chat_id))
    tg.push_message(chat_id, text, user_id=user, chat_type="supergroup" if chat_id < 0 else "private", **kw)
    return (await tg.wait_sent(seen + 1, chat_id=chat_id))[seen]


async def quiet(tg: BotApiDouble, chat_id: int, seconds: float = 0.6) -> None:
    """Nothing more is sent to the chat for a while (the updates were read and handled)."""
    seen = len(tg.sent_to(chat_id))
    deadline = time.monotonic() + seconds
    for _ in range(100):
        if not tg.pending_updates:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    assert len(tg.sent_to(chat_id)) == seen, [s.plain for s in tg.sent_to(chat_id)[seen:]]


async def test_commands_for_another_bot_are_ignored_ours_are_answered(
    telegram: BotApiDouble, frontend: TelegramFrontend, store: AlertStore
) -> None:
    telegram.push_message(GROUP, "/subscribe@OtherBot funding btc", user_id=GROUP_ADMIN, chat_type="supergroup")
    telegram.push_message(GROUP, "/nosuchcommand@OtherBot", user_id=GROUP_ADMIN, chat_type="supergroup")
    await quiet(telegram, GROUP)
    assert await store.topics_of(f"tg:{GROUP}") == []
    ours = await say(telegram, GROUP, "/subscribe@basiswatch_bot funding btc", user=GROUP_ADMIN)
    assert "This group will receive funding BTC" in ours.plain
    bare = await say(telegram, GROUP, "/help", user=MEMBER)
    assert "/subscribe" in bare.plain


async def test_an_edited_command_does_not_run_again(
    telegram: BotApiDouble, frontend: TelegramFrontend, store: AlertStore
) -> None:
    first = await say(telegram, BOT_ADMIN, "/threshold set funding btc above 0.05%", user=BOT_ADMIN)
    assert "Rule r1 set" in first.plain
    user_msg = max(m for m, v in telegram._messages[BOT_ADMIN].items() if v["from"]["id"] == BOT_ADMIN)
    telegram.push_edit(BOT_ADMIN, user_msg, "/threshold set funding btc above 0.06%")
    await quiet(telegram, BOT_ADMIN)
    rules, _ = await store.rules_in([store.keys.rules_global()])
    assert [r.id for r in rules] == ["r1"]


async def test_anonymous_admin_manages_the_group_a_channel_never_does(
    telegram: BotApiDouble, frontend: TelegramFrontend, store: AlertStore
) -> None:
    anon = await say(telegram, GROUP, "/subscribe funding btc", user=0, sender_chat=GROUP)
    assert "This group will receive funding BTC" in anon.plain
    assert (
        "Only this chat receives it"
        in (await say(telegram, GROUP, "/threshold set funding btc above 0.07%", user=0, sender_chat=GROUP)).plain
    )
    # a post on behalf of a channel: not an administrator of the group, and never a bot admin
    for text in ("/unsubscribe all", "/mute 2h", "/threshold set funding btc above 0.08%", "/admin add 5"):
        refused = await say(telegram, GROUP, text, user=0, sender_chat=CHANNEL)
        assert "Only" in refused.plain, (text, refused.plain)
    assert await store.topics_of(f"tg:{GROUP}") == ["funding:BTC"]
    assert await store.admins("tg") == set()


async def test_members_may_not_unsubscribe_or_mute_a_group(
    telegram: BotApiDouble, frontend: TelegramFrontend, store: AlertStore
) -> None:
    await say(telegram, GROUP, "/subscribe all btc", user=GROUP_ADMIN)
    for text in ("/unsubscribe all", "/subscribe basis eth", "/mute 1h"):
        refused = await say(telegram, GROUP, text, user=MEMBER)
        assert "Only this group's administrators" in refused.plain, refused.plain
    assert await store.topics_of(f"tg:{GROUP}") == ["basis:BTC", "flows:BTC", "funding:BTC", "liqs:BTC", "oi:BTC"]
    help_text = (await say(telegram, GROUP, "/help")).plain
    assert "receive that topic's alerts (in groups: admins)" in help_text
    assert "Unsubscribed" in (await say(telegram, GROUP, "/unsubscribe all", user=GROUP_ADMIN)).plain


async def test_topic_subscription_is_delivered_into_its_topic_and_replies_stay_in_their_topic(
    telegram: BotApiDouble, frontend: TelegramFrontend, store: AlertStore
) -> None:
    reply = await say(telegram, GROUP, "/subscribe funding btc", user=GROUP_ADMIN, thread_id=17)
    assert reply.thread_id == 17 and "This group will receive" in reply.plain
    assert (await say(telegram, GROUP, "/alerts", thread_id=17)).thread_id == 17
    assert (await say(telegram, GROUP, "/alerts", thread_id=23)).thread_id == 23  # another topic: nothing there
    assert (await say(telegram, GROUP, "/help")).thread_id is None  # General
    assert await store.subscribers("funding:BTC") == {f"tg:{GROUP}/17"}

    worker = DeliveryWorker(
        store, TelegramSender(frontend.app.bot), group="telegram", consumer="t", claim_idle_ms=500, render=tagged()
    )
    await worker.ensure_group()
    rule = Rule(
        id="r1",
        metric="funding",
        asset="BTC",
        kind="above",
        threshold=0.0005,
        venue="max",
        cooldown_s=0,
        hysteresis=0.0,
        selector="max",
    )
    seen = len(telegram.sent_to(GROUP))
    await store.commit([], [event_for(rule)])
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        (alert,) = (await telegram.wait_sent(seen + 1, chat_id=GROUP))[seen:]
    finally:
        stop.set()
        await task
    assert alert.thread_id == 17 and "BTC funding above" in alert.plain


async def test_over_long_reply_is_accepted_by_the_bot_api(telegram: BotApiDouble, frontend: TelegramFrontend) -> None:
    """A title longer than a message (the user id echoed back) is cut into parts Telegram accepts."""
    parts_before = len(telegram.sent_to(BOT_ADMIN))
    reply = await say(telegram, BOT_ADMIN, "/admin add " + "9" * 5000, user=BOT_ADMIN)
    assert reply.plain.startswith("User 999")
    parts = (await telegram.wait_sent(parts_before + 2, chat_id=BOT_ADMIN))[parts_before:]
    assert sum(p.plain.count("9") for p in parts) == 5000
    assert not [e for e in telegram.errors if e[0] == "sendMessage"]


async def test_long_alerts_has_a_next_button_that_pages_in_place(
    telegram: BotApiDouble, frontend: TelegramFrontend
) -> None:
    await say(telegram, BOT_ADMIN, "/subscribe funding btc", user=BOT_ADMIN)
    for i in range(25):
        await say(telegram, BOT_ADMIN, f"/threshold set funding btc above {0.01 + i / 1000:.3f}%", user=BOT_ADMIN)
    first = await say(telegram, BOT_ADMIN, "/alerts", user=BOT_ADMIN)
    assert "page 1/2" in first.plain
    assert first.reply_markup is not None
    button = first.reply_markup["inline_keyboard"][0][0]
    assert button["callback_data"] == "page:alerts 2"
    sent_before = len(telegram.sent)
    telegram.push_callback(BOT_ADMIN, first.message_id, button["callback_data"], user_id=BOT_ADMIN)
    for _ in range(100):
        if telegram.edits and telegram.callback_answers:
            break
        await asyncio.sleep(0.05)
    (edit,) = telegram.edits
    assert edit.message_id == first.message_id and "page 2/2" in edit.plain and edit.reply_markup is None
    assert len(telegram.callback_answers) == 1 and len(telegram.sent) == sent_before
    telegram.push_callback(BOT_ADMIN, first.message_id, "page:threshold del r1", user_id=BOT_ADMIN)  # not a page
    for _ in range(100):
        if len(telegram.callback_answers) == 2:
            break
        await asyncio.sleep(0.05)
    assert "expired" in telegram.callback_answers[1].get("text", "")
    assert len(telegram.edits) == 1
