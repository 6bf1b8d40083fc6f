"""Alert delivery to Discord channels: DeliveryWorker + DiscordSender against DiscordDouble."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from core.alerts.delivery import DeliveryWorker, Outcome
from core.alerts.rules import Rule
from core.alerts.store import AlertStore
from core.commands import CommandCore
from core.reply import Reply, Table
from handlers.discord.bot import DiscordFrontend
from handlers.discord.push import DiscordSender
from tests.events import event_for
from tests.fakes.discord_server import DiscordDouble
from tests.handlers.test_discord_bot import CHAN, CHAN2, MANAGER, NOW, ask, core, dd, frontend, running

__all__ = ["core", "dd", "frontend"]  # fixtures shared with the front-end tests

RULE = Rule(
    id="r1",
    metric="funding",
    asset="BTC",
    kind="above",
    threshold=0.0005,
    venue="max",
    cooldown_s=3600,
    hysteresis=0.0001,
    selector="max",
)
ALERT = Reply(
    title="BTC funding above +0.0500%/8h",
    blocks=(Table(header=("venue", "rate"), rows=(("binance", "+0.0600%"),), align="lr"),),
    footer="rule r1",
)


@pytest.fixture
async def worker(frontend: DiscordFrontend, core: CommandCore) -> AsyncIterator[DeliveryWorker]:
    store = AlertStore(core.store.redis, core.store.keys)
    w = DeliveryWorker(
        store,
        DiscordSender(frontend.client, frontend.pacer),
        group="discord",
        consumer="test",
        max_backoff_s=0.2,
        render=lambda e: ALERT,
    )
    await w.ensure_group()  # before anything fires
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        yield w
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def fire(w: DeliveryWorker) -> None:
    await w.store.commit([], [event_for(RULE, ts_ms=NOW)])


async def until(predicate: object, within_s: float = 8.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_subscribed_channel_receives_the_alert_as_an_embed(dd: DiscordDouble, worker: DeliveryWorker) -> None:
    await ask(dd, "subscribe", {"metric": "funding", "asset": "btc"}, channel=CHAN, user=MANAGER)
    await ask(dd, "subscribe", {"metric": "basis", "asset": "btc"}, channel=CHAN2, user=MANAGER)  # another topic
    await ask(dd, "subscribe", {"metric": "funding", "asset": "btc"}, guild=None, channel=555)  # a DM channel
    await fire(worker)
    (msg,) = await dd.wait_channel_messages(CHAN)
    (embed,) = msg["embeds"]
    assert embed["title"] == ALERT.title and embed["footer"]["text"] == "rule r1"
    assert embed["description"] == "```\nvenue       rate\nbinance +0.0600%\n```"
    assert len(await dd.wait_channel_messages(555)) == 1
    await until(lambda: worker.stats.sent == 2)
    assert CHAN2 not in dd.channel_messages


async def test_429_with_via_is_waited_out_by_discord_py(dd: DiscordDouble, worker: DeliveryWorker) -> None:
    await ask(dd, "subscribe", {"metric": "funding", "asset": "btc"}, user=MANAGER)
    dd.fail_next(CHAN, 429, retry_after=0.1)
    await fire(worker)
    await dd.wait_channel_messages(CHAN)
    await until(lambda: worker.stats.sent == 1)
    assert dd.too_many_requests == 1 and worker.stats.retried == 0
    assert len(dd.channel_messages[CHAN]) == 1


async def test_429_without_via_is_retried_by_the_worker(dd: DiscordDouble, worker: DeliveryWorker) -> None:
    await ask(dd, "subscribe", {"metric": "funding", "asset": "btc"}, user=MANAGER)
    dd.fail_next(CHAN, 429, retry_after=0.1, via=False)  # discord.py raises: the worker waits Retry-After
    start = time.monotonic()
    await fire(worker)
    await dd.wait_channel_messages(CHAN)
    assert time.monotonic() - start >= 1.0  # Retry-After: 1
    assert worker.stats.retried == 1 and len(dd.channel_messages[CHAN]) == 1


@pytest.mark.parametrize("status", [403, 404])
async def test_forbidden_or_missing_channel_is_unsubscribed(
    dd: DiscordDouble, worker: DeliveryWorker, status: int
) -> None:
    await ask(dd, "subscribe", {"metric": "all", "asset": "btc"}, channel=CHAN, user=MANAGER)
    await ask(dd, "subscribe", {"metric": "funding", "asset": "btc"}, channel=CHAN2, user=MANAGER)
    dd.fail_next(CHAN, status)
    await fire(worker)
    await dd.wait_channel_messages(CHAN2)
    await until(lambda: worker.stats.gone == 1)
    assert await worker.store.topics_of(f"dc:{CHAN}") == []
    assert await worker.store.subscribers("funding:BTC") == {f"dc:{CHAN2}"}
    assert dd.requests.count(("POST", f"/channels/{CHAN}/messages")) == 1  # no second invalid request


async def test_sender_outcomes(dd: DiscordDouble, frontend: DiscordFrontend) -> None:
    sender = DiscordSender(frontend.client, frontend.pacer)
    assert sender.platform == "dc"
    assert (await sender.send(CHAN, ALERT)).outcome is Outcome.OK
    dd.fail_next(CHAN, 400)
    failed = await sender.send(CHAN, ALERT)
    assert failed.outcome is Outcome.FAILED and "400" in failed.detail
    dd.fail_next(CHAN, 503)  # not one of the statuses discord.py retries itself
    assert (await sender.send(CHAN, ALERT)).outcome is Outcome.RETRY
    dd.fail_next(CHAN, 429, retry_after=2.5, via=False)
    limited = await sender.send(CHAN, ALERT)
    assert limited.outcome is Outcome.RETRY and limited.retry_after_s == 2.5
    assert [m["embeds"][0]["title"] for m in dd.channel_messages[CHAN]] == [ALERT.title]


async def test_a_limited_channel_waits_in_its_own_lane(
    dd: DiscordDouble, frontend: DiscordFrontend, worker: DeliveryWorker
) -> None:
    """A 429 for one channel holds that channel in the pacer; the next alerts reach the other one meanwhile."""
    await ask(dd, "subscribe", {"metric": "funding", "asset": "btc"}, channel=CHAN, user=MANAGER)
    await ask(dd, "subscribe", {"metric": "funding", "asset": "btc"}, channel=CHAN2, user=MANAGER)
    dd.fail_next(CHAN, 429, retry_after=0.1, via=False)  # Retry-After: 1
    start = time.monotonic()
    await fire(worker)
    await fire(worker)
    assert len(await dd.wait_channel_messages(CHAN2, 2)) == 2
    assert time.monotonic() - start < 0.9 and CHAN not in dd.channel_messages
    assert len(await dd.wait_channel_messages(CHAN, 2)) == 2
    assert (frontend.pacer.stats.lane_holds, frontend.pacer.stats.global_holds) == (1, 0)


async def test_a_broadcast_to_many_channels_stays_under_the_global_limit(dd: DiscordDouble, core: CommandCore) -> None:
    """discord.py waits on the per-route buckets Discord announces, not on the 50 requests/s global limit:
    the pacer's global rate keeps a broadcast to 80 channels (plus a second alert to a few) under it."""
    channels = list(range(3001, 3081))
    dd.add_guild(3000, channel_ids=channels)
    dd.enforce_limits(per_channel=5, per_channel_window_s=5.0, global_per_s=50)
    async with running(core) as fe:
        store = AlertStore(core.store.redis, core.store.keys)
        for chan in channels:
            await store.subscribe(f"dc:{chan}", ["funding:BTC"])
        for chan in channels[:5]:
            await store.subscribe(f"dc:{chan}", ["basis:BTC"])
        w = DeliveryWorker(
            store,
            DiscordSender(fe.client, fe.pacer),
            group="discord",
            consumer="many",
            render=lambda e: Reply(title=f"alert [{e.rule_id}]"),
        )
        await w.ensure_group()
        stop = asyncio.Event()
        task = asyncio.create_task(w.run(stop))
        try:
            await store.commit(
                [], [event_for(RULE, ts_ms=NOW), event_for(replace(RULE, id="r2", metric="basis"), ts_ms=NOW)]
            )
            await until(lambda: w.stats.sent == len(channels) + 5)
        finally:
            stop.set()
            await task
    assert dd.too_many_requests == 0
    for chan in channels[:5]:
        assert [m["embeds"][0]["title"] for m in dd.channel_messages[chan]] == ["alert [r1]", "alert [r2]"]
