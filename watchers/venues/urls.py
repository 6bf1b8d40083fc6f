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
