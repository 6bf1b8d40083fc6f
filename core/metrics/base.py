"""What a metric is: one class that owns everything the bot knows about one kind of market data.

A metric declares its sample type and codec, its unit (threshold parsing with bounds and
suffixes, formatting, the default re-arm band), its sanity check, how rule signals are computed
from the latest samples, its ``/<name>`` reply, a one-line summary and the rendering of its
alerts. The command table, ``/help``, the rule grammar, Discord's options, subscription topics
and the config sections are built from the registry of metrics (``core.metrics.registry``), so
adding a metric is one module plus one line where the registry is assembled.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from core.alerts.signals import Level, Point, level
from core.reply import Reply, UserError

if TYPE_CHECKING:
    from core.alerts.events import AlertEvent
    from core.store import MarketStore, SourceHealth


class Sample(Protocol):
    """What every stored sample has: where it is from, what it is about, when, and a JSON codec."""

    @property
    def venue(self) -> str: ...

    @property
    def asset(self) -> str: ...

    @property
    def symbol(self) -> str: ...

    @property
    def ts_ms(self) -> int: ...

    def to_json(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Setting:
    """One key of a metric's config section: its default (the only place it is written) and its check."""

    key: str
    default: Any
    doc: str
    parse: Callable[[Any], Any] = lambda v: v  # raises UserError/ValueError/TypeError on a bad value


def _history_days(v: Any) -> float:
    x = float(v)
    if isinstance(v, bool) or not 0 <= x <= 3650:
        raise ValueError("a number of days from 0 to 3650")
    return x


# a metric whose history long charts read adds this to its settings_spec (the store keeps hourly points for it)
CHART_HISTORY = Setting(
    "chart_history_days",
    180.0,
    "days of hourly history kept for long charts (/chart ... 90d); 0 keeps none",
    _history_days,
)

_AMOUNT = re.compile(r"^([+-]?\d+(?:\.\d+)?)([kmbt]?)$")
_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(m|h|d|w)$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def fmt_duration_s(seconds: int) -> str:
    """3600 -> '1h', 86400 -> '1d'."""
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_duration(text: str, what: str, *, lo_s: int = 60, hi_s: int = 90 * 86_400) -> int:
    """'90m', '8h', '1d', '2w' -> seconds, within bounds."""
    m = _DURATION.match(str(text).strip().lower())
    if not m:
        raise UserError(f"{what} '{str(text)[:20]}' is not a duration: use a number with m, h, d or w, e.g. 8h or 30d")
    seconds = int(float(m.group(1)) * _UNIT_S[m.group(2)])
    if not lo_s <= seconds <= hi_s:
        raise UserError(f"{what} must be between {fmt_duration_s(lo_s)} and {fmt_duration_s(hi_s)}")
    return seconds


def parse_percent(text: str, *, what: str, limit: float, example: str) -> float:
    """'0.05%' -> 0.0005 within ±limit (a fraction). The % sign is required: no unit guessing."""
    t = str(text).strip()
    if not t.endswith("%"):
        raise UserError(f"{what} '{t[:20]}' needs a % sign, e.g. {example}")
    try:
        value = float(t[:-1]) / 100
    except ValueError:
        raise UserError(f"{what} '{t[:20]}' is not a number, e.g. {example}") from None
    if not math.isfinite(value) or abs(value) > limit:
        raise UserError(f"{what} {t} is out of range: between -{limit * 100:g}% and {limit * 100:g}%")
    return value


def parse_amount(text: str, *, what: str, limit: float, example: str) -> float:
    """'30b' -> 3e10, '250m', '1.5k', '3000' (k, m, b, t suffixes; commas and _ ignored), within ±limit."""
    t = str(text).strip().lower().replace(",", "").replace("_", "").lstrip("$")
    m = _AMOUNT.match(t)
    if not m:
        raise UserError(
            f"{what} '{str(text)[:20]}' is not an amount: a number with an optional k, m or b, e.g. {example}"
        )
    value = float(m.group(1)) * _SUFFIX[m.group(2)]
    if not math.isfinite(value) or abs(value) > limit:
        raise UserError(f"{what} {text} is out of range: at most {fmt_amount(limit)}")
    return value


def fmt_amount(x: float | None, signed: bool = False, prefix: str = "") -> str:
    """3.2e10 -> '32.0B', 1.5e6 -> '1.50M' (with an optional '$' prefix)."""
    if x is None or not math.isfinite(x):
        return "—"
    sign = "-" if x < 0 else "+" if signed else ""
    a = abs(x)
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{sign}{prefix}{a / div:,.{1 if a / div >= 100 else 2}f}{unit}"
    return f"{sign}{prefix}{a:,.0f}"


