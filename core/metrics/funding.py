"""Perpetual funding: the fraction per funding interval as the venue reports it, compared per 8h.

Rules and means use the rate normalized to 8h (a 4h venue's 0.07% is 0.14% per 8h), so a rule
at 0.1%/8h fires for a venue that shortened its interval to 4h and pays 0.07% per 4h.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from core.alerts.events import AlertEvent
from core.alerts.signals import Level, Point, level
from core.bounds import sample_problem
from core.metrics.base import CHART_HISTORY, Metric, Query, Setting, View, parse_percent
from core.metrics.common import FAMILY_LEGEND, age_footer, current, degraded_note, mark, unknown_asset
from core.models import EIGHT_HOURS_S, FundingSample, is_sane_price
from core.parsing import parse_asset
from core.render import fmt_duration, fmt_interval, fmt_pct, venue_label
from core.reply import Reply, Table

RATE_LIMIT = 0.05  # thresholds beyond ±5% per 8h are typing mistakes


def _band(v: Any) -> float:
    return abs(parse_percent(str(v), what="hysteresis", limit=RATE_LIMIT, example="0.01%"))


def _fraction(v: Any) -> float:
    x = float(v)
    if not 0 < x <= 1:
        raise ValueError("a fraction between 0 and 1")
    return x


def per_8h(s: FundingSample) -> float:
    return s.rate_per_interval * EIGHT_HOURS_S / s.interval_s


class Funding(Metric):
    name = "funding"
    title = "Funding"
    sample_type = FundingSample
    unit = "fraction per 8h"
    example = "/funding eth"
    summary = "perpetual funding per venue, annualized"
    related = ("basis",)
    settings_spec = (
        Setting(
            "hysteresis",
            0.0001,
            "re-arm band: a funding rule re-arms once this far (per 8h) back past its threshold",
            _band,
        ),
        Setting(
            "max_abs_rate_per_interval",
            0.05,
            "|funding| above this per interval is a bad value, never stored",
            _fraction,
        ),
        Setting("max_premium", 0.5, "a perpetual's mark further than this from its index is a bad value", _fraction),
        CHART_HISTORY,
    )

    def problem(self, s: FundingSample) -> str | None:
        r = s.rate_per_interval
        if not isinstance(r, int | float) or not math.isfinite(r):
            return f"funding rate {r!r} is not a number"
        if abs(r) > self.options["max_abs_rate_per_interval"]:
            return f"funding rate {r!r} beyond ±{self.options['max_abs_rate_per_interval']} per interval"
        if s.interval_s <= 0 or s.interval_s > 7 * 86_400:
            return f"funding interval {s.interval_s}s is implausible"
        if (s.mark_usd is not None or s.index_usd is not None) and not (
            is_sane_price(s.mark_usd) and is_sane_price(s.index_usd)
        ):
            return f"mark {s.mark_usd!r} / index {s.index_usd!r} not positive finite prices"
        if problem := sample_problem(s):
            return problem
        prem = s.premium_frac
        if prem is not None and abs(prem) > self.options["max_premium"]:
            return f"mark {s.mark_usd} is {prem:+.0%} from index {s.index_usd}"
        return None

    def history_member(self, s: FundingSample) -> str:
        return f"{s.ts_ms}|{s.symbol}|{s.rate_per_interval!r}|{s.interval_s}"

    def from_history(self, venue: str, asset: str, ts_ms: int, member: str) -> FundingSample | None:
        parts = member.split("|")
        if len(parts) != 4:
            return None
        symbol = parts[1]
        settle = symbol.partition(":")[2].partition("-")[0] or symbol.partition("/")[2]
        return FundingSample(
            venue=venue,
            symbol=symbol,
            asset=asset,
            settle=settle,
            inverse=settle == asset,
            rate_per_interval=float(parts[2]),
            interval_s=int(parts[3]),
            next_funding_ms=None,
            predicted_rate=None,
            mark_usd=None,
            index_usd=None,
            ts_ms=ts_ms,
        )

    # units ---------------------------------------------------------------------------------
    def parse_threshold(self, kind: str, text: str, field_: str) -> float:
        what = "hysteresis" if kind == "band" else "threshold"
        return parse_percent(text, what=what, limit=RATE_LIMIT, example="0.05% (funding, per 8h)")

    def fmt_value(self, value: float, field_: str = "", *, signed: bool = True) -> str:
        return f"{value * 100:+.4f}%/8h" if signed else f"{value * 100:.4f}%/8h"

    def fmt_band(self, value: float, field_: str = "") -> str:
        return f"{value * 100:.4f}%"

    def usage(self) -> str:
        return "/threshold set funding <asset> <above|below|crosses> <value%> (per 8h)"

    # signals -------------------------------------------------------------------------------
    def points(self, by_venue: Mapping[str, Sequence[Any]], field_: str, now_ms: int) -> list[Point]:
        return [Point(v, s.symbol, per_8h(s), s.settle, s.inverse) for v, ss in by_venue.items() for s in ss]

    def headline(self, points: Sequence[Point]) -> tuple[str, Level] | None:
        lv = level(points, "mean")
        return ("mean", lv) if lv is not None else None

    # chat ----------------------------------------------------------------------------------
    async def reply(self, q: Query, args: list[str]) -> Reply:
        """/funding <asset>: current and predicted funding per venue, per interval and annualized."""
        asset = parse_asset(args, "funding", "eth")
        view = await q.view(self, asset)
        now = q.now()
        perps = sorted(view.samples(), key=lambda p: venue_label(*p))
        if not perps:
            raise await unknown_asset(q, self, asset)
        rows = []
        for v, s in perps:
            nxt = (
                fmt_duration((s.next_funding_ms - now) / 1000) if s.next_funding_ms and s.next_funding_ms > now else "—"
            )
            rows.append(
                (
                    venue_label(v, s) + mark(q, view, self.name, v, s.ts_ms, now, s.symbol),
                    fmt_pct(s.rate_per_interval, 4),
                    fmt_interval(s.interval_s),
                    fmt_pct(s.rate_annualized, 1),
                    nxt,
                    fmt_pct(s.predicted_rate, 4) if s.predicted_rate is not None else "",
                )
            )
        has_pred = any(r[5] for r in rows)
        header = ("venue", "rate", "int", "ann.", "next") + (("pred.",) if has_pred else ())
        table = Table(header=header, rows=tuple(r if has_pred else r[:5] for r in rows), align="lrrrrr"[: len(header)])
        blocks: list[str | Table] = [table]
        live = [s for ss in current(q, view, self.name, now).values() for s in ss]
        if live:
            p8 = [per_8h(s) for s in live]
            ann = [s.rate_annualized for s in live]
            blocks.append(
                f"Mean {fmt_pct(statistics.fmean(p8), 4)}/8h ({fmt_pct(statistics.fmean(ann), 1)} ann.) · "
                f"range {fmt_pct(min(p8), 4)} to {fmt_pct(max(p8), 4)} per 8h · {len(live)} current perps"
            )
        else:
            blocks.append("No current value: every row is old or from a failing source (see /status).")
        if note := degraded_note(view, self.name, now):
            blocks.append(note)
        title = f"{asset} funding · {len(perps)} perps on {len({v for v, _ in perps})} venues"
        footer = age_footer(
            q,
            [s.ts_ms for _, s in perps],
            now,
            f" · rate per interval; ann. = rate × intervals per year · {FAMILY_LEGEND}",
        )
        return Reply(title=title, blocks=tuple(blocks), footer=footer)

    def summary_line(self, view: View, now_ms: int) -> str:
        ss = [s for _, s in view.samples()]
        if not ss:
            return "funding: no data"
        p8 = [per_8h(s) for s in ss]
        return f"funding: mean {fmt_pct(statistics.fmean(p8), 4)}/8h, max {fmt_pct(max(p8), 4)}/8h"

    def alert_context(self, e: AlertEvent) -> list[str]:
        return []
