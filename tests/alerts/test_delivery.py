"""Alert delivery end to end: Redis Stream -> DeliveryWorker -> TelegramSender -> real PTB -> Bot API double.

Everything is real except Telegram itself: the Redis server, the consumer group, python-telegram-bot
and its HTTP stack. The double answers like Telegram (429 with retry_after, 403, 400 migrate, 5xx)
and, with ``enforce_limits``, refuses anything beyond Telegram's flood limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from redis.asyncio import Redis
from telegram.ext import ApplicationBuilder, ExtBot

import handlers.telegram  # noqa: F401  # sets PTB_TIMEDELTA before PTB builds a RetryAfter
from core.alerts.delivery import DeliveryWorker
from core.alerts.rules import Rule
from core.alerts.store import AlertStore
from core.keys import Keys
from core.pacer import TELEGRAM_LIMITS, Limits, Pacer, SharedSlots
from handlers.telegram.pacing import PacedRateLimiter
from handlers.telegram.push import TelegramSender
from tests.events import event_for, tagged
from tests.fakes.telegram import TOKEN, ApiError, BotApiDouble, Sent, _Window

GROUP = "telegram"
BTC = "funding:BTC"


def rule(
    rule_id: str = "r1", metric: str = "funding", asset: str = "BTC", *, scope: str = "global", target: str = ""
) -> Rule:
    return Rule(
        id=rule_id,
        metric=metric,
        asset=asset,
        kind="above",
        threshold=0.0005,
        venue="max",
        cooldown_s=3600,
        hysteresis=0.0,
        scope=scope,
        target=target,
        selector="max",
    )


def tg(chat_id: int) -> str:
    return f"tg:{chat_id}"


@pytest.fixture
async def double() -> AsyncIterator[BotApiDouble]:
    async with BotApiDouble() as d:
        yield d


Bot = ExtBot[None]


@contextlib.asynccontextmanager
async def paced_bot(
    double: BotApiDouble, limits: Limits = TELEGRAM_LIMITS, *, shared: SharedSlots | None = None
) -> AsyncIterator[Bot]:
    """The Application's bot with the token's pacer as its rate limiter, as the front end builds it."""
    app = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(double.base_url)
        .base_file_url(double.base_file_url)
        .rate_limiter(PacedRateLimiter(limits, pacer=Pacer(limits, shared=shared)))
        .build()
    )
    await app.initialize()
    try:
        yield app.bot
    finally:
        await app.shutdown()


def pacer_of(bot: Bot) -> Pacer:
    limiter = bot.rate_limiter
    assert isinstance(limiter, PacedRateLimiter)
    return limiter.pacer


@pytest.fixture
async def bot(double: BotApiDouble) -> AsyncIterator[Bot]:
    async with paced_bot(double) as b:
        yield b


@pytest.fixture
def store(redis: Redis, keys: Keys) -> AlertStore:
    return AlertStore(redis, keys)


def worker(store: AlertStore, bot: Bot, consumer: str = "w1", **kw: Any) -> DeliveryWorker:
    kw.setdefault("claim_idle_ms", 300)
    kw.setdefault("render", tagged())
    return DeliveryWorker(store, TelegramSender(bot), group=GROUP, consumer=consumer, **kw)


async def fire(store: AlertStore, *rules: Rule) -> list[str]:
    return await store.commit([], [event_for(r) for r in rules])


async def subscribe(store: AlertStore, chats: Iterable[int], *topics: str) -> None:
    for c in chats:
        await store.subscribe(tg(c), list(topics or (BTC,)))


@contextlib.asynccontextmanager
async def running(w: DeliveryWorker) -> AsyncIterator[asyncio.Event]:
    """Run the worker's consume loop; stop it gracefully on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def pending_count(redis: Redis, keys: Keys) -> int:
    info = await redis.xpending(keys.alerts(), GROUP)
    return int(info["pending"])


async def wait_done(redis: Redis, keys: Keys, last_id: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Until the group has read up to ``last_id`` and nothing is pending (every entry acked)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        groups = await redis.xinfo_groups(keys.alerts())
        g = next(x for x in groups if _s(x["name"]) == GROUP)
        if _id(_s(g["last-delivered-id"])) >= _id(last_id) and int(g["pending"]) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"alert {last_id} not acked within {timeout}s: {await redis.xpending(keys.alerts(), GROUP)}")


def copies(double: BotApiDouble) -> Counter[int]:
    return Counter(s.chat_id for s in double.sent)


