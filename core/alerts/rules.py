"""Alert rules and the grammar admins type to create them.

    /threshold set <metric> <asset> above|below|crosses <value> [options]
    /threshold set <metric> <asset> change <value> <window> [options]
    /threshold set <metric> <asset> zscore <value> <window> [options]
    options: venue <name|max|min|mean>, cooldown <duration>, hysteresis <value>

Units: funding is % per 8h (venues with 1h or 4h intervals are scaled to 8h so they compare);
basis is annualized %; a z-score is a plain number of standard deviations.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Self

from core.parsing import ASSET_RE
from core.reply import UserError

METRICS = ("funding", "basis", "flows")
MARKET_METRICS = ("funding", "basis")
FLOW_FIELDS = ("netflow", "inflow", "outflow", "balance")
KINDS = ("above", "below", "crosses", "change", "zscore")
AGGREGATES = ("max", "min", "mean")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(m|h|d|w)$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}

# bounds of what a threshold may be, as fractions (funding per 8h, basis annualized)
_LIMITS = {"funding": 0.05, "basis": 10.0}

USAGE = ("Usage: /threshold set <funding|basis> <asset> <above|below|crosses> <value%> "
         "[venue <name|max|min|mean>] [cooldown 1h] [hysteresis <value%>], "
         "or ... change <value%> <window> | zscore <n> <window>. "
         "e.g. /threshold set funding btc above 0.05%, /threshold set basis btc above 40%")


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule; ``threshold`` and ``hysteresis`` are fractions (0.0005 = 0.05%) or z units."""

    id: str
    metric: str
    asset: str
    kind: str
    threshold: float
    venue: str  # a venue id, or max/min/mean across venues
    cooldown_s: int
    hysteresis: float
    window_s: int = 0  # change / zscore look-back
    scope: str = "global"  # "global": every subscriber of the topic; "chat": only ``target``
    target: str = ""
    created_by: str = ""
    created_ms: int = 0
    field: str = ""  # flows: netflow, inflow, outflow or balance
    provider: str = ""  # flows: the provider whose series is judged (levels differ between providers)

    @property
    def topic(self) -> str:
        return f"{self.metric}:{self.asset}"

    @property
    def signal(self) -> str:
        """What is measured: level, change over a window, or z-score over a window."""
        return {"change": f"change:{self.window_s}", "zscore": f"zscore:{self.window_s}"}.get(self.kind, "level")

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        return cls(**json.loads(raw))

    def describe(self) -> str:
        """Human form, e.g. 'funding BTC above +0.0500%/8h (max of venues), cooldown 1h'."""
        if self.metric == "flows":
            if self.kind == "change":
                what = f"{self.field} changes by {self.threshold * 100:g}% over {fmt_duration_s(self.window_s)}"
            else:
                what = f"{self.field} {self.kind} {fmt_threshold('flows', self.kind, self.threshold)}"
            cool = f", cooldown {fmt_duration_s(self.cooldown_s)}" if self.cooldown_s else ""
            return f"flows {self.asset} {what} ({self.provider}, each day judged once){cool}"
        value = fmt_threshold(self.metric, self.kind, self.threshold)
        what = {"change": f"changes by {value} within {fmt_duration_s(self.window_s)}",
                "zscore": f"z-score beyond {self.threshold:g} over {fmt_duration_s(self.window_s)}"}.get(
            self.kind, f"{self.kind} {value}")
        where = f"{self.venue} of venues" if self.venue in AGGREGATES else self.venue
        extra = f", cooldown {fmt_duration_s(self.cooldown_s)}"
        if self.hysteresis:
            band = f"{self.hysteresis:g}σ" if self.kind == "zscore" else \
                fmt_threshold(self.metric, "band", self.hysteresis)
            extra += f", re-arm band {band}"
        return f"{self.metric} {self.asset} {what} ({where}){extra}"


def fmt_threshold(metric: str, kind: str, value: float) -> str:
    if metric == "flows":
        return f"{value:+,.0f} BTC/day" if kind != "band" else f"{value:,.0f}"
    if kind == "zscore":
        return f"{value:g}σ"
    if metric == "funding":
        return f"{value * 100:+.4f}%/8h" if kind != "band" else f"{value * 100:.4f}%"
    return f"{value * 100:+.1f}%" if kind != "band" else f"{value * 100:.1f}%"


