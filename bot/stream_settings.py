"""The ``[streams]`` section: which venues stream what, and how streams are kept alive."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

STREAM_VENUES = ("binanceusdm", "binancecoinm", "bybit", "okx", "deribit")


@dataclass(frozen=True)
class StreamSettings:
    enabled: bool = True
    venues: tuple[str, ...] = STREAM_VENUES
    liquidations: bool = True  # binance USD-M/COIN-M, bybit, okx liquidation streams
    funding: bool = True  # perpetuals' funding, mark and index by websocket (REST stays the fallback)
    basis: bool = True  # dated futures' mark and index by websocket (REST stays the fallback)
    # COIN-M, bybit, okx and deribit stream per contract: those of these assets (binance USD-M streams every one)
    symbol_assets: tuple[str, ...] = ("BTC", "ETH", "SOL")
    stall_after_s: float = 30.0  # no frame (not even a pong) for this long: drop the connection and redial
    ping_interval_s: float = 10.0
    reconnect_base_s: float = 1.0
    max_backoff_s: float = 60.0
    max_event_age_s: float = 120.0  # a liquidation older than this on arrival (a replay on connect) is dropped
    window_refresh_s: float = 30.0  # recompute rolling windows this often so old events leave them
    funding_refresh_s: float = 5.0  # an unchanged streamed funding row is rewritten at most this often
    price_tolerance: float = 0.0001  # a streamed mark/index moving less than this (relative) is not rewritten
    ws_base_urls: dict[str, str] = field(default_factory=dict)


def parse_streams(raw: dict[str, Any], bad: Any) -> StreamSettings:
    """Validate the ``[streams]`` table; ``bad(key, value, accepted)`` builds the ConfigError."""
    d = raw.get("streams", {})
    if not isinstance(d, dict):
        raise bad("streams", d, "a table")
    known = set(StreamSettings.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise bad("streams", sorted(unknown), f"keys from {sorted(known)}")
    out: dict[str, Any] = {}
    for key in ("enabled", "liquidations", "funding", "basis"):
        if key in d:
            if not isinstance(d[key], bool):
                raise bad(f"streams.{key}", d[key], "true or false")
            out[key] = d[key]
    if "venues" in d:
        v = d["venues"]
        if not isinstance(v, list) or any(x not in STREAM_VENUES for x in v):
            raise bad("streams.venues", v, f"a list from {list(STREAM_VENUES)}")
        out["venues"] = tuple(dict.fromkeys(v))
    if "symbol_assets" in d:
        v = d["symbol_assets"]
        if not isinstance(v, list) or not all(isinstance(a, str) and a.isalnum() for a in v):
            raise bad("streams.symbol_assets", v, 'a list of tickers such as ["BTC", "ETH"]')
        out["symbol_assets"] = tuple(a.upper() for a in v)
    bounds = {
        "stall_after_s": (0.1, 3600),
        "ping_interval_s": (0.05, 600),
        "reconnect_base_s": (0.01, 600),
        "max_backoff_s": (0.05, 3600),
        "max_event_age_s": (1, 86_400),
        "window_refresh_s": (0.05, 3600),
        "funding_refresh_s": (0.05, 3600),
        "price_tolerance": (0, 0.1),
    }
    for key, (lo, hi) in bounds.items():
        if key in d:
            v = d[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
                raise bad(f"streams.{key}", v, f"a number from {lo:g} to {hi:g}")
            out[key] = float(v)
    urls = d.get("ws_base_urls", {})
    if not isinstance(urls, dict):
        raise bad("streams.ws_base_urls", urls, "a table of venue = ws:// or wss:// URL")
    for venue, url in urls.items():
        p = urlparse(url) if isinstance(url, str) else None
        if venue not in STREAM_VENUES or p is None or p.scheme not in ("ws", "wss") or not p.netloc:
            raise bad(f"streams.ws_base_urls.{venue}", url, f"a ws(s) base URL for one of {list(STREAM_VENUES)}")
    out["ws_base_urls"] = dict(urls)
    return StreamSettings(**out)
