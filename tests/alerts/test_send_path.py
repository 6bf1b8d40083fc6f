"""One send path: replies and alerts share the token's pacer, lanes keep chats apart, delivery survives crashes.

The real front end, DeliveryWorker, TelegramSender and PTB against the Bot API double with Telegram's flood
model (429 + a flood wait holding its scope), on real Redis. Where a test shortens a window or raises the
rate, it does so on both sides (the double and the pacer), so what it proves is unchanged: one shared budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from urllib.parse import urlparse

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.alerts.delivery import Outcome
from core.alerts.store import AlertStore
from core.keys import Keys
from core.pacer import TELEGRAM_LIMITS, Limits, Pacer, Priority
from core.reply import Reply
from core.shared_budget import SharedBudget
from core.store import MarketStore
from handlers.telegram.bot import TelegramFrontend
from handlers.telegram.push import TelegramSender
from tests.alerts.test_delivery import (
    GROUP,
    bot,
    copies,
    double,
    fire,
    paced_bot,
    record,
    rule,
    running,
    store,
    subscribe,
    tg,
    wait_done,
    worker,
)
from tests.builders import command_core
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.telegram import TOKEN, BotApiDouble

__all__ = ["bot", "double", "store"]  # fixtures shared with the delivery tests


@contextlib.asynccontextmanager
async def frontend(redis: Redis, keys: Keys, double: BotApiDouble, limits: Limits) -> AsyncIterator[TelegramFrontend]:
    """The Telegram front end (commands) whose bot the delivery worker also sends alerts through."""
    core = command_core(MarketStore(redis, keys, retention_ms=1), ("okx",))
    fe = TelegramFrontend(
        core, token=TOKEN, base_url=double.base_url, base_file_url=double.base_file_url, poll_timeout_s=1, limits=limits
    )
    await fe.start()
    try:
        yield fe
    finally:
        await fe.stop()


def is_alert(text: str) -> bool:
    return "BTC funding above" in text


async def test_broadcast_to_500_chats_while_users_send_commands(
    redis: Redis, keys: Keys, store: AlertStore, double: BotApiDouble
) -> None:
    """Zero 429s, every reply within 2 s although the broadcast uses the whole budget, each chat once.

    The overall rate is raised to 100/s on both sides (pacer 95/s) so 500 chats take 5 s, not 18."""
    double.enforce_limits(global_per_s=100, per_chat_per_s=1, group_per_min=20)
    limits = Limits(global_per_s=95.0, private=TELEGRAM_LIMITS.private, group=TELEGRAM_LIMITS.group)
    users = list(range(9001, 9011))  # they are subscribers too: their replies share a lane with the alert
    chats = users + list(range(10_001, 10_391)) + [-1_001_000_000_000 - i for i in range(100)]
    await subscribe(store, chats)
    async with frontend(redis, keys, double, limits) as fe:
        w = worker(store, fe.app.bot)
        await w.ensure_group()
        [alert_id] = await fire(store, rule())
        asked: dict[int, list[float]] = {u: [] for u in users}
        async with running(w):
            await double.wait_sent(30)  # the broadcast is under way
            for i in range(16):  # 4 commands a second, round robin over the 10 users, for 4 s
                u = users[i % len(users)]
                asked[u].append(time.monotonic())
                double.push_message(u, "/help", user_id=u)
                await asyncio.sleep(0.25)
            await wait_done(redis, keys, alert_id, timeout=20)
            for u in users:
                await double.wait_sent(1 + len(asked[u]), chat_id=u)
    assert double.too_many_requests == 0, double.errors[-5:]
    assert Counter(s.chat_id for s in double.sent if is_alert(s.plain)) == dict.fromkeys(chats, 1)
    latencies = []
    for u in users:
        replies = [s for s in double.sent_to(u) if not is_alert(s.plain)]
        assert len(replies) == len(asked[u])
        latencies += [r.at - t for r, t in zip(replies, asked[u], strict=True)]
    assert max(latencies) < 2.0, sorted(latencies)
    # the broadcast really was going on while the replies went out
    alert_times = sorted(s.at for s in double.sent if is_alert(s.plain))
    assert alert_times[-1] > max(t for ts in asked.values() for t in ts)


async def test_one_group_gets_22_alerts_and_replies_without_a_429(
    redis: Redis, keys: Keys, store: AlertStore, double: BotApiDouble
) -> None:
    """The group's replies count against its 20-per-window budget: 22 alerts + 4 replies, zero 429s.

    The group window is 3 s instead of 60 on both sides; 26 messages cannot fit one window, so without a
    shared budget the double would refuse some."""
    double.enforce_limits(global_per_s=30, per_chat_per_s=1, group_per_min=20, group_window_s=3.0)
    limits = Limits(global_per_s=28.0, private=TELEGRAM_LIMITS.private, group=((1, 0.05), (20, 3.15)))
    group = -1_001_777_000_000
    await subscribe(store, [group], *(f"funding:A{i}" for i in range(22)))
    async with frontend(redis, keys, double, limits) as fe:
        w = worker(store, fe.app.bot)
        await w.ensure_group()
        ids = await fire(store, *(rule(f"r{i}", asset=f"A{i}") for i in range(22)))
        async with running(w):
            await double.wait_sent(5, chat_id=group)
            for _ in range(4):
                double.push_message(group, "/help", user_id=5, chat_type="supergroup")
                await asyncio.sleep(0.2)
            await wait_done(redis, keys, ids[-1], timeout=20)
            await double.wait_sent(26, chat_id=group, timeout=10)
    assert double.too_many_requests == 0, double.errors[-5:]
    sent = double.sent_to(group)
    alerts = [s.plain.split("[")[1].split("]")[0] for s in sent if is_alert(s.plain)]
    assert alerts == [f"r{i}" for i in range(22)]  # all of them, in order
    assert len(sent) == 26


async def test_a_chat_held_8_s_by_a_429_does_not_delay_the_next_alert_to_the_others(
    redis: Redis, keys: Keys, store: AlertStore, bot: object, double: BotApiDouble
) -> None:
    chats = [101, 102, 103, 104, 105, 106, -201, -202, -203]
    slow = 103
    await subscribe(store, chats)
    double.fail_next(slow, "429", retry_after=8)
    w = worker(store, bot)  # type: ignore[arg-type]
    await w.ensure_group()
    [first] = await fire(store, rule("r1"))
    async with running(w):
        await double.wait_sent(len(chats) - 1)
        await asyncio.sleep(1.1)  # past every chat's own 1 s window
        t0 = time.monotonic()
        [second] = await fire(store, rule("r2"))
        await double.wait_sent(2 * (len(chats) - 1), timeout=5)
        at = {s.chat_id: s.at - t0 for s in double.sent if "[r2]" in s.plain}
        assert set(at) == set(chats) - {slow}
        assert max(at.values()) < 1.5, at
        assert double.sent_to(slow) == []  # still waiting out its 8 s, in its own lane
        assert await record(redis, keys, first, tg(slow)) == "pending:w1"
        assert await record(redis, keys, second, tg(slow)) is None  # queued behind r1 in its lane: order kept


async def test_a_flood_wait_of_the_whole_bot_holds_every_chat(
    redis: Redis, keys: Keys, store: AlertStore, bot: object, double: BotApiDouble
) -> None:
    """An overall 429 is not one chat's: after two chats are refused, nothing is sent until it ends."""
    chats = list(range(101, 131))
    await subscribe(store, chats)
    double.flood_wait(2.0)
    w = worker(store, bot)  # type: ignore[arg-type]
    await w.ensure_group()
    t0 = time.monotonic()
    [alert_id] = await fire(store, rule())
    async with running(w):
        await wait_done(redis, keys, alert_id, timeout=10)
    assert copies(double) == dict.fromkeys(chats, 1)
    assert double.too_many_requests <= 3, double.errors  # not one refusal per chat
    assert min(s.at for s in double.sent) - t0 >= 1.9


