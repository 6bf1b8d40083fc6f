import math

import pytest

from core.metrics.basis import Basis
from core.metrics.funding import Funding
from core.models import MS_PER_DAY, BasisSample, FundingSample, OpenInterestSample

NOW = 1_780_000_000_000
BASIS, FUNDING = Basis(), Funding()  # the metrics' own sanity checks, at their default bounds


def fut(price: float, index: float, days: float) -> BasisSample:
    return BasisSample(
        venue="okx",
        symbol="BTC/USD:BTC-261225",
        asset="BTC",
        settle="BTC",
        inverse=True,
        expiry_ms=NOW + int(days * MS_PER_DAY),
        future_usd=price,
        index_usd=index,
        ts_ms=NOW,
    )


def perp(rate: float, interval_h: int = 8, mark: float | None = 100.0, index: float | None = 100.0) -> FundingSample:
    return FundingSample(
        venue="bybit",
        symbol="BTC/USDT:USDT",
        asset="BTC",
        settle="USDT",
        inverse=False,
        rate_per_interval=rate,
        interval_s=interval_h * 3600,
        next_funding_ms=None,
        predicted_rate=None,
        mark_usd=mark,
        index_usd=index,
        ts_ms=NOW,
    )


def test_basis_annualized_by_days_to_expiry() -> None:
    s = fut(61_000.0, 60_000.0, 91.0)
    assert s.basis_frac == pytest.approx(1000 / 60000)
    assert s.basis_annualized(NOW, 3.0) == pytest.approx((1000 / 60000) * 365 / 91)


def test_basis_not_annualized_inside_window() -> None:
    s = fut(60_060.0, 60_000.0, 1.0)
    assert s.basis_annualized(NOW, 3.0) is None
    assert s.basis_annualized(NOW, 0.5) == pytest.approx(0.001 * 365)


def test_funding_annualized_uses_interval() -> None:
    assert perp(0.0001, 8).rate_annualized == pytest.approx(0.0001 * 3 * 365)
    assert perp(0.0001, 4).rate_annualized == pytest.approx(0.0001 * 6 * 365)
    assert perp(0.0001, 1).rate_annualized == pytest.approx(0.0001 * 24 * 365)


def test_json_round_trip() -> None:
    s = fut(61_000.5, 60_000.25, 30)
    assert BasisSample.from_json(s.to_json()) == s
    f = perp(-0.00025, 4)
    assert FundingSample.from_json(f.to_json()) == f


@pytest.mark.parametrize("price", [0.0, -5.0, math.nan, math.inf])
def test_insane_future_prices_rejected(price: float) -> None:
    assert BASIS.problem(fut(price, 60_000.0, 30)) is not None
    assert BASIS.problem(fut(60_000.0, price, 30)) is not None


def test_absurd_future_rejected_plausible_kept() -> None:
    assert BASIS.problem(fut(600_000.0, 60_000.0, 30)) is not None
    assert BASIS.problem(fut(61_000.0, 60_000.0, 30)) is None


@pytest.mark.parametrize("rate", [math.nan, 0.2, -0.2, math.inf])
def test_insane_funding_rejected(rate: float) -> None:
    assert FUNDING.problem(perp(rate)) is not None


def test_funding_with_bad_mark_rejected() -> None:
    assert FUNDING.problem(perp(0.0001, mark=0.0)) is not None
    assert FUNDING.problem(perp(0.0001, mark=None, index=None)) is None
    assert FUNDING.problem(perp(-0.0003)) is None


def test_open_interest_sanity_and_codec() -> None:
    from core.metrics.open_interest import OpenInterest

    oi = OpenInterest()
    s = OpenInterestSample(
        venue="okx",
        symbol="BTC/USD:BTC",
        asset="BTC",
        settle="BTC",
        inverse=True,
        kind="swap",
        coins=12.5,
        usd=1_250_000.0,
        ts_ms=NOW,
    )
    assert OpenInterestSample.from_json(s.to_json()) == s and oi.problem(s) is None
    for bad in ({"coins": -1.0}, {"usd": math.nan}, {"usd": 1e308}):
        from dataclasses import replace

        assert oi.problem(replace(s, **bad)) is not None, bad
