"""Alert events for delivery tests: what the evaluator would put on the stream for a rule."""

from __future__ import annotations

import time

from core.alerts.events import AlertEvent
from core.alerts.rules import Rule
from core.reply import Reply


def event_for(rule: Rule, *, value: float = 0.000612, ts_ms: int | None = None) -> AlertEvent:
    """A firing of ``rule`` on binance's BTC perpetual."""
    return AlertEvent(
        metric=rule.metric,
        asset=rule.asset,
        rule_id=rule.id,
        kind=rule.kind,
        scope=rule.scope,
        target=rule.target,
        rule_text=rule.describe(),
        threshold=rule.threshold,
        value=value,
        level=None,
        unit="fraction per 8h",
        ts_ms=ts_ms or int(time.time() * 1000),
        venue="binanceusdm",
        instrument="BTC/USDT:USDT",
        label="binance",
        selector=rule.selector,
    )


def tagged(title: str = "BTC funding above +0.0500%/8h"):  # type: ignore[no-untyped-def]
    """A renderer that tags each message with its rule id ('... [r1]'), so tests can tell alerts apart."""

    def render(e: AlertEvent) -> Reply:
        if e.metric == "notice":
            return Reply(title=str(e.extra["title"]), blocks=(str(e.extra["text"]),))
        return Reply(title=f"{title} [{e.rule_id}]", blocks=("binance +0.0612%",))

    return render
