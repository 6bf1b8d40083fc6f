"""Replay: historical samples through the live evaluation path, in time order, on a simulated clock.

Nothing here judges a rule: every batch goes to ``AlertService.on_samples`` exactly as a watcher
would hand it over, with the service's clock set to the moment the batch became visible (a flow
day's publication time, a funding settlement), so the rule engine, the metric modules, hysteresis,
cooldowns, discrete per-day judgement and the alert events are the live ones. The service keeps its
state in Redis; a replay gives it a scratch key prefix (the caller's Redis, or a throwaway embedded
one) and takes the fired events as the service commits them to that prefix's alert stream.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from core.alerts.engine import FIRED, Transition
from core.alerts.events import AlertEvent
from core.alerts.rules import Rule
from core.alerts.service import AlertService, AlertSettings
from core.alerts.store import AlertStore
from core.keys import Keys
from core.metrics.registry import Registry
from core.store import MarketStore


@dataclass(frozen=True, slots=True)
class Batch:
    """One source's samples of one metric, visible from ``at_ms`` on (upserted by instrument)."""

    at_ms: int
    metric: str
    venue: str
    samples: tuple[Any, ...]


@dataclass(slots=True)
class ReplayResult:
    """What fired, and when each rule was in alert (fired, not yet re-armed)."""

    events: list[AlertEvent] = field(default_factory=list)
    periods: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # rule id -> [(from_ms, to_ms)]
    batches: int = 0
    samples: int = 0
    start_ms: int = 0
    end_ms: int = 0


def scratch_keys(base: Keys, what: str = "replay") -> Keys:
    """A key prefix of its own for one replay, beside the deployment's keys and never overlapping them."""
    return Keys(prefix=f"{base.prefix}:{what}:{uuid.uuid4().hex[:12]}", version=base.version)


async def drop_keys(redis: Redis, keys: Keys) -> None:
    """Delete every key under a scratch prefix."""
    batch: list[Any] = []
    async for k in redis.scan_iter(match=f"{keys.base}:*", count=1000):
        batch.append(k)
        if len(batch) >= 1000:
            await redis.delete(*batch)
            batch = []
    if batch:
        await redis.delete(*batch)


class _Recorder:
    """Follows the committed evaluations: the fired events, and each rule in alert from its alert until it
    re-arms (the engine reports only firings; a re-arm is read from the engine's state of the rules in alert)."""

    def __init__(self, registry: Registry, service: AlertService) -> None:
        self.registry = registry
        self.service = service
        self.events: list[AlertEvent] = []
        self.open: dict[str, int] = {}
        self.closed: dict[str, list[tuple[int, int]]] = {}

    def __call__(self, transitions: Sequence[Transition], events: Sequence[AlertEvent], now_ms: int) -> None:
        self.events += events
        states = self.service.engine.states
        for rid, start in list(self.open.items()):
            st = states.get(rid)
            if st is None or st.mode != FIRED:
                self.closed.setdefault(rid, []).append((start, now_ms))
                del self.open[rid]
        for t in transitions:
            m = self.registry.find(t.rule.metric)
            if m is None or m.discrete:  # a day is judged on its own: it never waits to re-arm
                continue
            if t.state.mode == FIRED and t.rule.id not in self.open:
                self.open[t.rule.id] = now_ms

    def finish(self, end_ms: int) -> dict[str, list[tuple[int, int]]]:
        for rid, start in self.open.items():
            self.closed.setdefault(rid, []).append((start, max(start, end_ms)))
        self.open = {}
        return self.closed


async def replay(
    redis: Redis,
    keys: Keys,
    registry: Registry,
    rules: Sequence[Rule],
    batches: Iterable[Batch],
    *,
    settings: AlertSettings,
    start_ms: int,
    end_ms: int,
) -> ReplayResult:
    """Run ``rules`` over ``batches`` (any order; replayed by visibility time) under the scratch prefix ``keys``.

    The prefix must be empty (see ``scratch_keys``); the caller drops it afterwards.
    """
    alerts = AlertStore(redis, keys)
    for r in rules:
        await alerts.save_rule(r, who="replay", action="set", now_ms=start_ms)
    clock = [start_ms]
    market = MarketStore(redis, keys, retention_ms=max(1, end_ms - start_ms) + settings.history_retention_ms)
    service = AlertService(alerts, market, keys, registry, settings, clock_ms=lambda: clock[0])
    recorder = _Recorder(registry, service)
    service.transition_listeners.append(recorder)
    await service.start()
    result = ReplayResult(start_ms=start_ms, end_ms=end_ms)
    try:
        for b in sorted(batches, key=lambda x: x.at_ms):  # stable: equal times keep the caller's order
            clock[0] = b.at_ms
            result.batches += 1
            result.samples += len(b.samples)
            await service.on_samples(b.metric, b.venue, b.samples, replace=False)
    finally:
        await service.stop()
    result.events = recorder.events
    result.periods = recorder.finish(end_ms)
    return result
