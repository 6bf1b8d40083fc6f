"""Basis: every dated future against its index, (F - I) / I, annualized by days to expiry.

Inside ``min_days_to_expiry`` the annualized figure explodes (0.1% one day out reads as 36%/yr),
so it is neither shown nor alerted on there; the raw basis still is.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from core.alerts.signals import Point
from core.bounds import sample_problem
from core.metrics.base import CHART_HISTORY, Metric, Query, Setting, View, parse_percent
from core.metrics.common import FAMILY_LEGEND, age_footer, degraded_note, mark, unknown_asset
from core.models import BasisSample, is_sane_price
from core.parsing import parse_asset
from core.render import fmt_pct, fmt_price, venue_label
from core.reply import Reply, Table

BASIS_LIMIT = 10.0  # ±1000% annualized


def _band(v: Any) -> float:
    return abs(parse_percent(str(v), what="hysteresis", limit=BASIS_LIMIT, example="5%"))


def _days(v: Any) -> float:
    x = float(v)
    if not 0 <= x <= 90:
        raise ValueError("a number of days from 0 to 90")
    return x


def _fraction(v: Any) -> float:
    x = float(v)
    if not 0 < x <= 10:
        raise ValueError("a fraction between 0 and 10")
    return x


class Basis(Metric):
    name = "basis"
    title = "Basis"
    sample_type = BasisSample
    unit = "fraction per year"
    example = "/basis btc"
    summary = "dated futures vs index, annualized, per venue"
    related = ("funding",)
    settings_spec = (
        Setting("hysteresis", 0.05, "re-arm band for basis rules (annualized)", _band),
        Setting(
            "min_days_to_expiry",
            3.0,
            "inside this many days of expiry the basis is not annualized (nor alerted on): it explodes as expiry nears",
            _days,
        ),
        Setting("max_deviation_from_index", 0.5, "a future further than this from its index is a bad value", _fraction),
        CHART_HISTORY,
    )

    @property
    def min_days(self) -> float:
        return float(self.options["min_days_to_expiry"])

    def problem(self, s: BasisSample) -> str | None:
        if not is_sane_price(s.future_usd):
            return f"future price {s.future_usd!r} is not a positive finite number"
        if not is_sane_price(s.index_usd):
            return f"index price {s.index_usd!r} is not a positive finite number"
        if problem := sample_problem(s):
            return problem
        if abs(s.basis_frac) > self.options["max_deviation_from_index"]:
            return f"future {s.future_usd} is {s.basis_frac:+.0%} from index {s.index_usd}"
        return None

    def history_member(self, s: BasisSample) -> str:
        return f"{s.ts_ms}|{s.symbol}|{s.future_usd!r}|{s.index_usd!r}|{s.expiry_ms}"

    def from_history(self, venue: str, asset: str, ts_ms: int, member: str) -> BasisSample | None:
        parts = member.split("|")
        if len(parts) != 5:
            return None
        symbol = parts[1]
        settle = symbol.partition(":")[2].partition("-")[0]
        return BasisSample(
            venue=venue,
            symbol=symbol,
            asset=asset,
            settle=settle,
            inverse=settle == asset,
            expiry_ms=int(parts[4]),
            future_usd=float(parts[2]),
            index_usd=float(parts[3]),
            ts_ms=ts_ms,
        )

    def sort_key(self, s: BasisSample) -> Any:
        return (s.expiry_ms, s.symbol)

    def parse_threshold(self, kind: str, text: str, field_: str) -> float:
        what = "hysteresis" if kind == "band" else "threshold"
        return parse_percent(text, what=what, limit=BASIS_LIMIT, example="40% (basis, annualized)")

    def fmt_value(self, value: float, field_: str = "", *, signed: bool = True) -> str:
        return f"{value * 100:+.1f}% ann." if signed else f"{value * 100:.1f}% ann."

    def fmt_threshold(self, kind: str, value: float, field_: str = "") -> str:
        if kind == "zscore":
            return f"{value:g}σ"
        return f"{value * 100:+.1f}%" if kind not in ("change", "band") else f"{value * 100:.1f}%"

    def fmt_band(self, value: float, field_: str = "") -> str:
        return f"{value * 100:.1f}%"

    def usage(self) -> str:
        return "/threshold set basis <asset> <above|below|crosses> <value%> (annualized)"

    def points(self, by_venue: Mapping[str, Sequence[Any]], field_: str, now_ms: int) -> list[Point]:
        """Annualized basis of every future outside the near-expiry window."""
        out = []
        for v, ss in by_venue.items():
            for s in ss:
                ann = s.basis_annualized(now_ms, self.min_days)
                if ann is not None:
                    out.append(Point(v, s.symbol, ann, s.settle, s.inverse))
        return out

    async def reply(self, q: Query, args: list[str]) -> Reply:
        """/basis <asset>: every dated future against its index, annualized, grouped by expiry."""
        asset = parse_asset(args, "basis")
        funding = q.registry.get("funding")
        (by_venue, perps_by_venue), health = await _read_both(q, self, funding, asset)
        view = View(asset, by_venue, health)
        fview = View(asset, perps_by_venue, health)
        now = q.now()
        futures = [(v, s) for v, s in view.samples() if s.expiry_ms > now]
        perps = [(v, s) for v, s in fview.samples() if s.premium_frac is not None]
        if not futures and not perps:
            raise await unknown_asset(q, self, asset)
        blocks: list[str | Table] = []
        by_expiry: dict[int, list[tuple[str, BasisSample]]] = {}
        for v, s in futures:
            by_expiry.setdefault(s.expiry_ms, []).append((v, s))
        for expiry_ms in sorted(by_expiry):
            group = sorted(by_expiry[expiry_ms], key=lambda p: venue_label(*p))
            days = group[0][1].days_to_expiry(now)
            rows = tuple(
                (
                    venue_label(v, s) + mark(q, view, self.name, v, s.ts_ms, now, s.symbol),
                    fmt_price(s.future_usd),
                    fmt_price(s.index_usd),
                    fmt_pct(s.basis_frac),
                    fmt_pct(s.basis_annualized(now, self.min_days), 1),
                )
                for v, s in group
            )
            date = time.strftime("%Y-%m-%d", time.gmtime(expiry_ms / 1000))
            note = f" (under {self.min_days:g}d: not annualized)" if days < self.min_days else ""
            blocks.append(
                Table(
                    header=("venue", "future", "index", "basis", "ann."),
                    rows=rows,
                    align="lrrrr",
                    caption=f"{date} · {days:.1f}d to expiry{note}",
                )
            )
        if not futures:
            blocks.append(f"No dated {asset} futures listed on the watched venues.")
        if perps:
            prem_rows = tuple(
                (
                    venue_label(v, s) + mark(q, fview, "funding", v, s.ts_ms, now, s.symbol),
                    fmt_price(s.mark_usd),
                    fmt_price(s.index_usd),
                    fmt_pct(s.premium_frac, 3),
                )
                for v, s in sorted(perps, key=lambda p: venue_label(*p))
            )
            blocks.append(
                Table(
                    header=("venue", "mark", "index", "premium"),
                    rows=prem_rows,
                    align="lrrr",
                    caption="Perpetual premium (mark vs index)",
                )
            )
        if note_ := degraded_note(view, self.name, now):
            blocks.append(note_)
        n_venues = len({v for v, _ in futures})
        title = f"{asset} basis · {len(futures)} futures on {n_venues} venues"
        ts = [s.ts_ms for _, s in futures] + [s.ts_ms for _, s in perps]
        return Reply(title=title, blocks=tuple(blocks), footer=age_footer(q, ts, now, f" · {FAMILY_LEGEND}"))

    def summary_line(self, view: View, now_ms: int) -> str:
        pts = self.points(view.by_venue, "", now_ms)
        if not pts:
            return "basis: no data"
        top = max(pts, key=lambda p: p.value)
        return f"basis: max {fmt_pct(top.value, 1)} ann. ({top.label} {top.symbol})"


async def _read_both(
    q: Query, basis: Metric, funding: Metric, asset: str
) -> tuple[tuple[dict[str, list[Any]], dict[str, list[Any]]], dict[str, Any]]:
    """Futures and perpetuals of one asset with the venues' health: one round trip."""
    venues = q.venues or q.sources
    (futures, perps), health = await q.store.read_many(
        [(basis, asset, venues), (funding, asset, venues)], health=venues
    )
    return (futures, perps), health
