"""Benchmark: alert fan-out to 2,000 Telegram chats with a steady command load, under Telegram's flood model.

The bot side paces as the bot process does (the token's budget shared through Redis). The Bot API double
runs in its own process (bench/botapi_process.py) and enforces Telegram's limits:
30/s overall, 1/s per private chat, 20/min per group, and a 429 holds its scope (the chat, or the whole
bot) for retry_after. The bot side is the real one: the Telegram front end answering commands by
polling, the DeliveryWorker sending alerts through the same bot (one pacer for the token), python-
telegram-bot, and a real Redis (a unique key prefix, removed afterwards).

Audience (defaults): 2,000 chats, 1,600 private and 400 groups.
- alert "funding BTC": every chat;
- ``--burst`` alerts on "basis BTC": 100 private chats and 100 groups (several alerts per chat back to back:
  the 1/s per-chat limit is in play, and lanes must keep those chats from delaying the rest);
- ``--group-burst`` alerts on "funding ETH": 10 groups (more than 20 in a minute: the group limit);
- meanwhile ``--users`` private chats (subscribers too) send ``/help`` at ``--cmd-rate`` per second in all.

    .venv/bin/python -m bench.bench_broadcast [--redis redis://127.0.0.1:6379/0] [--chats 2000] [--groups 0.2]
        [--burst 5] [--group-burst 25] [--users 20] [--cmd-rate 2]

Goals: alerts + replies at >= 0.9 of 30/s, reply p99 under 1.5 s during the broadcast, zero 429s,
duplicates and losses.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
import uuid
from collections import Counter
from typing import Any

import aiohttp
from redis.asyncio import Redis

import handlers.telegram  # noqa: F401  # PTB_TIMEDELTA before PTB builds a RetryAfter
from core.alerts.delivery import DeliveryWorker
from core.alerts.events import AlertEvent
from core.alerts.rules import Rule
from core.alerts.store import AlertStore
from core.keys import Keys
from core.pacer import TELEGRAM_LIMITS
from core.reply import Reply, Table
from core.shared_budget import SharedBudget
from core.store import MarketStore
from handlers.telegram.bot import TelegramFrontend
from handlers.telegram.push import TelegramSender
from tests.builders import command_core
from tests.events import event_for
from tests.fakes.telegram import TOKEN

ALLOWED_PER_S = 30.0  # Telegram's overall limit, as the double enforces it


def alert(tag: str, metric: str, asset: str) -> AlertEvent:
    rule = Rule(
        id=tag,
        metric=metric,
        asset=asset,
        kind="above",
        threshold=0.0005,
        venue="max",
        cooldown_s=0,
        hysteresis=0.0,
        selector="max",
    )
    return event_for(rule)


def render(e: AlertEvent) -> Reply:
    """A message of an alert's usual size, tagged with its rule id so each copy can be counted."""
    return Reply(
        title=f"{e.asset} {e.metric} above +0.0500%/8h [{e.rule_id}]",
        blocks=(
            Table(header=("venue", "funding/8h"), rows=(("binance", "+0.0612%"), ("okx", "+0.0588%")), align="lr"),
        ),
    )


