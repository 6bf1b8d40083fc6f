"""Every Bot API call that sends goes through one Pacer: PTB's rate-limiter hook on the Application's bot.

Replies, alerts, admin notices, edits, photos and button answers all leave through ``ExtBot`` and so
through ``PacedRateLimiter.process_request``; that is what makes a command reply count against the
same per-chat and global budgets as the alert fan-out. A request says its priority with
``rate_limit_args=Priority.ALERT``; anything else is a reply and goes first.

- 429: its scope (the chat, or the whole bot when two chats are refused at once) is held for exactly
  ``retry_after``. A reply is then sent again, never dropped; an alert's RetryAfter is raised to the
  delivery worker, which retries it in that chat's lane (the hold already delays it).
- 5xx / network errors: a reply is retried with capped backoff; an alert's error goes to delivery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import BaseRateLimiter

from core.pacer import Limits, Pacer, Priority

log = logging.getLogger(__name__)

# Methods that put a message in a chat (or change one): paced per chat and globally.
_CHAT_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendAnimation",
        "sendVideo",
        "sendAudio",
        "sendVoice",
        "sendSticker",
        "sendMediaGroup",
        "sendLocation",
        "sendPoll",
        "sendDice",
        "copyMessage",
        "forwardMessage",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "editMessageMedia",
    }
)
# Answers that are not chat messages: paced against the global rate only, as replies.
_GLOBAL_METHODS = frozenset({"answerCallbackQuery", "answerInlineQuery"})

REPLY_ATTEMPTS = 8
REPLY_BACKOFF_CAP_S = 8.0


def retry_after_s(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def is_group_chat(chat_id: Any) -> bool:
    return isinstance(chat_id, int) and chat_id < 0


class PacedRateLimiter(BaseRateLimiter[Priority]):
    """PTB's rate-limiter interface over the project's Pacer (one per bot token)."""

    def __init__(self, limits: Limits, *, pacer: Pacer | None = None) -> None:
        self.pacer = pacer or Pacer(limits)
        self.floods = 0  # 429s seen, for tests and benchmarks

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        await self.pacer.aclose()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: Priority | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        if endpoint in _CHAT_METHODS:
            chat_id = data.get("chat_id")
            lane: str | None = str(chat_id) if chat_id is not None else None
        elif endpoint in _GLOBAL_METHODS:
            lane = None
        else:  # getMe, getChatMember, setMyCommands, ...: not flood-limited messages
            return await callback(*args, **kwargs)
        group = is_group_chat(data.get("chat_id"))
        priority = rate_limit_args if isinstance(rate_limit_args, Priority) else Priority.REPLY
        prepaid = priority is Priority.ALERT_PREPAID
        if prepaid:
            priority = Priority.ALERT
        attempt = 0
        while True:
            if not prepaid:
                await self.pacer.acquire(lane, group=group, priority=priority)
            prepaid = False
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as e:
                self.floods += 1
                wait = retry_after_s(e.retry_after)
                whole = await self.pacer.flood(lane, wait)
                log.warning(
                    "telegram: 429 on %s chat=%s: holding %s for %.1fs",
                    endpoint,
                    lane,
                    "the whole bot" if whole else "that chat",
                    wait,
                )
                if priority is Priority.ALERT or attempt + 1 >= REPLY_ATTEMPTS:
                    raise
            except BadRequest:
                raise
            except NetworkError as e:  # 5xx, timeouts: a reply is worth another try
                if priority is Priority.ALERT or attempt + 1 >= REPLY_ATTEMPTS:
                    raise
                wait = min(REPLY_BACKOFF_CAP_S, 0.5 * 2**attempt)
                log.warning("telegram: %s chat=%s failed (%s); retry in %.1fs", endpoint, lane, e, wait)
                await asyncio.sleep(wait)
            attempt += 1
