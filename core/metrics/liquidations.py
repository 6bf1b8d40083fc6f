"""Liquidations: USD of long and short positions force-closed, from the venues' public streams.

A rule compares a rolling sum (1h, 4h or 24h) with a USD threshold: ``/threshold set liqs btc
above 100m 1h`` (total, the default series), ``... liqs btc long above 50m 4h``. By default the
venues are summed. The sample a rule sees is one venue's rolling sums (``LiqWindows``), written by
the stream watcher from the events in Redis, so it moves only when a new event arrives (or when
the watcher's periodic refresh lets old events leave the window); a replayed frame adds nothing.
Venues throttle what they publish (Binance at most one liquidation per symbol per second), so
every figure is a lower bound, and the reply says so.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from core.alerts.events import AlertEvent
from core.alerts.signals import Level, Point, level
from core.liquidations import WINDOWS_S, LiqEvent, LiquidationStore, LiqWindows, windows_of
from core.metrics.alert_text import arrow, stamp
from core.metrics.base import Metric, Query, View, fmt_amount, fmt_duration_s, parse_amount
from core.parsing import parse_asset
from core.render import VENUE_LABELS
from core.reply import Reply, Table, UserError

STREAMED = ("binanceusdm", "binancecoinm", "bybit", "okx")  # venues with a public liquidation stream
SERIES = ("total", "long", "short")
_WINDOW = re.compile(r"^(1h|4h|24h|1d)$")
_WINDOW_S = {"1h": 3600, "4h": 14_400, "24h": 86_400, "1d": 86_400}
LOWER_BOUND = (
    "Venues throttle what they publish (Binance sends at most one liquidation per symbol per second), "
    "so these figures are lower bounds."
)


def split_field(field_: str) -> tuple[str, int]:
    """'long:14400' -> ('long', 14400); a bare series is the 1h window."""
    side, _, window = (field_ or "total").partition(":")
    return side, int(window) if window else 3600


def _usd(x: float) -> str:
    return fmt_amount(x, prefix="$") if x else "$0"


class Liquidations(Metric):
    name = "liqs"
    title = "Liquidations"
    sample_type = LiqWindows
    unit = "USD liquidated in a rolling window"
    example = "/liqs btc"
    summary = "long and short USD liquidated over 1h, 4h, 24h per venue, and the largest ones"
    fields = SERIES
    kinds = ("above",)
    aggregates = ("sum", "max")
    replace_on_poll = False  # streamed: each venue's row is upserted

    default_field = "total"
    assets_of = "funding"  # an asset is accepted once a venue lists its perpetual, before its first liquidation

    # units ---------------------------------------------------------------------------------
    def parse_threshold(self, kind: str, text: str, field_: str) -> float:
        what = "hysteresis" if kind == "band" else "threshold"
        value = parse_amount(text, what=what, limit=1e12, example="100m (USD liquidated)")
        if kind != "band" and value <= 0:
            raise UserError("a liquidation threshold is a positive USD amount, e.g. 100m")
        return value

    def level_field(self, field_: str, rest: list[str]) -> tuple[str, list[str]]:
        """The rolling window typed after the threshold (1h, 4h or 24h; 1h when left out), kept in the field."""
        if rest and re.match(r"^\d+(\.\d+)?[mhdw]$", rest[0]):
            if not _WINDOW.match(rest[0]):
                raise UserError(
                    f"window '{rest[0][:20]}' is not offered: use 1h, 4h or 24h, "
                    "e.g. /threshold set liqs btc above 100m 1h"
                )
            return f"{field_}:{_WINDOW_S[rest[0]]}", rest[1:]
        return f"{field_}:3600", rest

    def fmt_value(self, value: float, field_: str = "", *, signed: bool = True) -> str:
        return _usd(value)

    def usage(self) -> str:
        return "/threshold set liqs <asset> [long|short] above <USD, e.g. 100m> [1h|4h|24h] [venue <name>]"

    def default_aggregate(self, kind: str) -> str:
        return "sum"

    def selector_for(self, kind: str, venue: str) -> str:
        return venue if venue in self.aggregates else f"{venue}/sum"

    def describe(self, rule: Any) -> str:
        side, window_s = split_field(rule.field)
        what = "liquidations" if side == "total" else f"{side} liquidations"
        where = {"sum": "all venues", "max": "the largest venue"}.get(rule.venue, rule.venue)
        extra = f", cooldown {fmt_duration_s(rule.cooldown_s)}" if rule.cooldown_s else ""
        return f"liqs {rule.asset} {what} above {_usd(rule.threshold)} in {fmt_duration_s(window_s)} ({where}){extra}"

    # signals -------------------------------------------------------------------------------
    def points(self, by_venue: Mapping[str, Sequence[Any]], field_: str, now_ms: int) -> list[Point]:
        side, window_s = split_field(field_)
        return [Point(v, s.symbol, s.usd(side, window_s), "", False) for v, ss in by_venue.items() for s in ss]

    def headline(self, points: Sequence[Point]) -> tuple[str, Level] | None:
        lv = level(points, "sum")
        return ("1h total", lv) if lv is not None else None

    # chat ----------------------------------------------------------------------------------
    async def reply(self, q: Query, args: list[str]) -> Reply:
        """/liqs <asset>: long and short USD liquidated over 1h, 4h and 24h per venue, and the largest ones."""
        asset = parse_asset(args, self.name)
        venues = tuple(v for v in q.sources if v in STREAMED)
        now = q.now()
        events = await LiquidationStore(q.store.redis, q.store.keys).since(asset, venues, now - 86_400_000)
        if not events:
            listed = await q.store.known_assets(self.assets_of)
            if listed and asset not in listed:
                sample = ", ".join(sorted(a.lower() for a in listed)[:8])
                raise UserError(
                    f"No venue lists a {asset} perpetual. Accepted: a listed asset, e.g. {sample}. Example: /liqs btc"
                )
            watched = ", ".join(VENUE_LABELS.get(v, v) for v in venues) or "none"
            return Reply(
                title=f"{asset} liquidations · last 24h",
                blocks=(
                    f"No {asset} liquidation published in the last 24h by the streamed venues "
                    f"({watched}). See /status for the streams' state.",
                ),
                footer=LOWER_BOUND,
            )
        rows = []
        wins = {v: windows_of(v, asset, evs, now) for v, evs in sorted(events.items())}
        for v, w in wins.items():
            rows.append(
                (VENUE_LABELS.get(v, v), *(_usd(w.usd(side, win)) for win in WINDOWS_S for side in ("long", "short")))
            )
        if len(wins) > 1:
            rows.append(
                (
                    "total",
                    *(
                        _usd(sum(w.usd(side, win) for w in wins.values()))
                        for win in WINDOWS_S
                        for side in ("long", "short")
                    ),
                )
            )
        table = Table(
            header=("venue", "long 1h", "short 1h", "long 4h", "short 4h", "long 24h", "short 24h"),
            rows=tuple(rows),
            align="lrrrrrr",
            caption="USD liquidated",
        )
        largest: list[LiqEvent] = sorted((e for evs in events.values() for e in evs), key=lambda e: -e.usd)[:5]
        big = Table(
            header=("venue", "side", asset, "USD", "price", "time"),
            rows=tuple(
                (
                    VENUE_LABELS.get(e.venue, e.venue),
                    e.side,
                    f"{e.coins:,.4g}",
                    _usd(e.usd),
                    f"{e.price:,.6g}",
                    time.strftime("%m-%d %H:%M:%S", time.gmtime(e.ts_ms / 1000)),
                )
                for e in largest
            ),
            align="llrrrr",
            caption="Largest single liquidations, last 24h (UTC)",
        )
        n = sum(len(evs) for evs in events.values())
        return Reply(
            title=f"{asset} liquidations · {n} in 24h on {len(events)} venues",
            blocks=(table, big),
            footer="long = long positions force-closed (a forced sell), short = the reverse. " + LOWER_BOUND,
        )

    def summary_line(self, view: View, now_ms: int) -> str:
        """'liqs: long $5.00M / short $1.50M' over the last 24h, summed over the venues."""
        ss = [s for _, s in view.samples()]
        return f"liqs: long {_usd(sum(s.long_24h for s in ss))} / short {_usd(sum(s.short_24h for s in ss))}"

    def render_alert(self, e: AlertEvent) -> Reply:
        """What was liquidated in which window, against the threshold, per venue."""
        side, window_s = split_field(e.field)
        what = "liquidations" if side == "total" else f"{side} liquidations"
        title = f"{arrow(e)} {e.asset} {what} above {_usd(e.threshold)} in {fmt_duration_s(window_s)}"
        scope = e.selector.split("/")[0] if "/" in e.selector else ""
        where = (
            f"on {VENUE_LABELS.get(scope, scope)}"
            if scope
            else f"({'largest venue' if e.selector == 'max' else f'sum of {e.count} venues'})"
        )
        owner = "global rule" if e.scope == "global" else "this chat's rule"
        lines = [
            f"Now {_usd(e.value)} {where} · {stamp(e.ts_ms)}",
            f"Threshold {_usd(e.threshold)} · {owner} {e.rule_id}",
        ]
        if e.context:
            lines.append("By venue: " + ", ".join(f"{c.label} {_usd(c.value)}" for c in e.context[:6]))
        lines.append(LOWER_BOUND)
        return Reply(
            title=title,
            blocks=("\n".join(lines),),
            footer=f"Mute: /mute 2h · Stop: /unsubscribe liqs {e.asset.lower()}",
        )
