"""Typed alert events: what the evaluator puts on the alert stream; each platform renders them at delivery.

An event carries values, not text: metric, asset, rule, venue and instrument, value, threshold,
unit, time, and the context figures the message quotes. Rendering lives with the metric
(``Metric.render_alert``), so nothing downstream has to parse a message to get a number back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from dataclasses import field as dc_field
from typing import Any, Self


@dataclass(frozen=True, slots=True)
class ContextPoint:
    """One other series quoted in an alert: a venue's label and contract, and its value."""

    label: str
    symbol: str
    value: float


@dataclass(frozen=True, slots=True)
class Related:
    """Another metric's headline figure for the same asset (basis in a funding alert, and so on)."""

    metric: str
    what: str  # "max", "mean", "total"
    value: float
    label: str = ""
    symbol: str = ""
    count: int = 0


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One firing of one rule (or a notice for the bot's admins when ``metric`` is "notice")."""

    metric: str
    asset: str
    rule_id: str
    kind: str  # above, below, crosses, change, zscore (notice: "notice")
    scope: str  # global, chat, admins
    target: str
    rule_text: str
    threshold: float
    value: float  # the signal compared with the threshold (a change or a z-score is signed)
    level: float | None  # the metric's level at that moment, when the signal is a change or z-score
    unit: str  # human unit of ``level``/``threshold``, e.g. "%/8h", "% ann.", "USD", "BTC/day"
    ts_ms: int  # when it fired (the evaluation clock; a daily row's publication time)
    field: str = ""
    selector: str = ""  # max, min, mean, sum, okx/max, coinmetrics ...
    venue: str = ""  # where the value came from (empty for a mean or a sum)
    instrument: str = ""
    label: str = ""  # venue with margin family, as replies show it
    direction: str = ""  # "+" up / "-" down (crosses, change)
    window_s: int = 0
    count: int = 0  # how many series a mean or sum covers
    context: tuple[ContextPoint, ...] = ()
    related: tuple[Related, ...] = ()
    extra: dict[str, Any] = dc_field(default_factory=dict)

    @property
    def topic(self) -> str:
        return f"{self.metric}:{self.asset}"

    def to_json(self) -> str:
        # built by hand: dataclasses.asdict deep-copies every value, which dominated a batch firing hundreds
        d = {f: getattr(self, f) for f in _SCALARS}
        d["context"] = [[c.label, c.symbol, c.value] for c in self.context]
        d["related"] = [[r.metric, r.what, r.value, r.label, r.symbol, r.count] for r in self.related]
        d["extra"] = self.extra
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        d = json.loads(raw)
        d["context"] = tuple(
            ContextPoint(*c) if isinstance(c, list) else ContextPoint(**c) for c in d.get("context", ())
        )
        d["related"] = tuple(Related(*r) if isinstance(r, list) else Related(**r) for r in d.get("related", ()))
        return cls(**d)


_SCALARS = tuple(f.name for f in fields(AlertEvent) if f.name not in ("context", "related", "extra"))


def notice(title: str, text: str, ts_ms: int) -> AlertEvent:
    """A message for the bot's admins (a provider refused its key, ...), delivered like an alert."""
    return AlertEvent(
        metric="notice",
        asset="",
        rule_id="system",
        kind="notice",
        scope="admins",
        target="",
        rule_text="",
        threshold=0.0,
        value=0.0,
        level=None,
        unit="",
        ts_ms=ts_ms,
        extra={"title": title, "text": text},
    )
