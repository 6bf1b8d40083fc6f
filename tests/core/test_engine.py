"""Rule engine transitions, checked against a brute-force model over random walks."""

from __future__ import annotations

import random

import pytest

from core.alerts.engine import ARMED, FIRED, RuleEngine, RuleState, group_key
from core.alerts.rules import Rule

T0 = 1_800_000_000_000


def rule(rid: str, kind: str, thr: float, band: float = 0.0, cooldown_s: int = 0) -> Rule:
    return Rule(
        id=rid,
        metric="funding",
        asset="BTC",
        kind=kind,
        threshold=thr,
        venue="max" if kind != "below" else "min",
        cooldown_s=cooldown_s,
        hysteresis=band,
    )


def test_above_fires_once_rearms_past_band_and_respects_cooldown() -> None:
    e = RuleEngine()
    r = rule("r1", "above", 0.0005, band=0.0001, cooldown_s=3600)
    e.add(r)
    k = group_key(r)
    assert [t.alert for t in e.evaluate(k, 0.0006, T0)] == [True]
    assert e.evaluate(k, 0.0007, T0 + 1000) == []  # still above: no repeat
    assert e.evaluate(k, 0.00045, T0 + 2000) == []  # inside the band: not re-armed
    t = e.evaluate(k, 0.00035, T0 + 3000)
    assert [(x.alert, x.state.mode) for x in t] == [(False, ARMED)]
    t = e.evaluate(k, 0.0006, T0 + 4000)  # crosses again inside the cooldown: silent
    assert [(x.alert, x.state.mode) for x in t] == [(False, FIRED)]
    e.evaluate(k, 0.0, T0 + 5000)
    t = e.evaluate(k, 0.0006, T0 + 3_700_000)
    assert [x.alert for x in t] == [True]


def test_below_and_crosses() -> None:
    e = RuleEngine()
    b = rule("b", "below", -0.0003, band=0.0001)
    c = Rule(
        id="c",
        metric="funding",
        asset="BTC",
        kind="crosses",
        threshold=0.0,
        venue="mean",
        cooldown_s=0,
        hysteresis=0.00005,
    )
    e.add(b)
    e.add(c)
    kb, kc = group_key(b), group_key(c)
    assert [x.alert for x in e.evaluate(kb, -0.0004, T0)] == [True]
    assert e.evaluate(kb, -0.00025, T0) == []
    assert [x.state.mode for x in e.evaluate(kb, -0.0001, T0)] == [ARMED]
    assert [(x.alert, x.state.mode) for x in e.evaluate(kc, 0.0001, T0)] == [(False, "+")]  # first value: side only
    assert e.evaluate(kc, -0.00003, T0) == []  # inside the band
    assert [(x.alert, x.state.mode) for x in e.evaluate(kc, -0.0001, T0)] == [(True, "-")]
    assert [(x.alert, x.state.mode) for x in e.evaluate(kc, 0.0001, T0)] == [(True, "+")]


def test_state_survives_reload() -> None:
    e = RuleEngine()
    r = rule("r", "above", 1.0)
    e.add(r)
    e.evaluate(group_key(r), 2.0, T0)
    saved = e.states["r"].encode()
    e2 = RuleEngine()
    e2.add(r, RuleState.decode(saved))
    assert e2.evaluate(group_key(r), 3.0, T0 + 1) == []  # a restart does not re-fire


def test_remove_rule() -> None:
    e = RuleEngine()
    r = rule("r", "above", 1.0)
    e.add(r)
    e.remove("r")
    assert e.evaluate(group_key(r), 2.0, T0) == [] and len(e) == 0


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_model(seed: int) -> None:
    rng = random.Random(seed)
    e = RuleEngine()
    rules = []
    for i in range(300):
        kind = rng.choice(["above", "below", "crosses"])
        r = Rule(
            id=f"r{i}",
            metric="funding",
            asset="BTC",
            kind=kind,
            threshold=rng.uniform(-1, 1),
            venue="mean",
            cooldown_s=rng.choice([0, 0, 5]),
            hysteresis=rng.choice([0.0, 0.05, 0.2]),
        )
        rules.append(r)
        e.add(r)
    keys = {group_key(r) for r in rules}
    # the model: explicit per-rule state machine
    model = {r.id: ("a" if r.kind != "crosses" else "?", 0) for r in rules}
    v, now = 0.0, T0
    for _step in range(400):
        v = max(-1.5, min(1.5, v + rng.gauss(0, 0.15)))
        now += 1000
        got = {}
        for k in keys:
            for t in e.evaluate(k, v, now):
                got[t.rule.id] = (t.state.mode, t.alert)
        expected = {}
        for r in rules:
            mode, last = model[r.id]
            fires = False
            new = mode
            if r.kind == "above":
                if mode == "a" and v > r.threshold:
                    new, fires = "f", True
                elif mode == "f" and v < r.threshold - r.hysteresis:
                    new = "a"
            elif r.kind == "below":
                if mode == "a" and v < r.threshold:
                    new, fires = "f", True
                elif mode == "f" and v > r.threshold + r.hysteresis:
                    new = "a"
            else:
                if mode == "?":
                    new = "+" if v >= r.threshold else "-"
                elif mode == "+" and v < r.threshold - r.hysteresis:
                    new, fires = "-", True
                elif mode == "-" and v > r.threshold + r.hysteresis:
                    new, fires = "+", True
            if new != mode:
                alert = fires and (last == 0 or now - last >= r.cooldown_s * 1000)
                expected[r.id] = (new, alert)
                model[r.id] = (new, now if alert else last)
        assert got == expected
