"""Telegram front end: binds the command core to python-telegram-bot, manual lifecycle."""

from __future__ import annotations

import logging

from telegram import BotCommand, Update
from telegram.constants import ParseMode
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from core.commands import COMMANDS, CommandCore
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
        self.app.add_handler(MessageHandler(filters.COMMAND, self._on_unknown))
        self.app.add_error_handler(self._on_error)

    async def _send(self, update: Update, reply: Reply) -> None:
        msg = update.effective_message
        if msg is None:
            return
        for chunk in render_html(reply):
            await msg.reply_text(chunk, parse_mode=ParseMode.HTML, disable_web_page_preview=True)

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        if msg is None or not msg.text:
            return
        name, args = split_command(msg.text)
        await self._send(update, await self.core.run(name, args))

    async def _on_unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        if msg is None or not msg.text:
            return
        name, _ = split_command(msg.text)
        await self._send(update, Reply.fail(f"Unknown command /{name[:30]}. Try /help for the list."))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: handler error: %s", context.error, exc_info=context.error)

    async def start(self) -> None:
        """initialize -> start polling -> start dispatching."""
        await self.app.initialize()
        try:
            await self.app.bot.set_my_commands(
                [BotCommand(c.name, f"{c.summary} (e.g. {c.example})"[:256]) for c in COMMANDS])
        except Exception as e:  # a missing command menu must not stop the bot
            log.warning("telegram: setMyCommands failed: %s", e)
        assert self.app.updater is not None
        await self.app.updater.start_polling(timeout=int(self.poll_timeout_s), drop_pending_updates=False)
        await self.app.start()
        log.info("telegram: polling as @%s", self.app.bot.username)

    async def stop(self) -> None:
        """Stop polling, stop dispatching, release the HTTP client."""
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()
