"""Rule evaluation on new samples: the listener every watcher calls after it stored a batch.

One path for every metric of the registry. The service keeps each (metric, asset)'s latest
samples per venue in memory (fed by the watchers, seeded from Redis at start), so evaluating a
batch costs no Redis reads except the signal history of change and z-score rules. A metric
computes its own signal values (``Metric.points``); a discrete metric (daily flows) hands over
one observation per new row and its rules judge each one on its own. Rule changes made by any
process are picked up through a version counter. State changes and fired alerts (typed events,
rendered at delivery) are written in one transaction, so a restart neither re-fires nor forgets.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.alerts.combined import Combined
from core.alerts.engine import ARMED, GroupKey, RuleEngine, RuleState, Transition
from core.alerts.events import AlertEvent, ContextPoint, Related
from core.alerts.signals import Level, level, zscore
from core.alerts.store import AlertStore
from core.keys import Keys
from core.metrics.base import Metric, Observation
from core.metrics.registry import Registry
from core.store import MarketStore

log = logging.getLogger(__name__)

STATE_FLUSH_PER_BATCH = 2000  # silent state changes written per batch (firings at once, with their event)
LEASE_TTL_S = 9.0  # a standby data process takes over evaluation within this after the active one dies
LEASE_RENEW_S = 3.0
_ACQUIRE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

LevelKey = tuple[str, str, str, str]  # metric, asset, field, selector


@dataclass(frozen=True, slots=True)
class AlertSettings:
    sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # metric -> venues or providers
    history_assets: tuple[str, ...] = ("BTC", "ETH", "SOL")
    history_step_s: float = 300.0
    history_retention_ms: int = 35 * 86_400_000
    stale_after_ms: int = 180_000  # a venue's samples older than this leave every aggregate


def _now_ms() -> int:
    return int(time.time() * 1000)


def _venue_sums(lv: Level) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in lv.points:
        out[p.venue] = out.get(p.venue, 0.0) + p.value
    return out


def _by_venue(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(";"):
        venue, _, value = part.partition("=")
        if venue and value:
            out[venue] = float(value)
    return out


def _sig_selector(field_: str, selector: str) -> str:
    return f"{field_}@{selector}" if field_ else selector


class AlertService:
    """Evaluates rules when samples arrive and appends fired alert events to the stream."""

    def __init__(
        self,
        alerts: AlertStore,
        market: MarketStore,
        keys: Keys,
        registry: Registry,
        settings: AlertSettings,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self.alerts = alerts
        self.market = market
        self.keys = keys
        self.registry = registry
        self.settings = settings
        self.clock_ms = clock_ms
        self.engine = RuleEngine(report_silent=False)
        self.version = -1
        self.latest: dict[tuple[str, str], dict[str, list[Any]]] = {}  # (metric, asset) -> venue -> samples
        self.watermarks: dict[GroupKey, int] = {}  # discrete groups: the newest row already judged
        self.combined = Combined()  # all(...)/any(...) rules: a layer over their parts' engine rules
        self.signal_values: dict[GroupKey, float] = {}  # each group's last judged value (combined checklists)
        self.signal_seen: dict[GroupKey, int] = {}  # when it was judged: a condition holds only on current data
        self._sig_written: dict[str, int] = {}
        # told every committed batch of state changes and fired events, with the evaluation time (replays)
        self.transition_listeners: list[Callable[[Sequence[Transition], Sequence[AlertEvent], int], None]] = []
        # one evaluation at a time: a reload must never rebuild the engine under an uncommitted evaluation
        self._lock = asyncio.Lock()
        self.instance = uuid.uuid4().hex
        self._leader = False
        self._lease_checked = -1e9

    async def start(self) -> None:
        """Take the evaluator lease if it is free, then load the rules once (a leader's first batch need not)."""
        if await self._is_leader():
            self.version = -1
        await self._reload()

    async def stop(self) -> None:
        """Write the pending state changes, then hand the evaluator lease back so another process takes over."""
        async with self._lock:
            if self.engine.dirty:
                await self._commit([], [], {}, flush=True)
        await self.alerts.redis.eval(_RELEASE, 1, self.keys.evaluator_lease(), self.instance)
        self._leader = False

    async def _is_leader(self) -> bool:
        """Only the holder of the evaluator lease evaluates, so two data processes never double an alert."""
        now = time.monotonic()
        if now - self._lease_checked < LEASE_RENEW_S:
            return self._leader
        self._lease_checked = now
        got = bool(
            await self.alerts.redis.eval(
                _ACQUIRE, 1, self.keys.evaluator_lease(), self.instance, int(LEASE_TTL_S * 1000)
            )
        )
        if got != self._leader:
            log.info("alerts: this process %s the evaluator lease", "holds" if got else "lost")
            if got:
                self.version = -1  # another process may have moved rule states: start from Redis
        self._leader = got
        return got

    async def _commit(
        self,
        transitions: list[Transition],
        events: list[AlertEvent],
        watermarks: dict[GroupKey, int],
        *,
        flush: bool = False,
    ) -> list[str]:
        """Write what must not be lost now: firings (their state, in the same transaction as the events) and
        watermarks. Silent transitions (a re-arm, a swallowed firing, a side flip) change only what /alerts
        shows and what a restart starts from; they are coalesced per rule and written every
        ``STATE_FLUSH_S`` (and on stop), which keeps a batch that moves thousands of rules cheap.
        """
        engine = self.engine
        states = {t.rule.id: t.state for t in transitions}
        engine.dirty.difference_update(states)
        take = len(engine.dirty) if flush else min(len(engine.dirty), STATE_FLUSH_PER_BATCH)
        for _ in range(take):  # a bounded share per batch, so a sweep never turns into one huge write
            rid = engine.dirty.pop()
            if rid in engine.states:
                states[rid] = engine.states[rid]
        if not states and not events and not watermarks:
            return []
        try:
            return await self.alerts.commit(states, events, watermarks=watermarks)
        except BaseException:
            self.version = -1  # the engine moved but Redis did not: rebuild from Redis next time
            raise

    async def _reload(self) -> None:
        if self.engine.dirty and self.version >= 0:  # what this process knows is newer than Redis: write it first
            await self._commit([], [], {}, flush=True)
        version, rules, states, watermarks = await self.alerts.load_rules()
        engine = RuleEngine(report_silent=False)
        combined = Combined()
        for rule in rules:
            for r in combined.add(rule, states.get(rule.id), self.registry) if rule.combine else (rule,):
                m = self.registry.find(r.metric)
                if m is None:
                    continue
                st = states.get(r.id)
                if m.discrete and st is not None and st.mode != ARMED:  # each row is judged alone: never waiting
                    st = RuleState(ARMED, st.last_fired_ms)
                engine.add(r, st)
        self.engine, self.version, self.watermarks, self.combined = engine, version, watermarks, combined
        for metric, asset in {(p.metric, p.asset) for r in rules for p in (r.parts or (r,))} - set(self.latest):
            m = self.registry.find(metric)
            if m is not None:
                by_venue, _ = await self.market.read_latest(m, asset, self.settings.sources.get(metric, ()))
                self.latest[(metric, asset)] = by_venue
        log.info("alerts: %d rules loaded (version %d)", len(rules), version)

    async def on_samples(
        self,
        metric: str,
        venue: str,
        samples: Sequence[Any],
        *,
        replace: bool = True,
        keep: frozenset[str] = frozenset(),
    ) -> int:
        """Listener for watchers: a venue's new samples of one metric; returns how many alerts fired.

        ``replace``: the batch is the venue's whole set (assets it no longer reports leave every
        aggregate, an empty batch from a failing part removes the venue), except the contracts in
        ``keep`` (those a live stream feeds, which the poll does not report); otherwise samples are
        upserted by instrument.
        """
        async with self._lock:
            leader = await self._is_leader()
            if leader and await self.alerts.rules_version() != self.version:
                await self._reload()
            touched = self._apply(metric, venue, samples, replace=replace, keep=keep)
            if not leader or not touched:
                return 0
            return await self.evaluate(touched, self.clock_ms(), venue)

    def _apply(
        self, metric: str, venue: str, samples: Sequence[Any], *, replace: bool, keep: frozenset[str] = frozenset()
    ) -> set[tuple[str, str]]:
        fresh: dict[str, list[Any]] = {}
        for s in samples:
            fresh.setdefault(s.asset, []).append(s)
        touched = {(metric, a) for a in fresh}
        if replace:
            for key, by_venue in self.latest.items():
                if key[0] == metric and key[1] not in fresh and venue in by_venue:
                    kept = [s for s in by_venue[venue] if s.symbol in keep]
                    if kept:
                        by_venue[venue] = kept
                    else:
                        del by_venue[venue]
                    touched.add(key)
        for asset, ss in fresh.items():
            by_venue = self.latest.setdefault((metric, asset), {})
            if replace:
                given = {s.symbol for s in ss}
                by_venue[venue] = ss + [
                    s for s in by_venue.get(venue, ()) if s.symbol in keep and s.symbol not in given
                ]
            else:
                merged = {s.symbol: s for s in by_venue.get(venue, ())}
                merged.update({s.symbol: s for s in ss})
                by_venue[venue] = list(merged.values())
        return touched

    def window_ms(self, metric: str) -> float:
        """How long a metric's samples count as current."""
        m = self.registry.find(metric)
        stale_ms = self.settings.stale_after_ms
        return stale_ms if m is None else m.fresh_for_s(stale_ms / 1000) * 1000

    def _current(self, metric: str, asset: str, now: int) -> dict[str, list[Any]]:
        """Current samples of a topic; a venue that stopped reporting drops out instead of voting with old data."""
        oldest = now - self.window_ms(metric)
        return {
            v: kept
            for v, ss in self.latest.get((metric, asset), {}).items()
            if (kept := [s for s in ss if s.ts_ms >= oldest])
        }

    async def evaluate(self, topics: set[tuple[str, str]], now: int, venue: str | None = None) -> int:
        """Evaluate the rule groups of the given (metric, asset) topics that ``venue``'s samples can move."""
        levels: dict[LevelKey, Level] = {}
        groups: list[GroupKey] = []
        recorded: set[LevelKey] = set()  # signals whose history change/zscore rules read
        transitions: list[Transition] = []
        events: list[AlertEvent] = []
        watermarks: dict[GroupKey, int] = {}
        shared: dict[Any, Any] = {}  # context computed once per level and related headline per topic
        keep_all = "*" in self.settings.history_assets
        for metric, asset in topics:
            m = self.registry.find(metric)
            if m is None:
                continue
            mine = [
                k
                for k in self.engine.groups_for(metric, asset)
                if venue is None or k[3] == venue or "/" not in k[3] or k[3].startswith(f"{venue}/")
            ]
            if m.discrete:
                self._judge_discrete(m, asset, mine, venue, transitions, events, watermarks)
                continue
            wanted = {(k[2], k[3]) for k in mine}
            recorded.update((metric, asset, k[2], k[3]) for k in mine if k[4] != "level")
            if keep_all or asset in self.settings.history_assets:
                fields_ = m.fields or ("",)
                wanted |= {(f, agg) for f in fields_ for agg in m.aggregates}
                recorded.update((metric, asset, f, agg) for f in fields_ for agg in m.aggregates)
            if not wanted:
                continue
            current = self._current(metric, asset, now)
            points = {f: m.points(current, f, now) for f in {f for f, _ in wanted}}
            for f, sel in wanted:
                lv = level(points[f], sel)
                if lv is not None:
                    levels[(metric, asset, f, sel)] = lv
            groups.extend(mine)
        judged: set[GroupKey] = set()  # groups a value was applied to (what combined rules look at)
        relative = [k for k in groups if k[4] != "level"]
        history = await self._history(relative, levels, now)
        await self._record_history({k: levels[k] for k in recorded if k in levels}, now)
        for key in groups:
            lv = levels.get(key[:4])  # a GroupKey's first four parts are a LevelKey
            if lv is None:
                continue
            if key[4] == "level":
                self.signal_values[key], self.signal_seen[key] = lv.value, now
                judged.add(key)
                new = self.engine.evaluate(key, lv.value, now)
            elif key in history:
                signed = self.signal_values[key] = history[key]
                self.signal_seen[key] = now
                judged.add(key)
                new = self.engine.evaluate(key, abs(signed), now, signed=signed)
            else:
                continue
            transitions += new
            events += [self._event(t, lv, now, shared) for t in new if t.alert and not self.combined.is_part(t.rule.id)]
        self.combined.evaluate(self, judged, topics, transitions, events, now)
        if not transitions and not watermarks and not self.engine.dirty:
            return 0
        ids = await self._commit(transitions, events, watermarks)
        for listener in self.transition_listeners:
            listener(transitions, events, now)
        for e, alert_id in zip(events, ids, strict=True):
            log.info(
                "alert %s fired: rule=%s metric=%s asset=%s value=%r", alert_id, e.rule_id, e.metric, e.asset, e.value
            )
        return len(events)

    def _judge_discrete(
        self,
        m: Metric,
        asset: str,
        groups: Sequence[GroupKey],
        venue: str | None,
        transitions: list[Transition],
        events: list[AlertEvent],
        watermarks: dict[GroupKey, int],
    ) -> None:
        """Each row published after the group's watermark is judged once, oldest first."""
        rows = self.latest.get((m.name, asset), {})
        for key in groups:
            _metric, _asset, field_, selector, signal = key
            source_rows = rows.get(selector, ())
            if not source_rows:
                continue
            for obs in m.observations(rows, field_, selector, signal, self.watermarks.get(key)):
                value = abs(obs.value) if signal != "level" else obs.value
                new = self.engine.evaluate(key, value, obs.ts_ms, signed=obs.value, discrete=True)
                transitions += new
                events += [
                    self._discrete_event(t, obs) for t in new if t.alert and not self.combined.is_part(t.rule.id)
                ]
            newest = max(r.ts_ms for r in source_rows)
            if self.watermarks.get(key, -1) < newest:
                self.watermarks[key] = watermarks[key] = newest

    async def _history(self, groups: list[GroupKey], levels: dict[LevelKey, Level], now: int) -> dict[GroupKey, float]:
        """Signed change (absolute, or relative for metrics that say so) or z-score per group."""
        if not groups:
            return {}
        pipe = self.alerts.redis.pipeline(transaction=False)
        plan = []
        for key in groups:
            metric, asset, field_, sel, sig = key
            kind, window_ms = sig.split(":")[0], int(sig.split(":")[1]) * 1000
            hkey = self.keys.signal_history(metric, asset, _sig_selector(field_, sel))
            if kind == "change":
                pipe.zrevrangebyscore(hkey, now - window_ms, "-inf", start=0, num=1)
            else:
                pipe.zrangebyscore(hkey, now - window_ms, "+inf")
            plan.append((key, kind))
        out = {}
        for (key, kind), raw in zip(plan, await pipe.execute(), strict=True):
            lv = levels.get(key[:4])
            if lv is None or not raw:
                continue
            values = [float(m.decode().split("|")[1]) for m in raw]
            if kind == "change":
                then, now_value = values[0], lv.value
                parts = raw[0].decode().split("|")
                if len(parts) > 2:  # a sum: compare the venues present at both ends, not venues coming and going
                    old = _by_venue(parts[2])
                    current = _venue_sums(lv)
                    common = old.keys() & current.keys()
                    then, now_value = sum(old[v] for v in common), sum(current[v] for v in common)
                m = self.registry.find(key[0])
                if m is not None and m.change_relative:
                    if then:
                        out[key] = (now_value - then) / abs(then)
                else:
                    out[key] = now_value - then
            else:
                z = zscore(lv.value, values)
                if z is not None:
                    out[key] = z
        return out

    async def _record_history(self, levels: dict[LevelKey, Level], now: int) -> None:
        step_ms = self.settings.history_step_s * 1000
        due = []
        for (metric, asset, field_, sel), lv in levels.items():
            hkey = self.keys.signal_history(metric, asset, _sig_selector(field_, sel))
            if now - self._sig_written.get(hkey, 0) >= step_ms:
                self._sig_written[hkey] = now
                member = f"{now}|{lv.value!r}"
                if sel.endswith("sum"):  # keep each venue's part, so a change compares like with like
                    member += "|" + ";".join(f"{v}={x!r}" for v, x in sorted(_venue_sums(lv).items()))
                due.append((hkey, member))
        if not due:
            return
        pipe = self.alerts.redis.pipeline(transaction=False)
        for hkey, member in due:
            pipe.zadd(hkey, {member: now})
            pipe.zremrangebyscore(hkey, "-inf", now - self.settings.history_retention_ms)
        await pipe.execute()

    # events -----------------------------------------------------------------------------
    def _event(self, t: Transition, lv: Level, now: int, shared: dict[Any, Any]) -> AlertEvent:
        r = t.rule
        m = self.registry.get(r.metric)
        direction = (
            t.state.mode
            if r.kind == "crosses"
            else ("+" if t.value >= 0 else "-")
            if r.kind in ("change", "zscore")
            else ""
        )
        p = lv.point
        context = shared.get(id(lv))
        if context is None:
            top = sorted(lv.points, key=lambda x: -x.value)[:8]
            context = shared[id(lv)] = tuple(ContextPoint(x.label, x.symbol, x.value) for x in top)
        related = shared.get((r.metric, r.asset))
        if related is None:
            related = shared[(r.metric, r.asset)] = self._related(m, r.asset, now)
        current = shared.get(("current", r.metric, r.asset))
        if current is None:  # once per topic and batch, not once per alert
            current = shared[("current", r.metric, r.asset)] = self._current(r.metric, r.asset, now)
        return AlertEvent(
            **r.event_fields(),
            kind=r.kind,
            threshold=r.threshold,
            value=t.value,
            level=lv.value if r.kind in ("change", "zscore") else None,
            unit=m.unit,
            ts_ms=now,
            venue=p.venue if p else "",
            instrument=p.symbol if p else "",
            label=p.label if p else "",
            direction=direction,
            window_s=r.window_s,
            count=len(lv.points),
            context=context,
            related=related,
            extra=m.event_extra(current, lv, now),
        )

    def _related(self, m: Metric, asset: str, now: int) -> tuple[Related, ...]:
        """The headline of each metric the alert's metric names as context (basis in a funding alert)."""
        out = []
        for name in m.related:
            other = self.registry.find(name)
            if other is None:
                continue
            hl = other.headline(other.points(self._current(name, asset, now), "", now))
            if hl is not None:
                what, olv = hl
                out.append(
                    Related(
                        name,
                        what,
                        olv.value,
                        olv.point.label if olv.point else "",
                        olv.point.symbol if olv.point else "",
                        len(olv.points),
                    )
                )
        return tuple(out)

    def _discrete_event(self, t: Transition, obs: Observation) -> AlertEvent:
        r = t.rule
        m = self.registry.get(r.metric)
        p = obs.point
        return AlertEvent(
            **r.event_fields(),
            kind=r.kind,
            threshold=r.threshold,
            value=obs.value,
            level=None,
            unit=m.unit,
            ts_ms=obs.ts_ms,
            venue=p.venue if p else "",
            instrument=p.symbol if p else "",
            direction="+" if obs.value >= 0 else "-",
            window_s=r.window_s,
            extra=obs.extra,
        )
