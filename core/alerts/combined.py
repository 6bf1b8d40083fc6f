"""Rules that combine conditions on several factors: ``all(...)`` and ``any(...)``.

Grammar (the words after ``/threshold set``)::

    all(<condition>; <condition>; ...) [cooldown <duration>]
    any(<condition>; <condition>; ...) [cooldown <duration>]
    e.g. all(basis btc above 40%; funding btc above 0.05%; flows btc netflow above 3000) cooldown 4h

Each condition is a plain rule in the usual grammar (``above``/``below``/``change``/``zscore``,
with its own ``venue``/``provider`` and ``hysteresis`` options), 2 to 6 of them, separated by
``;``. ``crosses`` has no "holds" state, so it is not accepted inside a combination.

Evaluation is a layer over the rule engine: every condition is an ordinary engine rule
(``<id>.1``, ``<id>.2``, ... without alerts and cooldown of their own), so it is judged from the
same signals, with its own hysteresis, in live running and in a replay alike. A condition holds
while its engine rule is fired (it re-arms per its hysteresis); a daily-row condition (flows)
holds while the newest published day satisfies it. A condition whose signal has not been judged
within its metric's freshness window (its venue went silent) holds nothing; one not judged yet by
this process (just started) is unknown and neither fires nor re-arms anything. ``all`` fires
once when every condition holds at the same time and re-arms when one stops holding; ``any``
fires when the first condition comes to hold and re-arms when none holds. The combined rule's
cooldown swallows a firing too soon after the last. Its alert lists each condition as a
checklist line with its current value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from core.alerts.engine import ARMED, FIRED, GroupKey, RuleState, Transition, group_key
from core.alerts.events import AlertEvent
from core.alerts.rules import Rule, fmt_duration_s, parse_duration
from core.metrics.alert_text import stamp
from core.reply import Reply, UserError

if TYPE_CHECKING:
    from core.alerts.service import AlertService
    from core.metrics.registry import Registry

COMBINE = ("all", "any")
MAX_CONDITIONS = 6
_FORM = re.compile(r"^(all|any)\s*\((.*)\)\s*(.*)$", re.S)
EXAMPLE = "/threshold set all(basis btc above 40%; funding btc above 0.05%; flows btc netflow above 3000)"


def is_combined(words: list[str]) -> bool:
    return bool(words) and re.match(r"^(all|any)\s*(\(|$)", words[0].lower()) is not None and "(" in " ".join(words[:2])


def parse_combined(
    words: list[str],
    *,
    registry: Registry,
    sources: Mapping[str, tuple[str, ...]],
    rule_id: str,
    default_cooldown_s: int,
    now_ms: int,
    created_by: str,
    scope: str,
    target: str,
) -> Rule:
    """Parse 'all(<cond>; <cond>) [cooldown 4h]'; raises UserError naming the accepted form."""
    from core.alerts.rules import parse_rule  # the plain grammar parses each condition

    m = _FORM.match(" ".join(words).strip())
    if not m:
        raise UserError(f"A combined rule is all(<rule>; <rule>; ...) or any(...), e.g. {EXAMPLE}")
    combine, body, tail = m.group(1).lower(), m.group(2), m.group(3).split()
    texts = [t.strip() for t in body.split(";") if t.strip()]
    if not 2 <= len(texts) <= MAX_CONDITIONS:
        raise UserError(f"{combine}(...) takes 2 to {MAX_CONDITIONS} conditions separated by ';', e.g. {EXAMPLE}")
    conditions = []
    for i, text in enumerate(texts, 1):
        try:
            c = parse_rule(
                text.split(),
                registry=registry,
                sources=sources,
                rule_id=f"{rule_id}.{i}",
                default_cooldown_s=0,
                now_ms=now_ms,
                created_by=created_by,
                scope=scope,
                target=target,
            )
        except UserError as e:
            raise UserError(f"Condition {i} ('{text[:40]}'): {e}") from None
        if c.kind == "crosses":
            raise UserError(
                f"Condition {i}: 'crosses' has no state that holds; use above or below inside {combine}(...)"
            )
        conditions.append(replace(c, cooldown_s=0))
    cooldown_s = default_cooldown_s
    if len(tail) % 2 or any(k != "cooldown" for k in tail[::2]):
        raise UserError(
            f"After {combine}(...) only 'cooldown <duration>' is accepted (put venue, provider and "
            "hysteresis inside the condition they belong to)"
        )
    for value in tail[1::2]:
        cooldown_s = parse_duration(value, "cooldown", lo_s=0 if value.startswith("0") else 60)
    first = conditions[0]
    parts = "; ".join(c.text.replace(", cooldown 0s", "") for c in conditions)
    text = f"{combine} of ({parts}), cooldown {fmt_duration_s(cooldown_s)}"
    return Rule(
        id=rule_id,
        metric=first.metric,
        asset=first.asset,
        kind=combine,
        threshold=0.0,
        venue=first.venue,
        cooldown_s=cooldown_s,
        hysteresis=0.0,
        scope=scope,
        target=target,
        created_by=created_by,
        created_ms=now_ms,
        field=first.field,
        text=text,
        selector=first.selector,
        combine=combine,
        conditions=tuple(conditions),
    )


@dataclass(slots=True)
class Combined:
    """The combined rules the evaluator knows, their states, and which parts and topics move them."""

    rules: dict[str, Rule] = field(default_factory=dict)
    states: dict[str, RuleState] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)  # part id -> combined rule id
    by_group: dict[GroupKey, set[str]] = field(default_factory=dict)  # a part's engine group -> combined ids
    discrete_topics: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # topic -> combined ids

    def add(self, rule: Rule, state: RuleState | None, registry: Registry) -> list[Rule]:
        """Index a combined rule; returns its parts for the engine."""
        self.rules[rule.id] = rule
        self.states[rule.id] = state if state is not None and state.mode in (ARMED, FIRED) else RuleState(ARMED)
        parts = list(rule.parts)
        for p in parts:
            self.owner[p.id] = rule.id
            self.by_group.setdefault(group_key(p), set()).add(rule.id)
            m = registry.find(p.metric)
            if m is not None and m.discrete:
                self.discrete_topics.setdefault((p.metric, p.asset), set()).add(rule.id)
        return parts

    def is_part(self, rule_id: str) -> bool:
        return rule_id in self.owner

    def touched(self, judged: set[GroupKey], topics: set[tuple[str, str]]) -> list[Rule]:
        """Combined rules a batch may have moved: a part's signal was judged, or a daily-row part got a row."""
        if not self.rules:
            return []
        ids: set[str] = set()
        for key in judged:
            ids |= self.by_group.get(key, set())
        for topic in topics:
            ids |= self.discrete_topics.get(topic, set())
        return [self.rules[i] for i in sorted(ids)]

    def judge(self, rule: Rule, holds: list[bool | None], now_ms: int) -> Transition | None:
        """The combined rule's new state for its conditions' current truth, or None when it did not move.

        A condition not judged yet by this process (None, e.g. right after a restart) neither helps a
        firing nor causes a re-arm.
        """
        state = self.states[rule.id]
        if rule.combine == "all":
            fire, rearm = all(h is True for h in holds), any(h is False for h in holds)
        else:
            fire, rearm = any(h is True for h in holds), all(h is False for h in holds)
        if state.mode == ARMED and fire:
            alert = state.last_fired_ms == 0 or now_ms - state.last_fired_ms >= rule.cooldown_s * 1000
            new = RuleState(FIRED, now_ms if alert else state.last_fired_ms)
        elif state.mode == FIRED and rearm:
            new, alert = RuleState(ARMED, state.last_fired_ms), False
        else:
            return None
        self.states[rule.id] = new
        return Transition(rule, new, alert, float(sum(1 for h in holds if h)))

    def evaluate(
        self,
        svc: AlertService,
        judged: set[GroupKey],
        topics: set[tuple[str, str]],
        transitions: list[Transition],
        events: list[AlertEvent],
        now: int,
    ) -> None:
        """Combined rules whose parts were judged (or whose daily-row parts got a new row): fire or re-arm them."""
        for rule in self.touched(judged, topics):
            checks: list[dict[str, Any]] = []
            holds: list[bool | None] = []
            for p in rule.parts:
                held, value = part_holds(svc, p, now)
                holds.append(held)
                checks.append(
                    {
                        "text": p.text.replace(", cooldown 0s", ""),
                        "metric": p.metric,
                        "field": p.field,
                        "kind": p.kind,
                        "value": value,
                        "holds": bool(held),
                    }
                )
            t = self.judge(rule, holds, now)
            if t is not None:
                transitions.append(t)
                if t.alert:
                    events.append(combined_event(rule, t, checks, now))


