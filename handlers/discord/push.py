"""Discord side of alert delivery: post one alert to a channel, map discord.py errors to outcomes.

discord.py already waits out and retries 429s that come from Discord (they carry a ``Via``
header) and 500/502/504/524 responses, a few times each; what reaches us is final for this try.
Forbidden / NotFound mean the bot cannot post there any more: the channel is unsubscribed at
once, because Discord temporarily bans bots that keep making invalid requests.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import discord

from core.alerts.delivery import Outcome, SendResult
from core.pacer import Pacer, Priority
from core.reply import Reply
from handlers.discord.components import alert_extras
from handlers.discord.render import render_embeds

log = logging.getLogger(__name__)


def _headers(e: discord.HTTPException) -> Any:
    return getattr(getattr(e, "response", None), "headers", None) or {}


def _retry_after(e: discord.HTTPException) -> float:
    headers = _headers(e)
    for name in ("X-RateLimit-Reset-After", "Retry-After"):
        try:
            return max(1.0, float(headers[name]))
        except (KeyError, TypeError, ValueError):
            continue
    return 5.0


def _is_global(e: discord.HTTPException) -> bool:
    """Discord names a 429's scope: ``X-RateLimit-Global: true`` or ``X-RateLimit-Scope: global``."""
    headers = _headers(e)
    return str(headers.get("X-RateLimit-Global", "")).lower() == "true" or headers.get("X-RateLimit-Scope") == "global"


class DiscordSender:
    """Sends alerts through the front end's client (it must be logged in) and its pacer, one lane per channel."""

    platform = "dc"

    def __init__(self, client: discord.Client, pacer: Pacer) -> None:
        self.client = client
        self.pacer = pacer

    async def wait_turn(self, chat_id: int, thread_id: int | None = None) -> None:
        """Until the pacer grants this channel a slot (the first message of the next send uses it)."""
        await self.pacer.acquire(str(thread_id or chat_id), group=True, priority=Priority.ALERT)

    async def send(self, chat_id: int, reply: Reply, thread_id: int | None = None) -> SendResult:
        """Send after ``wait_turn``: the first message goes in the slot it granted, later ones wait for theirs."""
        channel = self.client.get_partial_messageable(thread_id or chat_id)
        lane = str(thread_id or chat_id)
        try:
            messages = render_embeds(reply)
            for i, embeds in enumerate(messages):
                if i:
                    await self.pacer.acquire(lane, group=True, priority=Priority.ALERT)
                extras = alert_extras(reply, embeds) if i == len(messages) - 1 else {}
                await channel.send(embeds=embeds, **extras)
                if "view" in extras:
                    extras["view"].stop()  # presses are answered by the front end, not by this view
        except discord.RateLimited as e:  # longer than the client's max_ratelimit_timeout
            wait = max(1.0, e.retry_after)
            await self.pacer.flood(lane, wait)
            return SendResult(Outcome.RETRY, retry_after_s=wait, detail="429 (long)")
        except (discord.Forbidden, discord.NotFound) as e:
            return SendResult(Outcome.GONE, detail=f"{e.status} {e.code}: {e.text}")
        except discord.DiscordServerError as e:
            return SendResult(Outcome.RETRY, detail=f"{e.status}: {e.text}")
        except discord.HTTPException as e:
            if e.status == 429:  # without Via (a proxy's limit) or after discord.py's own retries
                wait = _retry_after(e)
                await self.pacer.flood(lane, wait, whole_bot=_is_global(e))
                return SendResult(Outcome.RETRY, retry_after_s=wait, detail="429")
            if e.status >= 500:
                return SendResult(Outcome.RETRY, detail=f"{e.status}: {e.text}")
            return SendResult(Outcome.FAILED, detail=f"{e.status} {e.code}: {e.text}")
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            return SendResult(Outcome.RETRY, detail=f"{type(e).__name__}: {e}")
        return SendResult(Outcome.OK)
