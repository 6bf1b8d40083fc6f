"""Shared fixtures: a real Redis (the machine's, or one started on a free port), isolated key prefixes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from core.keys import Keys
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.telegram import BotApiDouble


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """TEST_REDIS_URL, else the machine's Redis on 6379, else a redis-server started for the session."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    if _reachable("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        from bot.embedded_redis import find_redis_server

        binary = find_redis_server()
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _reachable("127.0.0.1", port):
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("could not start redis-server for the tests")
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def keys() -> Keys:
    """A key prefix unique to the test, so tests never see each other's data."""
    return Keys(prefix=f"test{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def redis(redis_url: str, keys: Keys) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=False)
    try:
        yield client
    finally:
        batch = [k async for k in client.scan_iter(match=f"{keys.prefix}:*", count=1000)]
        if batch:
            await client.delete(*batch)
        await client.aclose()


@pytest.fixture
async def exchanges() -> AsyncIterator[ExchangeDouble]:
    """The local exchange server, all five venues at their default state."""
    async with ExchangeDouble() as double:
        yield double


@pytest.fixture
async def telegram() -> AsyncIterator[BotApiDouble]:
    """The local Telegram Bot API server."""
    async with BotApiDouble() as double:
        yield double