def fmt_duration_s(seconds: int) -> str:
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_duration(text: str, what: str, *, lo_s: int = 60, hi_s: int = 90 * 86_400) -> int:
    """'90m', '8h', '1d', '2w' -> seconds, within bounds."""
    m = _DURATION.match(text.strip().lower())
    if not m:
        raise UserError(f"{what} '{text[:20]}' is not a duration: use a number with m, h, d or w, e.g. 8h or 30d")
    seconds = int(float(m.group(1)) * _UNIT_S[m.group(2)])
    if not lo_s <= seconds <= hi_s:
        raise UserError(f"{what} must be between {fmt_duration_s(lo_s)} and {fmt_duration_s(hi_s)}")
    return seconds


def parse_percent(text: str, metric: str, what: str = "threshold") -> float:
    """'0.05%' -> 0.0005 within the metric's bounds. The % sign is required: no unit guessing."""
    t = text.strip()
    if not t.endswith("%"):
        raise UserError(f"{what} '{t[:20]}' needs a % sign: e.g. 0.05% for funding (per 8h), 40% for basis "
                        "(annualized)")
    try:
        value = float(t[:-1]) / 100
    except ValueError:
        raise UserError(f"{what} '{t[:20]}' is not a number: e.g. 0.05% or -0.03%") from None
    limit = _LIMITS[metric]
    if not math.isfinite(value) or abs(value) > limit:
        raise UserError(f"{what} {t} is out of range for {metric}: between -{limit * 100:g}% and {limit * 100:g}%")
    return value


def _band(text: str, metric: str, kind: str) -> float:
    """A hysteresis band: finite, not negative, in the threshold's unit (σ for z-scores, % otherwise)."""
    if kind == "zscore":
        try:
            band = float(text)
        except ValueError:
            raise UserError(f"hysteresis '{text[:20]}' is not a number of standard deviations, e.g. 0.5") from None
        if not math.isfinite(band) or not 0 <= band <= 10:
            raise UserError("a z-score hysteresis must be between 0 and 10, e.g. 0.5")
        return band
    return abs(parse_percent(text, metric, "hysteresis"))


def parse_rule(args: list[str], *, rule_id: str, venues: tuple[str, ...], default_cooldown_s: int,
               default_hysteresis: dict[str, float], now_ms: int, created_by: str, scope: str = "global",
               target: str = "", providers: tuple[str, ...] = ("coinmetrics",)) -> Rule:
    """Parse the words after '/threshold set'; raises UserError with the accepted form."""
    words = [w.lower() for w in args]
    if len(words) < 4:
        raise UserError(USAGE)
    if words[0] == "flows":
        return _parse_flow_rule(words, rule_id=rule_id, providers=providers, now_ms=now_ms, created_by=created_by,
                                scope=scope, target=target)
    metric, asset_raw, kind = words[0], words[1], words[2]
    if metric not in MARKET_METRICS:
        raise UserError(f"Unknown metric '{metric[:20]}': accepted are {', '.join(METRICS)}. {USAGE}")
    asset = asset_raw.upper()
    if not ASSET_RE.match(asset):
        raise UserError(f"'{asset_raw[:20]}' is not an asset ticker, e.g. btc")
    if kind not in KINDS:
        raise UserError(f"Unknown condition '{kind[:20]}': accepted are {', '.join(KINDS)}. {USAGE}")
    rest = words[3:]
    window_s = 0
    if kind == "zscore":
        try:
            threshold = float(rest[0])
        except ValueError:
            raise UserError(f"z-score '{rest[0][:20]}' is not a number, e.g. zscore 3 30d") from None
        if not 0.5 <= threshold <= 20:
            raise UserError("a z-score threshold must be between 0.5 and 20, e.g. zscore 3 30d")
    else:
        threshold = parse_percent(rest[0], metric)
    if kind in ("change", "zscore"):
        if len(rest) < 2:
            raise UserError(f"{kind} needs a window, e.g. /threshold set {metric} {asset.lower()} {kind} "
                            f"{'3' if kind == 'zscore' else '0.03%'} {'30d' if kind == 'zscore' else '8h'}")
        window_s = parse_duration(rest[1], "window", lo_s=300 if kind == "change" else 86_400)
        if kind == "change" and threshold <= 0:
            raise UserError("a change threshold must be positive: it applies in either direction")
        rest = rest[2:]
    else:
        rest = rest[1:]
    venue = {"above": "max", "below": "min"}.get(kind, "mean")
    cooldown_s = default_cooldown_s
    hysteresis = default_hysteresis.get(metric, 0.0) if kind != "zscore" else 0.5
    if len(rest) % 2:
        raise UserError(f"Option '{rest[-1][:20]}' needs a value: venue <name>, cooldown <duration>, "
                        "hysteresis <value%>")
    for key, value in zip(rest[::2], rest[1::2], strict=True):
        if key == "venue":
            if value not in AGGREGATES and value not in venues:
                raise UserError(f"venue '{value[:20]}' is not accepted: one of {', '.join(venues)} or "
                                f"{', '.join(AGGREGATES)} across venues")
            venue = value
        elif key == "cooldown":
            cooldown_s = parse_duration(value, "cooldown", lo_s=0 if value.startswith("0") else 60)
        elif key == "hysteresis":
            hysteresis = _band(value, metric, kind)
        else:
            raise UserError(f"Unknown option '{key[:20]}': accepted are venue, cooldown, hysteresis")
    return Rule(id=rule_id, metric=metric, asset=asset, kind=kind, threshold=threshold, venue=venue,
                cooldown_s=cooldown_s, hysteresis=hysteresis, window_s=window_s, scope=scope, target=target,
                created_by=created_by, created_ms=now_ms)


