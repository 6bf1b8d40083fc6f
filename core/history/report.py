"""How replayed alerts read: one line per alert, and the stale window a sparse series needs."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping, Sequence

from core.alerts.events import AlertEvent
from core.history.csvdata import iso_utc
from core.history.replay import Batch
from core.metrics.registry import Registry


def alert_line(e: AlertEvent, registry: Registry, rule_words: Mapping[str, str]) -> str:
    """'2021-04-10T08:00:00Z  r1 funding btc above 0.05% venue binance  value +0.1486%/8h  threshold ...'."""
    if e.extra.get("combine"):  # a combined rule: each condition with the value it held at
        checks = e.extra.get("conditions", ())
        parts = "; ".join(f"{c.get('text')} = {_condition_value(registry, c)}" for c in checks)
        held = sum(1 for c in checks if c.get("holds"))
        return (
            f"{iso_utc(e.ts_ms)}  {e.rule_id} {rule_words.get(e.rule_id, e.rule_text)}  "
            f"{held}/{len(checks)} conditions hold: {parts}"
        )
    m = registry.find(e.metric)
    value = m.fmt_value(e.value, e.field) if m else f"{e.value:g}"
    threshold = m.fmt_threshold(e.kind, e.threshold, e.field) if m else f"{e.threshold:g}"
    where = " ".join(x for x in (e.venue, e.instrument) if x)
    day = e.extra.get("day")
    if day and day != e.instrument:
        where += f" {day}"
    return (
        f"{iso_utc(e.ts_ms)}  {e.rule_id} {rule_words.get(e.rule_id, e.rule_text)}  value {value}  "
        f"threshold {threshold}  {where}".rstrip()
    )


def _condition_value(registry: Registry, c: Mapping[str, object]) -> str:
    m = registry.find(str(c.get("metric")))
    value = c.get("value")
    if not isinstance(value, int | float):
        return "no value"
    if c.get("kind") == "change" and m is not None and m.change_relative:
        return f"{value * 100:+.2f}%"
    return m.fmt_value(float(value), str(c.get("field", ""))) if m else f"{value:g}"


def stale_after_ms(batches: Sequence[Batch], registry: Registry, floor_ms: int = 180_000) -> int:
    """How long a replayed value stays current: 1.5 x the longest typical gap of a series (a settled funding
    rate is the rate until the next settlement), so venues reporting at the same moment are aggregated."""
    times: dict[tuple[str, str, str], list[int]] = {}
    for b in batches:
        m = registry.find(b.metric)
        if m is None or m.discrete:
            continue
        for s in b.samples:
            times.setdefault((b.metric, b.venue, s.symbol), []).append(s.ts_ms)
    gaps = []
    for ts in times.values():
        ts = sorted(set(ts))
        if len(ts) > 1:
            gaps.append(statistics.median(b - a for a, b in itertools.pairwise(ts)))
    return max(floor_ms, int(max(gaps, default=0) * 1.5))
