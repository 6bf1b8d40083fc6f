"""Discord side of alert delivery: post one alert to a channel, map discord.py errors to outcomes.

discord.py already waits out and retries 429s that come from Discord (they carry a ``Via``
header) and 500/502/504/524 responses, a few times each; what reaches us is final for this try.
Forbidden / NotFound mean the bot cannot post there any more: the channel is unsubscribed at
once, because Discord temporarily bans bots that keep making invalid requests.
"""

from __future__ import annotations

import logging

import aiohttp
import discord

from core.alerts.delivery import Outcome, SendResult
from core.reply import Reply
from handlers.discord.render import render_embeds

log = logging.getLogger(__name__)


def _retry_after(e: discord.HTTPException) -> float:
    response = getattr(e, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name in ("X-RateLimit-Reset-After", "Retry-After"):
        try:
            return max(1.0, float(headers[name]))
        except (KeyError, TypeError, ValueError):
            continue
    return 5.0


class DiscordSender:
    """Sends alerts through the front end's client (it must be logged in)."""

    platform = "dc"

    def __init__(self, client: discord.Client) -> None:
        self.client = client

    def is_group(self, chat_id: int) -> bool:
        return True  # every target is a channel: paced by Discord's per-channel window

    async def send(self, chat_id: int, reply: Reply) -> SendResult:
        channel = self.client.get_partial_messageable(chat_id)
        try:
            for embeds in render_embeds(reply):
                await channel.send(embeds=embeds)
        except discord.RateLimited as e:  # longer than the client's max_ratelimit_timeout
            return SendResult(Outcome.RETRY, retry_after_s=max(1.0, e.retry_after), detail="429 (long)")
        except (discord.Forbidden, discord.NotFound) as e:
            return SendResult(Outcome.GONE, detail=f"{e.status} {e.code}: {e.text}")
        except discord.DiscordServerError as e:
            return SendResult(Outcome.RETRY, detail=f"{e.status}: {e.text}")
        except discord.HTTPException as e:
            if e.status == 429:  # without Via (a proxy's limit) or after discord.py's own retries
                return SendResult(Outcome.RETRY, retry_after_s=_retry_after(e), detail="429")
            if e.status >= 500:
                return SendResult(Outcome.RETRY, detail=f"{e.status}: {e.text}")
            return SendResult(Outcome.FAILED, detail=f"{e.status} {e.code}: {e.text}")
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            return SendResult(Outcome.RETRY, detail=f"{type(e).__name__}: {e}")
        return SendResult(Outcome.OK)
