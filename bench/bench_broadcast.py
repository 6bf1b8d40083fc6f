"""Benchmark: broadcast one alert to 2,000 Telegram chats under Telegram's flood limits.

Real Redis (a unique key prefix, removed afterwards), the real DeliveryWorker with TELEGRAM_LIMITS, the
real TelegramSender and python-telegram-bot, against the local Bot API double with ``enforce_limits()``
(answers 429 beyond 30 msgs/s overall, 1/s per private chat, 20/min per group).

    .venv/bin/python -m bench.bench_broadcast [--redis redis://127.0.0.1:6379/0] [--chats 2000] [--groups 0.2]

Goal: >= 0.9 of the allowed 30 msgs/s, no 429, no duplicates, no losses.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from collections import Counter

from redis.asyncio import Redis
from telegram.ext import ApplicationBuilder

import handlers.telegram  # noqa: F401  # PTB_TIMEDELTA before PTB builds a RetryAfter
from core.alerts.delivery import DeliveryWorker
from core.alerts.pacing import TELEGRAM_LIMITS
from core.alerts.rules import Rule
from core.alerts.store import AlertStore, FiredAlert
from core.keys import Keys
from core.reply import Reply, Table
from handlers.telegram.push import TelegramSender
from tests.fakes.telegram import TOKEN, BotApiDouble

ALLOWED_PER_S = 30.0  # Telegram's broadcast limit, as the double enforces it
TOPIC = "funding:BTC"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--chats", type=int, default=2000)
    ap.add_argument("--groups", type=float, default=0.2, help="fraction of the chats that are groups")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    n_groups = round(args.chats * args.groups)
    n_private = args.chats - n_groups
    chats = [10_000 + i for i in range(n_private)] + [-1_001_000_000_000 - i for i in range(n_groups)]

    redis = Redis.from_url(args.redis)
    keys = Keys(prefix=f"bench{uuid.uuid4().hex[:8]}")
    store = AlertStore(redis, keys)
    double = BotApiDouble()
    await double.start()
    app = ApplicationBuilder().token(TOKEN).base_url(double.base_url).base_file_url(double.base_file_url).build()
    await app.initialize()
    try:
        pipe = redis.pipeline(transaction=False)
        for c in chats:
            pipe.sadd(keys.subscribers(TOPIC), f"tg:{c}")
            pipe.sadd(keys.chat_topics(f"tg:{c}"), TOPIC)
        await pipe.execute()
        double.enforce_limits()

        worker = DeliveryWorker(store, TelegramSender(app.bot), group="telegram", consumer="bench",
                                limits=TELEGRAM_LIMITS)
        await worker.ensure_group()
        rule = Rule(id="r1", metric="funding", asset="BTC", kind="above", threshold=0.0005, venue="max",
                    cooldown_s=3600, hysteresis=0.0)
        reply = Reply(title="BTC funding above +0.0500%/8h (max of venues)", blocks=(
            Table(header=("venue", "funding/8h"), rows=(("binance", "+0.0612%"), ("okx", "+0.0588%")),
                  align="lr"),))
        print(f"Redis {args.redis}; broadcasting 1 alert to {len(chats)} chats "
              f"({n_private} private, {n_groups} groups) under Telegram's limits")
        [alert_id] = await store.commit([], [FiredAlert(rule, reply, int(time.time() * 1000))])

        stop = asyncio.Event()
        t0 = time.monotonic()
        task = asyncio.create_task(worker.run(stop))
        while True:
            info = await redis.xpending(keys.alerts(), "telegram")
            groups = await redis.xinfo_groups(keys.alerts())
            read = groups[0]["last-delivered-id"]
            if (read.decode() if isinstance(read, bytes) else read) == alert_id and info["pending"] == 0:
                break
            if task.done():
                task.result()
                raise RuntimeError("worker stopped early")
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - t0
        stop.set()
        await task

        got = Counter(s.chat_id for s in double.sent)
        delivered = sum(1 for c in chats if got[c] >= 1)
        dupes = sum(1 for c in chats if got[c] > 1)
        lost = sum(1 for c in chats if got[c] == 0)
        sent = sorted(s.at for s in double.sent)
        span = sent[-1] - sent[0] if len(sent) > 1 else 0.0
        rate = (len(sent) - 1) / span if span > 0 else 0.0
        print(f"elapsed: {elapsed:.2f} s (first to last send {span:.2f} s)")
        print(f"delivered: {delivered}/{len(chats)}")
        print(f"rate: {rate:.2f} msgs/s = {rate / ALLOWED_PER_S:.3f} of the allowed {ALLOWED_PER_S:.0f}/s "
              f"(end to end {len(double.sent) / elapsed:.2f} msgs/s)")
        print(f"429s: {double.too_many_requests}")
        print(f"duplicates: {dupes}")
        print(f"losses: {lost}")
        print(f"worker stats: {worker.stats}")
    finally:
        await app.shutdown()
        await double.close()
        batch = [k async for k in redis.scan_iter(match=f"{keys.prefix}:*", count=1000)]
        if batch:
            await redis.delete(*batch)
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
