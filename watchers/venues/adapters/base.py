"""A venue as one adapter: which metrics it serves and how, its ccxt options and its unit conventions.

An adapter declares, per metric, one :class:`Serving`:

- ``bulk``: one call (or one per category) returns every contract;
- ``per-symbol``: one call per contract, issued only for the assets in ``[watchers] oi_assets`` plus
  those chats subscribe to or rules watch (read from Redis), at most ``per_symbol_cap`` calls a poll,
  paced by ccxt's rate limiter at the venue's documented limit;
- ``not served``: the venue has no such data (no dated futures); the metric is absent from its polls
  and ``/status`` says so instead of showing an empty row.

``poll`` fills the parts of a :class:`~watchers.venues.common.Snapshot` through the client's helpers
(``call``, ``market``, ``perp``, ``future``, ``oi``, ``part``); the watchers, the store and the metrics
never see a venue's particulars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from watchers.venues.common import PARTS, Snapshot

if TYPE_CHECKING:
    from watchers.venues.client import VenueClient

BULK, PER_SYMBOL, NOT_SERVED = "bulk", "per-symbol", "not served"

# status words of contracts that trade now (ccxt sets ``active`` from these on most venues)
DEFAULT_LIVE_STATUS = frozenset({"TRADING", "Trading", "live", "open", ""})


@dataclass(frozen=True, slots=True)
class Serving:
    """How a venue serves one metric: ``how`` is bulk, per-symbol or not served; ``detail`` says with what."""

    how: str
    detail: str

    @property
    def served(self) -> bool:
        return self.how != NOT_SERVED


class Adapter:
    """One venue. Subclasses set the class attributes and implement :meth:`poll`."""

    venue: ClassVar[str]  # the name in [watchers] venues (the ccxt id)
    label: ClassVar[str]
    serves: ClassVar[dict[str, Serving]]
    units: ClassVar[str]  # what the venue's open interest counts, and how it becomes coins and USD
    ccxt_options: ClassVar[dict[str, Any]] = {}
    # skip ccxt's currency list on load_markets: derivatives data never needs it, and it costs calls
    skip_currencies: ClassVar[bool] = False
    live_status: ClassVar[frozenset[str]] = DEFAULT_LIVE_STATUS
    per_symbol_cap: ClassVar[int] = 60  # per-symbol calls one poll may issue at most

    def __init__(self, client: VenueClient) -> None:
        self.c = client

    @classmethod
    def metrics(cls) -> tuple[str, ...]:
        """The metrics this venue serves, in poll order."""
        return tuple(m for m in PARTS if cls.serves.get(m, Serving(NOT_SERVED, "")).served)

    @classmethod
    def describe(cls) -> str:
        """One line for start-up logs and /status: what the venue serves and what it does not."""
        served = [f"{m} ({s.how}: {s.detail})" for m, s in cls.serves.items() if s.served]
        missing = [f"{m} ({s.detail})" for m, s in cls.serves.items() if not s.served]
        return "serves " + ", ".join(served) + ("; not served: " + ", ".join(missing) if missing else "")

    @classmethod
    def summary(cls) -> str:
        """The short form /status shows: 'funding, oi; no basis (no dated futures listed)'."""
        served = ", ".join(
            f"{m}" + (" (per-symbol)" if s.how == PER_SYMBOL else "") for m, s in cls.serves.items() if s.served
        )
        missing = "; ".join(f"no {m} ({s.detail})" for m, s in cls.serves.items() if not s.served)
        return served + (f"; {missing}" if missing else "")

    async def poll(self, snap: Snapshot) -> None:
        raise NotImplementedError
