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

    @property
    def venue(self) -> str:
        """The source, in the terms every metric's store uses."""
        return self.provider

    @property
    def symbol(self) -> str:
        """Days are the provider's instruments: one stored row per day."""
        return self.day

    @property
    def ts_ms(self) -> int:
        """A day exists for rules and replies from the moment it was published."""
        return self.available_ms

    def to_json(self) -> str:
        return _dump(self)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        return cls(**json.loads(raw))


@dataclass(frozen=True, slots=True)
class OpenInterestSample:
    """Open interest of one contract, normalized to coins of the base asset and to USD.

    Venues report contracts, coins or USD; the venue client converts with the contract size.
    For inverse contracts the USD face value is the USD figure (``usd``), coins = usd / mark.
    """

    venue: str
    symbol: str
    asset: str
    settle: str
    inverse: bool
    kind: str  # "swap" or "future"
    coins: float
    usd: float
    ts_ms: int

    def to_json(self) -> str:
        return _dump(self)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        return cls(**json.loads(raw))


USD_STABLES = frozenset({"USDT", "USDC", "USD", "FDUSD", "BUSD"})


@dataclass(frozen=True, slots=True)
class Instrument:
    """A venue's derivative contract as its market list describes it; what the data checks need."""

    venue: str
    symbol: str  # ccxt unified symbol
    asset: str  # base asset
    kind: str  # "swap" or "future"
    quote: str
    settle: str
    inverse: bool
    contract_size: float | None  # coins per contract (linear) or USD per contract (inverse)
    status: str  # the venue's own status word ("TRADING", "SETTLING", "live", ...), "" when not given
    active: bool  # trading now: neither delisted, settling, nor waiting to list
    expiry_ms: int | None  # dated futures only

    @property
    def family(self) -> str:
        """USDT, USDC, inverse (USD face value) or coin (quoted in another coin, e.g. ETH/BTC)."""
        if self.inverse:
            return "inverse" if self.quote in USD_STABLES else "coin"
        if self.quote in USD_STABLES and self.settle in USD_STABLES:
            return "USDC" if self.settle == "USDC" else "USDT" if self.settle in ("USDT", "USD") else self.settle
        return "coin"

    @property
    def usd_quoted(self) -> bool:
        """Only contracts priced in USD (or a USD stablecoin) enter USD columns, means and rules."""
        return self.family != "coin"


def is_sane_price(value: float | None) -> bool:
    """A usable price: a finite number above zero."""
    return value is not None and isinstance(value, int | float) and math.isfinite(value) and value > 0
