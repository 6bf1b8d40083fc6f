"""Every venue the bot knows, one adapter each; adding a venue is one module and one line here."""

from __future__ import annotations

from watchers.venues.adapters.base import Adapter, Serving
from watchers.venues.adapters.binance import Binance, BinanceCoinM
from watchers.venues.adapters.bitget import Bitget
from watchers.venues.adapters.bybit import Bybit
from watchers.venues.adapters.deribit import Deribit
from watchers.venues.adapters.gate import Gate
from watchers.venues.adapters.hyperliquid import Hyperliquid
from watchers.venues.adapters.kucoinfutures import KucoinFutures
from watchers.venues.adapters.okx import Okx

ADAPTERS: dict[str, type[Adapter]] = {
    a.venue: a
    for a in (
        Binance,
        BinanceCoinM,
        Okx,
        Bybit,
        Deribit,
        Hyperliquid,
        Bitget,
        Gate,
        KucoinFutures,
    )
}

__all__ = ["ADAPTERS", "Adapter", "Serving", "UnknownVenue", "describe", "summary"]


class UnknownVenue(ValueError):
    """A venue name no adapter serves."""

    def __init__(self, venue: str) -> None:
        super().__init__(f"unknown venue {venue!r}: known are {', '.join(ADAPTERS)}")
        self.venue = venue


def describe(venue: str) -> str:
    """What a venue serves and what it does not, in one line; an unknown venue says so."""
    cls = ADAPTERS.get(venue)
    return cls.describe() if cls is not None else f"unknown venue: known are {', '.join(ADAPTERS)}"


def summary(venue: str) -> str:
    """The short form for /status: the metrics served, and each one not served with why."""
    cls = ADAPTERS.get(venue)
    return cls.summary() if cls is not None else f"unknown venue, not polled (known: {', '.join(ADAPTERS)})"
