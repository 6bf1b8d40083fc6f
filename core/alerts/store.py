"""Alert data in Redis: rules, rule log, states, subscriptions, mutes, admins, the alert stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from redis.asyncio import Redis

from core.alerts.engine import GroupKey, RuleState, Transition
from core.alerts.events import AlertEvent
from core.alerts.rules import Rule
from core.keys import Keys

RULE_LOG_MAX = 500
LOAD_PAGE = 5000  # hash entries per HSCAN page when loading rules and states
STREAM_MAXLEN = 100_000


def _s(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


_WM = "wm|"  # alert-state fields of discrete groups' watermarks: "wm|metric|asset|field|selector|signal"


class AlertStore:
    """All alert bookkeeping; the Redis client is injected."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    # rules ----------------------------------------------------------------------------
    async def next_rule_id(self) -> str:
        return f"r{await self.redis.incr(self.keys.rules_seq())}"

    async def save_rule(self, rule: Rule, *, who: str, action: str, now_ms: int, keep_state: bool = False) -> None:
        """Store a new or changed rule, log it, and tell evaluators to reload."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.rules(), rule.id, rule.to_json())
        for index in self._indexes(rule):
            pipe.sadd(index, rule.id)
        if not keep_state:  # a changed condition starts armed; a moved rule keeps its state
            pipe.hdel(self.keys.alert_state(), rule.id, *(p.id for p in rule.parts))
        pipe.incr(self.keys.rules_version())
        self._log(pipe, who=who, action=action, rule=rule, now_ms=now_ms)
        await pipe.execute()

    async def delete_rule(self, rule: Rule, *, who: str, now_ms: int) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.keys.rules(), rule.id)
        for index in self._indexes(rule):
            pipe.srem(index, rule.id)
        pipe.hdel(self.keys.alert_state(), rule.id, *(p.id for p in rule.parts))
        pipe.incr(self.keys.rules_version())
        self._log(pipe, who=who, action="deleted", rule=rule, now_ms=now_ms)
        await pipe.execute()

    def _indexes(self, rule: Rule) -> tuple[str, ...]:
        if rule.scope == "global":
            return self.keys.rules_global(), self.keys.rules_topic(rule.topic)
        return (self.keys.rules_target(rule.target),)

    async def rules_in(self, index_keys: Sequence[str]) -> tuple[list[Rule], dict[str, RuleState]]:
        """The rules listed in the given index sets, with their states (two round trips, not every rule)."""
        pipe = self.redis.pipeline(transaction=False)
        for k in index_keys:
            pipe.smembers(k)
        ids = sorted({_s(i) for members in await pipe.execute() for i in members})
        if not ids:
            return [], {}
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(self.keys.rules(), ids)
        pipe.hmget(self.keys.alert_state(), ids)
        raw_rules, raw_states = await pipe.execute()
        rules = [Rule.from_json(r) for r in raw_rules if r]
        states = {i: RuleState.decode(_s(st)) for i, st in zip(ids, raw_states, strict=True) if st}
        return rules, states

    async def chat_rule_count(self, target: str) -> int:
        return int(await self.redis.scard(self.keys.rules_target(target)))

    def _log(self, pipe: Any, *, who: str, action: str, rule: Rule, now_ms: int) -> None:
        entry = {
            "ts_ms": now_ms,
            "who": who,
            "action": action,
            "rule": rule.id,
            "scope": rule.scope,
            "target": rule.target,
            "text": rule.describe(),
        }
        pipe.lpush(self.keys.rules_log(), json.dumps(entry))
        pipe.ltrim(self.keys.rules_log(), 0, RULE_LOG_MAX - 1)

    async def rule_log(self, limit: int = 50) -> list[dict[str, Any]]:
        raw = await self.redis.lrange(self.keys.rules_log(), 0, limit - 1)
        return [json.loads(x) for x in raw]

    async def get_rule(self, rule_id: str) -> Rule | None:
        raw = await self.redis.hget(self.keys.rules(), rule_id)
        return Rule.from_json(raw) if raw else None

    async def load_rules(self) -> tuple[int, list[Rule], dict[str, RuleState], dict[GroupKey, int]]:
        """Every rule, state and discrete-group watermark, with the rules version they correspond to."""
        # the version first: a change made while the pages are read bumps it, and the next batch reloads
        version = await self.redis.get(self.keys.rules_version())
        rules = [Rule.from_json(v) async for _k, v in self._scan(self.keys.rules())]
        states: dict[str, RuleState] = {}
        watermarks: dict[GroupKey, int] = {}
        async for k, v in self._scan(self.keys.alert_state()):
            name = _s(k)
            if name.startswith(_WM):
                parts = name[len(_WM) :].split("|")
                if len(parts) == 5:
                    watermarks[(parts[0], parts[1], parts[2], parts[3], parts[4])] = int(_s(v))
            else:
                states[name] = RuleState.decode(_s(v))
        return int(version or 0), rules, states, watermarks

    async def _scan(self, key: str) -> AsyncIterator[tuple[Any, Any]]:
        """A big hash in pages, so a million rules never hold one reply past the client's socket timeout."""
        cursor: Any = 0
        while True:
            cursor, page = await self.redis.hscan(key, cursor, count=LOAD_PAGE)
            for item in page.items():  # type: ignore[union-attr]  # HSCAN pages are mappings
                yield item
            if not cursor:
                return

    async def rules_version(self) -> int:
        return int(await self.redis.get(self.keys.rules_version()) or 0)

    async def claim_default(self, text: str) -> bool:
        """True the first time a default rule text is seen; a deleted default is never reinstalled."""
        return bool(await self.redis.sadd(self.keys.defaults_installed(), text))

    # firing ---------------------------------------------------------------------------
    async def commit(
        self,
        states: Mapping[str, RuleState] | Iterable[Transition],
        events: Sequence[AlertEvent],
        *,
        watermarks: dict[GroupKey, int] | None = None,
    ) -> list[str]:
        """Persist rule states and watermarks and append the fired events atomically; returns the alert ids."""
        encoded: dict[Any, Any] = (
            {rid: st.encode() for rid, st in states.items()}
            if isinstance(states, Mapping)
            else {t.rule.id: t.state.encode() for t in states}
        )
        states = encoded
        states |= {_WM + "|".join(k): ts for k, ts in (watermarks or {}).items()}
        if not states and not events:
            return []
        pipe = self.redis.pipeline(transaction=True)
        if states:
            pipe.hset(self.keys.alert_state(), mapping=states)
        for e in events:
            pipe.xadd(
                self.keys.alerts(),
                {
                    "rule": e.rule_id,
                    "scope": e.scope,
                    "target": e.target,
                    "topic": e.topic,
                    "ts_ms": e.ts_ms,
                    "event": e.to_json(),
                },
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
        res = await pipe.execute()
        return [_s(x) for x in res[1 if states else 0 :]]

    # subscriptions --------------------------------------------------------------------
    async def subscribe(self, target: str, topics: Sequence[str]) -> int:
        pipe = self.redis.pipeline(transaction=True)
        for t in topics:
            pipe.sadd(self.keys.subscribers(t), target)
        pipe.sadd(self.keys.chat_topics(target), *topics)
        res = await pipe.execute()
        return sum(int(x) for x in res[:-1])

    async def unsubscribe(self, target: str, topics: Sequence[str] | None = None) -> list[str]:
        """Remove the target from the topics (all of its topics when None); returns what was removed."""
        if topics is None:
            topics = sorted(_s(t) for t in await self.redis.smembers(self.keys.chat_topics(target)))
        if not topics:
            return []
        pipe = self.redis.pipeline(transaction=True)
        for t in topics:
            pipe.srem(self.keys.subscribers(t), target)
        pipe.srem(self.keys.chat_topics(target), *topics)
        res = await pipe.execute()
        return [t for t, removed in zip(topics, res[:-1], strict=True) if removed]

    async def topics_of(self, target: str) -> list[str]:
        return sorted(_s(t) for t in await self.redis.smembers(self.keys.chat_topics(target)))

    async def subscribers(self, topic: str) -> set[str]:
        return {_s(t) for t in await self.redis.smembers(self.keys.subscribers(topic))}

    async def migrate(self, old: str, new: str, *, now_ms: int) -> None:
        """A Telegram group became a supergroup: move its subscriptions, chat rules and mute."""
        topics = await self.topics_of(old)
        if topics:
            await self.subscribe(new, topics)
            await self.unsubscribe(old, topics)
        rules, _ = await self.rules_in([self.keys.rules_target(old)])
        for r in rules:
            await self.save_rule(
                replace(r, target=new), who="system", action=f"moved from {old}", now_ms=now_ms, keep_state=True
            )
        await self.redis.delete(self.keys.rules_target(old))
        ttl = await self.redis.pttl(self.keys.mute(old))
        if ttl and ttl > 0:
            await self.redis.set(self.keys.mute(new), 1, px=ttl)

    # mutes and admins -----------------------------------------------------------------
    async def mute(self, target: str, seconds: int) -> None:
        if seconds <= 0:
            await self.redis.delete(self.keys.mute(target))
        else:
            await self.redis.set(self.keys.mute(target), 1, ex=seconds)

    async def mute_left_s(self, target: str) -> int:
        ttl = await self.redis.ttl(self.keys.mute(target))
        return max(0, int(ttl))

    async def muted(self, targets: Sequence[str]) -> set[str]:
        if not targets:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for t in targets:
            pipe.exists(self.keys.mute(t))
        return {t for t, e in zip(targets, await pipe.execute(), strict=True) if e}

    async def admins(self, platform: str) -> set[str]:
        return {_s(x) for x in await self.redis.smembers(self.keys.admins(platform))}

    async def add_admin(self, platform: str, user_id: str) -> bool:
        return bool(await self.redis.sadd(self.keys.admins(platform), user_id))

    async def remove_admin(self, platform: str, user_id: str) -> bool:
        return bool(await self.redis.srem(self.keys.admins(platform), user_id))
