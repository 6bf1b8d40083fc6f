"""Telegram side of alert delivery: send one alert, map PTB errors to delivery outcomes."""

from __future__ import annotations

import logging
from datetime import timedelta

from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError

from core.alerts.delivery import Outcome, SendResult
from core.reply import Reply
from handlers.telegram.render import render_html

log = logging.getLogger(__name__)

_GONE = ("chat not found", "bot was kicked", "bot is not a member", "group chat was deleted", "user is deactivated",
         "have no rights to send", "not enough rights")


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramSender:
    """Sends alerts through a PTB Bot (use the Application's bot: its connection pool is large)."""

    platform = "tg"

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    def is_group(self, chat_id: int) -> bool:
        return chat_id < 0

    async def send(self, chat_id: int, reply: Reply) -> SendResult:
        try:
            for chunk in render_html(reply):
                await self.bot.send_message(chat_id, chunk, parse_mode=ParseMode.HTML,
                                            disable_web_page_preview=True)
        except RetryAfter as e:
            return SendResult(Outcome.RETRY, retry_after_s=max(1.0, _seconds(e.retry_after)), detail="429")
        except ChatMigrated as e:
            return SendResult(Outcome.MIGRATED, new_chat_id=e.new_chat_id, detail="migrated")
        except Forbidden as e:
            return SendResult(Outcome.GONE, detail=str(e))
        except BadRequest as e:  # before NetworkError: BadRequest subclasses it
            text = str(e).lower()
            if any(m in text for m in _GONE):
                return SendResult(Outcome.GONE, detail=str(e))
            return SendResult(Outcome.FAILED, detail=str(e))
        except NetworkError as e:  # timeouts, 5xx
            return SendResult(Outcome.RETRY, detail=f"{type(e).__name__}: {e}")
        except TelegramError as e:
            return SendResult(Outcome.FAILED, detail=f"{type(e).__name__}: {e}")
        return SendResult(Outcome.OK)
