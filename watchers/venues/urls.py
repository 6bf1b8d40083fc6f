"""Point a ccxt exchange at another REST host (testnet, relay, local double)."""

from __future__ import annotations

import re
from typing import Any

_SCHEME_HOST = re.compile(r"^https?://[^/]+")


def rewrite_rest_urls(api_urls: Any, base_url: str) -> Any:
    """Return a copy of ccxt's ``urls['api']`` with every http(s) scheme+host replaced by ``base_url``.

    ccxt keeps a nested dict whose shape differs per exchange, and some hosts carry a
    ``{hostname}`` placeholder (okx, bybit); the path after the host is kept, so
    ``https://fapi.binance.com/fapi/v1`` becomes ``{base_url}/fapi/v1``. Websocket URLs are
    left alone.
    """
    base = base_url.rstrip("/")
    if isinstance(api_urls, dict):
        return {k: rewrite_rest_urls(v, base) for k, v in api_urls.items()}
    if isinstance(api_urls, list):
        return [rewrite_rest_urls(v, base) for v in api_urls]
    if isinstance(api_urls, str):
        return _SCHEME_HOST.sub(base, api_urls)
    return api_urls


_WS_SCHEME_HOST = re.compile(r"^wss?://[^/]+")


def rewrite_ws_urls(ws_urls: Any, base_url: str) -> Any:
    """Return a copy of ccxt's ``urls['api']['ws']`` with every ws(s) scheme+host replaced by ``base_url``.

    The path is kept (``wss://fstream.binance.com/ws`` becomes ``{base_url}/ws``); http(s) entries
    (some venues keep REST hosts beside their streams) are left alone.
    """
    base = base_url.rstrip("/")
    if isinstance(ws_urls, dict):
        return {k: rewrite_ws_urls(v, base) for k, v in ws_urls.items()}
    if isinstance(ws_urls, list):
        return [rewrite_ws_urls(v, base) for v in ws_urls]
    if isinstance(ws_urls, str):
        return _WS_SCHEME_HOST.sub(base, ws_urls)
    return ws_urls
