"""Options dealer gamma: GEX per strike from Deribit's option chain, its total and the flip level.

Stored samples are the chain itself (one row per option, replaced by every refresh); every figure
is computed from it with :mod:`core.gamma`, whose docstring states the convention. Rules:
``gamma btc below -50m`` compares the total GEX (USD per 1% move); ``gamma btc flip`` fires when
spot crosses the flip level (its signal is (spot - flip) / flip, crossing 0 beyond a small band).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from core.alerts.events import AlertEvent
from core.alerts.signals import Level, Point, level
from core.gamma import FLIP_SPAN, OptionSample, flip_level, gex_by_strike, in_window, option_gex, spot_of
from core.metrics.alert_text import stamp
from core.metrics.base import Metric, Query, Setting, View, fmt_amount, fmt_duration_s, parse_amount, parse_percent
from core.metrics.common import age_footer, degraded_note, unknown_asset
from core.parsing import parse_asset
from core.render import fmt_price
from core.reply import Reply, Table, UserError

USD_LIMIT = 1e13
CONVENTION = (
    "Convention: Black-76, r = 0, F = Deribit's underlying price, σ = mark IV, T in 365-day years; "
    "GEX = gamma × OI (coins) × F² × 0.01 (USD per 1% move), + calls / − puts (dealers long calls, "
    "short puts); spot = Deribit's index; flip = price where the total changes sign, the whole chain "
    "re-evaluated with every F scaled to it."
)
_DAYS = re.compile(r"^(\d{1,3})d$")
FIELDS = ("total", "flip")


def _band(v: Any) -> float:
    return abs(parse_percent(str(v), what="hysteresis", limit=1.0, example="5%"))


def _seconds(v: Any) -> float:
    x = float(v)
    if not 1 <= x <= 86_400:
        raise ValueError("seconds from 1 to 86400")
    return x


def _days(v: Any) -> float:
    x = float(v)
    if not 0 <= x <= 3650:
        raise ValueError("a number of days from 0 (every expiry) to 3650")
    return x


def _currencies(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list | tuple) or not v or not all(isinstance(c, str) and c.isalnum() for c in v):
        raise ValueError('a non-empty list of Deribit option currencies such as ["BTC", "ETH"]')
    return tuple(c.upper() for c in v)


def chain_figures(
    chain: Sequence[OptionSample], now_ms: int, max_days: float | None
) -> tuple[dict[float, float], float, float | None, float | None]:
    """(GEX per strike, total, spot, flip level) of one asset's chain."""
    live = [o for o in chain if in_window(o, now_ms, max_days)]
    by_strike = gex_by_strike(live, now_ms)
    spot = spot_of(chain)
    flip = flip_level(live, now_ms, spot, max_days) if spot else None
    return by_strike, sum(by_strike.values()), spot, flip


