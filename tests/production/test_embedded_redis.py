"""The embedded Redis is owned: one bot per data folder, and its server dies with the bot (or is reaped)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.embedded_redis import DataDirBusy, EmbeddedRedis
from tests.production.helpers import ROOT, free_port, read_until, start_redis, stop, write_config

HOLDER = """
import asyncio, sys
from bot.embedded_redis import EmbeddedRedis

async def main():
    r = EmbeddedRedis(sys.argv[1])
    await r.start()
    print("server", r.proc.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def _wait_dead(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_second_bot_on_one_data_folder_is_refused_clearly(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    url = await first.start()
    client = Redis.from_url(url)
    try:
        await client.set("k", "v")
        with pytest.raises(DataDirBusy, match=f"in use by another bot \\(pid {os.getpid()}\\)"):
            await EmbeddedRedis(tmp_path).start()
        assert await client.get("k") == b"v"  # the first one's socket and server are untouched

        # the same, as an operator sees it: one line, exit 1, no traceback
        cfg = write_config(
            tmp_path / "config.toml",
            {
                "redis": {"data_dir": str(tmp_path)},
                "console": {"enabled": "off"},
                "flows": {"providers": []},
                "observability": {"port": 0},
            },
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "--config",
            str(cfg),
            "--role",
            "chat",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        printed = (out + err).decode()
        assert proc.returncode == 1 and "is in use by another bot" in printed and "Traceback" not in printed
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()
        await first.stop()
    second = EmbeddedRedis(tmp_path)  # the lock goes with the first bot
    await second.start()
    await second.stop()


async def test_sigkilled_bot_takes_its_redis_server_along(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(tmp_path), cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await read_until(proc.stdout, b"\n", 15)
    server_pid = int(line.split()[1])
    assert _alive(server_pid)
    proc.kill()
    await proc.wait()
    assert await _wait_dead(server_pid, 3), "the embedded redis-server outlived its bot"
    again = EmbeddedRedis(tmp_path)  # and the folder is free for the next start
    await again.start()
    await again.stop()


async def test_server_left_by_a_killed_bot_is_reaped_at_next_start(tmp_path: Path) -> None:
    """Where the kernel could not take it down (no PDEATHSIG), the pidfile finds it at the next start."""
    leftover = start_redis(free_port())
    try:
        (tmp_path / "redis.pid").write_text(str(leftover.pid))
        fresh = EmbeddedRedis(tmp_path)
        await fresh.start()
        try:
            for _ in range(60):
                if leftover.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            assert leftover.returncode == -signal.SIGKILL
        finally:
            await fresh.stop()
    finally:
        stop(leftover)
