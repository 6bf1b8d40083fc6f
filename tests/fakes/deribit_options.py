"""Deribit option chain for the exchange double: option instruments and the option book summary.

``install(DERIBIT_ROUTES)`` (the one hook in :mod:`tests.fakes.exchange_payloads`) wraps two routes:

* ``/api/v2/public/get_instruments``: without ``kind`` (what ccxt's ``load_markets`` sends) or with
  ``kind=option`` the chain's options are listed too, e.g.::

    {"instrument_name":"BTC-26DEC26-100000-C","kind":"option","strike":100000.0,"option_type":"call",
     "expiration_timestamp":1798272000000,"settlement_period":"month","base_currency":"BTC",
     "counter_currency":"USD","quote_currency":"BTC","settlement_currency":"BTC","contract_size":1.0,..}

* ``/api/v2/public/get_book_summary_by_currency?currency=BTC&kind=option``::

    {"instrument_name":"BTC-26DEC26-100000-C","underlying_price":101234.5,"underlying_index":"BTC-26DEC26",
     "estimated_delivery_price":100000.0,"mark_iv":55.2,"open_interest":120.5,"mark_price":0.0543,
     "interest_rate":0.0,"base_currency":"BTC","quote_currency":"BTC","creation_timestamp":..,..}

  ``open_interest`` in coins, ``mark_iv`` in percent, ``underlying_price`` the option's forward,
  ``estimated_delivery_price`` the index.

The chain lives on the deribit :class:`~tests.fakes.exchanges.VenueState` (``set_chain``); a state
without one answers as before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Reply = tuple[int, Any]
Builder = Callable[[Any, Mapping[str, str], int], Reply]

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
INSTRUMENTS = "/api/v2/public/get_instruments"
BOOK_SUMMARY = "/api/v2/public/get_book_summary_by_currency"


@dataclass
class Option:
    asset: str
    expiry: dt.date  # settles 08:00 UTC that day
    strike: float
    call: bool
    open_interest: float  # coins
    mark_iv: float  # percent
    underlying: float  # the forward F Deribit publishes per expiry
    index: float

    @property
    def name(self) -> str:
        e = self.expiry
        strike = f"{self.strike:.0f}" if float(self.strike).is_integer() else f"{self.strike:g}"
        return f"{self.asset}-{e.day}{_MONTHS[e.month - 1]}{e:%y}-{strike}-{'C' if self.call else 'P'}"

    @property
    def expiry_ms(self) -> int:
        return int(dt.datetime.combine(self.expiry, dt.time(8), tzinfo=dt.UTC).timestamp() * 1000)


def set_chain(state: Any, options: Sequence[Option]) -> None:
    """Give the deribit venue state an option chain (replacing any)."""
    state.options = list(options)


def chain(state: Any) -> list[Option]:
    return list(getattr(state, "options", ()))


def _envelope(result: Any, now_ms: int) -> Reply:
    us = now_ms * 1000
    return 200, {"jsonrpc": "2.0", "result": result, "usIn": us, "usOut": us + 120, "usDiff": 120, "testnet": False}


def instrument(o: Option, n: int) -> dict[str, Any]:
    return {
        "instrument_name": o.name,
        "instrument_id": 200000 + n,
        "kind": "option",
        "strike": float(o.strike),
        "option_type": "call" if o.call else "put",
        "expiration_timestamp": o.expiry_ms,
        "creation_timestamp": 1_700_000_000_000,
        "settlement_period": "month",
        "base_currency": o.asset,
        "counter_currency": "USD",
        "quote_currency": o.asset,
        "settlement_currency": o.asset,
        "price_index": f"{o.asset.lower()}_usd",
        "contract_size": 1.0,
        "min_trade_amount": 0.1,
        "tick_size": 0.0001,
        "is_active": True,
        "rfq": True,
        "maker_commission": 0.0003,
        "taker_commission": 0.0003,
        "block_trade_commission": 0.0003,
        "block_trade_min_trade_amount": 25,
        "block_trade_tick_size": 0.0001,
        "tick_size_steps": [{"above_price": 0.005, "tick_size": 0.0005}],
    }


def summary_row(o: Option, now_ms: int) -> dict[str, Any]:
    return {
        "volume_usd": 0.0,
        "volume": 0.0,
        "underlying_price": o.underlying,
        "underlying_index": f"{o.asset}-{o.expiry.day}{_MONTHS[o.expiry.month - 1]}{o.expiry:%y}",
        "quote_currency": o.asset,
        "price_change": None,
        "open_interest": o.open_interest,
        "mid_price": None,
        "mark_price": 0.01,
        "mark_iv": o.mark_iv,
        "low": None,
        "last": None,
        "interest_rate": 0.0,
        "instrument_name": o.name,
        "high": None,
        "estimated_delivery_price": o.index,
        "creation_timestamp": now_ms,
        "bid_price": None,
        "base_currency": o.asset,
        "ask_price": None,
    }


def install(routes: dict[str, Builder]) -> None:
    """Wrap the deribit routes so that they also answer for the state's option chain."""
    base_instruments, base_summary = routes[INSTRUMENTS], routes[BOOK_SUMMARY]

    def instruments(state: Any, q: Mapping[str, str], now_ms: int) -> Reply:
        kind, currency = q.get("kind"), q.get("currency", "any")
        status, body = (200, {"result": []}) if kind == "option" else base_instruments(state, q, now_ms)
        if status != 200 or kind not in (None, "option"):
            return status, body
        opts = [instrument(o, i) for i, o in enumerate(chain(state)) if currency in ("any", o.asset)]
        return _envelope([*body["result"], *opts], now_ms)

    def summary(state: Any, q: Mapping[str, str], now_ms: int) -> Reply:
        kind, currency = q.get("kind"), q.get("currency")
        if kind != "option" or not currency:
            status, body = base_summary(state, q, now_ms)
            if status != 200 or kind is not None:
                return status, body
            return _envelope(
                [*body["result"], *(summary_row(o, now_ms) for o in chain(state) if o.asset == currency)], now_ms
            )
        return _envelope([summary_row(o, now_ms) for o in chain(state) if o.asset == currency], now_ms)

    routes[INSTRUMENTS] = instruments
    routes[BOOK_SUMMARY] = summary
