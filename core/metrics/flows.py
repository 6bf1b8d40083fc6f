"""Exchange flows: one provider's daily on-chain inflow, outflow, net and exchange balance per asset.

A day is a row (the provider's instrument is the day); it exists from the moment it was published
(``available_ms``). Rules judge each new day once, on its own: a refetch never re-fires and a day
is never seen before its publication time. Providers cover different exchanges, so each series
is kept and judged apart (``provider <name>``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from core.alerts.events import AlertEvent
from core.alerts.signals import Point
from core.metrics.alert_text import stamp
from core.metrics.base import Metric, Observation, Query, View, fmt_duration_s, parse_amount, parse_percent
from core.models import FlowDay
from core.parsing import parse_asset
from core.reply import Reply, Table, UserError

FIELDS = ("netflow", "inflow", "outflow", "balance")

_DAYS = re.compile(r"^(\d{1,3})d$")


def _coins(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:+,.0f}" if signed else f"{x:,.0f}"


def _usd(coins: float | None, price: float | None) -> str:
    if coins is None or not price:
        return ""
    v = coins * price
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{'-' if v < 0 else ''}${abs(v) / div:,.2f}{unit}"
    return f"{'-' if v < 0 else ''}${abs(v):,.0f}"


def _pct(now: float | None, then: float | None) -> str:
    if now is None or not then:
        return "—"
    return f"{(now - then) / then * 100:+.2f}%"


def _net_sum(rows: Sequence[FlowDay], n: int) -> float | None:
    last = rows[-n:]
    if len(last) < n or any(r.netflow is None for r in last):
        return None
    return sum(r.netflow for r in last if r.netflow is not None)


def _back(by_day: dict[str, FlowDay], day: str, n: int) -> FlowDay | None:
    return by_day.get((dt.date.fromisoformat(day) - dt.timedelta(days=n)).isoformat())


async def flows_reply(metric: Flows, q: Query, args: list[str]) -> Reply:
    """/flows <asset> [Nd]: the latest complete day, 7d/30d net, balance and its changes, per provider."""
    if len(args) == 2:
        m = _DAYS.match(args[1].lower())
        if not m or not 1 <= int(m.group(1)) <= 90:
            raise UserError(f"'{args[1][:20]}' is not a period: use 1d to 90d, e.g. /flows btc 14d")
        series_days = int(m.group(1))
        args = args[:1]
    else:
        series_days = 0
    asset = parse_asset(args, "flows")
    data = (await q.view(metric, asset)).by_venue
    if not data:
        known = await q.store.known_assets(metric.name)
        have = ", ".join(sorted(a.lower() for a in known)) or "none yet (see /status)"
        raise UserError(f"No exchange-flow data for {asset}. Watched: {have}. Example: /flows btc")
    blocks: list[str | Table] = []
    for provider, rows in data.items():
        last = rows[-1]
        fallback = None if last.price_usd else await _index_usd(q, asset)
        price = last.price_usd or fallback
        by_day = {r.day: r for r in rows}
        published = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(last.available_ms / 1000))
        note = "" if last.price_usd else (" · USD at the current index" if fallback else "")
        if series_days:
            tail = rows[-series_days:]
            blocks.append(
                Table(
                    header=("day", "inflow", "outflow", "net", "balance"),
                    rows=tuple(
                        (r.day[5:], _coins(r.inflow), _coins(r.outflow), _coins(r.netflow, True), _coins(r.balance))
                        for r in tail
                    ),
                    align="lrrrr",
                    caption=f"{provider} · {asset} per day · last published {published}",
                )
            )
            continue

        rows_out = [
            ("inflow", _coins(last.inflow), _usd(last.inflow, price)),
            ("outflow", _coins(last.outflow), _usd(last.outflow, price)),
            ("net", _coins(last.netflow, True), _usd(last.netflow, price)),
            ("7d net", _coins(_net_sum(rows, 7), True), _usd(_net_sum(rows, 7), price)),
            ("30d net", _coins(_net_sum(rows, 30), True), _usd(_net_sum(rows, 30), price)),
            ("balance", _coins(last.balance), _usd(last.balance, price)),
        ]
        b1, b7 = _back(by_day, last.day, 1), _back(by_day, last.day, 7)
        blocks.append(
            Table(
                header=("", asset, "USD"),
                rows=tuple(rows_out),
                align="lrr",
                caption=f"{provider} · day {last.day} · published {published}{note}",
            )
        )
        blocks.append(
            f"Balance change: 1d {_pct(last.balance, b1.balance if b1 else None)} · "
            f"7d {_pct(last.balance, b7.balance if b7 else None)}"
        )
    title = f"{asset} exchange flows" + (f" · last {series_days} days" if series_days else "")
    footer = (
        "Coins moved onto (+) or off (−) exchanges per day; providers cover different exchanges, so "
        "their levels differ. Coin Metrics data: CC BY-NC 4.0."
    )
    return Reply(title=title, blocks=tuple(blocks), footer=footer)


async def _index_usd(q: Query, asset: str) -> float | None:
    """The median perpetual index, for USD figures when a provider gives no price (read only then)."""
    funding = q.registry.find("funding")
    if funding is None or not q.venues:
        return None
    by_venue, _ = await q.store.read_latest(funding, asset, q.venues)
    idx = sorted(s.index_usd for ss in by_venue.values() for s in ss if s.index_usd)
    return idx[len(idx) // 2] if idx else None


def _day_minus(day: str, days: int) -> str:
    return (dt.date.fromisoformat(day) - dt.timedelta(days=days)).isoformat()


class Flows(Metric):
    name = "flows"
    title = "Exchange flows"
    sample_type = FlowDay
    unit = "coins per day"
    args = "<asset> [Nd]"
    example = "/flows btc"
    summary = "on-chain exchange inflow, outflow, net and balance"
    fields = FIELDS
    kinds = ("above", "below", "change")
    aggregates = ()
    source_word = "provider"
    discrete = True
    change_relative = True
    replace_on_poll = False
    change_window = (86_400, 365 * 86_400)

    def sort_key(self, s: FlowDay) -> Any:
        return s.day

    def problem(self, s: FlowDay) -> str | None:
        for f in FIELDS:
            x = getattr(s, f)
            if x is not None and (not math.isfinite(x) or abs(x) > 1e9):
                return f"{f} {x!r} is not a plausible number of coins"
        return None

    # units ---------------------------------------------------------------------------------
    def parse_threshold(self, kind: str, text: str, field_: str) -> float:
        if kind == "change":
            if not str(text).endswith("%"):
                raise UserError(
                    "A flows change rule is a % over a window, e.g. /threshold set flows btc balance change 1% 7d"
                )
            value = abs(parse_percent(text, what="change", limit=10.0, example="1%"))
            if value <= 0:
                raise UserError("a flows change must be between 0% and 1000%, e.g. 1%")
            return value
        return parse_amount(text, what="threshold", limit=1e9, example="3000 or -2000 (coins per day)")

    def fmt_value(self, value: float, field_: str = "", *, signed: bool = True) -> str:
        unit = "" if field_ == "balance" else "/day"
        return (f"{value:+,.0f}" if signed else f"{value:,.0f}") + unit

    def usage(self) -> str:
        return (
            "/threshold set flows <asset> <netflow|inflow|outflow|balance> <above|below> <coins per day> "
            "or ... balance change <value%> <window>, options provider <name>, cooldown <duration>"
        )

    def default_selector(self, kind: str, sources: Sequence[str]) -> str:
        return sources[0] if sources else "coinmetrics"

    def describe(self, rule: Any) -> str:
        if rule.kind == "change":
            what = f"{rule.field} changes by {rule.threshold * 100:g}% over {fmt_duration_s(rule.window_s)}"
        else:
            what = f"{rule.field} {rule.kind} {rule.threshold:+,.0f} {rule.asset}" + (
                "" if rule.field == "balance" else "/day"
            )
        cool = f", cooldown {fmt_duration_s(rule.cooldown_s)}" if rule.cooldown_s else ""
        return f"flows {rule.asset} {what} ({rule.venue}, each day judged once){cool}"

    # signals -------------------------------------------------------------------------------
    def observations(
        self, by_venue: Mapping[str, Sequence[Any]], field_: str, selector: str, signal: str, after_ms: int | None
    ) -> list[Observation]:
        """Each day published after ``after_ms`` (only the newest when nothing was judged yet), oldest first."""
        rows: list[FlowDay] = sorted(by_venue.get(selector, ()), key=lambda r: r.day)
        if not rows:
            return []
        by_day = {r.day: r for r in rows}
        todo = [r for r in rows if r.available_ms > after_ms] if after_ms is not None else rows[-1:]
        window_days = int(signal.split(":")[1]) // 86_400 if signal.startswith("change:") else 0
        out = []
        for row in todo:
            value = getattr(row, field_, None)
            if value is None:
                continue
            if window_days:
                before = by_day.get(_day_minus(row.day, window_days))
                old = getattr(before, field_, None) if before else None
                if not old:
                    continue
                value = (float(value) - float(old)) / abs(float(old))
            week = [by_day.get(_day_minus(row.day, i)) for i in range(7)]
            net7 = (
                sum(d.netflow for d in week if d and d.netflow is not None)
                if all(d is not None and d.netflow is not None for d in week)
                else None
            )
            point = Point(row.provider, row.day, float(value), "", False)
            out.append(
                Observation(
                    row.available_ms,
                    float(value),
                    point,
                    extra={
                        "day": row.day,
                        "published_ms": row.available_ms,
                        "provider": row.provider,
                        "inflow": row.inflow,
                        "outflow": row.outflow,
                        "balance": row.balance,
                        "field_value": getattr(row, field_),
                        "price_usd": row.price_usd,
                        "net7d": net7,
                    },
                )
            )
        return out

    # chat ----------------------------------------------------------------------------------
    async def reply(self, q: Query, args: list[str]) -> Reply:
        """/flows <asset> [Nd]: on-chain exchange flows per provider; with 14d, the daily series."""
        return await flows_reply(self, q, args)

    def summary_line(self, view: View, now_ms: int) -> str:
        for provider, rows in view.by_venue.items():
            last = max(rows, key=lambda r: r.day)
            return f"flows: net {_coins(last.netflow, True)} {view.asset} on {last.day} ({provider})"
        return "flows: no data"

    def render_alert(self, e: AlertEvent) -> Reply:
        """A day's flows: what crossed, the figures, when the day was published."""
        x = e.extra
        asset, f = e.asset, e.field
        price = x.get("price_usd")
        usd = f" (${e.value * price / 1e6:,.1f}M)" if price and e.kind != "change" else ""
        if e.kind == "change":
            title = (
                f"{'🔺' if e.value > 0 else '🔻'} {asset} exchange {f} moved {e.value * 100:+.2f}% "
                f"in {fmt_duration_s(e.window_s)}"
            )
            now_line = f"{f} {x.get('field_value', 0):,.0f} {asset} on {x.get('day')}"
        else:
            word = "above" if e.kind == "above" else "below"
            unit = "" if f == "balance" else "/day"
            title = (
                f"{'🔺' if e.kind == 'above' else '🔻'} {asset} exchange {f} {word} {e.threshold:+,.0f} {asset}{unit}"
            )
            now_line = f"{f} {e.value:+,.0f} {asset}{usd} on {x.get('day')}"
        lines = [
            f"{now_line} · published {stamp(int(x.get('published_ms', e.ts_ms)))} ({x.get('provider')})",
            f"Threshold {e.threshold * 100:g}% over {fmt_duration_s(e.window_s)} · rule {e.rule_id}"
            if e.kind == "change"
            else f"Threshold {e.threshold:+,.0f} {asset}{'' if f == 'balance' else '/day'} · rule {e.rule_id}",
        ]
        parts = []
        if x.get("inflow") is not None and x.get("outflow") is not None:
            parts.append(f"in {x['inflow']:,.0f} / out {x['outflow']:,.0f}")
        if x.get("net7d") is not None:
            parts.append(f"7d net {x['net7d']:+,.0f}")
        if x.get("balance") is not None:
            parts.append(f"balance {x['balance']:,.0f}")
        if parts:
            lines.append(" · ".join(parts) + f" {asset}")
        return Reply(
            title=title, blocks=("\n".join(lines),), footer=f"Mute: /mute 2h · Stop: /unsubscribe flows {asset.lower()}"
        )
