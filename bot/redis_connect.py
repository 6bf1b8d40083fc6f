"""Connecting to Redis: plain, TLS, unix socket or through Sentinel, waiting with capped backoff.

Accepted URLs (``redis.url`` or ``REDIS_URL``):

- ``redis://[:password@]host:port/db``, ``rediss://...`` (TLS), ``unix:///path/redis.sock``
- ``redis+sentinel://[:password@]host1:26379[,host2:26379...]/mastername[/db]``: the master of
  ``mastername`` as the sentinels report it; after a failover the client follows the new master.
  The password is the data nodes' password (the sentinels are asked without one).

Redis unreachable at start is one log line per attempt, retried with capped backoff until it comes up
or the process is asked to stop. Every command has a socket timeout, so a frozen Redis surfaces as an
error the callers already survive instead of a hang.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from core.redaction import safe_url

log = logging.getLogger(__name__)

SENTINEL_SCHEME = "redis+sentinel"
SOCKET_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
FIRST_RETRY_S = 0.5
MAX_RETRY_S = 30.0


class RedisUnavailable(Exception):
    """Redis did not answer; the message is one line naming the address (never the password)."""


def parse_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str, int, str | None]:
    """(sentinel addresses, master name, db, password) of a ``redis+sentinel://`` URL."""
    parts = urlsplit(url)
    netloc = parts.netloc
    password: str | None = None
    if "@" in netloc:
        info, _, netloc = netloc.rpartition("@")
        password = unquote(info.partition(":")[2]) or None
    hosts: list[tuple[str, int]] = []
    for item in netloc.split(","):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        if not host or not port.isdigit():
            raise ValueError(f"sentinel address {item!r} is not host:port")
        hosts.append((host, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError("expected redis+sentinel://host:port[,host:port]/mastername[/db]")
    return hosts, path[0], int(path[1]) if len(path) == 2 else 0, password


def client_for(url: str) -> Redis:
    """A client for ``url`` (not yet connected), with timeouts that turn a frozen server into errors."""
    kw: dict[str, Any] = {
        "decode_responses": False,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "health_check_interval": 30,
    }
    if urlsplit(url).scheme == SENTINEL_SCHEME:
        hosts, master, db, password = parse_sentinel_url(url)
        sentinel_kw = {"socket_timeout": CONNECT_TIMEOUT_S, "socket_connect_timeout": CONNECT_TIMEOUT_S}
        node_kw = {k: v for k, v in kw.items() if k != "decode_responses"}
        # redis-py leaves Sentinel.__init__ unannotated
        sentinel = Sentinel(
            hosts,
            sentinel_kwargs=sentinel_kw,
            db=db,
            password=password,  # type: ignore[no-untyped-call]
            **node_kw,
        )
        client: Redis = sentinel.master_for(master, decode_responses=False)
        _SENTINELS[id(client)] = sentinel
        return client
    return Redis.from_url(url, **kw)


# the Sentinel manager behind each client from client_for: its own connections to the sentinels are closed
# with the client (closing the client alone leaves them open)
_SENTINELS: dict[int, Sentinel] = {}


async def close(client: Redis) -> None:
    """Close a client from :func:`client_for` and, for a Sentinel URL, its connections to the sentinels."""
    await client.aclose()
    sentinel = _SENTINELS.pop(id(client), None)
    if sentinel is not None:
        for s in sentinel.sentinels:
            await s.aclose()


def describe(url: str, e: BaseException) -> str:
    """One line for an unreachable Redis: where, and why (no password, no traceback)."""
    reason = " ".join(str(e).split())[:160] or type(e).__name__
    return f"Redis at {safe_url(url)} is unreachable ({type(e).__name__}: {reason})"


async def ping_once(client: Redis, url: str, timeout_s: float = CONNECT_TIMEOUT_S + 1) -> None:
    """PING once; raises RedisUnavailable with a one-line message."""
    try:
        await asyncio.wait_for(client.ping(), timeout_s)
    except (RedisError, OSError, TimeoutError) as e:
        raise RedisUnavailable(describe(url, e)) from None


async def connect(
    url: str,
    stop: asyncio.Event | None = None,
    *,
    first_retry_s: float = FIRST_RETRY_S,
    max_retry_s: float = MAX_RETRY_S,
    rng: random.Random | None = None,
) -> Redis | None:
    """A client that answered PING, retrying with capped backoff; None when ``stop`` was set first."""
    rng = rng or random.Random()
    client = client_for(url)
    delay = first_retry_s
    attempt = 0
    while True:
        attempt += 1
        try:
            await ping_once(client, url)
        except RedisUnavailable as e:
            wait = min(max_retry_s, delay) * rng.uniform(0.8, 1.2)
            log.warning("%s; retry %d in %.1fs", e, attempt, wait)
            delay = min(max_retry_s, delay * 2)
            if stop is None:
                await asyncio.sleep(wait)
                continue
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                continue
            await close(client)
            return None
        if attempt > 1:
            log.info("Redis at %s is up after %d attempt(s)", safe_url(url), attempt)
        return client
