"""Market data in Redis: latest values, bounded history, asset universe, source health.

The client is injected (``redis.asyncio.Redis`` with ``decode_responses=False``); every
read a chat command makes is a single pipelined round trip.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from core.keys import Keys

if TYPE_CHECKING:
    from core.metrics.base import Metric

# the long-chart history: one point per series per step, kept for the metric's chart_history_days
TIERS_MS = {"1h": 3_600_000, "6h": 21_600_000}
FUNDING = "funding"
BASIS = "basis"
FLOWS = "flows"


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """One endpoint (or one metric's part of a poll) of a source."""

    ok_ms: int | None
    error: str | None
    error_ms: int | None
    symbols: frozenset[str] = frozenset()  # a per-contract stream's endpoint (``funding@stream``): what it feeds
    until_ms: int | None = None  # a live stream vouches for the part (or its contracts) until then

    @property
    def failing(self) -> bool:
        """Its last attempt failed (a success clears the error time)."""
        return self.error_ms is not None


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
    endpoints: dict[str, EndpointHealth] = field(default_factory=dict)

    @property
    def down(self) -> bool:
        return self.consecutive_failures > 0

    def problem(self, part: str) -> str | None:
        """Why this source's ``part`` (a metric, or an endpoint) is not current now, or None."""
        ep = self.endpoints.get(part)
        if self.down:
            if ep is not None and ep.ok_ms is not None and ep.ok_ms > (self.last_error_ms or 0):
                return None  # fed since the failure by another path (the venue's websocket)
            return self.last_error or "the last poll failed"
        if ep is not None and ep.failing:
            return ep.error or "failing"
        return None

    def failed_ms(self, part: str, symbol: str | None = None, now_ms: int | None = None) -> int | None:
        """When ``part`` (of ``symbol``) stopped being current (the failure :meth:`problem` names), None while
        it is: a live websocket stream that feeds the whole part, or that contract, keeps it current."""
        if self.problem(part) is None:
            return None
        ep = self.endpoints.get(part)
        failed = (self.last_error_ms if self.down else ep.error_ms if ep is not None else None) or 0
        if now_ms is not None and ep is not None and (ep.until_ms or 0) >= now_ms:
            return None  # an all-market stream is live
        streamed = self.endpoints.get(f"{part}@stream")
        if streamed is None or symbol not in streamed.symbols:
            return failed
        if (streamed.ok_ms or 0) > failed or (now_ms is not None and (streamed.until_ms or 0) >= now_ms):
            return None
        return failed

    @property
    def degraded(self) -> list[str]:
        return sorted(n for n, ep in self.endpoints.items() if ep.failing)


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
        self._tier_bucket: dict[tuple[str, str], int] = {}  # (key, symbol) -> the last step written

    # writes ---------------------------------------------------------------------------
    async def write_samples(
        self,
        metric: Metric,
        venue: str,
        samples: Sequence[Any],
        *,
        now_ms: int,
        history: Iterable[Any] = (),
        replace: bool | None = None,
    ) -> None:
        """Store one source's samples of one metric, atomically.

        ``replace`` (the metric's default: ``replace_on_poll``): the batch is the venue's whole set
        for that metric, so assets and instruments it no longer reports are dropped. Otherwise each
        sample is upserted by instrument and the venue's other instruments stay (streamed updates).
        """
        replace = metric.replace_on_poll if replace is None else replace
        by_asset: dict[str, dict[Any, Any]] = defaultdict(dict)  # redis-py's Mapping key type is invariant
        for s in samples:
            by_asset[s.asset][s.symbol] = s.to_json()
        vkey = self.keys.venue_assets(metric.name, venue)
        gone: set[str] = set()
        if replace:
            gone = {_str(a) or "" for a in await self.redis.smembers(vkey)} - set(by_asset)
        pipe = self.redis.pipeline(transaction=True)
        for asset in gone:
            pipe.delete(self.keys.latest(metric.name, asset, venue))
            pipe.hdel(self.keys.assets(metric.name), f"{asset}:{venue}")
        if gone:
            pipe.srem(vkey, *gone)
        for asset, mapping in by_asset.items():
            key = self.keys.latest(metric.name, asset, venue)
            if replace:
                pipe.delete(key)
            pipe.hset(key, mapping=mapping)
        if by_asset:
            pipe.sadd(vkey, *by_asset)
            pipe.hset(self.keys.assets(metric.name), mapping={f"{a}:{venue}": now_ms for a in by_asset})
        trimmed: set[str] = set()
        coarse_ms = int(float(metric.options.get("chart_history_days") or 0) * 86_400_000)
        for s in history:
            hkey = self.keys.history(metric.name, s.asset, venue)
            pipe.zadd(hkey, {metric.history_member(s): s.ts_ms})
            if hkey not in trimmed:
                pipe.zremrangebyscore(hkey, "-inf", now_ms - self.retention_ms)
                trimmed.add(hkey)
            for tier, step_ms in TIERS_MS.items() if coarse_ms else ():
                self._tier(pipe, metric, venue, s, tier, step_ms, now_ms - coarse_ms, trimmed)
        await pipe.execute()

    def _tier(
        self, pipe: Any, metric: Metric, venue: str, s: Any, tier: str, step_ms: int, cutoff_ms: int, trimmed: set[str]
    ) -> None:
        """The first history point of each series in each step also goes to that step's long-chart history.

        The last step written is remembered in memory, so after a restart a step may hold two points
        of a series (harmless: a chart draws both)."""
        key = self.keys.history_tier(tier, metric.name, s.asset, venue)
        bucket = s.ts_ms // step_ms
        if self._tier_bucket.get((key, s.symbol)) == bucket:
            return
        self._tier_bucket[(key, s.symbol)] = bucket
        pipe.zadd(key, {metric.history_member(s): s.ts_ms})
        if key not in trimmed:
            pipe.zremrangebyscore(key, "-inf", cutoff_ms)
            trimmed.add(key)

    async def delete_instruments(self, metric: str, asset: str, venue: str, symbols: Sequence[str]) -> None:
        """Drop some of a venue's stored instruments (rows past their retention)."""
        if symbols:
            await self.redis.hdel(self.keys.latest(metric, asset, venue), *symbols)

    async def known_instruments(self, metric: str, asset: str, venue: str, symbols: Sequence[str]) -> list[bool]:
        """Which of ``symbols`` the venue's stored set already holds."""
        if not symbols:
            return []
        raw = await self.redis.hmget(self.keys.latest(metric, asset, venue), list(symbols))
        return [r is not None for r in raw]

    async def record_success(
        self,
        source: str,
        *,
        now_ms: int,
        latency_ms: int,
        requests: int,
        markets: int | None = None,
        endpoints: Mapping[str, str | None] | None = None,
    ) -> None:
        """Note a successful poll for ``/status``; ``endpoints`` maps each part to None (ok) or its error."""
        key = self.keys.source(source)
        mapping: dict[Any, Any] = {"last_ok_ms": now_ms, "last_latency_ms": latency_ms, "consecutive_failures": 0}
        if markets is not None:
            mapping["markets"] = markets
        healed = []
        for name, error in (endpoints or {}).items():
            if error is None:
                mapping[f"ep:{name}:ok_ms"] = now_ms
                healed.append(f"ep:{name}:error_ms")  # an error time means "failing now"
            else:
                mapping[f"ep:{name}:error"] = error[:300]
                mapping[f"ep:{name}:error_ms"] = now_ms
        pipe = self.redis.pipeline(transaction=False)
        if healed:
            pipe.hdel(key, *healed)
        pipe.sadd(self.keys.sources(), source)
        pipe.hset(key, mapping=mapping)
        pipe.hincrby(key, "requests", requests)
        await pipe.execute()

    async def record_part(self, source: str, part: str, error: str | None, *, now_ms: int, requests: int) -> None:
        """Note one part's outcome (a watcher of its own serving one metric of a source) without touching the rest."""
        key = self.keys.source(source)
        mapping: dict[Any, Any] = (
            {f"ep:{part}:ok_ms": now_ms}
            if error is None
            else {f"ep:{part}:error": error[:300], f"ep:{part}:error_ms": now_ms}
        )
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

    # reads ----------------------------------------------------------------------------
    async def read_latest(
        self, metric: Metric, asset: str, venues: Sequence[str], *, with_health: bool = False
    ) -> tuple[dict[str, list[Any]], dict[str, SourceHealth]]:
        """Latest samples of one asset across venues (and their health): one round trip."""
        (by_venue,), health = await self.read_many([(metric, asset, venues)], health=venues if with_health else ())
        return by_venue, health

    async def read_many(
        self, wanted: Sequence[tuple[Metric, str, Sequence[str]]], *, health: Sequence[str] = ()
    ) -> tuple[list[dict[str, list[Any]]], dict[str, SourceHealth]]:
        """Latest samples of several (metric, asset, venues), plus the health of some sources: one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for metric, asset, venues in wanted:
            for venue in venues:
                pipe.hgetall(self.keys.latest(metric.name, asset, venue))
        for name in health:
            pipe.hgetall(self.keys.source(name))
        results = iter(await pipe.execute())
        out = []
        for metric, _asset, venues in wanted:
            by_venue: dict[str, list[Any]] = {}
            for venue in venues:
                raw = next(results)
                if raw:
                    by_venue[venue] = sorted((metric.decode(v) for v in raw.values()), key=metric.sort_key)
            out.append(by_venue)
        return out, {name: _health(name, next(results)) for name in health}

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
        return [_health(name, raw) for name, raw in zip(names, await pipe.execute(), strict=True)]

    async def read_history(self, metric: str, asset: str, venue: str, since_ms: int) -> list[tuple[int, str]]:
        """History members newer than ``since_ms`` as (ts_ms, member)."""
        raw: list[Any] = await self.redis.zrangebyscore(
            self.keys.history(metric, asset, venue), since_ms, "+inf", withscores=True
        )
        return [(int(pair[1]), _str(pair[0]) or "") for pair in raw]

    async def history_since(
        self, metric: str, asset: str, venues: Sequence[str], since_ms: int, *, tier: str = ""
    ) -> dict[str, list[tuple[int, str]]]:
        """Every venue's history members newer than ``since_ms`` (of a long-chart ``tier``): one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for venue in venues:
            key = (
                self.keys.history_tier(tier, metric, asset, venue) if tier else self.keys.history(metric, asset, venue)
            )
            pipe.zrangebyscore(key, since_ms, "+inf", withscores=True)
        return {
            v: [(int(p[1]), _str(p[0]) or "") for p in raw]
            for v, raw in zip(venues, await pipe.execute(), strict=True)
            if raw
        }

    async def history_at(
        self, metric: str, asset: str, venues: Sequence[str], times_ms: Sequence[int], *, tolerance_ms: int
    ) -> list[dict[str, str]]:
        """For each time, each venue's newest history member at or before it (within ``tolerance_ms``)."""
        pipe = self.redis.pipeline(transaction=False)
        for t in times_ms:
            for venue in venues:
                pipe.zrevrangebyscore(self.keys.history(metric, asset, venue), t, t - tolerance_ms, start=0, num=1)
        res = iter(await pipe.execute())
        out = []
        for _t in times_ms:
            found = {}
            for venue in venues:
                raw = next(res)
                if raw:
                    found[venue] = _str(raw[0]) or ""
            out.append(found)
        return out


def _health(name: str, raw: Mapping[Any, Any]) -> SourceHealth:
    d = {_str(k) or "": v for k, v in raw.items()}
    endpoints: dict[str, dict[str, Any]] = defaultdict(dict)
    for k, v in d.items():
        if k.startswith("ep:"):
            ep, _, attr = k[3:].rpartition(":")
            endpoints[ep][attr] = v
    return SourceHealth(
        name=name,
        last_ok_ms=_int(d.get("last_ok_ms")),
        last_error=_str(d.get("last_error")),
        last_error_ms=_int(d.get("last_error_ms")),
        requests=_int(d.get("requests")) or 0,
        errors=_int(d.get("errors")) or 0,
        consecutive_failures=_int(d.get("consecutive_failures")) or 0,
        last_latency_ms=_int(d.get("last_latency_ms")),
        markets=_int(d.get("markets")),
        endpoints={
            n: EndpointHealth(
                _int(e.get("ok_ms")),
                _str(e.get("error")),
                _int(e.get("error_ms")),
                frozenset(filter(None, (_str(e.get("symbols")) or "").split(","))),
                _int(e.get("until_ms")),
            )
            for n, e in endpoints.items()
        },
    )
