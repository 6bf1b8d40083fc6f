"""Errors a source raises; foreign (ccxt, aiohttp, JSON) exceptions are translated into these.

SourceError                   base: the poll failed, nothing was stored
 ├── SourceUnavailable        network trouble, timeout, 5xx, rate limit: retried with backoff
 │    └── RateLimited         418/429: the next poll waits at least the source's Retry-After
 ├── SourceRejected           the venue or provider refused us (auth, 4xx): retried slowly
 └── MalformedResponse        the answer did not have the expected shape: dropped, retried
"""

from __future__ import annotations


class SourceError(Exception):
    """A poll failed; the message is what /status shows (never contains secrets)."""

    retry_after_s: float = 0.0  # the runner waits at least this long before polling the source again


class SourceUnavailable(SourceError):
    """Network trouble, a timeout, a 5xx or a rate limit: try again after a backoff."""


class RateLimited(SourceUnavailable):
    """The source said 418/429; ``retry_after_s`` is its Retry-After (0 when it gave none)."""

    def __init__(self, message: str, *, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SourceRejected(SourceError):
    """The source refused the request (bad key, forbidden, bad request): retry at a slow pace."""


class MalformedResponse(SourceError):
    """The answer could not be understood; nothing from it is stored."""
