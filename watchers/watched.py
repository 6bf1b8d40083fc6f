"""Which assets chats and rules care about, per metric, read from Redis: per-symbol calls go to these only.

A chat subscribed to ``oi:BTC`` (the subscription topic's SET) or a rule on open interest of BTC (any
rule in the rules HASH, global or per chat) makes BTC watched for ``oi``. Read at most every
``refresh_s``; the last answer stands while Redis is away.
"""

from __future__ import annotations

import json
import logging
import time

from redis.asyncio import Redis

from core.keys import Keys

log = logging.getLogger(__name__)


class WatchedAssets:
    """``await watched("oi")`` -> the upper-case assets subscribed to or watched by a rule for that metric."""

    def __init__(self, redis: Redis, keys: Keys, *, refresh_s: float = 60.0) -> None:
        self.redis = redis
        self.keys = keys
        self.refresh_s = refresh_s
        self._known: dict[str, frozenset[str]] = {}
        self._read_s: dict[str, float] = {}

    async def __call__(self, metric: str) -> frozenset[str]:
        if time.monotonic() - self._read_s.get(metric, -1e18) < self.refresh_s:
            return self._known.get(metric, frozenset())
        try:
            assets = await self._read(metric)
        except Exception as e:  # Redis away: keep the last answer, try again next time
            log.warning(
                "metric=%s watched assets unreadable, keeping %d known: %s", metric, len(self._known.get(metric, ())), e
            )
            return self._known.get(metric, frozenset())
        self._known[metric], self._read_s[metric] = assets, time.monotonic()
        return assets

    async def _read(self, metric: str) -> frozenset[str]:
        assets: set[str] = set()
        prefix = self.keys.subscribers(f"{metric}:")
        async for raw in self.redis.scan_iter(match=f"{prefix}*", count=500):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            if await self.redis.scard(key):
                assets.add(key[len(prefix) :].upper())
        for raw in await self.redis.hvals(self.keys.rules()):
            try:
                rule = json.loads(raw)
            except (TypeError, ValueError):
                continue
            if isinstance(rule, dict) and rule.get("metric") == metric and rule.get("asset"):
                assets.add(str(rule["asset"]).upper())
        return frozenset(assets)
