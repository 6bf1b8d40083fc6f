"""Proves BotApiDouble works with the real python-telegram-bot."""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from collections.abc import AsyncIterator

import pytest
from telegram import Bot, Update
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import Application, ApplicationBuilder, CommandHandler, ContextTypes

from tests.fakes.telegram import TOKEN, BotApiDouble, parse_html, parse_markdown_v2


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without this, PTB 22 emits PTBDeprecationWarning when a RetryAfter is *constructed*
    # (and whenever .retry_after is read), which filterwarnings=error turns into an exception.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
async def tg() -> AsyncIterator[BotApiDouble]:
    async with BotApiDouble() as double:
        yield double


@pytest.fixture
async def bot(tg: BotApiDouble) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=tg.base_url, base_file_url=tg.base_file_url) as b:
        yield b


def build_app(tg: BotApiDouble, token: str = TOKEN) -> Application:  # type: ignore[type-arg]
    return ApplicationBuilder().token(token).base_url(tg.base_url).base_file_url(tg.base_file_url).build()


async def start_handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_chat is not None
    await context.bot.send_message(
        update.effective_chat.id,
        "<b>Welcome</b> to BasisWatch &amp; co",
        parse_mode=ParseMode.HTML,
        disable_web_page_preview=True,
    )


# ---- full application lifecycle ---------------------------------------------------------------


async def test_application_polls_and_replies_to_start(tg: BotApiDouble) -> None:
    app = build_app(tg)
    app.add_handler(CommandHandler("start", start_handler))
    async with app:
        await app.updater.start_polling(poll_interval=0, timeout=1)  # type: ignore[union-attr]
        await app.start()
        assert app.bot.username == "basiswatch_bot"
        tg.push_message(42, "/start")
        tg.push_message(-500, "/start@basiswatch_bot", chat_title="Desk")
        tg.push_message(-500, "/start@some_other_bot")
        tg.push_message(43, "hello")  # not a command
        sent = await tg.wait_sent(2)
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        await app.updater.stop()  # type: ignore[union-attr]
        await app.stop()
        assert time.monotonic() - t0 < 1.5
    assert len(tg.sent) == 2
    assert {s.chat_id for s in sent} == {42, -500}
    first = tg.sent_to(42)[0]
    assert first.text == "<b>Welcome</b> to BasisWatch &amp; co"
    assert first.plain == "Welcome to BasisWatch & co"
    assert first.parse_mode == "HTML"
    assert first.link_preview_disabled is True
    assert first.entities == [{"type": "bold", "offset": 0, "length": 7}]
    assert first.message_id == 2  # the pushed /start was message 1 in that chat
    methods = [m for m, _ in tg.calls]
    assert methods[0] == "getMe"
    assert "deleteWebhook" in methods
    # the cleanup getUpdates confirmed everything
    assert tg.pending_updates == 0


async def test_wrong_token_is_invalid_token(tg: BotApiDouble) -> None:
    app = build_app(tg, token="123456:WRONG")
    with pytest.raises(InvalidToken):
        async with app:
            pass
    # PTB leak: Application.shutdown() is a no-op when initialize() failed, so the bot's httpx
    # clients stay open (ResourceWarning -> error under filterwarnings=error in a LATER test).
    await app.bot.shutdown()
    assert tg.errors[-1] == ("getMe", 401, "Unauthorized")


async def test_send_message_returns_full_message(tg: BotApiDouble, bot: Bot) -> None:
    tg.push_message(7, "hi", first_name="Ann", username="ann")
    msg = await bot.send_message(7, "pong", reply_to_message_id=1)
    assert msg.message_id == 2
    assert msg.text == "pong"
    assert msg.chat.id == 7 and msg.chat.type == "private"
    assert msg.from_user is not None and msg.from_user.id == 999 and msg.from_user.is_bot
    assert msg.reply_to_message is not None and msg.reply_to_message.text == "hi"
    assert tg.sent[0].reply_to == 1
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await bot.send_message(7, "x", reply_to_message_id=99)
    group = await bot.send_message(-1001234567890, "g")
    assert group.chat.type == "supergroup"


async def test_edit_message_text(tg: BotApiDouble, bot: Bot) -> None:
    msg = await bot.send_message(5, "v1")
    edited = await bot.edit_message_text("<i>v2</i>", chat_id=5, message_id=msg.message_id, parse_mode="HTML")
    assert isinstance(edited, type(msg)) and edited.text == "v2" and edited.edit_date is not None
    assert tg.edits[0].plain == "v2"
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("<i>v2</i>", chat_id=5, message_id=msg.message_id, parse_mode="HTML")
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", chat_id=5, message_id=77)


# ---- error injection ----------------------------------------------------------------------------


