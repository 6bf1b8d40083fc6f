"""What every venue adapter shares: the poll's parts, number parsing, and ccxt error translation."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import ccxt.async_support as ccxt

from core.models import BasisSample, FundingSample, OpenInterestSample
from core.redaction import scrub
from watchers.errors import MalformedResponse, SourceError, SourceRejected, SourceUnavailable

FUNDING, BASIS, OI = "funding", "basis", "oi"
PARTS = (FUNDING, BASIS, OI)
FUNDING_INFO = "funding_intervals"  # binance's auxiliary endpoint: feeds intervals, degrades nothing else


@dataclass(slots=True)
class Part:
    """One metric's share of a poll: its samples, or why it failed (then nothing of it is stored)."""

    samples: list[Any] = field(default_factory=list)
    error: SourceError | None = None


@dataclass(slots=True)
class Snapshot:
    """What one poll of a venue produced, before sanity checks.

    ``parts`` holds only the metrics the venue serves: a metric it does not serve (no dated futures on
    hyperliquid) is absent, so nothing of it is stored or reported as failing.
    """

    parts: dict[str, Part] = field(default_factory=lambda: {p: Part() for p in PARTS})
    aux: dict[str, str | None] = field(default_factory=dict)  # auxiliary endpoint -> None (ok) or its error
    dropped: list[str] = field(default_factory=list)  # symbols skipped for missing fields
    requests: int = 0

    @property
    def funding(self) -> list[FundingSample]:
        return self.parts[FUNDING].samples if FUNDING in self.parts else []

    @property
    def basis(self) -> list[BasisSample]:
        return self.parts[BASIS].samples if BASIS in self.parts else []

    @property
    def oi(self) -> list[OpenInterestSample]:
        return self.parts[OI].samples if OI in self.parts else []

    def fail(self, names: tuple[str, ...], error: SourceError) -> None:
        for n in names:
            if n in self.parts:
                self.parts[n] = Part(error=error)

    def add(self, name: str, sample: Any) -> None:
        if name in self.parts:
            self.parts[name].samples.append(sample)


def num(x: Any) -> float | None:
    """A float from a number or numeric string; None for None/'' or garbage."""
    if x is None or x == "" or isinstance(x, bool):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def integer(x: Any) -> int | None:
    v = num(x)
    return None if v is None else int(v)


def interval_s(text: Any) -> int | None:
    """'8h' -> 28800, '4h' -> 14400, '30m' -> 1800."""
    if not isinstance(text, str) or len(text) < 2:
        return None
    n, unit = num(text[:-1]), text[-1]
    mult = {"h": 3600, "m": 60, "d": 86400}.get(unit)
    return int(n * mult) if mult and n else None


def mapping(found: Any, what: str) -> dict[str, Any]:
    """A ccxt answer that must be a symbol -> structure mapping; anything else is a malformed answer."""
    if not isinstance(found, dict):
        raise MalformedResponse(f"{what} answer is not a mapping")
    return found


def translate(venue: str, e: BaseException) -> SourceError:
    """Map ccxt and parsing exceptions to the project's source errors."""
    name = type(e).__name__
    msg = scrub(str(e).replace("\n", " "))[:200]  # ccxt puts the request URL in its messages
    if isinstance(e, ccxt.RequestTimeout):
        return SourceUnavailable(f"timeout: {msg}")
    if isinstance(e, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return SourceRejected(f"{name}: {msg}")
    if isinstance(e, ccxt.NetworkError):  # includes DDoSProtection, RateLimitExceeded, ExchangeNotAvailable
        return SourceUnavailable(f"{name}: {msg}")
    if isinstance(e, ccxt.BadResponse | ccxt.NullResponse):
        return MalformedResponse(f"{name}: {msg}")
    if isinstance(e, ccxt.ExchangeError):
        return SourceUnavailable(f"{name}: {msg}")
    if isinstance(e, json.JSONDecodeError | KeyError | TypeError | ValueError | AttributeError | IndexError):
        return MalformedResponse(f"unexpected answer ({name}: {msg})")
    return SourceUnavailable(f"{name}: {msg}")
