"""One GET returning JSON, with aiohttp, HTTP statuses and JSON errors translated into source errors.

    timeout, connection error, 408, 5xx        -> SourceUnavailable
    429                                        -> RateLimited        (the next poll waits its Retry-After)
    a body over the size cap                   -> SourceUnavailable  (read no further than the cap)
    401, 403                                   -> SourceRejected     ("key rejected"; never the key)
    any other 4xx                              -> SourceRejected     (bad request, unknown metric)
    200 with a body that is not JSON           -> MalformedResponse

The caller owns the ``aiohttp.ClientSession``. Keys travel in headers only, so no URL we log or put
in a message carries one; every message is still scrubbed of the key as a second line of defence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from core.redaction import basic_auth, scrub, split_userinfo
from watchers.errors import MalformedResponse, RateLimited, SourceRejected, SourceUnavailable
from watchers.flows.models import Clock, now_ms
from watchers.http_limits import DEFAULT_MAX_BODY_BYTES, ResponseTooLarge, read_capped, retry_after_s

log = logging.getLogger(__name__)

_SNIPPET = 160  # characters of a provider's error text we are willing to show in /status


class MinInterval:
    """Spaces request starts at least ``interval_s`` apart; share one between clients of one rate limit."""

    def __init__(
        self,
        interval_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if interval_s < 0:
            raise ValueError("interval_s must be >= 0")
        self.interval_s = interval_s
        self._monotonic = monotonic
        self._sleep = sleep
        self._next = float("-inf")
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return when the next request may start (callers queue up in order)."""
        async with self._lock:
            delay = self._next - self._monotonic()
            if delay > 0:
                await self._sleep(delay)
            self._next = self._monotonic() + self.interval_s


class KeyedProvider:
    """What the keyed providers share: the session, the key (kept out of reprs), limits and a clock."""

    name = "keyed"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: str | None,
        base_url: str,
        *,
        publication_lag_s: float = 4 * 3600,
        timeout_s: float = 30.0,
        min_interval_s: float = 0.0,
        clock: Clock = now_ms,
    ) -> None:
        self.session = session
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.publication_lag_s = publication_lag_s
        self.timeout_s = timeout_s
        self.limiter = MinInterval(min_interval_s)
        self.clock = clock
        self.requests = 0

    def __repr__(self) -> str:  # keeps the key out of any repr
        return f"{type(self).__name__}(base_url={self.base_url!r})"


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` replaced, one line, capped in length."""
    text = scrub(text, [secret] if secret else [])
    return " ".join(text.split())[:_SNIPPET]


def _error_detail(body: bytes) -> str:
    """The provider's own error message from a JSON error body, if it has one ('' otherwise)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    if isinstance(doc, dict):
        for holder in (doc.get("error"), doc.get("status"), doc):
            if isinstance(holder, dict) and isinstance(holder.get("message"), str):
                return str(holder["message"])
    return ""


def status_error(
    provider: str, status: int, *, retry_after: str | None, detail: str, keyed: bool
) -> SourceUnavailable | SourceRejected:
    """The source error for a non-2xx HTTP status (``detail`` must already be scrubbed)."""
    suffix = f": {detail}" if detail else ""
    if status in (401, 403):
        if keyed:
            # the body is left out: some APIs echo the credential they refused
            return SourceRejected(f"{provider}: key rejected (HTTP {status})")
        return SourceRejected(f"{provider}: request refused (HTTP {status}){suffix}")
    if status == 429:
        wait_s = retry_after_s({"Retry-After": retry_after} if retry_after else None)
        wait = f"retry after {wait_s:.0f}s" if wait_s is not None else "no Retry-After given"
        return RateLimited(f"{provider}: rate limited (HTTP 429), {wait}", retry_after_s=wait_s or 0.0)
    if status == 408 or status >= 500:
        return SourceUnavailable(f"{provider}: HTTP {status}{suffix}")
    if 400 <= status < 500:
        return SourceRejected(f"{provider}: request rejected (HTTP {status}){suffix}")
    return SourceUnavailable(f"{provider}: unexpected HTTP {status}")


async def get_json(
    session: aiohttp.ClientSession,
    provider: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float,
    secret: str | None = None,
    limiter: MinInterval | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Any:
    """GET ``url`` and decode its JSON body; every failure is a :mod:`watchers.errors` type."""
    if limiter is not None:
        await limiter.wait()
    url, creds = split_userinfo(url)  # a relay's user:pass goes as a header, never inside a printed URL
    if creds is not None:
        headers = {**(headers or {}), "Authorization": basic_auth(creds)}
    path = urlsplit(url).path
    log.debug("provider=%s GET %s", provider, path)
    try:
        async with session.get(
            url, params=params, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s), allow_redirects=False
        ) as resp:
            status = resp.status
            retry_after = resp.headers.get("Retry-After")
            body = await read_capped(resp, max_body_bytes)
    except ResponseTooLarge as e:
        raise SourceUnavailable(f"{provider}: {e}") from e
    except TimeoutError as e:
        raise SourceUnavailable(f"{provider}: timeout after {timeout_s:g}s on {path}") from e
    except aiohttp.ClientError as e:
        raise SourceUnavailable(f"{provider}: {type(e).__name__}: {redact(str(e), secret)}") from e
    if status != 200:
        detail = redact(_error_detail(body), secret) if secret is None else ""
        err = status_error(provider, status, retry_after=retry_after, detail=detail, keyed=secret is not None)
        log.info("provider=%s GET %s -> HTTP %d", provider, path, status)
        raise err
    try:
        return json.loads(body)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise MalformedResponse(f"{provider}: {path} answered with a body that is not JSON ({len(body)} bytes)") from e
