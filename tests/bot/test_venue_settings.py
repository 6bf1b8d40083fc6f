"""[watchers] venues: the nine venues accepted, an unknown one reported and skipped, each metric's sources."""

from __future__ import annotations

from bot.settings import parse_settings

NEW = ["hyperliquid", "bitget", "gate", "kucoinfutures"]


def test_new_venues_accepted_and_unknown_reported_not_fatal() -> None:
    s = parse_settings({"watchers": {"venues": ["okx", *NEW, "binance"]}}, env={})
    assert s.watchers.venues == ("okx", *NEW)
    assert s.unknown_venues == ("binance",)
    notes = s.venue_notes()
    assert notes["binance"].startswith("unknown venue, not polled") and "binanceusdm" in notes["binance"]
    assert notes["hyperliquid"] == "funding, oi; no basis (no dated futures listed)"
    assert notes["okx"] == "funding, basis, oi"


def test_sources_are_the_venues_that_serve_the_metric() -> None:
    s = parse_settings({"watchers": {"venues": ["binanceusdm", *NEW]}}, env={})
    src = s.sources(s.registry())
    assert src["funding"] == ("binanceusdm", *NEW)
    assert src["oi"] == ("binanceusdm", *NEW)
    assert src["basis"] == ("binanceusdm", "bitget", "gate", "kucoinfutures")  # hyperliquid lists no quarterlies
    assert s.venue_notes()["binanceusdm"] == "funding, basis, oi (per-symbol)"
