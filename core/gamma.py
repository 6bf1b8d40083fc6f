"""Dealer gamma exposure of an option chain: pure math, no I/O.

Convention (stated to users, so the figures can be checked):

- Black-76 with r = 0; F = the option's underlying (forward) price as Deribit publishes it;
  sigma = mark IV / 100; T = time to expiry in years of 365 days.
- gamma = n(d1) / (F sigma sqrt(T)), d1 = (ln(F/K) + sigma^2 T / 2) / (sigma sqrt(T)).
- GEX of an option, in USD per 1% move = gamma x open interest (coins) x F^2 x 0.01, counted
  positive for calls and negative for puts (dealers long calls, short puts).
- Per strike: the sum over every expiry (or the expiries within ``max_days``).
- The flip level: the trial price P at which the total GEX changes sign, re-evaluating the whole
  chain with every F scaled by P / spot; the crossing nearest spot within ±``span``.

The scaled chain is evaluated from per-option constants, so one trial price costs one ``exp`` per
option: GEX(P) = sign x OI x 0.01 x n(d1(s)) x F s / (sigma sqrt(T)), s = P / spot.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Self

YEAR_MS = 365 * 86_400_000
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
FLIP_SPAN = 0.30  # the flip level is searched within ±30% of spot
_GRID_STEP = 0.005  # first pass: trial prices 0.5% of spot apart, then bisection
_FLIP_TOL = 1e-6  # bisection stops at this fraction of spot


@dataclass(frozen=True, slots=True)
class OptionSample:
    """One listed option with what the GEX needs, as the venue published it (Deribit book summary)."""

    venue: str
    symbol: str  # ccxt symbol, e.g. "BTC/USD:BTC-261225-100000-C"
    asset: str  # "BTC"
    strike: float
    expiry_ms: int
    call: bool
    open_interest: float  # coins
    mark_iv_pct: float  # percent, e.g. 55.2
    underlying_usd: float  # the option's forward F
    index_usd: float  # the venue's index price (spot)
    ts_ms: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        return cls(**json.loads(raw))


def years_to_expiry(expiry_ms: int, now_ms: int) -> float:
    return (expiry_ms - now_ms) / YEAR_MS


def black76_gamma(f: float, k: float, sigma: float, t: float) -> float:
    """n(d1) / (F sigma sqrt(T)); 0 where the inputs leave no gamma (expired, zero vol)."""
    if f <= 0 or k <= 0 or sigma <= 0 or t <= 0:
        return 0.0
    st = sigma * math.sqrt(t)
    d1 = (math.log(f / k) + 0.5 * sigma * sigma * t) / st
    return math.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI / (f * st)


def option_gex(o: OptionSample, now_ms: int) -> float:
    """USD per 1% move of one option: +calls, -puts."""
    f = o.underlying_usd
    g = black76_gamma(f, o.strike, o.mark_iv_pct / 100.0, years_to_expiry(o.expiry_ms, now_ms))
    return (1.0 if o.call else -1.0) * g * o.open_interest * f * f * 0.01


def in_window(o: OptionSample, now_ms: int, max_days: float | None) -> bool:
    """Not expired, and within ``max_days`` of expiry when a window is set."""
    if o.expiry_ms <= now_ms:
        return False
    return max_days is None or max_days <= 0 or (o.expiry_ms - now_ms) <= max_days * 86_400_000


def gex_by_strike(chain: Iterable[OptionSample], now_ms: int, max_days: float | None = None) -> dict[float, float]:
    """Strike -> summed GEX over the expiries in the window."""
    out: dict[float, float] = {}
    for o in chain:
        if in_window(o, now_ms, max_days):
            out[o.strike] = out.get(o.strike, 0.0) + option_gex(o, now_ms)
    return out


@dataclass(frozen=True, slots=True)
class ScaledChain:
    """Per-option constants for evaluating the total GEX at trial prices quickly."""

    log_fk: tuple[float, ...]  # ln(F/K) + sigma^2 T / 2
    st: tuple[float, ...]  # sigma sqrt(T)
    coef: tuple[float, ...]  # sign x OI x 0.01 x F / (sigma sqrt(T)) / sqrt(2 pi)

    @classmethod
    def of(cls, chain: Iterable[OptionSample], now_ms: int, max_days: float | None = None) -> ScaledChain:
        a: list[float] = []
        b: list[float] = []
        c: list[float] = []
        for o in chain:
            if not in_window(o, now_ms, max_days):
                continue
            f, k, sigma = o.underlying_usd, o.strike, o.mark_iv_pct / 100.0
            t = years_to_expiry(o.expiry_ms, now_ms)
            if f <= 0 or k <= 0 or sigma <= 0 or t <= 0 or o.open_interest == 0:
                continue
            st = sigma * math.sqrt(t)
            a.append(math.log(f / k) + 0.5 * sigma * sigma * t)
            b.append(st)
            c.append((1.0 if o.call else -1.0) * o.open_interest * 0.01 * f / st * _INV_SQRT_2PI)
        return cls(tuple(a), tuple(b), tuple(c))

    def total(self, scale: float) -> float:
        """Total GEX with every F multiplied by ``scale``: sum of coef x n(d1) x scale."""
        ls = math.log(scale)
        exp = math.exp
        s = 0.0
        for a, st, c in zip(self.log_fk, self.st, self.coef, strict=True):
            d1 = (a + ls) / st
            s += c * exp(-0.5 * d1 * d1)
        return s * scale


def total_gex(chain: Iterable[OptionSample], now_ms: int, max_days: float | None = None) -> float:
    return sum(gex_by_strike(chain, now_ms, max_days).values())


def flip_level(
    chain: Sequence[OptionSample], now_ms: int, spot: float, max_days: float | None = None, span: float = FLIP_SPAN
) -> float | None:
    """The price nearest spot (within ±span) at which total GEX changes sign; None when it keeps its sign."""
    if spot <= 0 or not chain:
        return None
    sc = ScaledChain.of(chain, now_ms, max_days)
    if not sc.coef:
        return None
    n = round(span / _GRID_STEP)
    values = {i: sc.total(1.0 + i * _GRID_STEP) for i in range(-n, n + 1)}
    best: tuple[float, float] | None = None  # (distance from spot, scale)
    for i in range(-n, n):
        lo, hi = values[i], values[i + 1]
        if lo == 0.0:
            cand = 1.0 + i * _GRID_STEP
        elif (lo < 0) == (hi < 0):
            continue
        else:
            cand = _bisect(sc, 1.0 + i * _GRID_STEP, 1.0 + (i + 1) * _GRID_STEP, lo)
        if best is None or abs(cand - 1.0) < best[0]:
            best = (abs(cand - 1.0), cand)
    return None if best is None else best[1] * spot


def _bisect(sc: ScaledChain, a: float, b: float, fa: float) -> float:
    while b - a > _FLIP_TOL:
        mid = (a + b) / 2
        fm = sc.total(mid)
        if (fm < 0) == (fa < 0):
            a, fa = mid, fm
        else:
            b = mid
    return (a + b) / 2


def spot_of(chain: Sequence[OptionSample]) -> float | None:
    """The index price of the newest sample (every row of one poll carries the same index)."""
    return max(chain, key=lambda o: o.ts_ms).index_usd if chain else None