async def test_fail_next_maps_to_ptb_exceptions(tg: BotApiDouble, bot: Bot) -> None:
    tg.fail_next(1, "429", retry_after=3)
    with pytest.raises(RetryAfter) as retry:
        await bot.send_message(1, "x")
    assert retry.value.retry_after == dtm.timedelta(seconds=3)

    tg.fail_next(2, "blocked")
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(2, "x")

    tg.fail_next(-3, "kicked")
    with pytest.raises(Forbidden, match="bot was kicked from the group chat"):
        await bot.send_message(-3, "x")

    tg.fail_next(-4, "migrate", new_chat_id=-1004)
    with pytest.raises(ChatMigrated) as migrated:
        await bot.send_message(-4, "x")
    assert migrated.value.new_chat_id == -1004
    tg.fail_next(-5, "migrate")
    with pytest.raises(ChatMigrated) as migrated:
        await bot.send_message(-5, "x")
    assert migrated.value.new_chat_id == -1005

    tg.fail_next(6, "not_found")
    with pytest.raises(BadRequest) as not_found:
        await bot.send_message(6, "x")
    assert not_found.value.message == "Chat not found"  # PTB strips "Bad Request: " and capitalizes

    for kind in ("500", "502"):
        tg.fail_next(8, kind)
        with pytest.raises(NetworkError) as net:
            await bot.send_message(8, "x")
        assert not isinstance(net.value, BadRequest)
    assert tg.sent == []
    # failed calls are recorded too
    assert len(tg.calls_to("sendMessage")) == 8
    assert tg.too_many_requests == 0  # injected 429s are not counted as enforcement


async def test_fail_next_times_then_recovers_and_fail_always(tg: BotApiDouble, bot: Bot) -> None:
    tg.fail_next(1, "500", times=2)
    for _ in range(2):
        with pytest.raises(NetworkError):
            await bot.send_message(1, "x")
    await bot.send_message(1, "x")
    assert len(tg.sent_to(1)) == 1

    tg.fail_always(2, "blocked")
    for _ in range(3):
        with pytest.raises(Forbidden):
            await bot.send_message(2, "x")
    tg.clear_failures(2)
    await bot.send_message(2, "x")
    with pytest.raises(ValueError, match="unknown failure kind"):
        tg.fail_next(1, "teapot")


async def test_too_long(tg: BotApiDouble, bot: Bot) -> None:
    await bot.send_message(1, "a" * 4096)
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(1, "a" * 4097)
    # counted after entity parsing
    await bot.send_message(1, "<b>" + "&lt;" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(1, "&amp;" * 4097, parse_mode="HTML")
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(1, "<b> </b>", parse_mode="HTML")


# ---- HTML / MarkdownV2 validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("plain text", "plain text"),
        ("<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins>", "bsieun"),
        ("<s>s</s><strike>k</strike><del>d</del><code>c</code><pre>p</pre>", "skdcp"),
        ('<pre><code class="language-python">x = 1</code></pre>', "x = 1"),
        ('<a href="https://x.io/?a=1&amp;b=2">link</a>', "link"),
        ('<tg-spoiler>s</tg-spoiler><span class="tg-spoiler">t</span>', "st"),
        ("<blockquote>q</blockquote><blockquote expandable>e</blockquote>", "qe"),
        ("1 &lt; 2 &gt; 0 &amp; &quot;ok&quot; &#39;x&#x27; &#8364;", "1 < 2 > 0 & \"ok\" 'x' €"),
        ("<b>bold <i>both</i></b> \U0001f680", "bold both \U0001f680"),
        ("<B>upper</B>", "upper"),
    ],
)
def test_html_well_formed(text: str, plain: str) -> None:
    assert parse_html(text)[0] == plain


def test_html_entities_offsets_are_utf16() -> None:
    _, entities = parse_html('\U0001f680 <a href="https://t.me">x</a>')
    assert entities == [{"type": "text_link", "offset": 3, "length": 1, "url": "https://t.me"}]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("1 < 2", 'Unescaped "<"'),
        ("a > b", 'Unescaped ">"'),
        ("R&D", 'Unescaped "&"'),
        ("&nbsp;", 'Unescaped "&"'),
        ("line<br>break", 'Unsupported start tag "br"'),
        ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag"),
        ("<span>x</span>", 'must have class "tg-spoiler"'),
        ('<a href="https://x.io/?a=1&b=2">l</a>', 'Unescaped "&"'),
        ("<b", "Unclosed start tag"),
    ],
)
async def test_html_malformed_is_400(tg: BotApiDouble, bot: Bot, text: str, error: str) -> None:
    with pytest.raises(BadRequest, match="Can't parse entities") as exc:
        await bot.send_message(1, text, parse_mode=ParseMode.HTML)
    # PTB strips "Bad Request: " and str.capitalize()s the rest, lower-casing everything after
    # the first character, so compare case-insensitively.
    assert error.lower() in exc.value.message.lower()
    assert tg.sent == []
    # the same text without parse_mode is fine
    await bot.send_message(1, text)


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("*bold* _it_ __u__ ~s~ ||sp|| `c`", "bold it u s sp c"),
        ("price 1\\.5 \\- up \\(\\+3%\\)\\!", "price 1.5 - up (+3%)!"),
        ("[link](https://x.io/a_b)", "link"),
        ("```python\nx = 1\n```", "x = 1\n"),
        (">quoted\nplain", "quoted\nplain"),
    ],
)
def test_markdown_v2_well_formed(text: str, plain: str) -> None:
    assert parse_markdown_v2(text)[0] == plain


