"""Rule evaluation: pure, in memory, proportional to the rules that change state.

Rules measuring the same signal form a group. Within a group, rules are kept in sorted lists
by the value at which they would change state, so a new value finds every rule that fires or
re-arms by bisection: cost O(log n + k) for k transitions, not O(n).

States: an above/below rule is ``armed`` (will fire when the value passes the threshold) or
``fired`` (will re-arm when the value comes back past threshold -/+ hysteresis). A crosses
rule remembers its side (``+`` above, ``-`` below; ``?`` until the first value) and fires on
every flip beyond the band. change and zscore rules are above-rules on the absolute value of
their signal. A transition inside the rule's cooldown changes state silently.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.alerts.rules import Rule

ARMED, FIRED, ABOVE, BELOW, UNKNOWN = "a", "f", "+", "-", "?"
_HIGH = "\U0010ffff"  # sorts after every rule id, for bisect_right on (value, id) tuples


GroupKey = tuple[str, str, str, str, str]  # metric, asset, field, selector, signal


def group_key(rule: Rule) -> GroupKey:
    """Rules measuring the same number form a group: same metric, asset, series, selector and signal."""
    return (rule.metric, rule.asset, rule.field, rule.selector or rule.venue, rule.signal)


@dataclass(slots=True)
class RuleState:
    mode: str
    last_fired_ms: int = 0

    def encode(self) -> str:
        return f"{self.mode}:{self.last_fired_ms}"

    @classmethod
    def decode(cls, raw: str) -> RuleState:
        mode, _, ts = raw.partition(":")
        return cls(mode or ARMED, int(ts or 0))


@dataclass(frozen=True, slots=True)
class Transition:
    rule: Rule
    state: RuleState  # the new state
    alert: bool  # False when the cooldown swallowed it, or the state merely re-armed
    value: float  # the measured value (signed, before abs for change/zscore)


@dataclass(slots=True)
class _Group:
    above_armed: list[tuple[float, str]] = field(default_factory=list)  # (threshold, id)
    above_fired: list[tuple[float, str]] = field(default_factory=list)  # (threshold - band, id)
    below_armed: list[tuple[float, str]] = field(default_factory=list)  # (threshold, id)
    below_fired: list[tuple[float, str]] = field(default_factory=list)  # (threshold + band, id)
    side_above: list[tuple[float, str]] = field(default_factory=list)  # crosses, currently above: (thr - band, id)
    side_below: list[tuple[float, str]] = field(default_factory=list)  # crosses, currently below: (thr + band, id)
    side_unknown: set[str] = field(default_factory=set)


class RuleEngine:
    """All rules and their states, indexed for fast evaluation."""

    def __init__(self, *, report_silent: bool = True) -> None:
        """``report_silent=False``: state changes that fire nothing (re-arms, side flips, firings swallowed by
        the cooldown) are applied and their rule ids collected in ``dirty`` instead of returned as transitions."""
        self.report_silent = report_silent
        self.dirty: set[str] = set()
        self.rules: dict[str, Rule] = {}
        self.states: dict[str, RuleState] = {}
        self._groups: dict[GroupKey, _Group] = {}
        self._by_topic: dict[tuple[str, str], set[GroupKey]] = {}

    def __len__(self) -> int:
        return len(self.rules)

    def groups_for(self, metric: str, asset: str) -> set[GroupKey]:
        return self._by_topic.get((metric, asset), set())

    def all_groups(self) -> Iterable[GroupKey]:
        return self._groups.keys()

    def add(self, rule: Rule, state: RuleState | None = None) -> None:
        """Index a rule; a new rule starts armed (so a condition already true fires on the next value)."""
        if rule.id in self.rules:
            self.remove(rule.id)
        if state is None:
            state = RuleState(UNKNOWN if rule.kind == "crosses" else ARMED)
        self.rules[rule.id] = rule
        self.states[rule.id] = state
        key = group_key(rule)
        g = self._groups.setdefault(key, _Group())
        self._by_topic.setdefault((rule.metric, rule.asset), set()).add(key)
        for lst, entry in self._slots(g, rule, state):
            insort(lst, entry)
        if rule.kind == "crosses" and state.mode == UNKNOWN:
            g.side_unknown.add(rule.id)

    def remove(self, rule_id: str) -> None:
        rule = self.rules.pop(rule_id, None)
        state = self.states.pop(rule_id, None)
        if rule is None or state is None:
            return
        key = group_key(rule)
        g = self._groups[key]
        for lst, entry in self._slots(g, rule, state):
            i = bisect_left(lst, entry)
            if i < len(lst) and lst[i] == entry:
                del lst[i]
        g.side_unknown.discard(rule_id)
        if not any(
            (g.above_armed, g.above_fired, g.below_armed, g.below_fired, g.side_above, g.side_below, g.side_unknown)
        ):
            del self._groups[key]
            self._by_topic[(rule.metric, rule.asset)].discard(key)

    def _judge(self, g: _Group, value: float, now_ms: int, shown: float) -> list[Transition]:
        out: list[Transition] = []
        for _thr, rid in g.above_armed[: bisect_left(g.above_armed, (value, ""))]:
            self._set(self.rules[rid], ARMED, now_ms, shown, out, fires=True)
        for _thr, rid in g.below_armed[bisect_right(g.below_armed, (value, _HIGH)) :]:
            self._set(self.rules[rid], ARMED, now_ms, shown, out, fires=True)
        return out

    @staticmethod
    def _slots(g: _Group, r: Rule, s: RuleState) -> list[tuple[list[tuple[float, str]], tuple[float, str]]]:
        if r.kind == "below":
            return (
                [(g.below_armed, (r.threshold, r.id))]
                if s.mode == ARMED
                else [(g.below_fired, (r.threshold + r.hysteresis, r.id))]
            )
        if r.kind == "crosses":
            if s.mode == ABOVE:
                return [(g.side_above, (r.threshold - r.hysteresis, r.id))]
            if s.mode == BELOW:
                return [(g.side_below, (r.threshold + r.hysteresis, r.id))]
            return []
        return (
            [(g.above_armed, (r.threshold, r.id))]
            if s.mode == ARMED
            else [(g.above_fired, (r.threshold - r.hysteresis, r.id))]
        )

    def _set(self, rule: Rule, mode: str, now_ms: int, value: float, out: list[Transition], *, fires: bool) -> None:
        state = self.states[rule.id]
        alert = fires and (state.last_fired_ms == 0 or now_ms - state.last_fired_ms >= rule.cooldown_s * 1000)
        if not alert and not self.report_silent:  # the hot path of a sweep: no allocation, remembered as dirty
            state.mode = mode
            self.dirty.add(rule.id)
            return
        new = RuleState(mode, now_ms if alert else state.last_fired_ms)
        self.states[rule.id] = new
        out.append(Transition(rule, new, alert, value))

    def evaluate(
        self, key: GroupKey, value: float, now_ms: int, *, signed: float | None = None, discrete: bool = False
    ) -> list[Transition]:
        """Apply one new value of a group's signal; returns every state change.

        ``discrete``: the value is judged on its own (a day's row), so a rule whose condition holds
        fires (cooldown permitting) and stays armed for the next value instead of waiting to re-arm.
        """
        g = self._groups.get(key)
        if g is None:
            return []
        if discrete:
            return self._judge(g, value, now_ms, value if signed is None else signed)
        if not g.side_unknown and (
            (not g.above_armed or value <= g.above_armed[0][0])
            and (not g.above_fired or value >= g.above_fired[-1][0])
            and (not g.below_armed or value >= g.below_armed[-1][0])
            and (not g.below_fired or value <= g.below_fired[0][0])
            and (not g.side_above or value >= g.side_above[-1][0])
            and (not g.side_below or value <= g.side_below[0][0])
        ):
            return []  # the value sits between every boundary: nothing can change (the common case)
        shown = value if signed is None else signed
        out: list[Transition] = []
        rules = self.rules
        # above: fire when value > threshold; re-arm when value < threshold - band
        i = bisect_left(g.above_armed, (value, ""))
        if i:
            fired, g.above_armed[:i] = g.above_armed[:i], []
            for thr, rid in fired:
                r = rules[rid]
                insort(g.above_fired, (thr - r.hysteresis, rid))
                self._set(r, FIRED, now_ms, shown, out, fires=True)
        j = bisect_right(g.above_fired, (value, _HIGH))
        if j < len(g.above_fired):
            rearmed, g.above_fired[j:] = g.above_fired[j:], []
            for _, rid in rearmed:
                r = rules[rid]
                insort(g.above_armed, (r.threshold, rid))
                self._set(r, ARMED, now_ms, shown, out, fires=False)
        # below: fire when value < threshold; re-arm when value > threshold + band
        i = bisect_right(g.below_armed, (value, _HIGH))
        if i < len(g.below_armed):
            fired, g.below_armed[i:] = g.below_armed[i:], []
            for thr, rid in fired:
                r = rules[rid]
                insort(g.below_fired, (thr + r.hysteresis, rid))
                self._set(r, FIRED, now_ms, shown, out, fires=True)
        j = bisect_left(g.below_fired, (value, ""))
        if j:
            rearmed, g.below_fired[:j] = g.below_fired[:j], []
            for _, rid in rearmed:
                r = rules[rid]
                insort(g.below_armed, (r.threshold, rid))
                self._set(r, ARMED, now_ms, shown, out, fires=False)
        # crosses: flip sides beyond the band, each flip fires
        i = bisect_right(g.side_above, (value, _HIGH))
        if i < len(g.side_above):
            flipped, g.side_above[i:] = g.side_above[i:], []
            for _, rid in flipped:
                r = rules[rid]
                insort(g.side_below, (r.threshold + r.hysteresis, rid))
                self._set(r, BELOW, now_ms, shown, out, fires=True)
        j = bisect_left(g.side_below, (value, ""))
        if j:
            flipped, g.side_below[:j] = g.side_below[:j], []
            for _, rid in flipped:
                r = rules[rid]  # a rule flipped down above cannot be here: value < thr - band <= thr + band
                insort(g.side_above, (r.threshold - r.hysteresis, rid))
                self._set(r, ABOVE, now_ms, shown, out, fires=True)
        if g.side_unknown:
            for rid in list(g.side_unknown):
                r = rules[rid]
                mode = ABOVE if value >= r.threshold else BELOW
                g.side_unknown.discard(rid)
                if mode == ABOVE:
                    insort(g.side_above, (r.threshold - r.hysteresis, rid))
                else:
                    insort(g.side_below, (r.threshold + r.hysteresis, rid))
                self._set(r, mode, now_ms, shown, out, fires=False)
        return out
