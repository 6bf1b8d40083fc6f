"""The standard alert message, rendered at delivery from a typed event and the metric's units."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from core.metrics.base import fmt_duration_s
from core.reply import Reply

if TYPE_CHECKING:
    from core.alerts.events import AlertEvent
    from core.metrics.base import Metric


def stamp(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts_ms / 1000))


def condition_text(m: Metric, e: AlertEvent) -> str:
    """'above +0.0500%/8h', 'crossed 0% upwards', 'moved 10% within 24h', '3.2σ from its 30d mean'."""
    thr = m.fmt_threshold(e.kind, e.threshold, e.field)
    if e.kind == "crosses":
        return f"crossed {thr} {'upwards' if e.direction == '+' else 'downwards'}"
    if e.kind == "change":
        return f"moved {thr.lstrip('+')} within {fmt_duration_s(e.window_s)}"
    if e.kind == "zscore":
        return f"{abs(e.value):.1f}σ from its {fmt_duration_s(e.window_s)} mean"
    return f"{e.kind} {thr}"


def arrow(e: AlertEvent) -> str:
    if e.kind == "above":
        return "🔺"
    if e.kind == "below":
        return "🔻"
    if e.direction:
        return "🔺" if e.direction == "+" else "🔻"
    return "↕"


def where(e: AlertEvent) -> str:
    if e.instrument:
        return f"on {e.label or e.venue} {e.instrument}"
    agg = e.selector.split("/")[-1]
    scope = f"{e.selector.split('/')[0]} " if "/" in e.selector else ""
    word = {"sum": "total", "mean": "mean"}.get(agg, agg)
    return f"({scope}{word} of {e.count} contracts)"


def render_level_alert(m: Metric, e: AlertEvent) -> Reply:
    """Title with what crossed; the value and where; the threshold and rule; context; how to stop it."""
    title = f"{arrow(e)} {e.asset} {m.name} {condition_text(m, e)}"
    current = m.fmt_value(e.level if e.level is not None else e.value, e.field)
    if e.kind == "change":
        delta = f"{e.value * 100:+.2f}%" if m.change_relative else m.fmt_value(e.value, e.field)
        now_line = f"Changed {delta} in {fmt_duration_s(e.window_s)}: now {current} {where(e)}"
    elif e.kind == "zscore":
        now_line = f"z = {e.value:+.2f}: now {current} {where(e)}"
    else:
        now_line = f"Now {current} {where(e)}"
    owner = "global rule" if e.scope == "global" else "this chat's rule"
    lines = [
        f"{now_line} · {stamp(e.ts_ms)}",
        f"Threshold {m.fmt_threshold(e.kind, e.threshold, e.field)} · {owner} {e.rule_id}",
    ]
    if e.context:
        shown = ", ".join(f"{c.label} {m.fmt_value(c.value, e.field)}" for c in e.context[:6])
        lines.append(f"{m.title} by venue: {shown}" + (" …" if len(e.context) > 6 else ""))
    lines += m.alert_context(e)
    lines += related_lines(m, e)
    footer = f"Mute: /mute 2h · Stop: /unsubscribe {m.name} {e.asset.lower()}"
    return Reply(title=title, blocks=("\n".join(lines),), footer=footer)


def related_lines(m: Metric, e: AlertEvent) -> list[str]:
    """'Basis: max +12.3% ann. (okx BTC-USD-261225)' for each related metric the event carries."""
    out = []
    for r in e.related:
        other = m.registry.find(r.metric) if m.registry is not None else None
        if other is None:
            continue
        value = other.fmt_value(r.value)
        where_ = f" ({r.label} {r.symbol})".rstrip() if r.label else f" across {r.count}" if r.count else ""
        out.append(f"{other.title}: {r.what} {value}{where_}")
    return out