async def test_replies_that_draw_429_or_5xx_are_retried_not_dropped(
    redis: Redis, keys: Keys, double: BotApiDouble
) -> None:
    async with frontend(redis, keys, double, TELEGRAM_LIMITS):
        double.fail_next(301, "429", retry_after=1)
        double.fail_next(302, "500")
        double.fail_next(302, "502")
        for chat in (301, 302):
            double.push_message(chat, "/help", user_id=chat)
        for chat in (301, 302):
            (reply,) = await double.wait_sent(1, chat_id=chat, timeout=8)
            assert "/subscribe" in reply.plain
    assert sorted(c for _, c, _ in double.errors) == [429, 500, 502]


async def test_sigkill_mid_broadcast_then_restart_loses_nothing(
    redis_url: str, redis: Redis, keys: Keys, store: AlertStore, bot: object, double: BotApiDouble
) -> None:
    """A delivery process killed hard mid-broadcast: the next one finishes it; at most the one send in flight
    at the kill is repeated."""
    chats = list(range(2001, 2121))
    await subscribe(store, chats)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.delivery_process",
        redis_url,
        keys.prefix,
        double.base_url,
        "victim",
        "60",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=os.getcwd(),
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line.strip() == b"ready"
        [alert_id] = await fire(store, rule())
        await double.wait_sent(40, timeout=10)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    by_victim = len(double.sent)
    assert by_victim < len(chats)
    w = worker(store, bot, "heir", claim_idle_ms=500)  # type: ignore[arg-type]
    async with running(w):
        await wait_done(redis, keys, alert_id, timeout=15)
    got = copies(double)
    assert set(got) == set(chats)
    assert sum(n - 1 for n in got.values()) <= 1, {c: n for c, n in got.items() if n > 1}
    assert w.stats.skipped >= by_victim - 1