class Gamma(Metric):
    name = "gamma"
    title = "Dealer gamma"
    sample_type = OptionSample
    unit = "USD per 1% move"
    args = "<asset> [Nd]"
    example = "/gamma btc"
    summary = "options dealer gamma exposure per strike (Deribit), total and flip level"
    fields = FIELDS
    kinds = ("above", "below", "crosses")
    aggregates = ("sum",)
    fixed_sources = ("deribit",)
    settings_spec = (
        Setting(
            "currencies",
            ("BTC", "ETH"),
            "Deribit option currencies whose chain is fetched (one book summary request per currency per refresh)",
            _currencies,
        ),
        Setting("refresh_s", 300.0, "seconds between option chain refreshes", _seconds),
        Setting("max_days", 0.0, "count only expiries within this many days (0: every expiry)", _days),
        Setting("hysteresis", 0.05, "re-arm band of total GEX rules, as a share of the threshold (5%)", _band),
        Setting("flip_band", 0.0025, "a flip rule fires once spot is this far past the flip level (0.25%)", _band),
    )

    def fresh_for_s(self, default_s: float) -> float:
        """A chain is current until two refreshes have been missed."""
        return max(default_s, 2 * float(self.options["refresh_s"]))

    @property
    def max_days(self) -> float | None:
        d = float(self.options["max_days"] or 0)
        return d if d > 0 else None

    def problem(self, s: OptionSample) -> str | None:
        for what, x in (("strike", s.strike), ("underlying price", s.underlying_usd), ("index", s.index_usd)):
            if not isinstance(x, int | float) or not math.isfinite(x) or x <= 0:
                return f"{what} {x!r} is not a positive finite number"
        if (
            not isinstance(s.mark_iv_pct, int | float)
            or not math.isfinite(s.mark_iv_pct)
            or not 0 < s.mark_iv_pct < 1000
        ):
            return f"mark IV {s.mark_iv_pct!r}% is implausible"
        if not isinstance(s.open_interest, int | float) or not math.isfinite(s.open_interest) or s.open_interest < 0:
            return f"open interest {s.open_interest!r} is not a finite number ≥ 0"
        if abs(s.underlying_usd / s.index_usd - 1) > 0.5:
            return f"underlying {s.underlying_usd} is far from index {s.index_usd}"
        return None

    def history_samples(self, samples: Sequence[Any]) -> list[Any]:
        return []  # the evaluator keeps the total's and the flip's signal history

    def sort_key(self, s: OptionSample) -> Any:
        return (s.expiry_ms, s.strike, s.call)

    # rule grammar -----------------------------------------------------------------------
    def rule_words(self, words: list[str]) -> list[str]:
        """'gamma btc below -50m' -> the total series; 'gamma btc flip' -> spot crossing the flip level."""
        if len(words) < 3:
            raise UserError(f"Usage: {self.usage()}")
        head, word, rest = words[:2], words[2], words[3:]
        if word == "flip":
            return [*head, "flip", "crosses", "0%", "hysteresis", f"{self.options['flip_band'] * 100:g}%", *rest]
        if word in ("above", "below"):
            return [*head, "total", word, *rest]
        if word == "total" and rest[:1] in (["above"], ["below"]):
            return words
        raise UserError(f"Usage: {self.usage()}")

    def parse_threshold(self, kind: str, text: str, field_: str) -> float:
        if kind == "band" or field_ == "flip":
            what = "hysteresis" if kind == "band" else "threshold"
            return parse_percent(text, what=what, limit=1.0, example="5%")
        return parse_amount(text, what="threshold", limit=USD_LIMIT, example="-50m (USD per 1% move; k, m, b)")

    def band_for(self, kind: str, threshold: float, band: float) -> float:
        """Total rules keep the band as a share of the threshold; the flip band is a share of the flip level."""
        return band * abs(threshold) if kind in ("above", "below") else band

    def fmt_value(self, value: float, field_: str = "", *, signed: bool = True) -> str:
        if field_ == "flip":
            return f"{value * 100:+.2f}% from the flip" if signed else f"{value * 100:.2f}%"
        return fmt_amount(value, signed=signed, prefix="$")

    def fmt_threshold(self, kind: str, value: float, field_: str = "") -> str:
        if field_ == "flip" or kind == "band":
            return f"{value * 100:g}%"
        return fmt_amount(value, signed=True, prefix="$")

    def fmt_band(self, value: float, field_: str = "") -> str:
        return f"{value * 100:g}%" if field_ == "flip" else fmt_amount(value, prefix="$")

    def usage(self) -> str:
        return "/threshold set gamma <asset> <above|below> <USD per 1%, e.g. -50m> | /threshold set gamma <asset> flip"

    def describe(self, rule: Any) -> str:
        cool = f", cooldown {fmt_duration_s(rule.cooldown_s)}"
        if rule.field == "flip":
            return f"gamma {rule.asset} spot crosses the flip level (band {rule.hysteresis * 100:g}%){cool}"
        band = f", re-arm band {fmt_amount(rule.hysteresis, prefix='$')}" if rule.hysteresis else ""
        return (
            f"gamma {rule.asset} total {rule.kind} {fmt_amount(rule.threshold, signed=True, prefix='$')} "
            f"per 1% (Deribit){cool}{band}"
        )

    # signals -------------------------------------------------------------------------------
    def points(self, by_venue: Mapping[str, Sequence[Any]], field_: str, now_ms: int) -> list[Point]:
        out = []
        for venue, chain in by_venue.items():
            if not chain:
                continue
            if field_ == "flip":
                spot = spot_of(chain)
                flip = flip_level(chain, now_ms, spot, self.max_days) if spot else None
                if spot and flip:
                    out.append(Point(venue, "flip", (spot - flip) / flip, "USD", False))
            else:
                total = sum(option_gex(o, now_ms) for o in chain if in_window(o, now_ms, self.max_days))
                out.append(Point(venue, "total", total, "USD", False))
        return out

    def headline(self, points: Sequence[Point]) -> tuple[str, Level] | None:
        lv = level(points, "sum")
        return ("total", lv) if lv is not None else None

    def event_extra(self, samples: Mapping[str, Sequence[Any]], lv: Level, now_ms: int) -> dict[str, Any]:
        chain = [o for ss in samples.values() for o in ss]
        if not chain:
            return {}
        _, total, spot, flip = chain_figures(chain, now_ms, self.max_days)
        return {"total": total, "spot": spot, "flip": flip}

    # chat ----------------------------------------------------------------------------------
    async def reply(self, q: Query, args: list[str]) -> Reply:
        """/gamma <asset> [Nd]: dealer GEX per strike near spot, total, flip level, largest negative strikes."""
        max_days = self.max_days
        if len(args) == 2:
            m = _DAYS.match(args[1].lower())
            if not m or not 1 <= int(m.group(1)) <= 365:
                raise UserError(
                    f"'{args[1][:20]}' is not a window: use 1d to 365d (expiries within it), e.g. /gamma btc 30d"
                )
            max_days, args = float(m.group(1)), args[:1]
        asset = parse_asset(args, "gamma")
        q = replace(q, stale_after_s=self.fresh_for_s(q.stale_after_s))
        view = await q.view(self, asset)
        now = q.now()
        chain = [o for _, o in view.samples()]
        if not chain:
            raise await unknown_asset(q, self, asset)
        by_strike, total, spot, flip = chain_figures(chain, now, max_days)
        blocks: list[str | Table] = []
        if spot is None or not by_strike:
            blocks.append("No live options in the window.")
        else:
            near = sorted(sorted(by_strike, key=lambda k: abs(k - spot))[:12])
            calls: dict[float, float] = {}
            puts: dict[float, float] = {}
            for o in chain:
                if in_window(o, now, max_days):
                    side = calls if o.call else puts
                    side[o.strike] = side.get(o.strike, 0.0) + option_gex(o, now)
            rows = tuple(
                (
                    fmt_price(k) + (" ◂" if k == min(near, key=lambda x: abs(x - spot)) else ""),
                    fmt_amount(calls.get(k, 0.0), signed=True, prefix="$"),
                    fmt_amount(puts.get(k, 0.0), signed=True, prefix="$"),
                    fmt_amount(by_strike[k], signed=True, prefix="$"),
                )
                for k in near
            )
            blocks.append(
                Table(
                    header=("strike", "calls", "puts", "net"),
                    rows=rows,
                    align="rrrr",
                    caption=f"GEX per strike nearest spot {fmt_price(spot)} (USD per 1% move)",
                )
            )
            blocks.append(f"Total {fmt_amount(total, signed=True, prefix='$')} per 1% · " + flip_text(flip, spot))
            negative = sorted(((k, v) for k, v in by_strike.items() if k < spot and v < 0), key=lambda kv: kv[1])[:3]
            if negative:
                blocks.append(
                    "Largest negative gamma below spot: "
                    + ", ".join(f"{fmt_price(k)} {fmt_amount(v, signed=True, prefix='$')}" for k, v in negative)
                )
            else:
                blocks.append("No strike below spot has negative gamma.")
        if note := degraded_note(view, self.name, now):
            blocks.append(note)
        window = f"expiries within {max_days:g}d" if max_days else "every expiry"
        expiries = len({o.expiry_ms for o in chain if in_window(o, now, max_days)})
        title = f"{asset} dealer gamma · {fmt_amount(total, signed=True, prefix='$')} per 1% · {expiries} expiries"
        footer = age_footer(q, [max(o.ts_ms for o in chain)], now, f" · {window} · {CONVENTION}")
        return Reply(title=title, blocks=tuple(blocks), footer=footer)

    def summary_line(self, view: View, now_ms: int) -> str:
        chain = [o for _, o in view.samples()]
        if not chain:
            return "gamma: no data"
        _, total, spot, flip = chain_figures(chain, now_ms, self.max_days)
        return f"gamma: total {fmt_amount(total, signed=True, prefix='$')} per 1% · {flip_text(flip, spot)}"

    def render_alert(self, e: AlertEvent) -> Reply:
        if e.field != "flip":
            return super().render_alert(e)
        x = e.extra
        spot, flip = x.get("spot"), x.get("flip")
        below = e.direction == "-"
        title = f"{'🔻' if below else '🔺'} {e.asset} spot crossed {'below' if below else 'above'} the gamma flip level"
        lines = [
            f"Spot {fmt_price(spot)} · flip {fmt_price(flip)} ({e.value * 100:+.2f}%) · {stamp(e.ts_ms)}",
            f"Total dealer gamma {fmt_amount(x.get('total'), signed=True, prefix='$')} per 1% move · "
            f"{'global rule' if e.scope == 'global' else 'this chat rule'} {e.rule_id}",
            "Below the flip, dealers are net short gamma: their hedging adds to moves.",
        ]
        return Reply(
            title=title,
            blocks=("\n".join(lines),),
            footer=f"Mute: /mute 2h · Stop: /unsubscribe gamma {e.asset.lower()}",
        )


def flip_text(flip: float | None, spot: float | None) -> str:
    if spot is None:
        return "flip —"
    if flip is None:
        return f"flip: none within ±{FLIP_SPAN * 100:.0f}% of spot {fmt_price(spot)}"
    return f"flip {fmt_price(flip)} ({(flip - spot) / spot * 100:+.2f}% from spot {fmt_price(spot)})"