def fail_with(double: BotApiDouble, chat_id: int, code: int, description: str) -> None:
    """Any Bot API error for one chat's next send (the double's named kinds cover the usual ones)."""
    double._fail_next.setdefault(chat_id, deque()).append(ApiError(code, description))


def _s(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _id(stream_id: str) -> tuple[int, int]:
    ms, seq = stream_id.split("-")
    return int(ms), int(seq)


async def record(redis: Redis, keys: Keys, alert_id: str, target: str) -> str | None:
    raw = await redis.get(keys.sent(alert_id, target))
    return None if raw is None else _s(raw)


# ---------------------------------------------------------------------------------------------


async def test_broadcast_reaches_each_subscriber_once_skips_muted_and_unsubscribed(
    redis: Redis, keys: Keys, store: AlertStore, bot: Bot, double: BotApiDouble
) -> None:
    private, groups = [101, 102, 103, 104, 105, 106], [-201, -202, -203, -1001234567890]
    muted = [106, -203]
    others = [301, -302]  # subscribed to another topic only
    await subscribe(store, private + groups)
    await subscribe(store, others, "basis:ETH")
    for c in muted:
        await store.mute(tg(c), 600)
    w = worker(store, bot)
    await w.ensure_group()
    [alert_id] = await fire(store, rule())
    async with running(w):
        await wait_done(redis, keys, alert_id)
    expected = {c for c in private + groups if c not in muted}
    got = copies(double)
    assert set(got) == expected
    assert all(n == 1 for n in got.values()), got
    assert all("BTC funding above" in s.plain and s.parse_mode == "HTML" for s in double.sent)
    assert await pending_count(redis, keys) == 0
    assert {t: await record(redis, keys, alert_id, tg(t)) for t in expected} == dict.fromkeys(expected, "ok")
    assert w.stats.sent == len(expected)


async def test_chat_scoped_rule_goes_only_to_its_chat(
    redis: Redis, keys: Keys, store: AlertStore, bot: Bot, double: BotApiDouble
) -> None:
    await subscribe(store, [101, 102, -201])
    w = worker(store, bot)
    await w.ensure_group()
    [alert_id] = await fire(store, rule("r7", scope="chat", target=tg(-201)))
    async with running(w):
        await wait_done(redis, keys, alert_id)
    assert copies(double) == {-201: 1}


async def test_429_delays_only_that_chat(
    redis: Redis, keys: Keys, store: AlertStore, bot: Bot, double: BotApiDouble
) -> None:
    chats = [101, 102, 103, 104, -201, -202, -203]
    slow = 103
    await subscribe(store, chats)
    double.fail_next(slow, "429", retry_after=1)
    w = worker(store, bot)
    await w.ensure_group()
    [alert_id] = await fire(store, rule())
    async with running(w):
        await wait_done(redis, keys, alert_id)
    assert copies(double) == dict.fromkeys(chats, 1)
    assert ("sendMessage", 429, "Too Many Requests: retry after 1") in double.errors
    at = {s.chat_id: s.at for s in double.sent}
    start = min(at.values())
    # the others went out at the paced rate (~28/s), not after the 1 s hold of the slow chat
    assert max(t - start for c, t in at.items() if c != slow) < 0.6, at
    assert at[slow] - start >= 0.95, at  # it waited retry_after
    assert w.stats.retried == 1


async def test_blocked_and_kicked_chats_are_unsubscribed(
    redis: Redis, keys: Keys, store: AlertStore, bot: Bot, double: BotApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="core.alerts.delivery")
    chats = [101, 102, -201, -202]
    await subscribe(store, chats, BTC, "basis:BTC")
    double.fail_next(102, "blocked")
    double.fail_next(-202, "kicked")
    w = worker(store, bot)
    await w.ensure_group()
    [alert_id] = await fire(store, rule())
    async with running(w):
        await wait_done(redis, keys, alert_id)
    assert copies(double) == {101: 1, -201: 1}
    for gone in (102, -202):
        assert tg(gone) not in await store.subscribers(BTC)
        assert tg(gone) not in await store.subscribers("basis:BTC")
        assert await store.topics_of(tg(gone)) == []
        assert await record(redis, keys, alert_id, tg(gone)) == "gone"
        assert any(
            f"{tg(gone)} is gone" in r.getMessage() and "unsubscribed from basis:BTC, funding:BTC" in r.getMessage()
            for r in caplog.records
        ), caplog.text
    assert await store.subscribers(BTC) == {tg(101), tg(-201)}
    assert w.stats.gone == 2


async def test_migrated_group_gets_the_alert_and_keeps_its_subscriptions(
    redis: Redis, keys: Keys, store: AlertStore, bot: Bot, double: BotApiDouble
) -> None:
    old, new = -4242, -1004242
    await subscribe(store, [101, old], BTC, "basis:ETH")
    double.fail_next(old, "migrate", new_chat_id=new)
    w = worker(store, bot)
    await w.ensure_group()
    [alert_id] = await fire(store, rule())
    async with running(w):
        await wait_done(redis, keys, alert_id)
    assert copies(double) == {101: 1, new: 1}
    assert await store.subscribers(BTC) == {tg(101), tg(new)}
    assert await store.subscribers("basis:ETH") == {tg(101), tg(new)}
    assert await store.topics_of(tg(new)) == ["basis:ETH", BTC]
    assert await store.topics_of(tg(old)) == []
    assert await record(redis, keys, alert_id, tg(old)) == "migrated"
    assert await record(redis, keys, alert_id, tg(new)) == "ok"


async def test_server_errors_are_retried_with_backoff_and_delivered_once(
    redis: Redis, keys: Keys, store: AlertStore, bot: Bot, double: BotApiDouble
) -> None:
    chats = [101, 102, -201]
    await subscribe(store, chats)
    double.fail_next(101, "500")
    double.fail_next(-201, "502", times=2)
    w = worker(store, bot)
    await w.ensure_group()
    t0 = time.monotonic()
    [alert_id] = await fire(store, rule())
    async with running(w):
        await wait_done(redis, keys, alert_id)
    assert copies(double) == dict.fromkeys(chats, 1)
    assert [e[1] for e in double.errors].count(500) == 1
    assert [e[1] for e in double.errors].count(502) == 2
    at = {s.chat_id: s.at - t0 for s in double.sent}
    assert at[101] >= 1.0, at  # one backoff of 1 s
    assert at[-201] >= 3.0, at  # backoffs of 1 s then 2 s
    assert at[102] < 1.0, at
    assert w.stats.retried == 3


async def test_chat_not_found_unsubscribes_other_bad_request_fails_alone(
    redis: Redis, keys: Keys, store: AlertStore, bot: Bot, double: BotApiDouble
) -> None:
    chats = [101, 102, 103, -201]
    await subscribe(store, chats)
    double.fail_next(102, "not_found")
    fail_with(double, 103, 400, "Bad Request: message is too long")
    w = worker(store, bot)
    await w.ensure_group()
    [alert_id] = await fire(store, rule())
    async with running(w):
        await wait_done(redis, keys, alert_id)
    assert copies(double) == {101: 1, -201: 1}
    assert await store.topics_of(tg(102)) == []
    assert tg(102) not in await store.subscribers(BTC)
    assert await record(redis, keys, alert_id, tg(102)) == "gone"
    # a permanent error for this message: recorded, not retried, the chat stays subscribed
    assert await record(redis, keys, alert_id, tg(103)) == "failed"
    assert tg(103) in await store.subscribers(BTC)
    assert [c for m, c, d in double.errors if "too long" in d] == [400]
    assert (w.stats.gone, w.stats.failed, w.stats.sent) == (1, 1, 2)


async def test_stop_mid_broadcast_then_another_consumer_finishes_without_duplicates(
    redis: Redis, keys: Keys, store: AlertStore, bot: Bot, double: BotApiDouble
) -> None:
    private = list(range(1001, 1046))
    groups = list(range(-2015, -2000))
    chats = private + groups
    await subscribe(store, chats)
    slow = -2001  # first in target order ("tg:-2001" sorts first): its 429 is still waiting when the first worker stops
    double.fail_next(slow, "429", retry_after=5)
    slow_limits = Limits(global_per_s=20.0, private=TELEGRAM_LIMITS.private, group=TELEGRAM_LIMITS.group)
    async with paced_bot(double, slow_limits) as slow_bot:
        a = worker(store, slow_bot, "a")
        await a.ensure_group()
        [alert_id] = await fire(store, rule())
        async with running(a):
            await double.wait_sent(20, timeout=5)
    delivered_by_a = len(double.sent)
    assert 20 <= delivered_by_a < len(chats) - 10
    assert slow not in copies(double)
    assert await pending_count(redis, keys) == 1  # left pending for a reclaimer
    assert await record(redis, keys, alert_id, tg(slow)) == "pending:a"

    async with paced_bot(double, slow_limits) as slow_bot:
        b = worker(store, slow_bot, "b")
        async with running(b):
            await wait_done(redis, keys, alert_id, timeout=15)
    got = copies(double)
    assert set(got) == set(chats), set(chats) - set(got)
    assert all(n == 1 for n in got.values()), {c: n for c, n in got.items() if n > 1}
    assert a.stats.sent == delivered_by_a
    assert b.stats.sent == len(chats) - delivered_by_a  # b finished the rest (and acked: a was stopped)
    assert b.stats.skipped == delivered_by_a
    assert await pending_count(redis, keys) == 0


async def test_two_alerts_respect_per_chat_pacing(
    redis: Redis, keys: Keys, store: AlertStore, bot: Bot, double: BotApiDouble
) -> None:
    double.enforce_limits()
    chats = [101, 102, -201]
    await subscribe(store, chats, BTC, "basis:BTC")
    w = worker(store, bot)
    await w.ensure_group()
    ids = await fire(store, rule("r1"), rule("r2", metric="basis"))
    async with running(w):
        await wait_done(redis, keys, ids[-1])
    assert copies(double) == dict.fromkeys(chats, 2)
    assert double.too_many_requests == 0
    for c in chats:
        first, second = double.sent_to(c)
        assert "[r1]" in first.plain and "[r2]" in second.plain
        assert second.at - first.at >= 1.0


async def test_group_near_its_minute_budget_waits_instead_of_429(
    redis: Redis, keys: Keys, store: AlertStore, bot: Bot, double: BotApiDouble
) -> None:
    """A group that already had 19 messages in the last minute takes one more now, the next only when
    the oldest leaves the 20-per-minute window."""
    double.enforce_limits()
    group, friend = -201, 101
    await subscribe(store, [group, friend], BTC, "basis:BTC")
    w = worker(store, bot)
    now = time.monotonic()
    history = [now - 59.0 + 0.1 * i for i in range(19)]  # 19 sends in the last 59 s (both sides saw them)
    window = _Window(20, 60.0)
    for t in history:
        pacer_of(bot).record(str(group), t)
        window.add(t)
    double._chat_windows[group] = window
    await w.ensure_group()
    ids = await fire(store, rule("r1"), rule("r2", metric="basis"))
    async with running(w):
        await wait_done(redis, keys, ids[-1], timeout=10)
    sent: list[Sent] = double.sent_to(group)
    assert len(sent) == 2
    assert double.too_many_requests == 0
    assert sent[0].at - now < 0.5
    assert sent[1].at >= history[0] + 60.0  # waited for the window, ~2 s
    assert len(double.sent_to(friend)) == 2


async def test_restart_does_not_resend(
    redis: Redis, keys: Keys, store: AlertStore, bot: Bot, double: BotApiDouble
) -> None:
    chats = [101, 102, -201]
    await subscribe(store, chats)
    a = worker(store, bot, "a")
    await a.ensure_group()
    [first] = await fire(store, rule("r1"))
    async with running(a):
        await wait_done(redis, keys, first)
    assert copies(double) == dict.fromkeys(chats, 1)

    # a second alert is delivered by "a", which then dies before acking it
    class NoAck:
        def __init__(self, inner: Redis) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        async def xack(self, *args: Any) -> int:
            return 0

    a.redis = NoAck(redis)  # type: ignore[assignment]
    [second] = await fire(store, rule("r2"))
    async with running(a):
        await double.wait_sent(2 * len(chats))
        await asyncio.sleep(0.1)
    assert await pending_count(redis, keys) == 1

    b = worker(store, bot, "b")
    [third] = await fire(store, rule("r3"))
    async with running(b):
        await wait_done(redis, keys, third)
    assert await pending_count(redis, keys) == 0
    assert copies(double) == dict.fromkeys(chats, 3)
    for c in chats:
        assert [s.plain.split("[")[1][:2] for s in double.sent_to(c)] == ["r1", "r2", "r3"]
    assert b.stats.sent == len(chats)  # only the third
    assert b.stats.skipped == len(chats)  # the reclaimed second was already delivered
    assert await record(redis, keys, second, tg(101)) == "ok"


async def test_a_live_consumer_keeps_its_broadcast_through_a_long_retry_wait(
    redis: Redis, keys: Keys, store: AlertStore, bot: Bot, double: BotApiDouble
) -> None:
    """A second consumer must not take over an entry whose owner is alive but waiting out a 429."""
    chats = [101, 102, -201]
    slow = 102
    await subscribe(store, chats)
    double.fail_next(slow, "429", retry_after=2)
    a, b = worker(store, bot, "a"), worker(store, bot, "b")
    await a.ensure_group()
    t0 = time.monotonic()
    [alert_id] = await fire(store, rule())
    async with running(a):
        await double.wait_sent(2)
        async with running(b):
            await wait_done(redis, keys, alert_id, timeout=8)
            await asyncio.sleep(max(0.0, t0 + 2.8 - time.monotonic()))  # past the retry: no second copy
    assert copies(double) == dict.fromkeys(chats, 1)
    assert (a.stats.sent, b.stats.sent) == (3, 0)


async def test_two_live_consumers_do_not_share_one_broadcast(
    redis: Redis, keys: Keys, store: AlertStore, bot: Bot, double: BotApiDouble
) -> None:
    """One broadcast is paced by one consumer: a second one stealing it would double the send rate."""
    double.enforce_limits()
    chats = list(range(1001, 1061))
    await subscribe(store, chats)
    a, b = worker(store, bot, "a"), worker(store, bot, "b")
    await a.ensure_group()
    [alert_id] = await fire(store, rule())
    async with running(a), running(b):
        await wait_done(redis, keys, alert_id, timeout=10)
    assert copies(double) == dict.fromkeys(chats, 1)
    assert double.too_many_requests == 0
    assert a.stats.sent + b.stats.sent == len(chats)
    assert 0 in (a.stats.sent, b.stats.sent)


async def test_a_redis_error_for_one_chat_leaves_the_alert_pending_until_it_is_delivered(
    redis: Redis, keys: Keys, store: AlertStore, bot: Bot, double: BotApiDouble
) -> None:
    chats = [101, 102, -201]
    unlucky = tg(102)
    await subscribe(store, chats)
    w = worker(store, bot)
    claim = w._claim
    failures = [0]

    async def flaky_claim(*, keys: list[str], args: list[Any]) -> Any:
        if keys[0].endswith(unlucky) and not failures[0]:
            failures[0] += 1
            raise ConnectionError("Redis went away")
        return await claim(keys=keys, args=args)

    w._claim = flaky_claim  # type: ignore[assignment]
    await w.ensure_group()
    [alert_id] = await fire(store, rule())
    async with running(w):
        await wait_done(redis, keys, alert_id)
    assert failures[0] == 1
    assert copies(double) == dict.fromkeys(chats, 1)
    assert await record(redis, keys, alert_id, unlucky) == "ok"


def test_pacer_keeps_its_global_rate_despite_late_wakeups() -> None:
    """Sends that go out a few ms after their slot (timer latency) must not lower the rate, and no 1 s
    window may ever hold more than the rate allows (plus the one send that starts the window)."""
    pacer = Pacer(TELEGRAM_LIMITS)
    now, sent = 1000.0, []
    for i in range(28 * 20):
        now += pacer.global_delay(now) + (0.004 if i % 3 else 0.015)  # always a little late
        pacer.record(tg(i), now)
        sent.append(now)
    rate = (len(sent) - 1) / (sent[-1] - sent[0])
    assert rate > 27.9
    assert max(sum(1 for t in sent if s <= t < s + 1.0) for s in sent) <= 29
    # after a stall it restarts one interval after the late send: no burst to catch up
    now += 5.0
    pacer.record("tg:1", now)
    assert pacer.global_delay(now) == pytest.approx(1 / 28)


async def test_admin_notice_goes_to_bot_admins_only(store: AlertStore, bot: Bot, double: BotApiDouble) -> None:
    """A provider's rejected key reaches the configured and the added bot admins, nobody else."""
    from bot.app import notify_admins

    await store.add_admin("tg", "77")
    await subscribe(store, [501])
    w = worker(store, bot, admins=frozenset({"42"}))
    await w.ensure_group()
    await notify_admins(store, "glassnode", "glassnode: key rejected (HTTP 401)")
    async with running(w):
        await double.wait_sent(1, chat_id=42)
        await double.wait_sent(1, chat_id=77)
        await asyncio.sleep(0.3)
    assert {s.chat_id for s in double.sent} == {42, 77}
    assert "glassnode: the provider refused the request" in double.sent_to(42)[0].plain
    assert "key rejected (HTTP 401)" in double.sent_to(77)[0].plain
