"""Telegram side of alert delivery: send one alert (paced as an alert), map PTB errors to delivery outcomes."""

from __future__ import annotations

import logging

from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import ExtBot

from core.alerts.delivery import Outcome, SendResult
from core.pacer import Priority
from core.reply import Reply
from handlers.telegram.buttons import keyboard
from handlers.telegram.media import send_with_image
from handlers.telegram.pacing import PacedRateLimiter, is_group_chat, retry_after_s
from handlers.telegram.render import render_html

log = logging.getLogger(__name__)

_GONE = (
    "chat not found",
    "bot was kicked",
    "bot is not a member",
    "group chat was deleted",
    "user is deactivated",
    "have no rights to send",
    "not enough rights",
)


class TelegramSender:
    """Sends alerts through the Application's bot: its rate limiter is the token's one pacer."""

    platform = "tg"

    def __init__(self, bot: ExtBot) -> None:  # type: ignore[type-arg]  # any callback-data cache
        self.bot = bot

    async def wait_turn(self, chat_id: int, thread_id: int | None = None) -> None:
        """Until the token's pacer grants this chat a slot (the first part of the next send uses it)."""
        limiter = self.bot.rate_limiter
        assert isinstance(limiter, PacedRateLimiter), "the bot must be built with the PacedRateLimiter"
        await limiter.pacer.acquire(str(chat_id), group=is_group_chat(chat_id), priority=Priority.ALERT)

    async def send(self, chat_id: int, reply: Reply, thread_id: int | None = None) -> SendResult:
        """Send after ``wait_turn``: the first part goes in the slot it granted, later parts wait for theirs."""
        markup = keyboard(reply.actions)
        try:
            if reply.image is not None:  # the chat wants alerts with their chart
                await send_with_image(
                    self.bot,
                    chat_id,
                    reply,
                    reply_markup=markup,
                    message_thread_id=thread_id,
                    first={"rate_limit_args": Priority.ALERT_PREPAID},
                    rest={"rate_limit_args": Priority.ALERT},
                )
                return SendResult(Outcome.OK)
            chunks = render_html(reply)
            for i, chunk in enumerate(chunks):
                await self.bot.send_message(
                    chat_id,
                    chunk,
                    parse_mode=ParseMode.HTML,
                    disable_web_page_preview=True,
                    message_thread_id=thread_id,
                    rate_limit_args=Priority.ALERT_PREPAID if i == 0 else Priority.ALERT,
                    reply_markup=markup if i == len(chunks) - 1 else None,
                )
        except RetryAfter as e:
            return SendResult(Outcome.RETRY, retry_after_s=max(1.0, retry_after_s(e.retry_after)), detail="429")
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