async def test_a_dropped_delivery_record_write_is_retried_not_resent(
    redis_url: str, redis: Redis, keys: Keys, double: BotApiDouble
) -> None:
    """The write that records a delivery is lost (the connection drops with it, several times): it is
    written again before the alert is released, so no consumer ever sends it a second time."""
    u = urlparse(redis_url)
    async with TcpProxy(u.hostname or "127.0.0.1", u.port or 6379) as proxy, paced_bot(double) as b:
        # without redis-py's own retries, so the lost write reaches the worker (with them it would only be rarer)
        flaky = Redis(
            host="127.0.0.1",
            port=proxy.port,
            db=int((u.path or "/0").lstrip("/") or 0),
            retry=Retry(NoBackoff(), retries=0),
        )
        try:
            flaky_store = AlertStore(flaky, keys)
            chats = [101, 102, -201]
            await subscribe(flaky_store, chats)
            w = worker(flaky_store, b, claim_idle_ms=300)
            await w.ensure_group()
            proxy.cut_on, proxy.cut_times = b"\r\n$2\r\nok\r\n", 4  # SET sent:... ok
            [alert_id] = await fire(flaky_store, rule())
            async with running(w):
                await wait_done(redis, keys, alert_id)
            # a second consumer that reclaims whatever is pending finds nothing to resend
            async with running(worker(AlertStore(redis, keys), b, "other", claim_idle_ms=300)):
                await asyncio.sleep(0.8)
        finally:
            await flaky.aclose()
    assert proxy.cuts == 4
    assert w.stats.record_retries == 4
    assert copies(double) == dict.fromkeys(chats, 1)
    assert {await record(redis, keys, alert_id, tg(c)) for c in chats} == {"ok"}