async def test_markdown_v2_reserved_chars_rejected(tg: BotApiDouble, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"character '\.' is reserved"):
        await bot.send_message(1, "BTC 1.5", parse_mode=ParseMode.MARKDOWN_V2)
    with pytest.raises(BadRequest, match="can't find end of bold entity"):
        await bot.send_message(1, "*open", parse_mode=ParseMode.MARKDOWN_V2)
    await bot.send_message(1, "BTC 1\\.5", parse_mode=ParseMode.MARKDOWN_V2)
    assert tg.sent[0].plain == "BTC 1.5"


# ---- flood control ------------------------------------------------------------------------------


async def test_per_chat_limit(tg: BotApiDouble, bot: Bot) -> None:
    tg.enforce_limits()
    await bot.send_message(1, "a")
    with pytest.raises(RetryAfter) as exc:
        await bot.send_message(1, "b")
    assert exc.value.retry_after == dtm.timedelta(seconds=1)
    await bot.send_message(2, "other chat is fine")
    assert tg.too_many_requests == 1
    assert len(tg.sent) == 2


async def test_per_chat_limit_frees_after_a_second(tg: BotApiDouble, bot: Bot) -> None:
    tg.enforce_limits(per_chat_per_s=5)
    for _ in range(5):
        await bot.send_message(1, "a")
    with pytest.raises(RetryAfter):
        await bot.send_message(1, "b")
    await asyncio.sleep(1.05)
    await bot.send_message(1, "c")
    assert tg.too_many_requests == 1


async def test_group_limit_20_per_minute(tg: BotApiDouble, bot: Bot) -> None:
    tg.enforce_limits()
    for i in range(20):
        await bot.send_message(-100, f"m{i}")  # groups are not subject to the 1/s private limit
    with pytest.raises(RetryAfter) as exc:
        await bot.send_message(-100, "m20")
    assert 55 <= exc.value.retry_after.total_seconds() <= 60  # type: ignore[union-attr]
    assert tg.too_many_requests == 1
    assert len(tg.sent_to(-100)) == 20


async def test_global_limit_30_per_second_concurrent(tg: BotApiDouble) -> None:
    tg.enforce_limits()
    app = build_app(tg)  # ApplicationBuilder's bot has a 256-connection pool (a bare Bot has 1)
    async with app:

        async def send(chat: int) -> str:
            try:
                await app.bot.send_message(chat, "x")
            except RetryAfter:
                return "429"
            return "ok"

        results = await asyncio.gather(*(send(chat) for chat in range(1, 41)))
    assert results.count("ok") == 30
    assert results.count("429") == 10
    assert tg.too_many_requests == 10


async def test_a_429_holds_its_scope_for_retry_after(tg: BotApiDouble, bot: Bot) -> None:
    """Telegram's flood wait: once refused, a chat stays refused until retry_after has passed, even where
    its window would have room; an overall overrun (or flood_wait) holds every chat."""
    tg.enforce_limits(per_chat_per_s=5)
    for _ in range(5):
        await bot.send_message(1, "a")
    with pytest.raises(RetryAfter):
        await bot.send_message(1, "b")
    await asyncio.sleep(0.3)
    with pytest.raises(RetryAfter):  # still inside the flood wait
        await bot.send_message(1, "c")
    await bot.send_message(2, "another chat is not held")
    assert tg.flood_refusals == {"chat": 1, "bot": 0}
    tg.flood_wait(0.5)
    with pytest.raises(RetryAfter):
        await bot.send_message(3, "the whole bot waits")
    await asyncio.sleep(0.55)
    await bot.send_message(3, "and then goes on")
    assert [s.chat_id for s in tg.sent] == [1, 1, 1, 1, 1, 2, 3]