async def start_double() -> tuple[asyncio.subprocess.Process, int, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.botapi_process", stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    api, control = map(int, (await asyncio.wait_for(proc.stdout.readline(), 20)).split())
    return proc, api, control


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--chats", type=int, default=2000)
    ap.add_argument("--groups", type=float, default=0.2, help="fraction of the chats that are groups")
    ap.add_argument("--burst", type=int, default=5, help="alerts back to back to 100 private chats and 100 groups")
    ap.add_argument("--group-burst", type=int, default=25, help="alerts back to back to 10 groups")
    ap.add_argument("--users", type=int, default=20, help="private chats that send commands")
    ap.add_argument("--cmd-rate", type=float, default=2.0, help="commands per second, all users together")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    n_groups = round(args.chats * args.groups)
    private = [10_000 + i for i in range(args.chats - n_groups)]
    groups = [-1_001_000_000_000 - i for i in range(n_groups)]
    chats = private + groups
    burst_chats = private[:100] + groups[:100]
    group_burst_chats = groups[100:110]
    users = private[-args.users :]
    expected: Counter[tuple[str, int]] = Counter()

    proc, api_port, control_port = await start_double()
    redis = Redis.from_url(args.redis)
    keys = Keys(prefix=f"bench{uuid.uuid4().hex[:8]}")
    store = AlertStore(redis, keys)
    http = aiohttp.ClientSession(f"http://127.0.0.1:{control_port}")
    core = command_core(MarketStore(redis, keys, retention_ms=1), ("okx",))
    fe = TelegramFrontend(
        core,
        token=TOKEN,
        base_url=f"http://127.0.0.1:{api_port}/bot",
        base_file_url=f"http://127.0.0.1:{api_port}/file/bot",
        poll_timeout_s=5,
        limits=TELEGRAM_LIMITS,
        shared=SharedBudget(redis, keys, "tg", TELEGRAM_LIMITS),
    )
    try:
        pipe = redis.pipeline(transaction=False)
        for topic, audience in (("funding:BTC", chats), ("basis:BTC", burst_chats), ("funding:ETH", group_burst_chats)):
            for c in audience:
                pipe.sadd(keys.subscribers(topic), f"tg:{c}")
                pipe.sadd(keys.chat_topics(f"tg:{c}"), topic)
        await pipe.execute()
        await fe.start()
        worker = DeliveryWorker(store, TelegramSender(fe.app.bot), group="telegram", consumer="bench", render=render)
        await worker.ensure_group()

        fired = [alert("a0", "funding", "BTC")]
        expected.update(("a0", c) for c in chats)
        for i in range(args.burst):
            fired.append(alert(f"b{i}", "basis", "BTC"))
            expected.update((f"b{i}", c) for c in burst_chats)
        for i in range(args.group_burst):
            fired.append(alert(f"g{i}", "funding", "ETH"))
            expected.update((f"g{i}", c) for c in group_burst_chats)
        print(f"Redis {args.redis}; Bot API double in process {proc.pid} (Telegram's flood model)")
        print(
            f"{len(chats)} chats ({len(private)} private, {len(groups)} groups); {len(fired)} alerts, "
            f"{sum(expected.values())} alert messages; {len(users)} users sending /help at {args.cmd_rate:g}/s"
        )

        stop = asyncio.Event()
        t0 = time.monotonic()
        task = asyncio.create_task(worker.run(stop))
        ids = await store.commit([], fired)
        asked: dict[int, list[float]] = {u: [] for u in users}
        n_cmd = 0
        while True:
            groups_info = await redis.xinfo_groups(keys.alerts())
            read = groups_info[0]["last-delivered-id"]
            done = (read.decode() if isinstance(read, bytes) else read) == ids[-1] and groups_info[0]["pending"] == 0
            if done:
                break
            if task.done():
                task.result()
                raise RuntimeError("worker stopped early")
            u = users[n_cmd % len(users)]
            asked[u].append(time.monotonic())
            await http.post("/push", json={"chat_id": u, "text": "/help", "user_id": u})
            n_cmd += 1
            await asyncio.sleep(1 / args.cmd_rate)
        elapsed = time.monotonic() - t0
        await asyncio.sleep(3.0)  # the last replies
        stop.set()
        await task

        stats: dict[str, Any] = await (await http.get("/stats")).json()
        sent = stats["sent"]
        got: Counter[tuple[str, int]] = Counter()
        alert_times: list[float] = []
        all_times: list[float] = []
        replies: dict[int, list[float]] = {u: [] for u in users}
        for chat_id, at, text in sent:
            all_times.append(at)
            if "[" in text and "]" in text:
                got[(text.split("[", 1)[1].split("]", 1)[0], chat_id)] += 1
                alert_times.append(at)
            elif chat_id in replies:
                replies[chat_id].append(at)
        dupes = sum(n - 1 for n in got.values() if n > 1)
        lost = sum(1 for k in expected if got[k] == 0)
        latencies = [r - q for u in users for q, r in zip(asked[u], replies[u], strict=False)]
        unanswered = sum(max(0, len(asked[u]) - len(replies[u])) for u in users)
        alert_span = max(alert_times) - min(alert_times)
        all_span = max(all_times) - min(all_times)
        alert_rate = (len(alert_times) - 1) / alert_span
        total_rate = (len(all_times) - 1) / all_span
        # while a backlog waits: up to the last alert that no group's minute budget holds back (the tail
        # after it is the 10 groups' later alerts, which 20/min per group allows only so fast)
        backlog_end = max(at for chat_id, at, text in sent if "[" in text and "[g" not in text)
        in_backlog = [at for at in all_times if at <= backlog_end]
        backlog_rate = (len(in_backlog) - 1) / (backlog_end - min(all_times))
        alerts_in_backlog = sum(1 for _, at, text in sent if "[" in text and at <= backlog_end)
        print(f"elapsed: {elapsed:.1f} s until every alert was acknowledged")
        print(
            f"alerts: {len(alert_times)} messages in {alert_span:.1f} s = {alert_rate:.2f}/s "
            f"({alert_rate / ALLOWED_PER_S:.3f} of {ALLOWED_PER_S:.0f}/s)"
        )
        print(
            f"all sends (alerts + replies): {total_rate:.2f}/s = {total_rate / ALLOWED_PER_S:.3f} of "
            f"{ALLOWED_PER_S:.0f}/s over the whole run"
        )
        print(
            f"while the backlog lasted ({backlog_end - min(all_times):.1f} s, {alerts_in_backlog} alerts): "
            f"{backlog_rate:.2f} sends/s = {backlog_rate / ALLOWED_PER_S:.3f} of {ALLOWED_PER_S:.0f}/s; "
            f"after it, only the 10 groups' remaining alerts at their 20/min"
        )
        print(
            f"replies: {len(latencies)} of {n_cmd} commands answered ({unanswered} unanswered); latency "
            f"p50 {pct(latencies, 50) * 1000:.0f} ms, p99 {pct(latencies, 99) * 1000:.0f} ms, "
            f"max {max(latencies) * 1000:.0f} ms"
        )
        print(f"429s: {stats['too_many_requests']} (by scope: {stats['flood_refusals']})")
        print(f"duplicates: {dupes}")
        print(f"losses: {lost}")
        print(f"pacer: {fe.limiter.pacer.stats}; lanes tracked at the end: {fe.limiter.pacer.tracked_lanes}")
        print(f"worker stats: {worker.stats}")
    finally:
        await fe.stop()
        await http.close()
        proc.terminate()
        await proc.wait()
        batch = [k async for k in redis.scan_iter(match=f"{keys.prefix}:*", count=1000)]
        if batch:
            await redis.delete(*batch)
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
