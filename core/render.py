"""Number formatting and plain-text rendering shared by every platform."""

from __future__ import annotations

import math

from core.models import BasisSample, FundingSample
from core.reply import Block, Reply, Table

VENUE_LABELS = {
    "binanceusdm": "binance",
    "binancecoinm": "binance-cm",
    "okx": "okx",
    "bybit": "bybit",
    "deribit": "deribit",
}


def fmt_price(p: float | None) -> str:
    """Compact price: thousands separators, fewer decimals for big numbers."""
    if p is None or not math.isfinite(p):
        return "—"
    a = abs(p)
    if a >= 10_000:
        return f"{p:,.0f}"
    if a >= 100:
        return f"{p:,.1f}"
    if a >= 1:
        return f"{p:,.3f}"
    return f"{p:.4g}"


def fmt_pct(frac: float | None, digits: int = 2) -> str:
    """A fraction as a signed percentage: 0.0123 -> +1.23%."""
    if frac is None or not math.isfinite(frac):
        return "—"
    return f"{frac * 100:+.{digits}f}%"


def fmt_age(seconds: float | None) -> str:
    """Age in the largest sensible unit: 12s, 3m, 2h, 4d."""
    if seconds is None:
        return "—"
    s = max(0.0, seconds)
    if s < 90:
        return f"{s:.0f}s"
    if s < 90 * 60:
        return f"{s / 60:.0f}m"
    if s < 48 * 3600:
        return f"{s / 3600:.0f}h"
    return f"{s / 86400:.0f}d"


def fmt_duration(seconds: float) -> str:
    """A countdown: 3h12m, 45m, 2d4h."""
    s = int(max(0, seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m = s // 60
    if d:
        return f"{d}d{h}h"
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m"


def fmt_interval(interval_s: int) -> str:
    """8h, 4h, 1h, 30m."""
    if interval_s % 3600 == 0:
        return f"{interval_s // 3600}h"
    return f"{interval_s // 60}m"


def table_lines(t: Table) -> list[str]:
    """Aligned monospace lines of a table (header first)."""
    cols = len(t.header)
    widths = [max(len(r[i]) for r in (t.header, *t.rows)) for i in range(cols)]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[i].ljust(widths[i]) if t.align[i] == "l" else row[i].rjust(widths[i]) for i in range(cols)]
        return " ".join(cells).rstrip()

    return [line(t.header), *(line(r) for r in t.rows)]


def block_text(b: Block) -> str:
    if isinstance(b, Table):
        lines = table_lines(b)
        return "\n".join(([b.caption] if b.caption else []) + lines)
    return b


def to_plain(reply: Reply) -> str:
    """The whole reply as plain text (console, logs, tests)."""
    parts = [reply.title, *(block_text(b) for b in reply.blocks)]
    if reply.fields:
        parts.append("\n".join(f"{name}: {value}" for name, value in reply.fields))
    if reply.footer:
        parts.append(reply.footer)
    return "\n\n".join(parts)


def venue_label(venue: str, s: FundingSample | BasisSample) -> str:
    """Short row label: venue plus margin type where the venue lists several."""
    return margin_label(venue, s.settle, s.inverse)


def margin_label(venue: str, settle: str, inverse: bool) -> str:
    label = VENUE_LABELS.get(venue, venue)
    if venue in ("binancecoinm",):
        return label
    if settle == "USDC":
        return f"{label}·usdc"
    if inverse and venue != "deribit":
        return f"{label}·inv"
    return label