async def test_delivery_resumes_after_redis_lost_the_stream_and_its_groups(
    redis: Redis, keys: Keys, store: AlertStore, bot: object, double: BotApiDouble
) -> None:
    chats = [101, -201]
    await subscribe(store, chats)
    w = worker(store, bot)  # type: ignore[arg-type]
    await w.ensure_group()
    [first] = await fire(store, rule("r1"))
    async with running(w):
        await wait_done(redis, keys, first)
        await redis.delete(keys.alerts())  # what a restart without persistence, a flush or eviction leaves
        await asyncio.sleep(0.7)  # the consumer meets NOGROUP in the meantime
        [second] = await fire(store, rule("r2"))  # XADD makes a bare stream again, without any group
        await double.wait_sent(4, timeout=8)
        await wait_done(redis, keys, second)
    assert copies(double) == dict.fromkeys(chats, 2)
    assert [s.plain.split("[")[1][:2] for s in double.sent_to(101)] == ["r1", "r2"]
    assert w.stats.regrouped >= 1


async def test_pacer_serves_replies_before_queued_alerts() -> None:
    pacer = Pacer(Limits(global_per_s=50.0, private=((1, 1.0),), group=()))
    order: list[str] = []

    async def take(name: str, lane: str, priority: Priority) -> None:
        await pacer.acquire(lane, priority=priority)
        order.append(name)

    alerts = [asyncio.create_task(take(f"a{i}", f"tg:{i}", Priority.ALERT)) for i in range(20)]
    await asyncio.sleep(0.05)  # a couple of alerts went; the rest are queued
    reply = asyncio.create_task(take("reply", "tg:999", Priority.REPLY))
    await asyncio.gather(reply, *alerts)
    await pacer.aclose()
    assert order.index("reply") <= 5, order


def test_pacer_memory_is_bounded_by_the_chats_of_the_last_window() -> None:
    """100,000 chats, one send each: the pacer keeps state only for the chats inside its longest window."""
    pacer = Pacer(TELEGRAM_LIMITS)
    now = 0.0
    for i in range(100_000):
        now += 1 / 28
        pacer.record(f"tg:{i}", now)
    assert pacer.tracked_lanes <= 28 * 62 + 512


async def test_pacer_holds_a_lane_for_exactly_retry_after_and_the_bot_when_two_lanes_are_refused() -> None:
    pacer = Pacer(Limits(global_per_s=1000.0, private=(), group=()))
    assert await pacer.flood("a", 0.4) is False
    t0 = time.monotonic()
    await pacer.acquire("b")  # another lane goes at once
    assert time.monotonic() - t0 < 0.1
    await pacer.acquire("a")
    assert 0.3 <= time.monotonic() - t0 < 0.6
    assert await pacer.flood("c", 0.3) is True or await pacer.flood("d", 0.3) is True
    t1 = time.monotonic()
    await pacer.acquire("e")
    assert 0.25 <= time.monotonic() - t1 < 0.6
    await pacer.aclose()


async def test_two_processes_with_one_token_share_its_budget_through_redis(
    redis: Redis, keys: Keys, double: BotApiDouble
) -> None:
    """Two senders, each pacing at 28/s on its own, stay within the token's 30/s and one chat's 1/s together."""
    double.enforce_limits()
    budget = [SharedBudget(redis, keys, "tg", TELEGRAM_LIMITS) for _ in range(2)]
    async with paced_bot(double, shared=budget[0]) as a, paced_bot(double, shared=budget[1]) as b:
        senders = [TelegramSender(a), TelegramSender(b)]
        shared_chat = 555

        async def send_all(sender: TelegramSender, chats: list[int]) -> None:
            for c in chats:
                await sender.wait_turn(c)
                assert (await sender.send(c, Reply(title=f"to {c}"))).outcome is Outcome.OK

        t0 = time.monotonic()
        await asyncio.gather(
            send_all(senders[0], [*range(1001, 1061), shared_chat, shared_chat]),
            send_all(senders[1], [*range(2001, 2061), shared_chat, shared_chat]),
        )
        elapsed = time.monotonic() - t0
    assert double.too_many_requests == 0, double.errors[-5:]
    assert len(double.sent) == 124
    assert elapsed >= 123 / 28 - 0.2  # one budget for both, not 28/s each
    times = sorted(s.at for s in double.sent_to(shared_chat))
    assert len(times) == 4 and all(b - a >= 1.0 for a, b in itertools.pairwise(times))


