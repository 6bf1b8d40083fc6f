"""Telegram front end: binds the command core to python-telegram-bot, manual lifecycle."""

from __future__ import annotations

import logging

from telegram import BotCommand, Update
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from core.commands import CommandCore
from core.context import ChatContext
from core.parsing import split_command
from core.reply import Reply
from handlers.telegram.render import render_html

log = logging.getLogger(__name__)


class TelegramFrontend:
    """Answers commands in private chats and groups; the caller owns start/stop."""

    def __init__(self, core: CommandCore, *, token: str, base_url: str, base_file_url: str,
                 poll_timeout_s: float = 30.0) -> None:
        self.core = core
        self.poll_timeout_s = poll_timeout_s
        self.app: Application = (  # type: ignore[type-arg]  # PTB's generics are not worth spelling out here
            ApplicationBuilder()
            .token(token)
            .base_url(base_url)
            .base_file_url(base_file_url)
            .get_updates_read_timeout(poll_timeout_s + 10)
            .build()
        )
        for name in core.names:
            self.app.add_handler(CommandHandler(name, self._on_command))
        # any other /command: the core answers it (its unknown-command reply names /help)
        self.app.add_handler(MessageHandler(filters.COMMAND, self._on_command))
        self.app.add_error_handler(self._on_error)

    async def _send(self, update: Update, reply: Reply) -> None:
        msg = update.effective_message
        if msg is None:
            return
        for chunk in render_html(reply):
            await msg.reply_text(chunk, parse_mode=ParseMode.HTML, disable_web_page_preview=True)

    def context_of(self, update: Update) -> ChatContext:
        """Who asks from where; the chat-admin check asks Telegram only when a command needs it."""
        chat, user = update.effective_chat, update.effective_user
        chat_id = chat.id if chat else 0
        user_id = user.id if user else 0
        is_group = bool(chat and chat.type in (ChatType.GROUP, ChatType.SUPERGROUP, ChatType.CHANNEL))

        async def chat_admin() -> bool:
            if not is_group:
                return True
            try:
                member = await self.app.bot.get_chat_member(chat_id, user_id)
            except TelegramError as e:
                log.warning("telegram: admin check failed chat=%s user=%s: %s", chat_id, user_id, e)
                return False
            return member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)

        name = (user.username or user.first_name or "") if user else ""
        return ChatContext(platform="tg", chat_id=chat_id, user_id=user_id, user_name=name, is_group=is_group,
                           chat_admin=chat_admin)

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        if msg is None or not msg.text:
            return
        name, args = split_command(msg.text)
        await self._send(update, await self.core.run(name, args, self.context_of(update)))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: handler error: %s", context.error, exc_info=context.error)

    async def start(self, *, poll: bool = True) -> None:
        """initialize -> start dispatching -> start polling (``poll=False``: send only, poll later)."""
        await self.app.initialize()
        try:
            await self.app.bot.set_my_commands(
                [BotCommand(c.name, f"{c.summary} (e.g. {c.example})"[:256]) for c in self.core.specs
                 if c.name in self.core.names])
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
