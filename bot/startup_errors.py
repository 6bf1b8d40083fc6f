"""Start-up failures an operator can fix, turned into one line without secrets or traceback."""

from __future__ import annotations

import discord
import telegram.error

from bot.embedded_redis import DataDirBusy
from bot.redis_connect import RedisUnavailable


def _leaves(e: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``e`` itself."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in _leaves(sub)]
    return [e]


def describe(e: BaseException) -> str | None:
    """One line for a known start-up failure, or None for anything else (a bug: keep the traceback)."""
    for leaf in _leaves(e):
        if isinstance(leaf, telegram.error.InvalidToken):
            return (
                "Telegram rejected the bot token (HTTP 401/404): check telegram.token or TELEGRAM_BOT_TOKEN "
                "(the '123456:ABC...' string from @BotFather) and telegram.base_url"
            )
        if isinstance(leaf, discord.LoginFailure):
            return (
                "Discord rejected the bot token: check discord.token or DISCORD_BOT_TOKEN (Bot tab of the "
                "developer portal, Reset Token)"
            )
        if isinstance(leaf, discord.PrivilegedIntentsRequired):
            return "Discord refused the gateway connection: privileged intents are not enabled for this bot"
        if isinstance(leaf, DataDirBusy | RedisUnavailable):
            return str(leaf)
    return None
