"""Exchange access through ccxt: the only package that imports ccxt."""

from watchers.venues.client import Snapshot, VenueClient

__all__ = ["Snapshot", "VenueClient"]
