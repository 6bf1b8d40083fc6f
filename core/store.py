"""Market data in Redis: latest values, bounded history, asset universe, source health.

The client is injected (``redis.asyncio.Redis`` with ``decode_responses=False``); every
read a chat command makes is a single pipelined round trip.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from core.keys import Keys
from core.models import BasisSample, FlowDay, FundingSample

FUNDING = "funding"
BASIS = "basis"
FLOWS = "flows"


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """What ``/status`` shows for one source."""

    name: str
    last_ok_ms: int | None
    last_error: str | None
    last_error_ms: int | None
    requests: int
    errors: int
    consecutive_failures: int
    last_latency_ms: int | None
    markets: int | None


@dataclass(slots=True)
class AssetView:
    """Everything one asset's ``/basis`` or ``/funding`` reply needs, read in one round trip."""

    asset: str
    funding: dict[str, list[FundingSample]] = field(default_factory=dict)
    basis: dict[str, list[BasisSample]] = field(default_factory=dict)


def _int(raw: Any) -> int | None:
    return None if raw is None else int(raw)


def _str(raw: Any) -> str | None:
    return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)


class MarketStore:
    """Reads and writes market data; owns no connection (the caller does)."""

    def __init__(self, redis: Redis, keys: Keys, *, retention_ms: int) -> None:
        self.redis = redis
        self.keys = keys
        self.retention_ms = retention_ms

    # writes ---------------------------------------------------------------------------
    async def write_venue(
        self,
        venue: str,
        funding: Sequence[FundingSample],
        basis: Sequence[BasisSample],
        *,
        history: Iterable[FundingSample | BasisSample] = (),
        now_ms: int,
    ) -> None:
        """Replace the venue's latest values per asset and append history, atomically."""
        by_key: dict[str, dict[Any, Any]] = defaultdict(dict)  # redis-py's Mapping key type is invariant
        assets: dict[str, set[str]] = {FUNDING: set(), BASIS: set()}
        for f in funding:
            by_key[self.keys.latest(FUNDING, f.asset, venue)][f.symbol] = f.to_json()
            assets[FUNDING].add(f.asset)
        for b in basis:
            by_key[self.keys.latest(BASIS, b.asset, venue)][b.symbol] = b.to_json()
            assets[BASIS].add(b.asset)
        pipe = self.redis.pipeline(transaction=True)
        for key, mapping in by_key.items():
            pipe.delete(key)
            pipe.hset(key, mapping=mapping)
        for metric, names in assets.items():
            if names:
                pipe.hset(self.keys.assets(metric), mapping={f"{a}:{venue}": now_ms for a in names})
        trimmed: set[str] = set()
        for s in history:
            metric = FUNDING if isinstance(s, FundingSample) else BASIS
            hkey = self.keys.history(metric, s.asset, venue)
            pipe.zadd(hkey, {history_member(s): s.ts_ms})
            if hkey not in trimmed:
                pipe.zremrangebyscore(hkey, "-inf", now_ms - self.retention_ms)
                trimmed.add(hkey)
        await pipe.execute()

    async def record_success(self, source: str, *, now_ms: int, latency_ms: int, requests: int,
                             markets: int | None = None) -> None:
        """Note a successful poll for ``/status``."""
        key = self.keys.source(source)
        mapping: dict[Any, Any] = {"last_ok_ms": now_ms, "last_latency_ms": latency_ms,
                                   "consecutive_failures": 0}
        if markets is not None:
            mapping["markets"] = markets
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(self.keys.sources(), source)
        pipe.hset(key, mapping=mapping)
        pipe.hincrby(key, "requests", requests)
        await pipe.execute()

    async def record_failure(self, source: str, error: str, *, now_ms: int, requests: int) -> int:
        """Note a failed poll; return the number of failures in a row."""
        key = self.keys.source(source)
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(self.keys.sources(), source)
        pipe.hset(key, mapping={"last_error": error[:300], "last_error_ms": now_ms})
        pipe.hincrby(key, "requests", requests)
        pipe.hincrby(key, "errors", 1)
        pipe.hincrby(key, "consecutive_failures", 1)
        res = await pipe.execute()
        return int(res[-1])

    async def write_flows(self, provider: str, asset: str, rows: Sequence[FlowDay], *, now_ms: int,
                          retention_days: int = 400) -> list[FlowDay]:
        """Store a provider's daily rows (revisions overwrite); returns the rows whose day is new."""
        if not rows:
            return []
        key = self.keys.flows(asset, provider)
        days = [r.day for r in rows]
        known = await self.redis.hmget(key, days)
        cutoff = time.strftime("%Y-%m-%d", time.gmtime(now_ms / 1000 - retention_days * 86_400))
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping={r.day: r.to_json() for r in rows})
        pipe.hset(self.keys.assets(FLOWS), f"{asset}:{provider}", now_ms)
        await pipe.execute()
        old = [d for d in await self.redis.hkeys(key) if _str(d) and (_str(d) or "") < cutoff]
        if old:
            await self.redis.hdel(key, *old)
        return [r for r, k in zip(rows, known, strict=True) if k is None]

    async def read_flows(self, asset: str, providers: Sequence[str]) -> dict[str, list[FlowDay]]:
        """Every stored day per provider, oldest first (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for p in providers:
            pipe.hgetall(self.keys.flows(asset, p))
        out = {}
        for p, raw in zip(providers, await pipe.execute(), strict=True):
            if raw:
                out[p] = sorted((FlowDay.from_json(v) for v in raw.values()), key=lambda r: r.day)
        return out

    # reads ----------------------------------------------------------------------------
    async def read_asset(self, asset: str, venues: Sequence[str], *, funding: bool = True,
                         basis: bool = True) -> AssetView:
        """Latest funding and/or basis of one asset across venues: one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        plan: list[tuple[str, str]] = []
        for venue in venues:
            if funding:
                pipe.hgetall(self.keys.latest(FUNDING, asset, venue))
                plan.append((FUNDING, venue))
            if basis:
                pipe.hgetall(self.keys.latest(BASIS, asset, venue))
                plan.append((BASIS, venue))
        results = await pipe.execute()
        view = AssetView(asset)
        for (metric, venue), raw in zip(plan, results, strict=True):
            if not raw:
                continue
            if metric == FUNDING:
                view.funding[venue] = sorted((FundingSample.from_json(v) for v in raw.values()),
                                             key=lambda s: s.symbol)
            else:
                view.basis[venue] = sorted((BasisSample.from_json(v) for v in raw.values()),
                                           key=lambda s: (s.expiry_ms, s.symbol))
        return view

    async def known_assets(self, metric: str) -> dict[str, set[str]]:
        """Asset -> venues that list it, as last reported by the watchers."""
        raw = await self.redis.hkeys(self.keys.assets(metric))
        out: dict[str, set[str]] = defaultdict(set)
        for field_ in raw:
            parts = str(_str(field_) or "").split(":", 1)
            if len(parts) == 2:
                out[parts[0]].add(parts[1])
        return dict(out)

    async def read_health(self, names: Sequence[str]) -> list[SourceHealth]:
        """Health of the named sources (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for n in names:
            pipe.hgetall(self.keys.source(n))
        rows = await pipe.execute()
        out = []
        for name, raw in zip(names, rows, strict=True):
            d = {_str(k): v for k, v in raw.items()}
            out.append(SourceHealth(
                name=name,
                last_ok_ms=_int(d.get("last_ok_ms")),
                last_error=_str(d.get("last_error")),
                last_error_ms=_int(d.get("last_error_ms")),
                requests=_int(d.get("requests")) or 0,
                errors=_int(d.get("errors")) or 0,
                consecutive_failures=_int(d.get("consecutive_failures")) or 0,
                last_latency_ms=_int(d.get("last_latency_ms")),
                markets=_int(d.get("markets")),
            ))
        return out

    async def read_history(self, metric: str, asset: str, venue: str, since_ms: int) -> list[tuple[int, str]]:
        """History members newer than ``since_ms`` as (ts_ms, member)."""
        raw: list[Any] = await self.redis.zrangebyscore(self.keys.history(metric, asset, venue), since_ms, "+inf",
                                                        withscores=True)
        return [(int(pair[1]), _str(pair[0]) or "") for pair in raw]


def history_member(s: FundingSample | BasisSample) -> str:
    """Compact, unique-per-sample history member: ``ts|symbol|value...``."""
    if isinstance(s, FundingSample):
        return f"{s.ts_ms}|{s.symbol}|{s.rate_per_interval!r}|{s.interval_s}"
    return f"{s.ts_ms}|{s.symbol}|{s.future_usd!r}|{s.index_usd!r}|{s.expiry_ms}"