def part_holds(svc: AlertService, p: Rule, now: int) -> tuple[bool | None, float | None]:
    """Whether one condition of a combined rule holds now (None: not judged yet), and its current value."""
    m = svc.registry.find(p.metric)
    if m is not None and m.discrete:  # the newest published row decides
        obs = m.observations(svc.latest.get((p.metric, p.asset), {}), p.field, p.selector, p.signal, None)
        if not obs:
            return False, None
        value = obs[-1].value
        judged = abs(value) if p.signal != "level" else value
        return (judged < p.threshold if p.kind == "below" else judged > p.threshold), value
    key = group_key(p)
    seen = svc.signal_seen.get(key)
    if seen is None:
        return None, None  # not judged by this process yet (just started): unknown
    if now - seen > svc.window_ms(p.metric):
        return False, None  # its venue went silent: a stale state holds nothing
    st = svc.engine.states.get(p.id)
    return st is not None and st.mode == FIRED, svc.signal_values.get(key)


def combined_event(rule: Rule, t: Transition, checks: list[dict[str, Any]], now_ms: int) -> AlertEvent:
    return AlertEvent(
        **rule.event_fields(),
        kind=rule.combine,
        threshold=0.0,
        value=t.value,
        level=None,
        unit="",
        ts_ms=now_ms,
        extra={"combine": rule.combine, "conditions": checks},
    )


