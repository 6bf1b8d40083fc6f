"""Replicas: one active process per source (data) and per Telegram token (chat); a standby takes over within
seconds of a SIGKILL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from bot.app import run
from bot.leases import LeaseKeeper
from bot.settings import parse_settings
from core.keys import Keys
from tests.fakes.discord_server import DiscordDouble
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.telegram import TOKEN, BotApiDouble
from tests.production.helpers import bot_env, free_port, read_until, spawn_bot, write_config
from tests.production.test_observability import scrape, value

SOURCES = [f"market:{v}" for v in ExchangeDouble.VENUES]


async def polls(session: aiohttp.ClientSession, port: int) -> float:
    samples = await scrape(session, port)
    return sum(value(samples, "basiswatch_source_poll_seconds_count", source=s) for s in SOURCES)


async def holders(redis: Redis, keys: Keys) -> set[bytes | None]:
    return {await redis.get(keys.lease(s)) for s in SOURCES}


async def test_standby_takes_over_when_the_active_data_process_dies(
    exchanges: ExchangeDouble, redis_url: str, redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    for p in exchanges.venues["okx"].perps:
        if p.asset == "BTC":
            p.funding_rate = 0.0007  # above the rule from the first poll: it fires exactly once
    ports = [free_port(), free_port()]

    def config(i: int) -> Path:
        return write_config(
            tmp_path / f"data{i}.toml",
            {
                "redis": {"url": redis_url, "key_prefix": keys.prefix},
                "console": {"enabled": "off"},
                "flows": {"providers": []},
                "observability": {"port": ports[i], "host": "127.0.0.1"},
                "replicas": {"lease_ttl_s": 2},
                "alerts": {"default_rules": ["funding btc above 0.05% venue okx"]},
                "watchers": {
                    "poll_interval_s": 0.3,
                    "request_timeout_s": 1.0,
                    "max_backoff_s": 0.5,
                    "rest_base_urls": {v: exchanges.url(v) for v in ExchangeDouble.VENUES},
                },
            },
        )

    active = await spawn_bot("--config", str(config(0)), "--role", "data")
    standby = None
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 20
            while None in await holders(redis, keys):
                assert time.monotonic() < deadline, "the first data process took no lease"
                await asyncio.sleep(0.1)
            (first_holder,) = await holders(redis, keys)
            assert first_holder is not None
            standby = await spawn_bot("--config", str(config(1)), "--role", "data")
            deadline = time.monotonic() + 20
            while True:  # both up, scraped
                try:
                    a0, b0 = await polls(session, ports[0]), await polls(session, ports[1])
                    break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, "the data processes did not serve /metrics"
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.5)
            a1, b1 = await polls(session, ports[0]), await polls(session, ports[1])
            assert a1 > a0 and b1 == b0 == 0  # only the active process polls
            assert await redis.xlen(keys.alerts()) == 1

            active.kill()  # SIGKILL: no lease handed back, the TTL has to run out
            await active.wait()
            killed_at = time.monotonic()
            while await holders(redis, keys) == {first_holder}:
                assert time.monotonic() - killed_at < 10, "no takeover"
                await asyncio.sleep(0.1)
            took_s = time.monotonic() - killed_at
            while await polls(session, ports[1]) < 3 * len(SOURCES):
                assert time.monotonic() - killed_at < 15, "the standby does not poll"
                await asyncio.sleep(0.1)
            (second_holder,) = await holders(redis, keys)
            assert second_holder not in (None, first_holder)
            assert took_s < 4, f"takeover took {took_s:.1f}s"  # the 2 s TTL, then the next renewal
            assert await redis.xlen(keys.alerts()) == 1  # the fired rule's state is in Redis: no second alert
    finally:
        for proc in (active, standby):
            if proc is not None and proc.returncode is None:
                proc.terminate()
                await proc.wait()


async def test_chat_replicas_one_telegram_poller_standby_takes_over(
    telegram: BotApiDouble, redis_url: str, redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    """Two --role chat processes on one token: one polls (no 409), the other answers once the first is killed."""
    cfg = write_config(
        tmp_path / "chat.toml",
        {
            "redis": {"url": redis_url, "key_prefix": keys.prefix},
            "console": {"enabled": "off"},
            "flows": {"providers": []},
            "observability": {"port": 0},
            "alerts": {"default_rules": []},
            "replicas": {"lease_ttl_s": 2},
            "telegram": {"base_url": telegram.base_url, "base_file_url": telegram.base_file_url, "poll_timeout_s": 1},
        },
    )
    env = bot_env(TELEGRAM_BOT_TOKEN=TOKEN)
    procs = [await spawn_bot("--config", str(cfg), "--role", "chat", env=env)]
    try:
        assert "/basis <asset>" in await ask(telegram, 501, "/help", within_s=20)
        procs.append(await spawn_bot("--config", str(cfg), "--role", "chat", env=env))
        assert procs[1].stderr is not None
        await read_until(procs[1].stderr, b"running role=", 20)
        await asyncio.sleep(1.0)  # the standby is up and waiting for the poller lease
        assert "/basis <asset>" in await ask(telegram, 502, "/help", within_s=5)
        procs[0].kill()
        await procs[0].wait()
        killed_at = time.monotonic()
        assert "/basis <asset>" in await ask(telegram, 503, "/help", within_s=8)
        assert time.monotonic() - killed_at < 5
        assert not [e for e in telegram.errors if e[0] == "getUpdates" and e[1] == 409], telegram.errors
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()


async def ask(tg: BotApiDouble, chat_id: int, text: str, *, within_s: float) -> str:
    seen = len(tg.sent_to(chat_id))
    tg.push_message(chat_id, text, user_id=chat_id, chat_type="private")
    sent = await tg.wait_sent(seen + 1, chat_id=chat_id, timeout=within_s)
    return sent[seen].plain


async def test_leases_are_taken_all_or_nothing(redis: Redis, keys: Keys) -> None:
    """A standby never takes part of an active process's sources, even when one of its leases lapses."""
    names = ["market:okx", "market:bybit", "flows:coinmetrics"]
    a, b = (LeaseKeeper(redis, keys.lease, names, ttl_s=5) for _ in range(2))
    await a.tick()
    await b.tick()
    assert a.held == set(names) and b.held == set()
    await redis.delete(keys.lease("market:bybit"))  # one lease lapsed, the others are still a's
    await b.tick()
    assert b.held == set()
    await a.tick()
    assert a.held == set(names)
    await a.release()
    await b.tick()
    assert b.held == set(names) and a.held == set()