async def test_throughput_many_concurrent_sends(tg: BotApiDouble) -> None:
    app = build_app(tg)
    async with app:
        t0 = time.monotonic()
        await asyncio.gather(*(app.bot.send_message(chat, f"<b>{chat}</b>", parse_mode="HTML") for chat in range(300)))
        elapsed = time.monotonic() - t0
    assert len(tg.sent) == 300
    assert elapsed < 5


# ---- getUpdates ---------------------------------------------------------------------------------


async def test_get_updates_offset_limit_timeout(tg: BotApiDouble, bot: Bot) -> None:
    ids = [tg.push_message(1, f"m{i}") for i in range(5)]
    got = await bot.get_updates(limit=2, timeout=0)
    assert [u.update_id for u in got] == ids[:2]
    got = await bot.get_updates(offset=ids[2], timeout=0)
    assert [u.update_id for u in got] == ids[2:]
    assert tg.pending_updates == 3
    got = await bot.get_updates(offset=ids[-1] + 1, timeout=0)
    assert got == () and tg.pending_updates == 0

    t0 = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - t0 < 1.5

    async def push_later() -> None:
        await asyncio.sleep(0.2)
        tg.push_message(1, "late")

    t0 = time.monotonic()
    pusher = asyncio.create_task(push_later())
    got = await bot.get_updates(timeout=5)
    await pusher
    assert time.monotonic() - t0 < 1
    assert got[0].message is not None and got[0].message.text == "late"


async def test_second_poller_terminates_first_with_conflict(tg: BotApiDouble) -> None:
    # PTB routes getUpdates through its own request object whose pool has ONE connection,
    # so a second concurrent get_updates on the same Bot would hit httpx.PoolTimeout: use two bots.
    async with (
        Bot(TOKEN, base_url=tg.base_url) as first_bot,
        Bot(TOKEN, base_url=tg.base_url) as second_bot,
    ):
        first = asyncio.create_task(first_bot.get_updates(timeout=5))
        await asyncio.sleep(0.1)
        assert await second_bot.get_updates(timeout=0) == ()
        with pytest.raises(Conflict):
            await first


async def test_close_does_not_wait_for_long_poll() -> None:
    tg = BotApiDouble()
    await tg.start()
    async with Bot(TOKEN, base_url=tg.base_url) as bot:
        poll = asyncio.create_task(bot.get_updates(timeout=30))
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        await tg.close()
        assert await poll == ()
        assert time.monotonic() - t0 < 1


async def test_wait_sent_timeout_explains(tg: BotApiDouble, bot: Bot) -> None:
    await bot.send_message(3, "only one")
    tg.fail_next(4, "blocked")
    with pytest.raises(Forbidden):
        await bot.send_message(4, "nope")
    with pytest.raises(AssertionError, match="only one") as exc:
        await tg.wait_sent(1, chat_id=4, timeout=0.2)
    assert "403" in str(exc.value)


# ---- chats, members, commands, misc -------------------------------------------------------------


async def test_chat_members_and_admins(tg: BotApiDouble, bot: Bot) -> None:
    tg.push_message(-200, "hi", user_id=11, chat_title="Desk")
    tg.set_admins(-200, [11, 12], creator=10)
    assert (await bot.get_chat_member(-200, 10)).status == "creator"
    assert (await bot.get_chat_member(-200, 11)).status == "administrator"
    assert (await bot.get_chat_member(-200, 13)).status == "member"
    admins = await bot.get_chat_administrators(-200)
    assert [a.user.id for a in admins] == [10, 11, 12]
    chat = await bot.get_chat(-200)
    assert chat.type == "group" and chat.title == "Desk"
    private = await bot.get_chat(11)
    assert private.type == "private" and private.username == "trader"
    with pytest.raises(BadRequest, match="no administrators in the private chat"):
        await bot.get_chat_administrators(11)


async def test_commands(tg: BotApiDouble, bot: Bot) -> None:
    assert await bot.set_my_commands([("start", "Start"), ("funding", "Funding rates")])
    assert [c.command for c in await bot.get_my_commands()] == ["start", "funding"]
    assert tg.get_commands() == [
        {"command": "start", "description": "Start"},
        {"command": "funding", "description": "Funding rates"},
    ]
    assert await bot.get_my_commands(language_code="de") == ()
    with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
        await bot.set_my_commands([("Bad-Name", "x")])
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()


async def test_unknown_method_is_404_and_recorded(tg: BotApiDouble, bot: Bot) -> None:
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("frobnicate", api_kwargs={"chat_id": 1})
    assert tg.unknown_methods == ["frobnicate"]
    assert tg.calls[-1] == ("frobnicate", {"chat_id": 1})
    assert tg.errors[-1] == ("frobnicate", 404, "Not Found")


async def test_close_and_log_out(tg: BotApiDouble, bot: Bot) -> None:
    assert await bot.close() is True
    assert await bot.log_out() is True
    assert tg.closed_by_client
