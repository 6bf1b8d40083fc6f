"""Exchange access through ccxt: the only package that imports ccxt."""

from watchers.venues.adapters import ADAPTERS, UnknownVenue, describe
from watchers.venues.client import Snapshot, VenueClient

__all__ = ["ADAPTERS", "Snapshot", "UnknownVenue", "VenueClient", "describe"]
