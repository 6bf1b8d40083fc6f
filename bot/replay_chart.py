"""The replay chart: the price line with each alert marked where it fired (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from core.alerts.events import AlertEvent


def _days(ms: int) -> float:
    """Matplotlib's date axis unit: days since 1970-01-01 (its default epoch)."""
    return ms / 86_400_000


def _price_at(prices: Sequence[tuple[int, float]], ms: int) -> float | None:
    """The last close at or before ``ms`` (the first one when the alert precedes the series)."""
    best = None
    for ts, close in prices:
        if ts > ms:
            break
        best = close
    return best if best is not None else (prices[0][1] if prices else None)


def draw(
    path: Path,
    prices: Sequence[tuple[int, float]],
    events: Sequence[AlertEvent],
    labels: Mapping[str, str],
    *,
    title: str,
) -> None:
    """Write a PNG: price (when the data has a spot file), one marker colour per rule, a legend naming them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 5), dpi=100)
    try:
        if prices:
            ax.plot([_days(t) for t, _ in prices], [p for _, p in prices], color="#444444", linewidth=1, label="price")
        by_rule: dict[str, list[AlertEvent]] = {}
        for e in events:
            by_rule.setdefault(e.rule_id, []).append(e)
        markers = "v^os*Dxp"
        for i, (rule_id, es) in enumerate(by_rule.items()):
            ys = [_price_at(prices, e.ts_ms) for e in es] if prices else [float(i + 1)] * len(es)
            pts = [(_days(e.ts_ms), y) for e, y in zip(es, ys, strict=True) if y is not None]
            ax.scatter(
                [x for x, _ in pts],
                [y for _, y in pts],
                marker=markers[i % len(markers)],
                s=60,
                zorder=3,
                label=f"{rule_id}: {labels.get(rule_id, es[0].rule_text)[:70]} ({len(es)} alerts)",
            )
        ax.xaxis_date(tz="UTC")
        ax.set_title(title)
        ax.set_xlabel("UTC")
        ax.set_ylabel("price (USD)" if prices else "rule")
        ax.grid(True, alpha=0.3)
        if events or prices:
            ax.legend(loc="best", fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
