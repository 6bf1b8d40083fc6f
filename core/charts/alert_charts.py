"""Alerts with their chart: for chats that said /alerts charts on, the alert is sent with the metric's chart.

A wrapper around a platform's sender, so delivery (records, pacing, retries) is unchanged: the chart is
drawn (or taken from the cache: one drawing serves every chat receiving that alert) and goes in the
same message as the alert where the platform allows (a Telegram photo with the alert as caption, a
Discord embed image), through the same send call the pacer granted.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from core.buttons import chart_of
from core.charts.command import ChartCommands
from core.reply import Reply

log = logging.getLogger(__name__)


class ChartingSender:
    """Sends like ``inner``; adds the chart to alerts for the chats that want one."""

    def __init__(self, inner: Any, charts: ChartCommands) -> None:
        self.inner = inner
        self.charts = charts
        self.platform: str = inner.platform

    def __getattr__(self, name: str) -> Any:  # is_group, wait_turn, ...: the platform sender's own
        return getattr(self.inner, name)

    async def send(self, chat_id: int, reply: Reply, *args: Any, **kwargs: Any) -> Any:
        """As the platform's send (its other arguments, such as a forum topic, passed on)."""
        thread = kwargs.get("thread_id", args[0] if args else None)
        target = f"{self.platform}:{chat_id}" + (f"/{thread}" if thread is not None else "")  # as ChatContext has it
        wanted = chart_of(reply) if reply.image is None else None
        if wanted is not None and await self.charts.charts_on(target):
            try:
                image = await self.charts.alert_image(*wanted, target=target)
            except Exception:  # an alert is never held back by its chart
                log.exception("charts: the chart of a %s %s alert failed", *wanted)
                image = None
            if image is not None:
                reply = replace(reply, image=image)
        return await self.inner.send(chat_id, reply, *args, **kwargs)
