"""Limits on what a source may do to us: answers capped in size, ``Retry-After`` honoured.

- Size: a response body is read in chunks and abandoned as soon as it passes ``max_body_bytes``
  (a declared ``Content-Length`` over the cap is refused before reading anything), so a 50 MB
  answer costs at most the cap in memory, and no JSON parse of it stalls the event loop.
- ``Retry-After`` on 418/429 (seconds or an HTTP date) becomes ``RateLimited.retry_after_s``; the
  watcher runner waits at least that long before the next poll of that source.

``CappedResponse`` is an aiohttp response class: ccxt gets a session built with it
(:func:`capped_session`), the flow providers read through :func:`read_capped`.
"""

from __future__ import annotations

import email.utils
import ssl
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import certifi

from watchers.errors import RateLimited, SourceError, SourceUnavailable

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024  # the largest real answer (binance exchangeInfo) is about 5 MB
MAX_RETRY_AFTER_S = 3600.0


class ResponseTooLarge(aiohttp.ClientPayloadError):
    """A response body passed the cap; nothing of it is used."""


def _too_large(url: Any, cap: int, declared: int | None = None) -> ResponseTooLarge:
    size = f"declares {declared} bytes" if declared is not None else f"passed {cap} bytes"
    return ResponseTooLarge(f"answer from {getattr(url, 'path', url)} {size}: over the {cap // 1024 // 1024} MB cap")


async def read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body of ``resp``, or ResponseTooLarge as soon as it passes ``cap`` bytes."""
    if resp.content_length is not None and resp.content_length > cap:
        resp.close()
        raise _too_large(resp.url, cap, resp.content_length)
    chunks: list[bytes] = []  # joined once at the end: growing one buffer would copy it over and over
    size = 0
    try:
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > cap:
                raise _too_large(resp.url, cap)
            chunks.append(chunk)
    except BaseException:
        chunks.clear()
        resp.close()  # drop the connection: the rest of the body is never read
        raise
    return b"".join(chunks)


class CappedResponse(aiohttp.ClientResponse):
    """An aiohttp response whose ``read()`` (and so ``text()``/``json()``) refuses bodies over the cap."""

    max_body_bytes = DEFAULT_MAX_BODY_BYTES

    async def read(self) -> bytes:
        if self._body is None:
            self._body = await read_capped(self, self.max_body_bytes)
        return await super().read()


def capped_session(max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> aiohttp.ClientSession:
    """A session (verifying TLS against certifi, as ccxt does) whose responses are capped in size."""
    response_class = type("CappedResponseN", (CappedResponse,), {"max_body_bytes": max_body_bytes})
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=certifi.where()))
    return aiohttp.ClientSession(connector=connector, response_class=response_class)


def retry_after_s(headers: Mapping[str, str] | None, *, now_s: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks us to wait (delta-seconds or HTTP date), capped; None if absent."""
    if not headers:
        return None
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if raw is None:
        return None
    raw = str(raw).strip()
    try:
        wait = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        wait = when.timestamp() - (time.time() if now_s is None else now_s)
    if wait != wait:  # NaN
        return None
    return max(0.0, min(MAX_RETRY_AFTER_S, wait))


def limit_error(
    source: str, e: BaseException, headers: Mapping[str, str] | None, rate_limited: bool
) -> SourceError | None:
    """The source error for an oversized answer or a rate limit (with its Retry-After), else None."""
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, ResponseTooLarge):
            return SourceUnavailable(f"{source}: {cause}")
        cause = cause.__cause__
    if rate_limited:
        wait = retry_after_s(headers)
        if wait is not None:
            return RateLimited(
                f"{source}: rate limited ({type(e).__name__}), retry after {wait:.0f}s", retry_after_s=wait
            )
        return RateLimited(f"{source}: rate limited ({type(e).__name__}), no Retry-After given")
    return None
