"""The normalized daily flow row every provider returns, and the checks every provider applies to it."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from core.models import FlowDay
from watchers.errors import MalformedResponse, SourceRejected

__all__ = ["FlowDay", "FlowProvider"]

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
DAY_S = 86_400

Clock = Callable[[], int]  # epoch milliseconds


def now_ms() -> int:
    """The wall clock in epoch milliseconds (the default clock of every provider)."""
    return int(time.time() * 1000)


class FlowProvider(Protocol):
    """A source of daily exchange flows; errors are :mod:`watchers.errors` types."""

    name: str

    async def fetch_days(self, asset: str, days: int) -> list[FlowDay]:
        """The last ``days`` complete UTC days, oldest first (fewer if the provider has fewer)."""
        ...


# parsing helpers shared by the providers ----------------------------------------------------------


def check_asset(provider: str, asset: str, supported: Mapping[str, str]) -> str:
    """The provider's own code for ``asset`` ("BTC" -> "btc"); SourceRejected naming what is supported."""
    code = supported.get(asset.strip().upper())
    if code is None:
        raise SourceRejected(
            f"{provider}: asset {asset!r} is not supported (supported: {', '.join(sorted(supported))})"
        )
    return code


def check_days(days: int) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a positive integer, got {days!r}")


def number(provider: str, value: Any, what: str) -> float:
    """A finite float from a JSON number or numeric string; MalformedResponse for anything else."""
    if isinstance(value, bool) or value is None:
        raise MalformedResponse(f"{provider}: {what} is {value!r}, not a number")
    if isinstance(value, int | float):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            raise MalformedResponse(f"{provider}: {what} is {value[:40]!r}, not a number") from None
    else:
        raise MalformedResponse(f"{provider}: {what} is a {type(value).__name__}, not a number")
    if not math.isfinite(x):
        raise MalformedResponse(f"{provider}: {what} is {x}, not a finite number")
    return x


def non_negative(provider: str, value: Any, what: str) -> float:
    """Flows, balances and prices cannot be negative: a negative one means a broken answer."""
    x = number(provider, value, what)
    if x < 0:
        raise MalformedResponse(f"{provider}: {what} is negative ({x})")
    return x


def day_start_ms(day: str) -> int:
    """'2021-04-12' -> epoch ms of 2021-04-12T00:00:00Z."""
    d = dt.date.fromisoformat(day)
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()) * 1000


def day_of_ms(ms: int) -> str:
    """Epoch ms -> the UTC day it falls in, '2021-04-12'."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date().isoformat()


def parse_day(provider: str, value: Any, what: str = "date") -> str:
    """'2021-04-12', '2021-04-12 00:00:00' or '2021-04-12T00:00:00.000000000Z' -> '2021-04-12'.

    Only midnight is accepted for a daily row: anything else means the window is not what we asked for.
    """
    if not isinstance(value, str) or len(value) < 10:
        raise MalformedResponse(f"{provider}: {what} is {value!r}, not a day")
    head, tail = value[:10], value[10:].lstrip("T ").rstrip("Z")
    try:
        day = dt.date.fromisoformat(head).isoformat()
    except ValueError:
        raise MalformedResponse(f"{provider}: {what} {value[:40]!r} is not a day") from None
    if tail and tail.replace("0", "").replace(":", "").replace(".", "") != "":
        raise MalformedResponse(f"{provider}: {what} {value[:40]!r} is not the start of a UTC day")
    return day


def estimated_available_ms(day: str, lag_s: float, received_ms: int) -> int:
    """When a day's value became known, if the provider does not say: the day's end plus a publication lag.

    Capped at ``received_ms``: a value we hold was known by the time we received it.
    """
    return min(day_start_ms(day) + DAY_MS + int(lag_s * 1000), received_ms)


def complete(day: str, received_ms: int) -> bool:
    """True once the UTC day has ended (a provider may also list today's partial day)."""
    return day_start_ms(day) + DAY_MS <= received_ms


def last_days(provider: str, rows: list[FlowDay], days: int) -> list[FlowDay]:
    """Oldest first, the last ``days`` of them; an empty list is a malformed answer."""
    if not rows:
        raise MalformedResponse(f"{provider}: no complete days in the answer")
    rows = sorted(rows, key=lambda r: r.day)
    return rows[-days:]


def common_days(provider: str, series: Mapping[str, Mapping[str, Any]], received_ms: int) -> list[str]:
    """The complete days every series holds, oldest first.

    Each series is fetched with its own row limit, so their oldest ends can differ by a day: the window
    starts at the latest of the series' first days. Inside that window a day missing from one series
    (while another has it) means a partial answer: MalformedResponse, nothing is returned.
    """
    done = {name: {d for d in values if complete(d, received_ms)} for name, values in series.items()}
    if not done or any(not days for days in done.values()):
        empty = sorted(name for name, days in done.items() if not days)
        raise MalformedResponse(f"{provider}: no complete days in series {', '.join(empty) or '(none)'}")
    start = max(min(days) for days in done.values())
    window = {name: {d for d in days if d >= start} for name, days in done.items()}
    every: set[str] = set().union(*window.values())
    for name, days in window.items():
        missing = sorted(every - days)
        if missing:
            shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise MalformedResponse(f"{provider}: series {name} lacks {len(missing)} day(s): {shown}")
    return sorted(every)


def require_key(provider: str, api_key: str | None) -> str:
    """The configured key, stripped; SourceRejected (naming no key) when there is none."""
    key = (api_key or "").strip()
    if not key:
        raise SourceRejected(f"{provider}: no API key configured")
    return key


def assemble(
    provider: str, asset: str, series: Mapping[str, Mapping[str, float]], *, received_ms: int, lag_s: float, days: int
) -> list[FlowDay]:
    """Rows from per-day series named inflow, outflow, balance and netflow (all required).

    netflow is recomputed as inflow - outflow (the provider's own figure is only cross-checked);
    available_ms is estimated as the day's end plus ``lag_s``, capped at ``received_ms``.
    """
    rows = []
    for day in common_days(provider, series, received_ms):
        inflow, outflow = series["inflow"][day], series["outflow"][day]
        netflow = inflow - outflow
        theirs = series["netflow"][day]
        if abs(theirs - netflow) > 1e-6 * max(1.0, inflow + outflow):
            log.warning(
                "provider=%s asset=%s day=%s netflow %.8f differs from inflow - outflow %.8f",
                provider,
                asset,
                day,
                theirs,
                netflow,
            )
        rows.append(
            FlowDay(
                provider=provider,
                asset=asset,
                day=day,
                available_ms=estimated_available_ms(day, lag_s, received_ms),
                inflow=inflow,
                outflow=outflow,
                netflow=netflow,
                balance=series["balance"][day],
                price_usd=None,
            )
        )
    return last_days(provider, rows, days)