FLOW_USAGE = ("Usage: /threshold set flows <asset> <netflow|inflow|outflow|balance> <above|below> <BTC per day> "
              "or ... balance change <value%> <window>, options provider <name>, cooldown <duration>. "
              "e.g. /threshold set flows btc netflow above 3000, /threshold set flows btc balance change 1% 7d")


def _parse_flow_rule(words: list[str], *, rule_id: str, providers: tuple[str, ...], now_ms: int, created_by: str,
                     scope: str, target: str) -> Rule:
    """flows <asset> <field> above|below <coins> | flows <asset> <field> change <pct>% <window> [options]."""
    if len(words) < 5:
        raise UserError(FLOW_USAGE)
    _, asset_raw, field_, kind, value = words[:5]
    asset = asset_raw.upper()
    if not ASSET_RE.match(asset):
        raise UserError(f"'{asset_raw[:20]}' is not an asset ticker, e.g. btc")
    if field_ not in FLOW_FIELDS:
        raise UserError(f"Unknown flow series '{field_[:20]}': accepted are {', '.join(FLOW_FIELDS)}. {FLOW_USAGE}")
    if kind not in ("above", "below", "change"):
        raise UserError(f"Unknown condition '{kind[:20]}' for flows: accepted are above, below, change. {FLOW_USAGE}")
    rest = words[5:]
    window_s = 0
    if kind == "change":
        if not value.endswith("%") or not rest:
            raise UserError("A flows change rule is a % over a window, e.g. /threshold set flows btc balance "
                            "change 1% 7d")
        try:
            threshold = abs(float(value[:-1])) / 100
        except ValueError:
            raise UserError(f"'{value[:20]}' is not a percentage, e.g. 1%") from None
        if not 0 < threshold <= 10:
            raise UserError("a flows change must be between 0% and 1000%, e.g. 1%")
        window_s = parse_duration(rest[0], "window", lo_s=86_400, hi_s=365 * 86_400)
        if window_s % 86_400:
            raise UserError("a flows window is a whole number of days, e.g. 7d")
        rest = rest[1:]
    else:
        try:
            threshold = float(value.replace(",", "").replace("_", ""))
        except ValueError:
            raise UserError(f"'{value[:20]}' is not a number of coins per day, e.g. 3000 or -2000") from None
        if not math.isfinite(threshold) or abs(threshold) > 1e9:
            raise UserError("a flows threshold must be a plain number of coins, e.g. 3000")
    provider = providers[0] if providers else "coinmetrics"
    cooldown_s = 0
    if len(rest) % 2:
        raise UserError(f"Option '{rest[-1][:20]}' needs a value: provider <name>, cooldown <duration>")
    for key, val in zip(rest[::2], rest[1::2], strict=True):
        if key == "provider":
            if val not in providers:
                raise UserError(f"provider '{val[:20]}' is not configured: one of {', '.join(providers)}")
            provider = val
        elif key == "cooldown":
            cooldown_s = parse_duration(val, "cooldown", lo_s=0)
        else:
            raise UserError(f"Unknown option '{key[:20]}' for flows: accepted are provider, cooldown")
    return Rule(id=rule_id, metric="flows", asset=asset, kind=kind, threshold=threshold, venue="",
                cooldown_s=cooldown_s, hysteresis=0.0, window_s=window_s, scope=scope, target=target,
                created_by=created_by, created_ms=now_ms, field=field_, provider=provider)