def _fmt(registry: Registry, c: Mapping[str, Any]) -> str:
    value = c.get("value")
    if value is None:
        return "no current value"
    m = registry.find(str(c.get("metric")))
    kind = c.get("kind")
    if kind == "zscore":
        return f"z {value:+.2f}"
    if m is None:
        return f"{value:g}"
    if kind == "change":
        return f"changed {value * 100:+.2f}%" if m.change_relative else f"changed {m.fmt_value(value, c['field'])}"
    return str(m.fmt_value(value, str(c.get("field", ""))))


def render_combined(registry: Registry, e: AlertEvent) -> Reply:
    """Title with how many conditions hold; a checklist line per condition with its current value."""
    checks = list(e.extra.get("conditions", ()))
    held = sum(1 for c in checks if c.get("holds"))
    if e.kind == "all":
        title = f"✅ {e.asset}: all {len(checks)} conditions hold"
    else:
        title = f"✅ {e.asset}: {held} of {len(checks)} conditions hold (any)"
    lines = [f"{'☑' if c.get('holds') else '☐'} {c.get('text')} — now {_fmt(registry, c)}" for c in checks]
    owner = "global rule" if e.scope == "global" else "this chat's rule"
    lines.append(f"{stamp(e.ts_ms)} · {owner} {e.rule_id}")
    return Reply(
        title=title,
        blocks=("\n".join(lines),),
        footer=f"Mute: /mute 2h · Stop: /unsubscribe {e.metric} {e.asset.lower()}",
    )
