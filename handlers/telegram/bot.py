"""Telegram front end: binds the command core to python-telegram-bot, manual lifecycle."""

from __future__ import annotations

import logging
import re

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from core.commands import CommandCore
from core.context import ChatContext
from core.pacer import TELEGRAM_LIMITS, Limits, Pacer, SharedSlots
from core.parsing import split_command
from core.reply import Reply
from handlers.telegram import buttons
from handlers.telegram.media import reply_image
from handlers.telegram.pacing import PacedRateLimiter
from handlers.telegram.render import render_html

# An inline "next page" button carries the command that shows that page; only these are accepted back.
_PAGE_DATA = re.compile(r"^page:(alerts) (\d{1,4})$")

log = logging.getLogger(__name__)


class TelegramFrontend:
    """Answers commands in private chats and groups; the caller owns start/stop."""

    def __init__(
        self,
        core: CommandCore,
        *,
        token: str,
        base_url: str,
        base_file_url: str,
        poll_timeout_s: float = 30.0,
        limits: Limits = TELEGRAM_LIMITS,
        shared: SharedSlots | None = None,
    ) -> None:
        self.core = core
        self.poll_timeout_s = poll_timeout_s
        # every request the bot makes passes this limiter: replies and alerts share the token's budgets
        # (and, with ``shared``, with every other process that sends with this token)
        self.limiter = PacedRateLimiter(limits, pacer=Pacer(limits, shared=shared))
        self.app: Application = (  # type: ignore[type-arg]  # PTB's generics are not worth spelling out here
            ApplicationBuilder()
            .token(token)
            .base_url(base_url)
            .base_file_url(base_file_url)
            .get_updates_read_timeout(poll_timeout_s + 10)
            .rate_limiter(self.limiter)
            .build()
        )
        # new messages only: an edited command must never run again (PTB's default includes edits)
        new_only = filters.UpdateType.MESSAGE
        for name in core.names:
            self.app.add_handler(CommandHandler(name, self._on_command, filters=new_only))
        # any other /command: the core answers it (its unknown-command reply names /help)
        self.app.add_handler(MessageHandler(filters.COMMAND & new_only, self._on_command))
        self.app.add_handler(CallbackQueryHandler(self._on_button))
        self.app.add_error_handler(self._on_error)
        buttons.register(self.app, core, self.context_of)  # alert buttons: Mute 1h, Unsubscribe, Chart

    @staticmethod
    def _markup(reply: Reply) -> InlineKeyboardMarkup | None:
        if not reply.next_page:
            return None
        return InlineKeyboardMarkup([[InlineKeyboardButton("next ›", callback_data=f"page:{reply.next_page}")]])

    async def _send(self, update: Update, reply: Reply) -> None:
        """Every part of a reply into the chat, and the forum topic, it was asked in."""
        msg = update.effective_message
        if msg is None:
            return
        if reply.image is not None:  # a chart: the photo's caption says what it shows
            await reply_image(msg, reply.image)
            if not reply.blocks:
                return
        chunks = render_html(reply)
        for i, chunk in enumerate(chunks):
            # reply_text keeps the topic (message_thread_id of a topic message) and quotes the asker in groups
            await msg.reply_text(
                chunk,
                parse_mode=ParseMode.HTML,
                disable_web_page_preview=True,
                reply_markup=self._markup(reply) if i == len(chunks) - 1 else None,
            )

    def _addressed_elsewhere(self, msg: Message) -> bool:
        """'/cmd@OtherBot' in a group is another bot's command; '/cmd' and '/cmd@thisbot' are ours."""
        head = (msg.text or "").split(maxsplit=1)[0] if (msg.text or "").strip() else ""
        _, at, name = head.partition("@")
        return bool(at) and name.lower() != (self.app.bot.username or "").lower()

    def context_of(self, update: Update) -> ChatContext:
        """Who asks from where; the chat-admin check asks Telegram only when a command needs it.

        A message sent as a chat (``sender_chat``) has no person behind it to check: when that chat is
        the group itself, an anonymous administrator wrote it; any other chat (a channel) is never an
        administrator, and its negative id can never match a bot admin's user id.
        """
        chat, user, msg = update.effective_chat, update.effective_user, update.effective_message
        chat_id = chat.id if chat else 0
        user_id = user.id if user else 0
        is_group = bool(chat and chat.type in (ChatType.GROUP, ChatType.SUPERGROUP, ChatType.CHANNEL))
        as_chat = msg.sender_chat if msg is not None and update.callback_query is None else None
        thread_id = msg.message_thread_id if msg is not None and msg.is_topic_message else None
        name = (user.username or user.first_name or "") if user else ""
        if as_chat is not None:
            anonymous_admin = as_chat.id == chat_id
            user_id, name = as_chat.id, ("anonymous admin" if anonymous_admin else (as_chat.title or "channel"))

            async def as_chat_admin() -> bool:
                return anonymous_admin

            return ChatContext(
                platform="tg",
                chat_id=chat_id,
                user_id=user_id,
                user_name=name,
                is_group=is_group,
                chat_admin=as_chat_admin,
                thread_id=thread_id,
            )

        async def chat_admin() -> bool:
            if not is_group:
                return True
            try:
                member = await self.app.bot.get_chat_member(chat_id, user_id)
            except TelegramError as e:
                log.warning("telegram: admin check failed chat=%s user=%s: %s", chat_id, user_id, e)
                return False
            return member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)

        return ChatContext(
            platform="tg",
            chat_id=chat_id,
            user_id=user_id,
            user_name=name,
            is_group=is_group,
            chat_admin=chat_admin,
            thread_id=thread_id,
        )

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.message  # never edited_message: an edit does not run a command again
        if msg is None or not msg.text or self._addressed_elsewhere(msg):
            return
        name, args = split_command(msg.text)
        await self._send(update, await self.core.run(name, args, self.context_of(update)))

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A "next page" press: show that page in the same message, answer the press."""
        q = update.callback_query
        if q is None:
            return
        m = _PAGE_DATA.match(q.data or "")
        msg = q.message if isinstance(q.message, Message) else None
        if m is None or msg is None:
            await q.answer("This button has expired; send the command again.")
            return
        reply = await self.core.run(m.group(1), [m.group(2)], self.context_of(update))
        chunks = render_html(reply)
        try:
            await msg.edit_text(
                chunks[0],
                parse_mode=ParseMode.HTML,
                disable_web_page_preview=True,
                reply_markup=self._markup(reply) if len(chunks) == 1 else None,
            )
        except BadRequest as e:  # "message is not modified" (a double press) is harmless
            if "not modified" not in str(e).lower():
                raise
        for i, chunk in enumerate(chunks[1:], start=2):
            await self.app.bot.send_message(
                msg.chat_id,
                chunk,
                parse_mode=ParseMode.HTML,
                disable_web_page_preview=True,
                message_thread_id=msg.message_thread_id if msg.is_topic_message else None,
                reply_markup=self._markup(reply) if i == len(chunks) else None,
            )
        await q.answer()

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: handler error: %s", context.error, exc_info=context.error)

    async def start(self, *, poll: bool = True) -> None:
        """initialize -> start dispatching -> start polling (``poll=False``: send only, poll later)."""
        await self.app.initialize()
        try:
            await self.app.bot.set_my_commands(
                [
                    BotCommand(c.name, f"{c.summary} (e.g. {c.example})"[:256])
                    for c in self.core.specs
                    if c.name in self.core.names
                ]
            )
        except Exception as e:  # a missing command menu must not stop the bot
            log.warning("telegram: setMyCommands failed: %s", e)
        await self.app.start()
        if poll:
            await self.start_polling()

    async def start_polling(self) -> None:
        """Fetch updates (one poller per token: Telegram answers 409 to a second one)."""
        assert self.app.updater is not None
        if not self.app.updater.running:
            await self.app.updater.start_polling(timeout=int(self.poll_timeout_s), drop_pending_updates=False)
            log.info("telegram: polling as @%s", self.app.bot.username)

    async def stop_polling(self) -> None:
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
            log.info("telegram: polling stopped")

    async def stop(self) -> None:
        """Stop polling, stop dispatching, release the HTTP client."""
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()
