"""Redis unreachable at start, restarted empty while running, failed over through Sentinel; healthcheck."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from redis.asyncio import Redis

from bot.app import run
from bot.redis_connect import client_for, close, connect
from core.keys import Keys
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.telegram import BotApiDouble
from tests.local_bot import local_settings
from tests.production.helpers import (
    free_port,
    read_until,
    spawn_bot,
    start_redis,
    start_sentinel,
    stop,
    write_config,
)

PASSWORD = "redis-PW-SeCrEt-7"


async def test_unreachable_at_start_waits_with_one_line_then_runs(tmp_path: Path) -> None:
    """No traceback and no restart loop: one line per attempt, then the bot runs once Redis is up."""
    port = free_port()
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    cfg = write_config(
        tmp_path / "config.toml",
        {
            "redis": {"url": url, "key_prefix": "faultstart"},
            "console": {"enabled": "off"},
            "flows": {"providers": []},
            "observability": {"port": 0},
        },
    )
    proc = await spawn_bot("--config", str(cfg), "--role", "chat")
    server = None
    try:
        assert proc.stderr is not None
        err = await read_until(proc.stderr, b"retry 2 in", 15)
        server = start_redis(port, "--requirepass", PASSWORD)
        err += await read_until(proc.stderr, b"running role=", 15)
        proc.send_signal(signal.SIGTERM)
        out, rest = await asyncio.wait_for(proc.communicate(), 15)
        printed = (err + rest + out).decode()
        assert proc.returncode == 0, printed[-2000:]
        assert f"Redis at redis://***@127.0.0.1:{port}/0 is unreachable" in printed
        assert "is up after" in printed
        assert "Traceback" not in printed and PASSWORD not in printed
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if server is not None:
            stop(server)


async def test_healthcheck_reports_plainly(tmp_path: Path) -> None:
    port = free_port()
    cfg = write_config(tmp_path / "config.toml", {"redis": {"url": f"redis://:{PASSWORD}@127.0.0.1:{port}/0"}})
    proc = await spawn_bot("--config", str(cfg), "healthcheck")
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    printed = (out + err).decode()
    assert proc.returncode == 1
    assert printed.startswith(f"unhealthy: Redis at redis://***@127.0.0.1:{port}/0 is unreachable"), printed
    assert "Traceback" not in printed and PASSWORD not in printed and printed.count("\n") == 1

    server = start_redis(port, "--requirepass", PASSWORD)
    try:
        proc = await spawn_bot("--config", str(cfg), "healthcheck")
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 1 and out.decode() == "unhealthy: no heartbeat in Redis\n"
    finally:
        stop(server)


async def test_redis_restarted_empty_then_frozen_while_running(
    exchanges: ExchangeDouble, telegram: BotApiDouble, keys: Keys
) -> None:
    """Restarted empty: heartbeat, source lease and market data are back within seconds; frozen: it carries on."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_redis(port)
    settings = local_settings(
        exchanges, telegram, url, keys, flows={"providers": []}, observability={"port": 0}, alerts={"default_rules": []}
    )
    probe = Redis.from_url(url)
    stop_event = asyncio.Event()
    app = asyncio.create_task(run(settings, stop_event, role="data"))
    # (the evaluator's own lease comes back too, at its next check: up to 10 s, too slow to wait for here)
    wanted = [keys.heartbeat("data"), keys.lease("market:okx"), keys.latest("funding", "BTC", "okx")]

    async def all_present(within_s: float) -> None:
        deadline = time.monotonic() + within_s
        missing = wanted
        while time.monotonic() < deadline:
            try:
                missing = [k for k in wanted if not await probe.exists(k)]
            except Exception:  # the probe's own connection drops with the server
                pass
            if not missing:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"not recreated: {missing}")

    try:
        await all_present(15)
        await probe.set("marker", "1")
        stop(server)  # killed: nothing survives, the data set comes back empty
        await asyncio.sleep(1.0)
        server = start_redis(port)
        await probe.connection_pool.disconnect()  # the probe's connections died with the server
        assert not await probe.exists("marker")  # restarted empty
        await all_present(10)

        # frozen for 3 s (SIGSTOP): calls wait (each has a socket timeout), nothing is lost, work goes on
        okx_polls = await probe.hget(keys.source("okx"), "last_ok_ms")
        server.send_signal(signal.SIGSTOP)
        await asyncio.sleep(3.0)
        server.send_signal(signal.SIGCONT)
        thawed_ms = time.time() * 1000
        for _ in range(60):
            beat = await probe.get(keys.heartbeat("data"))
            last_ok = await probe.hget(keys.source("okx"), "last_ok_ms")
            if beat and int(beat) > thawed_ms and last_ok != okx_polls:
                break
            await asyncio.sleep(0.1)
        assert beat and int(beat) > thawed_ms and last_ok != okx_polls
        assert await probe.get(keys.lease("market:okx")) is not None
        assert not app.done()
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGCONT)
        stop_event.set()
        await asyncio.wait_for(app, 15)
        await probe.aclose()
        stop(server)


async def test_sentinel_url_follows_a_failover(tmp_path: Path) -> None:
    """redis+sentinel:// finds the master through a real redis-sentinel and follows it after a failover."""
    p1, p2, ps = free_port(), free_port(), free_port()
    master = start_redis(p1)
    replica = start_redis(p2, "--replicaof", "127.0.0.1", str(p1))
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {ps}\nsentinel monitor bw 127.0.0.1 {p1} 1\nsentinel down-after-milliseconds bw 1000\n"
        "sentinel failover-timeout bw 3000\n",
        encoding="utf-8",
    )
    sentinel = start_sentinel(conf, ps)
    client = None
    try:
        client = await connect(f"redis+sentinel://127.0.0.1:{ps}/bw")
        assert client is not None
        await client.set("bw:sentinel:probe", "1")
        for _ in range(100):  # the replica has synced
            if await client.execute_command("WAIT", 1, 100):
                break
        stop(master)  # the master dies: the sentinel promotes the replica after down-after-milliseconds
        direct = client_for(f"redis://127.0.0.1:{p2}/0")
        seen = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                await client.set("bw:sentinel:probe", "2")
                seen = await direct.get("bw:sentinel:probe")
            except Exception:  # no master until the promotion
                await asyncio.sleep(0.1)
            if seen == b"2":
                break
        await direct.aclose()
        assert seen == b"2", "writes did not follow the failover"
        assert await client.get("bw:sentinel:probe") == b"2"
    finally:
        if client is not None:
            await close(client)
        for proc in (sentinel, replica, master):
            stop(proc)
