"""A delivery process to kill: one DeliveryWorker with the real TelegramSender and PTB, against a Bot API URL.

    python -m tests.fakes.delivery_process <redis url> <key prefix> <bot api base url> <consumer> <rate per s>

It prints "ready" once consuming; tests SIGKILL it mid-broadcast.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace

from redis.asyncio import Redis
from telegram.ext import ApplicationBuilder

import handlers.telegram  # noqa: F401  # PTB_TIMEDELTA before PTB builds a RetryAfter
from core.alerts.delivery import DeliveryWorker
from core.alerts.store import AlertStore
from core.keys import Keys
from core.pacer import TELEGRAM_LIMITS
from handlers.telegram.pacing import PacedRateLimiter
from handlers.telegram.push import TelegramSender
from tests.fakes.telegram import TOKEN


async def main(redis_url: str, prefix: str, base_url: str, consumer: str, rate: float) -> None:
    redis = Redis.from_url(redis_url)
    app = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(base_url)
        .base_file_url(base_url.replace("/bot", "/file/bot"))
        .rate_limiter(PacedRateLimiter(replace(TELEGRAM_LIMITS, global_per_s=rate)))
        .build()
    )
    await app.initialize()
    worker = DeliveryWorker(
        AlertStore(redis, Keys(prefix=prefix)),
        TelegramSender(app.bot),
        group="telegram",
        consumer=consumer,
        claim_idle_ms=500,
    )
    await worker.ensure_group()
    print("ready", flush=True)
    await worker.run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])))
