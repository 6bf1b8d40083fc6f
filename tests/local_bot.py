"""Settings for running the whole bot against the local doubles (exchanges, Bot API, real Redis)."""

from __future__ import annotations

from typing import Any

from bot.settings import Settings, parse_settings
from core.keys import Keys
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.telegram import TOKEN, BotApiDouble


def local_settings(
    exchanges: ExchangeDouble,
    telegram: BotApiDouble,
    redis_url: str,
    keys: Keys,
    *,
    request_timeout_s: float = 2.0,
    **sections: dict[str, Any],
) -> Settings:
    """Fast polls against the exchange double, Telegram against the Bot API double, no console.

    ``sections`` add or replace whole config sections (e.g. ``alerts={...}``, ``flows={...}``).
    """
    raw: dict[str, Any] = {
        "redis": {"url": redis_url, "key_prefix": keys.prefix},
        "telegram": {
            "token": TOKEN,
            "base_url": telegram.base_url,
            "base_file_url": telegram.base_file_url,
            "poll_timeout_s": 1,
        },
        "console": {"enabled": "off"},
        "charts": {"pool": "thread", "workers": 1},  # no worker processes for tests that draw no chart
        "watchers": {
            "poll_interval_s": 0.3,
            "request_timeout_s": request_timeout_s,
            "max_backoff_s": 0.5,
            "rest_base_urls": {v: exchanges.url(v) for v in ExchangeDouble.VENUES},
        },
    }
    raw.update(sections)
    return parse_settings(raw, env={})