async def test_discord_gateway_one_replica_at_a_time(redis_url: str, redis: Redis, keys: Keys) -> None:
    """Two chat processes on one Discord token: one gateway session; the other connects once the first stops."""
    settings = parse_settings(
        {
            "redis": {"url": redis_url, "key_prefix": keys.prefix},
            "discord": {"token": "discord-test-token-0123456789"},
            "console": {"enabled": "off"},
            "flows": {"providers": []},
            "observability": {"port": 0},
            "alerts": {"default_rules": []},
            "replicas": {"lease_ttl_s": 2},
        },
        env={},
    )
    async with DiscordDouble() as dd:
        dd.add_guild(9001, channel_ids=[9101])
        with dd.patch_discord():
            stops = [asyncio.Event(), asyncio.Event()]
            apps = [asyncio.create_task(run(settings, stops[0], role="chat"))]
            try:
                await dd.wait_ready(timeout=10)
                apps.append(asyncio.create_task(run(settings, stops[1], role="chat")))
                await asyncio.sleep(1.5)  # the second is up, logged in, waiting for the gateway lease
                assert len(dd.gateway_connections) == 1
                res = await dd.interact("help", user_id=5, guild_id=9001, channel_id=9101, timeout=5)
                assert "/basis" in str(res["data"])
                stops[0].set()  # a stopped replica hands the lease over at once
                await asyncio.wait_for(apps[0], 15)
                for _ in range(80):
                    if len(dd.gateway_connections) == 2 and dd._live_sessions():
                        break
                    await asyncio.sleep(0.1)
                assert len(dd.gateway_connections) == 2
                res = await dd.interact("help", user_id=5, guild_id=9001, channel_id=9101, timeout=5)
                assert "/basis" in str(res["data"])

                # the lease taken by someone else (as after a pause longer than its TTL): the gateway is left,
                # then joined again once the lease is free
                await redis.set(keys.lease("discord-gateway"), "someone-else", px=3000)
                for _ in range(50):
                    if not dd._live_sessions():
                        break
                    await asyncio.sleep(0.1)
                assert not dd._live_sessions()
                for _ in range(60):
                    if len(dd.gateway_connections) == 3 and dd._live_sessions():
                        break
                    await asyncio.sleep(0.1)
                res = await dd.interact("help", user_id=5, guild_id=9001, channel_id=9101, timeout=5)
                assert "/basis" in str(res["data"])
                assert len(dd.gateway_connections) == 3 and len(dd._live_sessions()) == 1
            finally:
                for ev in stops:
                    ev.set()
                await asyncio.wait_for(asyncio.gather(*apps, return_exceptions=True), 20)