@dataclass(frozen=True, slots=True)
class View:
    """One asset's latest samples of one metric: venue -> samples, with each venue's health."""

    asset: str
    by_venue: dict[str, list[Any]]
    health: dict[str, SourceHealth] = field(default_factory=dict)

    def samples(self) -> list[tuple[str, Any]]:
        return [(v, s) for v, ss in self.by_venue.items() for s in ss]


@dataclass(frozen=True, slots=True)
class Query:
    """What a metric's reply may read: the store (never an exchange), the clock and the deployment."""

    store: MarketStore
    sources: tuple[str, ...]  # venues (or providers) that serve this metric
    clock_ms: Callable[[], int]
    stale_after_s: float
    registry: Any  # core.metrics.registry.Registry (Any: the registry imports this module)
    venues: tuple[str, ...] = ()  # every watched venue, for metrics that read another metric
    all_sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # metric -> its sources (overviews)

    def now(self) -> int:
        return self.clock_ms()

    def stale(self, ts_ms: int, now_ms: int) -> bool:
        return (now_ms - ts_ms) / 1000 > self.stale_after_s

    async def view(self, metric: Metric, asset: str) -> View:
        """The latest samples of ``asset`` from every source, plus their health: one round trip."""
        by_venue, health = await self.store.read_latest(metric, asset, self.sources, with_health=True)
        return View(asset, by_venue, health)


