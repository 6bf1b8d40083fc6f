"""Reply -> Telegram HTML messages, each under the 4096-character limit."""

from __future__ import annotations

from html import escape

from core.render import table_lines
from core.reply import Reply, Table

TELEGRAM_LIMIT = 4096
_BUDGET = TELEGRAM_LIMIT - 96  # headroom for the <pre> wrapper when a table is split


def _pieces(raw: str, budget: int) -> list[str]:
    """Raw text cut so that each piece, escaped, fits ``budget``: at a line break, else a space, else anywhere.

    Cutting the raw text (then escaping each piece) can never split an entity such as ``&amp;``.
    """
    out: list[str] = []
    while raw.strip():
        if len(escape(raw)) <= budget:
            out.append(raw)
            break
        lo, hi = 1, min(len(raw), budget)  # the longest prefix whose escaped form fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(escape(raw[:mid])) <= budget:
                lo = mid
            else:
                hi = mid - 1
        cut = raw.rfind("\n", 0, lo + 1)
        if cut < lo // 2:
            cut = raw.rfind(" ", 0, lo + 1)
        if cut < lo // 2:
            cut = lo
        out.append(raw[:cut])
        raw = raw[cut:].lstrip("\n ")
    return [p for p in out if p.strip()]


def _html_blocks(reply: Reply) -> list[str]:
    bold = not reply.error
    out = [f"<b>{escape(p)}</b>" if bold else escape(p) for p in _pieces(reply.title, _BUDGET)]
    for b in reply.blocks:
        if isinstance(b, Table):
            cap = f"<b>{escape(b.caption[: _BUDGET // 4])}</b>\n" if b.caption else ""
            # a line wider than a message is cut (a monospace row that wide is unreadable anyway)
            lines = [ln if len(escape(ln)) <= _BUDGET // 2 else ln[: _BUDGET // 12] + "…" for ln in table_lines(b)]
            # a table longer than one message is cut between rows, each part in its own <pre>
            chunk: list[str] = []
            for line in lines:
                if chunk and len(cap) + sum(len(escape(x)) + 1 for x in [*chunk, line]) + 12 > _BUDGET:
                    out.append(cap + "<pre>" + escape("\n".join(chunk)) + "</pre>")
                    cap, chunk = "", [lines[0]]
                chunk.append(line)
            out.append(cap + "<pre>" + escape("\n".join(chunk)) + "</pre>")
        else:
            out.extend(escape(p) for p in _pieces(b, _BUDGET))
    if reply.fields:
        out.append("\n".join(f"<b>{escape(name)}</b>: {escape(value)}" for name, value in reply.fields))
    if reply.footer:
        out.extend(f"<i>{escape(p)}</i>" for p in _pieces(reply.footer, _BUDGET))
    return out


def render_html(reply: Reply) -> list[str]:
    """HTML parse-mode messages for one reply, joined greedily up to the limit; never an empty one."""
    messages: list[str] = []
    current = ""
    for block in _html_blocks(reply):
        candidate = f"{current}\n\n{block}" if current else block
        if len(candidate) <= TELEGRAM_LIMIT:
            current = candidate
        else:
            if current:
                messages.append(current)
            current = block
    if current:
        messages.append(current)
    return messages or ["…"]
