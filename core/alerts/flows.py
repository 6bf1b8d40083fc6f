"""Daily exchange-flow rules: the value a rule judges for one day, and the alert text."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping

from core.alerts.rules import Rule, fmt_duration_s
from core.models import FlowDay
from core.reply import Reply


def _day_minus(day: str, days: int) -> str:
    return (dt.date.fromisoformat(day) - dt.timedelta(days=days)).isoformat()


def flow_value(rule: Rule, row: FlowDay, by_day: Mapping[str, FlowDay]) -> float | None:
    """The day's figure for the rule: a level (coins) or, for change rules, a fraction over the window."""
    value = getattr(row, rule.field, None)
    if value is None:
        return None
    if rule.kind != "change":
        return float(value)
    before = by_day.get(_day_minus(row.day, rule.window_s // 86_400))
    old = getattr(before, rule.field, None) if before else None
    if not old:
        return None
    return (float(value) - float(old)) / abs(float(old))


def flow_message(rule: Rule, row: FlowDay, value: float, by_day: Mapping[str, FlowDay]) -> Reply:
    """An alert for one day's flows: what crossed, the figures, when the day was published."""

    usd = f" (${value * row.price_usd / 1e6:,.1f}M)" if row.price_usd and rule.kind != "change" else ""
    if rule.kind == "change":
        title = f"{'🔺' if value > 0 else '🔻'} {rule.asset} exchange {rule.field} moved {value * 100:+.2f}% " \
                f"in {fmt_duration_s(rule.window_s)}"
        now_line = f"{rule.field} {getattr(row, rule.field):,.0f} {rule.asset} on {row.day}"
    else:
        word = "above" if rule.kind == "above" else "below"
        title = f"{'🔺' if rule.kind == 'above' else '🔻'} {rule.asset} exchange {rule.field} {word} " \
                f"{rule.threshold:+,.0f} {rule.asset}/day"
        now_line = f"{rule.field} {value:+,.0f} {rule.asset}{usd} on {row.day}"
    published = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(row.available_ms / 1000))
    lines = [f"{now_line} · published {published} ({row.provider})",
             f"Threshold {rule.threshold * 100:g}% over {fmt_duration_s(rule.window_s)}" if rule.kind == "change"
             else f"Threshold {rule.threshold:+,.0f} {rule.asset}/day · rule {rule.id}"]
    parts = []
    if row.inflow is not None and row.outflow is not None:
        parts.append(f"in {row.inflow:,.0f} / out {row.outflow:,.0f}")
    week = [by_day.get(_day_minus(row.day, i)) for i in range(7)]
    if all(d is not None and d.netflow is not None for d in week):
        parts.append(f"7d net {sum(d.netflow for d in week if d and d.netflow is not None):+,.0f}")
    if row.balance is not None:
        parts.append(f"balance {row.balance:,.0f}")
    if parts:
        lines.append(" · ".join(parts) + f" {rule.asset}")
    return Reply(title=title, blocks=("\n".join(lines),),
                 footer=f"Mute: /mute 2h · Stop: /unsubscribe flows {rule.asset.lower()}")