class Metric:
    """Base of every metric; subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    title: ClassVar[str]  # "Funding", "Open interest"
    sample_type: ClassVar[Any]
    unit: ClassVar[str] = ""  # what a signal value is, for people reading events: "fraction per 8h", "USD"
    args: ClassVar[str] = "<asset>"
    example: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # the command's one-line help
    command: ClassVar[bool] = True  # has a /<name> command
    fields: ClassVar[tuple[str, ...]] = ()  # sub-series a rule names (flows: netflow, inflow, ...); () = one series
    assets_of: ClassVar[str] = ""  # another metric whose listed assets this one accepts (liqs: funding's perps)
    default_field: ClassVar[str] = ""  # the series a rule watches when it names none ("" = a series is required)
    kinds: ClassVar[tuple[str, ...]] = ("above", "below", "crosses", "change", "zscore")
    aggregates: ClassVar[tuple[str, ...]] = ("max", "min", "mean")
    source_word: ClassVar[str] = "venue"  # the rule option naming one source: venue, or provider
    discrete: ClassVar[bool] = False  # each sample judged once on its own (daily rows), no crossing state
    change_relative: ClassVar[bool] = False  # change rules in % of the old level (OI, balances), else absolute
    replace_on_poll: ClassVar[bool] = True  # a poll replaces the venue's set; False: rows are upserted
    related: ClassVar[tuple[str, ...]] = ()  # metrics whose headline an alert adds as context
    settings_spec: ClassVar[tuple[Setting, ...]] = ()
    change_window: ClassVar[tuple[int, int]] = (300, 90 * 86_400)  # bounds of change windows, seconds
    fixed_sources: ClassVar[tuple[str, ...]] = ()  # the only venues that can serve it (gamma: deribit); () = all
    overview: ClassVar[bool] = False  # reads the other metrics (/summary): no samples, topics or rules of its own

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = {s.key: s.default for s in self.settings_spec} | dict(options or {})
        self.registry: Any = None  # set when registered: lets an alert quote another metric in its units

    # codec and checks -------------------------------------------------------------------
    def decode(self, raw: str | bytes) -> Any:
        return self.sample_type.from_json(raw)

    def problem(self, sample: Any) -> str | None:
        """Why a sample must not be stored, or None when it is plausible."""
        return None

    def history_member(self, sample: Any) -> str:
        """The sample as a history ZSET member (unique per sample)."""
        return str(sample.to_json())

    def history_samples(self, samples: Sequence[Any]) -> list[Any]:
        """What of a poll goes into history (every sample by default; OI keeps one total per venue)."""
        return list(samples)

    def from_history(self, venue: str, asset: str, ts_ms: int, member: str) -> Any | None:
        """A stored history member back as a sample, for back-tests; None when the metric keeps no such history."""
        return None

    def sort_key(self, sample: Any) -> Any:
        return sample.symbol

    # units ---------------------------------------------------------------------------------
    def parse_threshold(self, kind: str, text: str, field_: str) -> float:
        """A threshold as typed after the condition word; raises UserError naming what is accepted."""
        raise NotImplementedError

    def level_field(self, field_: str, rest: list[str]) -> tuple[str, list[str]]:
        """A level rule's words after the threshold: a metric may take one (a rolling window) into the field."""
        return field_, rest

    def fmt_value(self, value: float, field_: str = "", *, signed: bool = True) -> str:
        raise NotImplementedError

    def fmt_threshold(self, kind: str, value: float, field_: str = "") -> str:
        if kind == "zscore":
            return f"{value:g}σ"
        if kind == "change" and self.change_relative:
            return f"{value * 100:g}%"
        return self.fmt_value(value, field_, signed=kind not in ("change", "band"))

    def fmt_band(self, value: float, field_: str = "") -> str:
        return self.fmt_value(value, field_, signed=False)

    def parse_band(self, text: str, kind: str, field_: str) -> float:
        """A hysteresis band in the threshold's unit, not negative."""
        return abs(self.parse_threshold("band", text, field_))

    def band_for(self, kind: str, threshold: float, band: float) -> float:
        """The band in the signal's own unit (a metric with relative bands scales it by the threshold)."""
        return band

    @property
    def default_hysteresis(self) -> float:
        return float(self.options.get("hysteresis", 0.0) or 0.0)

    def default_aggregate(self, kind: str) -> str:
        return {"above": "max", "below": "min"}.get(kind, "mean") if "max" in self.aggregates else self.aggregates[0]

    def default_selector(self, kind: str, sources: Sequence[str]) -> str:
        """Which series a rule watches when it names no venue: an aggregate across venues."""
        return self.default_aggregate(kind)

    def selector_for(self, kind: str, venue: str) -> str:
        """The engine's series selector for a rule naming ``venue`` (an aggregate, or one source)."""
        if venue in self.aggregates or self.discrete:
            return venue
        return f"{venue}/{self.default_aggregate(kind)}"

    def describe(self, rule: Any) -> str:
        """A rule in words, e.g. 'funding BTC above +0.0500%/8h (max of venues), cooldown 1h'."""
        value = self.fmt_threshold(rule.kind, rule.threshold, rule.field)
        what = {
            "change": f"changes by {value} within {fmt_duration_s(rule.window_s)}",
            "zscore": f"z-score beyond {rule.threshold:g} over {fmt_duration_s(rule.window_s)}",
        }.get(rule.kind, f"{rule.kind} {value}")
        series = f"{rule.field} " if rule.field else ""
        where = f"{rule.venue} of venues" if rule.venue in self.aggregates else rule.venue
        extra = f", cooldown {fmt_duration_s(rule.cooldown_s)}"
        if rule.hysteresis:
            band = f"{rule.hysteresis:g}σ" if rule.kind == "zscore" else self.fmt_band(rule.hysteresis, rule.field)
            extra += f", re-arm band {band}"
        return f"{self.name} {rule.asset} {series}{what} ({where}){extra}"

    def usage(self) -> str:
        return f"/threshold set {self.name} <asset> <above|below|crosses> <value>"

    def fresh_for_s(self, default_s: float) -> float:
        """How long a sample counts as current (a metric refreshed more slowly than the venues' polls says so)."""
        return default_s

    def rule_words(self, words: list[str]) -> list[str]:
        """The rule's words in the general grammar (a metric may offer shorthands, e.g. 'gamma btc flip')."""
        return words

    # signals ------------------------------------------------------------------------------
    def points(self, by_venue: Mapping[str, Sequence[Any]], field_: str, now_ms: int) -> list[Point]:
        """Every series' current value (in the unit rules compare), from the latest samples."""
        raise NotImplementedError

    def headline(self, points: Sequence[Point]) -> tuple[str, Level] | None:
        """The figure another metric's alert quotes as context: (what, level)."""
        lv = level(points, "max")
        return ("max", lv) if lv is not None else None

    def observations(
        self, by_venue: Mapping[str, Sequence[Any]], field_: str, selector: str, signal: str, after_ms: int | None
    ) -> list[Observation]:
        """Discrete metrics: one observation per sample published after ``after_ms`` (oldest first)."""
        raise NotImplementedError

    # chat ---------------------------------------------------------------------------------
    async def reply(self, q: Query, args: list[str]) -> Reply:
        """The /<name> command."""
        raise NotImplementedError

    def summary_line(self, view: View, now_ms: int) -> str:
        """One line for an overview (what the metric says about the asset now)."""
        return ""

    def render_alert(self, e: AlertEvent) -> Reply:
        """An alert of this metric, rendered at delivery from its typed event."""
        from core.metrics.alert_text import render_level_alert

        return render_level_alert(self, e)

    def alert_context(self, e: AlertEvent) -> list[str]:
        """Extra lines an alert of this metric carries (beyond the standard ones)."""
        return []

    def event_extra(self, samples: Mapping[str, Sequence[Any]], lv: Level, now_ms: int) -> dict[str, Any]:
        """Metric-specific values an alert event carries, for rendering at delivery."""
        return {}


@dataclass(frozen=True, slots=True)
class Observation:
    """One judged value of a discrete metric: when it became known, the value, where it came from."""

    ts_ms: int
    value: float
    point: Point | None
    extra: dict[str, Any] = field(default_factory=dict)


def now_ms() -> int:
    return int(time.time() * 1000)


Replier = Callable[[list[str]], Awaitable[Reply]]
