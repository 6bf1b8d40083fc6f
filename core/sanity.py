"""Plausibility checks applied before anything reaches Redis (pure functions)."""

from __future__ import annotations

import math

from core.models import BasisSample, FundingSample, is_sane_price


def funding_problem(s: FundingSample, *, max_abs_rate: float, max_deviation: float) -> str | None:
    """Why a funding sample must not be stored, or None when it is plausible."""
    r = s.rate_per_interval
    if not isinstance(r, int | float) or not math.isfinite(r):
        return f"funding rate {r!r} is not a number"
    if abs(r) > max_abs_rate:
        return f"funding rate {r!r} beyond ±{max_abs_rate} per interval"
    if s.interval_s <= 0 or s.interval_s > 7 * 86_400:
        return f"funding interval {s.interval_s}s is implausible"
    if (s.mark_usd is not None or s.index_usd is not None) and not (
        is_sane_price(s.mark_usd) and is_sane_price(s.index_usd)
    ):
        return f"mark {s.mark_usd!r} / index {s.index_usd!r} not positive finite prices"
    prem = s.premium_frac
    if prem is not None and abs(prem) > max_deviation:
        return f"mark {s.mark_usd} is {prem:+.0%} from index {s.index_usd}"
    return None


def basis_problem(s: BasisSample, *, max_deviation: float) -> str | None:
    """Why a dated-future sample must not be stored, or None when it is plausible."""
    if not is_sane_price(s.future_usd):
        return f"future price {s.future_usd!r} is not a positive finite number"
    if not is_sane_price(s.index_usd):
        return f"index price {s.index_usd!r} is not a positive finite number"
    if abs(s.basis_frac) > max_deviation:
        return f"future {s.future_usd} is {s.basis_frac:+.0%} from index {s.index_usd}"
    return None
