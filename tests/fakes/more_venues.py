"""Venues the exchange double serves beside the original five: their listings and their routes.

Each venue's payload builders live in their own module (``tests/fakes/<venue>_payloads.py``); this
module registers them in :data:`tests.fakes.exchange_payloads.ROUTES` and gives each a default state,
as the venue really lists contracts:

* hyperliquid: BTC, ETH, SOL USDC perpetuals settling every hour, no dated futures.
* bitget: BTC, ETH, SOL USDT perpetuals; BTC, ETH coin-margined perpetuals and quarterlies.
* gate: BTC, ETH, SOL USDT perpetuals; a BTC-settled inverse BTC perpetual; BTC, ETH USDT quarterlies.
* kucoinfutures: BTC, ETH, SOL USDT perpetuals; BTC, ETH inverse perpetuals; inverse BTC quarterlies.
"""

from __future__ import annotations

import datetime as dt

from tests.fakes.bitget_payloads import BITGET_ROUTES
from tests.fakes.exchange_payloads import ROUTES
from tests.fakes.exchanges import Future, Perp, VenueState, next_funding_ms, quarterly_expiries
from tests.fakes.gate_payloads import GATE_ROUTES
from tests.fakes.hyperliquid_payloads import HYPERLIQUID_ROUTES
from tests.fakes.kucoinfutures_payloads import KUCOIN_ROUTES

MORE_VENUES = ("hyperliquid", "bitget", "gate", "kucoinfutures")

ROUTES.update(
    {"hyperliquid": HYPERLIQUID_ROUTES, "bitget": BITGET_ROUTES, "gate": GATE_ROUTES, "kucoinfutures": KUCOIN_ROUTES}
)

PRICES = {"BTC": 100_000.0, "ETH": 3_500.0, "SOL": 150.0}
OI_BASE = {"BTC": 30_000.0, "ETH": 900_000.0, "SOL": 4_000_000.0}
RATES = {"BTC": 0.0001, "ETH": 0.00008, "SOL": -0.00005}  # per 8h; hourly venues get an eighth


def _perp(venue: str, asset: str, linear: bool, now: dt.datetime, interval_h: int = 8) -> Perp:
    px = PRICES[asset]
    # each venue a little apart, so a figure taken from the wrong venue shows
    shift = 1 + 0.0001 * MORE_VENUES.index(venue)
    return Perp(
        asset,
        mark=round(px * 1.0002 * shift, 2),
        index=round(px * shift, 2),
        funding_rate=RATES[asset] * interval_h / 8,
        next_funding_ms=next_funding_ms(now, interval_h),
        interval_h=interval_h,
        open_interest_base=OI_BASE[asset],
        linear=linear,
    )


def _future(asset: str, expiry: dt.date, n: int, linear: bool) -> Future:
    px = PRICES[asset]
    return Future(
        asset,
        expiry,
        mark=round(px * (1.012 + 0.01 * n), 2),
        index=px,
        linear=linear,
        open_interest_base=OI_BASE[asset] / 25,
    )


def state(venue: str, now: dt.datetime) -> VenueState:
    assets = ("BTC", "ETH", "SOL")
    expiries = quarterly_expiries(now)
    if venue == "hyperliquid":
        return VenueState([_perp(venue, a, True, now, interval_h=1) for a in assets], [])
    if venue == "bitget":
        return VenueState(
            [_perp(venue, a, True, now) for a in assets] + [_perp(venue, a, False, now) for a in ("BTC", "ETH")],
            [_future(a, e, n, False) for a in ("BTC", "ETH") for n, e in enumerate(expiries)],
        )
    if venue == "gate":
        return VenueState(
            [_perp(venue, a, True, now) for a in assets] + [_perp(venue, "BTC", False, now)],
            [_future(a, e, n, True) for a in ("BTC", "ETH") for n, e in enumerate(expiries)],
        )
    if venue == "kucoinfutures":
        return VenueState(
            [_perp(venue, a, True, now) for a in assets] + [_perp(venue, a, False, now) for a in ("BTC", "ETH")],
            [_future("BTC", e, n, False) for n, e in enumerate(expiries)],
        )
    raise ValueError(f"unknown venue {venue!r}")


def more_states(now: dt.datetime) -> dict[str, VenueState]:
    return {v: state(v, now) for v in MORE_VENUES}
