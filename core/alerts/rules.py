"""Alert rules and the one grammar admins type to create them, for every metric of the registry.

    /threshold set <metric> <asset> [<series>] above|below|crosses <value> [options]
    /threshold set <metric> <asset> [<series>] change <value> <window> [options]
    /threshold set <metric> <asset> [<series>] zscore <n> <window> [options]
    options: venue <name|aggregate> (provider <name> for flows), cooldown <duration>, hysteresis <value>
    /threshold set all(<rule>; <rule>; ...) [cooldown <duration>]     (any(...) too: core.alerts.combined)

Each metric parses its own values (funding % per 8h, basis annualized %, open interest USD with
k/m/b suffixes, flows coins per day) and says which series, conditions and aggregates it accepts;
a z-score is a plain number of standard deviations for every metric.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Self

from core.metrics.base import fmt_duration_s, parse_duration
from core.parsing import ASSET_RE
from core.reply import UserError

if TYPE_CHECKING:
    from core.metrics.base import Metric
    from core.metrics.registry import Registry

KINDS = ("above", "below", "crosses", "change", "zscore")

__all__ = ["KINDS", "Rule", "fmt_duration_s", "parse_duration", "parse_rule", "usage"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule; ``threshold`` and ``hysteresis`` are in the metric's signal unit (or z units).

    ``venue`` selects the series: an aggregate across sources (max, min, mean, sum), one source
    (a venue id, or a flow provider), judged with the condition's default aggregate.
    ``conditions``/``combine`` leave room for rules that combine several conditions.
    """

    id: str
    metric: str
    asset: str
    kind: str
    threshold: float
    venue: str
    cooldown_s: int
    hysteresis: float
    window_s: int = 0  # change / zscore look-back
    scope: str = "global"  # "global": every subscriber of the topic; "chat": only ``target``
    target: str = ""
    created_by: str = ""
    created_ms: int = 0
    field: str = ""  # the metric's sub-series (flows: netflow, inflow, outflow, balance)
    text: str = ""  # the rule in words, as /alerts and /threshold list show it
    selector: str = ""  # how the series reduce to one number: max, min, mean, sum, or '<venue>/<agg>'
    combine: str = ""  # "" for a plain rule; "all"/"any" for a rule made of ``conditions``
    conditions: tuple[Rule, ...] = ()

    @property
    def topic(self) -> str:
        return f"{self.metric}:{self.asset}"

    @property
    def signal(self) -> str:
        """What is measured: level, change over a window, or z-score over a window."""
        return {"change": f"change:{self.window_s}", "zscore": f"zscore:{self.window_s}"}.get(self.kind, "level")

    @property
    def parts(self) -> tuple[Rule, ...]:
        """A combined rule's conditions as the engine keeps them: ids '<id>.<n>', this rule's scope, no cooldown."""
        return tuple(
            replace(c, id=f"{self.id}.{i}", scope=self.scope, target=self.target, cooldown_s=0)
            for i, c in enumerate(self.conditions, 1)
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        d: dict[str, Any] = json.loads(raw)
        if d.get("provider") and not d.get("venue"):  # rules stored before providers became the flows venue
            d["venue"] = d["provider"]
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["conditions"] = tuple(cls.from_json(json.dumps(c)) for c in d.get("conditions", ()))
        if not d.get("selector"):  # stored before selectors were computed at parse time
            d["selector"] = _legacy_selector(d)
        return cls(**d)

    def describe(self) -> str:
        return self.text or f"{self.metric} {self.asset} {self.kind} {self.threshold:g}"

    def event_fields(self) -> dict[str, Any]:
        """What every alert this rule fires says about the rule (``AlertEvent(**rule.event_fields(), ...)``)."""
        return {
            "metric": self.metric,
            "asset": self.asset,
            "rule_id": self.id,
            "scope": self.scope,
            "target": self.target,
            "rule_text": self.describe(),
            "field": self.field,
            "selector": self.selector,
        }


def _legacy_selector(d: Mapping[str, Any]) -> str:
    venue = str(d.get("venue", ""))
    if venue in ("max", "min", "mean", "sum") or d.get("metric") == "flows":
        return venue
    return f"{venue}/{ {'above': 'max', 'below': 'min'}.get(str(d.get('kind', '')), 'mean') }"


def usage(registry: Registry) -> str:
    examples = {
        "funding": "funding btc above 0.05%",
        "basis": "basis btc above 40%",
        "oi": "oi btc above 30b",
        "flows": "flows btc netflow above 3000",
        "liqs": "liqs btc above 100m 1h",
    }
    shown = [f"/threshold set {examples[m.name]}" for m in registry if m.name in examples]
    names = "|".join(m.name for m in registry if m.kinds)
    return (
        f"Usage: /threshold set <{names}> <asset> [series] <above|below|crosses> <value> "
        "[venue <name|max|min|mean>] [cooldown 1h] [hysteresis <value>], or ... change <value> <window> | "
        "zscore <n> <window>; combine with all(<rule>; <rule>) or any(...). e.g. " + ", ".join(shown)
    )


def parse_rule(
    args: list[str],
    *,
    registry: Registry,
    sources: Mapping[str, tuple[str, ...]],
    rule_id: str,
    default_cooldown_s: int,
    now_ms: int,
    created_by: str,
    scope: str = "global",
    target: str = "",
) -> Rule:
    """Parse the words after '/threshold set'; raises UserError with the accepted form.

    ``sources`` maps each metric to the sources a rule may name (venues, or flow providers).
    """
    words = [w.lower() for w in args]
    from core.alerts.combined import is_combined, parse_combined

    if is_combined(words):
        return parse_combined(
            words,
            registry=registry,
            sources=sources,
            rule_id=rule_id,
            default_cooldown_s=default_cooldown_s,
            now_ms=now_ms,
            created_by=created_by,
            scope=scope,
            target=target,
        )
    if words and words[0] in registry:
        words = registry.get(words[0]).rule_words(words)
    if len(words) < 4:
        raise UserError(usage(registry))
    if words[0] not in registry or not registry.get(words[0]).kinds:
        raise UserError(
            f"Unknown metric '{words[0][:20]}': accepted are "
            f"{', '.join(m.name for m in registry if m.kinds)}. "
            f"{usage(registry)}"
        )
    m = registry.get(words[0])
    asset = words[1].upper()
    if not ASSET_RE.match(asset):
        raise UserError(f"'{words[1][:20]}' is not an asset ticker, e.g. btc")
    pos = 2
    field_ = ""
    if m.fields and not (m.default_field and words[2] not in m.fields):
        field_ = words[2]
        if field_ not in m.fields:
            raise UserError(
                f"Unknown {m.name} series '{field_[:20]}': accepted are {', '.join(m.fields)}. Usage: {m.usage()}"
            )
        pos = 3
    elif m.default_field:
        field_ = m.default_field
    if len(words) <= pos + 1:
        raise UserError(f"Usage: {m.usage()}")
    kind = words[pos]
    if kind not in m.kinds:
        raise UserError(
            f"Unknown condition '{kind[:20]}' for {m.name}: accepted are {', '.join(m.kinds)}. Usage: {m.usage()}"
        )
    rest = words[pos + 1 :]
    threshold = _zscore(rest[0]) if kind == "zscore" else m.parse_threshold(kind, rest[0], field_)
    window_s = 0
    if kind in ("change", "zscore"):
        if len(rest) < 2:
            example = "3 30d" if kind == "zscore" else "10% 24h" if m.change_relative else "0.03% 8h"
            raise UserError(
                f"{kind} needs a window, e.g. /threshold set {m.name} {asset.lower()} "
                f"{field_ + ' ' if field_ else ''}{kind} {example}"
            )
        lo, hi = (86_400, 90 * 86_400) if kind == "zscore" else m.change_window
        window_s = parse_duration(rest[1], "window", lo_s=lo, hi_s=hi)
        if m.discrete and window_s % 86_400:
            raise UserError(f"a {m.name} window is a whole number of days, e.g. 7d")
        if kind == "change" and threshold <= 0:
            raise UserError("a change threshold must be positive: it applies in either direction")
        rest = rest[2:]
    else:
        field_, rest = m.level_field(field_, rest[1:])
    accepted = sources.get(m.name, ())
    venue = m.default_selector(kind, accepted)
    cooldown_s = 0 if m.discrete else default_cooldown_s
    hysteresis = 0.0 if m.discrete else 0.5 if kind == "zscore" else m.default_hysteresis
    if len(rest) % 2:
        raise UserError(
            f"Option '{rest[-1][:20]}' needs a value: {m.source_word} <name>, cooldown <duration>"
            + ("" if m.discrete else ", hysteresis <value>")
        )
    for key, value in zip(rest[::2], rest[1::2], strict=True):
        if key in ("venue", "provider"):
            if value not in m.aggregates and value not in accepted:
                aggs = f" or {', '.join(m.aggregates)} across venues" if m.aggregates else ""
                raise UserError(
                    f"{m.source_word} '{value[:20]}' is not accepted for {m.name}: one of "
                    f"{', '.join(accepted) or 'none configured'}{aggs}"
                )
            venue = value
        elif key == "cooldown":
            cooldown_s = parse_duration(value, "cooldown", lo_s=0 if value.startswith("0") else 60)
        elif key == "hysteresis" and not m.discrete:
            hysteresis = _zband(value) if kind == "zscore" else m.parse_band(value, kind, field_)
        else:
            options = f"{m.source_word}, cooldown" + ("" if m.discrete else ", hysteresis")
            raise UserError(f"Unknown option '{key[:20]}' for {m.name}: accepted are {options}")
    if kind != "zscore":
        hysteresis = m.band_for(kind, threshold, hysteresis)
    rule = Rule(
        id=rule_id,
        metric=m.name,
        asset=asset,
        kind=kind,
        threshold=threshold,
        venue=venue,
        cooldown_s=cooldown_s,
        hysteresis=hysteresis,
        window_s=window_s,
        scope=scope,
        target=target,
        created_by=created_by,
        created_ms=now_ms,
        field=field_,
        selector=m.selector_for(kind, venue),
    )
    return with_text(rule, m)


def with_text(rule: Rule, metric: Metric) -> Rule:
    return replace(rule, text=metric.describe(rule))


def _zscore(text: str) -> float:
    try:
        threshold = float(text)
    except ValueError:
        raise UserError(f"z-score '{text[:20]}' is not a number, e.g. zscore 3 30d") from None
    if not 0.5 <= threshold <= 20:
        raise UserError("a z-score threshold must be between 0.5 and 20, e.g. zscore 3 30d")
    return threshold


def _zband(text: str) -> float:
    try:
        band = float(text)
    except ValueError:
        raise UserError(f"hysteresis '{text[:20]}' is not a number of standard deviations, e.g. 0.5") from None
    if not math.isfinite(band) or not 0 <= band <= 10:
        raise UserError("a z-score hysteresis must be between 0 and 10, e.g. 0.5")
    return band
