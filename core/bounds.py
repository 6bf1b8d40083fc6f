"""Absolute bounds per metric: values no real market produces, rejected whatever else agrees with them.

The relative checks in :mod:`core.sanity` (mark against index, future against index) cannot catch a
venue reporting 1e308 for both; these limits do. They are wide on purpose (coin-quoted contracts are
priced far below a dollar, indexes of whole-coin prices far above BTC's): a value outside them is a
broken feed, not a market move. One table, so each metric module can own its own rows later.
"""

from __future__ import annotations

import math

from core.models import BasisSample, FundingSample

# metric field -> (lowest, highest) accepted, inclusive
BOUNDS: dict[str, tuple[float, float]] = {
    "price_usd": (1e-12, 1e8),
    "funding_rate_per_interval": (-1.0, 1.0),  # 100% of the notional per interval
    "predicted_rate": (-1.0, 1.0),
    "basis_frac": (-10.0, 10.0),
}
# a venue's clock may run a little ahead of ours; beyond this a timestamp is from the future
MAX_FUTURE_SKEW_MS = 2_000


def out_of_bounds(name: str, value: float | None) -> str | None:
    """Why ``value`` cannot be a real ``name``, or None when it is inside the metric's bounds (None passes)."""
    if value is None:
        return None
    lo, hi = BOUNDS[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{name.replace('_', ' ')} {value!r} is not a finite number"
    if not lo <= value <= hi:
        return f"{name.replace('_', ' ')} {value:g} outside the possible range {lo:g} to {hi:g}"
    return None


def sample_problem(s: FundingSample | BasisSample) -> str | None:
    """The first absolute bound a funding or basis sample breaks, or None."""
    if isinstance(s, FundingSample):
        checks = [
            ("funding_rate_per_interval", s.rate_per_interval),
            ("predicted_rate", s.predicted_rate),
            ("price_usd", s.mark_usd),
            ("price_usd", s.index_usd),
        ]
    else:
        checks = [("price_usd", s.future_usd), ("price_usd", s.index_usd)]
    for name, value in checks:
        problem = out_of_bounds(name, value)
        if problem:
            return problem
    return None


def clamp_ts_ms(ts_ms: int | None, now_ms: int) -> int:
    """A source's timestamp, never later than now (a clock ahead would read 'age 0s' after the source goes
    silent); now when the source gave none."""
    if ts_ms is None or ts_ms <= 0:
        return now_ms
    return now_ms if ts_ms > now_ms + MAX_FUTURE_SKEW_MS else min(ts_ms, now_ms)