async def test_without_redis_the_pacer_goes_on_with_its_local_budget(double: BotApiDouble, keys: Keys) -> None:
    dead = Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), retries=0), socket_connect_timeout=0.2)
    try:
        async with paced_bot(double, shared=SharedBudget(dead, keys, "tg", TELEGRAM_LIMITS)) as b:
            sender = TelegramSender(b)
            await sender.wait_turn(101)
            assert (await sender.send(101, Reply(title="still here"))).outcome is Outcome.OK
    finally:
        await dead.aclose()


async def test_a_group_lost_mid_broadcast_is_recreated_without_resending(
    redis: Redis, keys: Keys, store: AlertStore, bot: object, double: BotApiDouble
) -> None:
    """The consumer group vanishes while an alert is half delivered (the stream stays): the new group reads
    the stream from the start again, and neither the alert in flight nor the delivered one is sent twice."""
    chats = list(range(101, 131))
    await subscribe(store, chats)
    w = worker(store, bot)  # type: ignore[arg-type]
    await w.ensure_group()
    [first] = await fire(store, rule("r1"))
    async with running(w):
        await wait_done(redis, keys, first)
        [second] = await fire(store, rule("r2"))
        await double.wait_sent(len(chats) + 5)
        await redis.xgroup_destroy(keys.alerts(), GROUP)
        for _ in range(100):  # until the worker has made the group again
            if any(g["name"] in (GROUP, GROUP.encode()) for g in await redis.xinfo_groups(keys.alerts())):
                break
            await asyncio.sleep(0.05)
        await wait_done(redis, keys, second, timeout=10)
    assert copies(double) == dict.fromkeys(chats, 2)
    assert w.stats.regrouped >= 1


async def test_a_redis_that_never_answers_does_not_stall_sending(double: BotApiDouble, keys: Keys) -> None:
    """A blackholed Redis (accepts, never replies): each send waits at most the shared-budget timeout."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # reads until the client gives up; never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mute = Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), retries=0))
    try:
        async with paced_bot(double, shared=SharedBudget(mute, keys, "tg", TELEGRAM_LIMITS)) as b:
            t0 = time.monotonic()
            await b.send_message(101, "a reply goes out anyway")
            assert time.monotonic() - t0 < 2.5
    finally:
        await mute.aclose(close_connection_pool=True)
        server.close()
        await server.wait_closed()
    assert [s.chat_id for s in double.sent] == [101]


async def test_a_chat_held_by_a_429_is_held_for_every_process_with_the_token(
    redis: Redis, keys: Keys, double: BotApiDouble
) -> None:
    """One sender draws a 429 for a chat; another process's next send to that chat waits it out instead of
    drawing its own (Telegram would extend the flood wait of a bot that keeps knocking)."""
    async with (
        paced_bot(double, shared=SharedBudget(redis, keys, "tg", TELEGRAM_LIMITS)) as a,
        paced_bot(double, shared=SharedBudget(redis, keys, "tg", TELEGRAM_LIMITS)) as b,
    ):
        double.flood_wait(1.5, chat_id=101)
        first = await TelegramSender(a).send(101, Reply(title="refused"))
        assert first.outcome is Outcome.RETRY and first.retry_after_s == 2.0  # ceil(1.5)
        t0 = time.monotonic()
        other = TelegramSender(b)
        await other.wait_turn(101)
        assert time.monotonic() - t0 >= 1.8
        assert (await other.send(101, Reply(title="after the hold"))).outcome is Outcome.OK
    assert double.too_many_requests == 1
