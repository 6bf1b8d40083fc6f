"""Domain values. Frozen dataclasses, units in field names, JSON round-trip for Redis."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Self

MS_PER_DAY = 86_400_000
EIGHT_HOURS_S = 28_800
SECONDS_PER_YEAR = 365 * 86_400


def _dump(obj: Any) -> str:
    return json.dumps(asdict(obj), separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class FundingSample:
    """A perpetual's funding at one moment, as the venue reported it."""

    venue: str
    symbol: str  # ccxt unified symbol, e.g. "BTC/USDT:USDT"
    asset: str  # base asset, upper case
    settle: str  # settlement currency: USDT, USDC, or the base for inverse contracts
    inverse: bool
    rate_per_interval: float  # fraction per funding interval (0.0001 = 0.01%)
    interval_s: int
    next_funding_ms: int | None
    predicted_rate: float | None  # venue's next/predicted rate, where published
    mark_usd: float | None
    index_usd: float | None
    ts_ms: int  # the venue's timestamp for the value

    @property
    def rate_annualized(self) -> float:
        """Funding annualized by simple multiplication of the per-interval rate."""
        return self.rate_per_interval * SECONDS_PER_YEAR / self.interval_s

    @property
    def premium_frac(self) -> float | None:
        """Perpetual premium: (mark - index) / index."""
        if not self.mark_usd or not self.index_usd:
            return None
        return (self.mark_usd - self.index_usd) / self.index_usd

    def to_json(self) -> str:
        return _dump(self)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        return cls(**json.loads(raw))


@dataclass(frozen=True, slots=True)
class BasisSample:
    """A dated future against its index."""

    venue: str
    symbol: str  # e.g. "BTC/USDT:USDT-261225"
    asset: str
    settle: str
    inverse: bool
    expiry_ms: int
    future_usd: float  # mark where the venue gives one, else last
    index_usd: float
    ts_ms: int

    @property
    def basis_frac(self) -> float:
        return (self.future_usd - self.index_usd) / self.index_usd

    def days_to_expiry(self, now_ms: int) -> float:
        return (self.expiry_ms - now_ms) / MS_PER_DAY

    def basis_annualized(self, now_ms: int, min_days: float) -> float | None:
        """Annualized basis, or None inside ``min_days`` of expiry where annualizing explodes."""
        days = self.days_to_expiry(now_ms)
        if days < min_days or days <= 0:
            return None
        return self.basis_frac * 365.0 / days

    def to_json(self) -> str:
        return _dump(self)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        return cls(**json.loads(raw))


@dataclass(frozen=True, slots=True)
class FlowDay:
    """One asset's on-chain exchange flows for one UTC day, as one provider reported them.

    Units: coins of ``asset`` (BTC for BTC), per day for the flows, at the day's end for the balance.
    ``available_ms`` is when the value became known (never the day itself: daily data is published
    after the day closes); anything that alerts or back-tests on a row must key on it.
    """

    provider: str  # "coinmetrics" | "glassnode" | "cryptoquant"
    asset: str  # "BTC"
    day: str  # "2021-04-12", the UTC day the flows belong to
    available_ms: int  # when the value became known
    inflow: float | None  # coins per day, native units
    outflow: float | None
    netflow: float | None  # inflow - outflow when both are given, else the provider's own netflow
    balance: float | None  # exchange balance (coins) at the end of the day
    price_usd: float | None  # for USD figures, when the provider gives it

    def to_json(self) -> str:
        return _dump(self)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        return cls(**json.loads(raw))


def is_sane_price(value: float | None) -> bool:
    """A usable price: a finite number above zero."""
    return value is not None and isinstance(value, int | float) and math.isfinite(value) and value > 0
