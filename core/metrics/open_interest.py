"""Open interest: every contract's outstanding size, in coins and USD, per venue and in total.

Venues report contracts, coins or USD; the venue clients normalize with the contract size (for
inverse contracts the USD face value is the USD figure). Rules compare USD: ``above 30b`` is the
total across venues (or one venue's total with ``venue okx``); ``change 10% 24h`` is relative.
History keeps one total per venue and step, which is what the 1h/24h/7d changes read.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from core.alerts.signals import Level, Point, level
from core.metrics.base import CHART_HISTORY, Metric, Query, Setting, View, fmt_amount, parse_amount, parse_percent
from core.metrics.common import FAMILY_LEGEND, age_footer, current, degraded_note, mark, unknown_asset
from core.models import OpenInterestSample
from core.parsing import parse_asset
from core.reply import Reply, Table, UserError

USD_LIMIT = 1e13
TOTAL = "*total*"  # the symbol of a venue's per-asset total in history
CHANGE_WINDOWS_S = (("1h", 3600), ("24h", 86_400), ("7d", 7 * 86_400))
_SERIES = re.compile(r"^(\d{1,2})d$")


def _band(v: Any) -> float:
    return abs(parse_percent(str(v), what="hysteresis", limit=10.0, example="2%"))


def family(s: OpenInterestSample) -> str:
    if s.inverse:
        return "inverse"
    return "USDC" if s.settle == "USDC" else "USDT"


class OpenInterest(Metric):
    name = "oi"
    title = "Open interest"
    sample_type = OpenInterestSample
    unit = "USD"
    args = "<asset> [Nd]"
    example = "/oi btc"
    summary = "open interest per venue and contract family, total and its 1h/24h/7d change"
    aggregates = ("sum",)
    change_relative = True
    settings_spec = (
        Setting("hysteresis", 0.02, "re-arm band of OI level rules, as a fraction of the threshold (2%)", _band),
        CHART_HISTORY,
    )

    def problem(self, s: OpenInterestSample) -> str | None:
        for what, x in (("coins", s.coins), ("usd", s.usd)):
            if not isinstance(x, int | float) or not math.isfinite(x) or x < 0:
                return f"open interest {what} {x!r} is not a finite number ≥ 0"
        if s.usd > USD_LIMIT:
            return f"open interest {s.usd:.3g} USD is beyond any market's size"
        return None

    def history_samples(self, samples: Sequence[OpenInterestSample]) -> list[OpenInterestSample]:
        """One total per asset (the venue's sum): what the changes and charts read."""
        totals: dict[str, list[OpenInterestSample]] = {}
        for s in samples:
            totals.setdefault(s.asset, []).append(s)
        return [
            OpenInterestSample(
                venue=ss[0].venue,
                symbol=TOTAL,
                asset=a,
                settle="USD",
                inverse=False,
                kind="total",
                coins=sum(s.coins for s in ss),
                usd=sum(s.usd for s in ss),
                ts_ms=max(s.ts_ms for s in ss),
            )
            for a, ss in totals.items()
        ]

    def history_member(self, s: OpenInterestSample) -> str:
        return f"{s.ts_ms}|{s.usd!r}|{s.coins!r}"

    def from_history(self, venue: str, asset: str, ts_ms: int, member: str) -> OpenInterestSample | None:
        parts = member.split("|")
        if len(parts) != 3:
            return None
        return OpenInterestSample(
            venue=venue,
            symbol=TOTAL,
            asset=asset,
            settle="USD",
            inverse=False,
            kind="total",
            coins=float(parts[2]),
            usd=float(parts[1]),
            ts_ms=ts_ms,
        )

    # units ---------------------------------------------------------------------------------
    def parse_threshold(self, kind: str, text: str, field_: str) -> float:
        if kind == "change":
            value = parse_percent(text, what="change", limit=10.0, example="10% (of open interest)")
            if value <= 0:
                raise UserError("a change threshold must be positive: it applies in either direction")
            return value
        if kind == "band":
            return parse_percent(text, what="hysteresis", limit=10.0, example="2% (of the threshold)")
        return parse_amount(text, what="threshold", limit=USD_LIMIT, example="30b (USD; k, m, b suffixes)")

    def parse_band(self, text: str, kind: str, field_: str) -> float:
        return abs(self.parse_threshold("band", text, field_))

    def fmt_value(self, value: float, field_: str = "", *, signed: bool = False) -> str:
        return fmt_amount(value, prefix="$")

    def fmt_threshold(self, kind: str, value: float, field_: str = "") -> str:
        if kind == "zscore":
            return f"{value:g}σ"
        if kind in ("change", "band"):
            return f"{value * 100:g}%"
        return fmt_amount(value, prefix="$")

    def fmt_band(self, value: float, field_: str = "") -> str:
        # level rules store their band in USD (see band_for), change rules as a fraction
        return fmt_amount(value, prefix="$") if value >= 1 else f"{value * 100:g}%"

    def usage(self) -> str:
        return "/threshold set oi <asset> <above|below|crosses> <USD, e.g. 30b> | change <value%> <window>"

    def band_for(self, kind: str, threshold: float, band: float) -> float:
        """Level rules keep the band as a fraction of the threshold: 2% of $30B re-arms at $29.4B."""
        return band * abs(threshold) if kind in ("above", "below", "crosses") else band

    # signals -------------------------------------------------------------------------------
    def points(self, by_venue: Mapping[str, Sequence[Any]], field_: str, now_ms: int) -> list[Point]:
        return [Point(v, s.symbol, s.usd, s.settle, s.inverse) for v, ss in by_venue.items() for s in ss]

    def headline(self, points: Sequence[Point]) -> tuple[str, Level] | None:
        lv = level(points, "sum")
        return ("total", lv) if lv is not None else None

    # chat ----------------------------------------------------------------------------------
    async def reply(self, q: Query, args: list[str]) -> Reply:
        """/oi <asset> [Nd]: open interest per venue and family in coins and USD, total, 1h/24h/7d change."""
        series_days = 0
        if len(args) == 2:
            m = _SERIES.match(args[1].lower())
            if not m or not 1 <= int(m.group(1)) <= 30:
                raise UserError(f"'{args[1][:20]}' is not a period: use 1d to 30d, e.g. /oi btc 7d")
            series_days, args = int(m.group(1)), args[:1]
        asset = parse_asset(args, "oi")
        view = await q.view(self, asset)
        now = q.now()
        if not view.by_venue:
            raise await unknown_asset(q, self, asset)
        live = current(q, view, self.name, now)
        rows = []
        for venue in sorted(view.by_venue):
            groups: dict[str, list[OpenInterestSample]] = {}
            for s in view.by_venue[venue]:
                groups.setdefault(family(s), []).append(s)
            for fam in sorted(groups):
                ss = groups[fam]
                star = mark(q, view, self.name, venue, min(s.ts_ms for s in ss), now)
                rows.append(
                    (
                        f"{_label(venue)}{star}",
                        fam,
                        f"{sum(s.coins for s in ss):,.0f}",
                        fmt_amount(sum(s.usd for s in ss), prefix="$"),
                    )
                )
        total_usd = sum(s.usd for ss in live.values() for s in ss)
        total_coins = sum(s.coins for ss in live.values() for s in ss)
        rows.append(("total", f"{len(live)} venues", f"{total_coins:,.0f}", fmt_amount(total_usd, prefix="$")))
        blocks: list[str | Table] = [Table(header=("venue", "family", asset, "USD"), rows=tuple(rows), align="llrr")]
        if series_days:
            blocks.append(await self._series(q, asset, tuple(live), now, series_days))
        else:
            blocks.append(await self._changes(q, asset, live, now))
        if note := degraded_note(view, self.name, now):
            blocks.append(note)
        ts = [s.ts_ms for ss in view.by_venue.values() for s in ss]
        return Reply(
            title=f"{asset} open interest · {fmt_amount(total_usd, prefix='$')} on {len(live)} venues",
            blocks=tuple(blocks),
            footer=age_footer(q, ts, now, f" · {FAMILY_LEGEND}; the total counts current rows only"),
        )

    async def _changes(self, q: Query, asset: str, live: Mapping[str, Sequence[OpenInterestSample]], now: int) -> str:
        """Total change over 1h/24h/7d, over the venues that have a stored total at both ends."""
        venues = tuple(live)
        then = await q.store.history_at(
            self.name,
            asset,
            venues,
            [now - w * 1000 for _, w in CHANGE_WINDOWS_S],
            tolerance_ms=max(600_000, int(q.stale_after_s * 1000)),
        )
        parts = []
        for (label, _w), at in zip(CHANGE_WINDOWS_S, then, strict=True):
            old = new = 0.0
            for venue in venues:
                member = at.get(venue)
                if member is None:
                    continue
                old += float(member.split("|")[1])
                new += sum(s.usd for s in live[venue])
            parts.append(f"{label} {(new - old) / old * 100:+.1f}%" if old > 0 else f"{label} —")
        return "Change of the total: " + " · ".join(parts) + " (venues with history at both ends)"

    async def _series(self, q: Query, asset: str, venues: tuple[str, ...], now: int, days: int) -> Table:
        step_ms = 3_600_000 * (6 if days <= 7 else 24)
        hist = await q.store.history_since(self.name, asset, venues, now - days * 86_400_000)
        buckets: dict[int, dict[str, float]] = {}
        for venue, members in hist.items():
            for ts, member in members:
                buckets.setdefault(ts // step_ms, {})[venue] = float(member.split("|")[1])  # last in bucket wins
        rows = tuple(
            (
                time.strftime("%m-%d %H:%M", time.gmtime(b * step_ms / 1000)),
                fmt_amount(sum(v.values()), prefix="$"),
                str(len(v)),
            )
            for b, v in sorted(buckets.items())
        )
        return Table(
            header=("UTC", "total", "venues"),
            rows=rows or (("—", "no history yet", ""),),
            align="lrr",
            caption=f"Total open interest, last {days}d ({'6h' if days <= 7 else '1d'} steps)",
        )

    def summary_line(self, view: View, now_ms: int) -> str:
        total = sum(s.usd for _, s in view.samples())
        return f"oi: total {fmt_amount(total, prefix='$')}" if view.by_venue else "oi: no data"


def _label(venue: str) -> str:
    from core.render import VENUE_LABELS

    return VENUE_LABELS.get(venue, venue)
