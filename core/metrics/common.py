"""Helpers the market metrics share: staleness marks, degraded sources, asset errors, age footers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.metrics.base import Metric, Query, View
from core.render import VENUE_LABELS, fmt_age
from core.reply import UserError

FAMILY_LEGEND = "·usdc = USDC-margined, ·inv = inverse (coin-margined, USD face value), unmarked = USDT"


def current(q: Query, view: View, metric: str, now_ms: int) -> dict[str, list[Any]]:
    """The samples that count as current: fresh, from a source whose part for this metric is healthy."""
    out: dict[str, list[Any]] = {}
    for venue, ss in view.by_venue.items():
        h = view.health.get(venue)
        fresh = [
            s
            for s in ss
            if not q.stale(s.ts_ms, now_ms)
            and (h is None or h.failed_ms(metric, getattr(s, "symbol", None), now_ms) is None)
        ]
        if fresh:
            out[venue] = fresh
    return out


def mark(q: Query, view: View, metric: str, venue: str, ts_ms: int, now_ms: int, symbol: str | None = None) -> str:
    """'*' after a row that is not current: old, or its source's part is failing (and no per-contract
    stream has fed ``symbol`` since)."""
    h = view.health.get(venue)
    return "*" if q.stale(ts_ms, now_ms) or (h is not None and h.failed_ms(metric, symbol, now_ms) is not None) else ""


def degraded_note(view: View, metric: str, now_ms: int | None = None) -> str | None:
    """'okx funding degraded: MalformedResponse ...' for every source whose part is failing, where a row
    shown is not kept current by a stream."""
    lines = []
    for venue, h in sorted(view.health.items()):
        problem = h.problem(metric)
        rows = view.by_venue.get(venue, ())
        if problem and any(h.failed_ms(metric, getattr(s, "symbol", None), now_ms) is not None for s in rows):
            lines.append(f"{VENUE_LABELS.get(venue, venue)} {metric} not current: {problem[:160]}")
    return (
        "\n".join(lines) + "\nRows marked * are the last values received; they count in no figure." if lines else None
    )


def age_footer(q: Query, ts: Sequence[int], now_ms: int, extra: str = "") -> str:
    ages = [(now_ms - t) / 1000 for t in ts]
    stale = sum(1 for a in ages if a > q.stale_after_s)
    text = f"Data age {fmt_age(min(ages))}–{fmt_age(max(ages))}" if ages else "No data"
    if stale:
        text += f" · * = stale (older than {fmt_age(q.stale_after_s)}) or from a failing source"
    return text + extra


async def unknown_asset(q: Query, metric: Metric, asset: str) -> UserError:
    known = await q.store.known_assets(metric.name)
    if not known:
        return UserError(f"No {metric.name} data yet for {asset}: the watchers have not reported. Try /status.")
    popular = sorted(known, key=lambda a: (-len(known[a]), a))[:8]
    return UserError(
        f"No venue lists {asset} ({metric.name}). Accepted: any listed base asset, "
        f"e.g. {', '.join(a.lower() for a in popular)} ({len(known)} known). Example: /{metric.name} btc"
    )
