"""Websocket streams' health in Redis, for ``/status``: state, message rate, last message, reconnects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from core.keys import Keys
from core.render import VENUE_LABELS, fmt_age
from core.reply import Table

STATES = ("connecting", "live", "reconnecting", "standby", "stopped")
HEALTH_TTL_S = 600  # a stream whose process is gone leaves /status after this


def _s(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """What one stream (a venue's feed: ``binanceusdm:liqs``) last reported."""

    name: str
    state: str
    messages: int
    rate_per_s: float
    last_message_ms: int | None
    reconnects: int
    since_ms: int | None  # when it last became live
    last_error: str | None
    updated_ms: int

    @classmethod
    def from_hash(cls, name: str, raw: Mapping[Any, Any]) -> StreamHealth:
        d = {_s(k): _s(v) for k, v in raw.items()}
        return cls(
            name=name,
            state=d.get("state", "?"),
            messages=int(d.get("messages", 0)),
            rate_per_s=float(d.get("rate_per_s", 0.0)),
            last_message_ms=int(d["last_message_ms"]) if d.get("last_message_ms") else None,
            reconnects=int(d.get("reconnects", 0)),
            since_ms=int(d["since_ms"]) if d.get("since_ms") else None,
            last_error=d.get("last_error") or None,
            updated_ms=int(d.get("updated_ms", 0)),
        )


class StreamHealthStore:
    """Writes and reads stream health; owns no connection."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def write(
        self,
        name: str,
        fields: Mapping[str, Any],
        *,
        feeds: tuple[str, str] | None = None,
        contracts: frozenset[str] | None = None,
        vouch_ms: int = 0,
    ) -> None:
        """Store a stream's health; ``feeds`` (venue, metric): the stream feeds that part of the venue now, all
        of it or (``contracts``) those contracts, so they count as current even while the venue's poll fails:
        ``vouch_ms`` after this write (the stall limit), or until the poll fails after the write's time."""
        pipe = self.redis.pipeline(transaction=False)
        if feeds is not None and (contracts is None or contracts):
            ep = f"ep:{feeds[1]}" if contracts is None else f"ep:{feeds[1]}@stream"
            now = int(fields["updated_ms"])
            if contracts:
                pipe.hset(self.keys.source(feeds[0]), f"{ep}:symbols", ",".join(sorted(contracts)))
            pipe.hset(self.keys.source(feeds[0]), f"{ep}:ok_ms", now)
            pipe.hset(self.keys.source(feeds[0]), f"{ep}:until_ms", now + vouch_ms)
        pipe.sadd(self.keys.streams(), name)
        pipe.hset(self.keys.stream(name), mapping={k: "" if v is None else v for k, v in fields.items()})
        pipe.expire(self.keys.stream(name), HEALTH_TTL_S)
        await pipe.execute()

    async def read_all(self) -> list[StreamHealth]:
        names = sorted(_s(n) for n in await self.redis.smembers(self.keys.streams()))
        if not names:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for n in names:
            pipe.hgetall(self.keys.stream(n))
        return [StreamHealth.from_hash(n, raw) for n, raw in zip(names, await pipe.execute(), strict=True) if raw]


def status_blocks(streams: Sequence[StreamHealth], now_ms: int) -> list[str | Table]:
    """The /status section of the streams: a table, and their last errors."""
    if not streams:
        return []
    rows = []
    errors = []
    for h in streams:
        venue, _, feed = h.name.partition(":")
        age = fmt_age((now_ms - h.last_message_ms) / 1000) if h.last_message_ms else "never"
        rows.append(
            (f"{VENUE_LABELS.get(venue, venue)} {feed}", h.state, f"{h.rate_per_s:.1f}/s", age, str(h.reconnects))
        )
        if h.last_error and h.state != "live":
            errors.append(f"{h.name}: {h.last_error}")
    blocks: list[str | Table] = [
        Table(
            header=("stream", "state", "msgs", "last msg", "reconn."),
            rows=tuple(rows),
            align="llrrr",
            caption="Websocket streams",
        )
    ]
    if errors:
        blocks.append("Stream errors:\n" + "\n".join(errors))
    return blocks
