"""Reply -> Telegram HTML messages, each under the 4096-character limit."""

from __future__ import annotations

from html import escape

from core.render import table_lines
from core.reply import Reply, Table

TELEGRAM_LIMIT = 4096
_BUDGET = TELEGRAM_LIMIT - 96  # headroom for the <pre> wrapper when a table is split


def _html_blocks(reply: Reply) -> list[str]:
    title = f"<b>{escape(reply.title)}</b>" if not reply.error else escape(reply.title)
    out = [title]
    for b in reply.blocks:
        if isinstance(b, Table):
            cap = f"<b>{escape(b.caption)}</b>\n" if b.caption else ""
            lines = table_lines(b)
            # a table longer than one message is cut between rows, each part in its own <pre>
            chunk: list[str] = []
            for line in lines:
                if chunk and len(cap) + sum(len(escape(x)) + 1 for x in [*chunk, line]) + 12 > _BUDGET:
                    out.append(cap + "<pre>" + escape("\n".join(chunk)) + "</pre>")
                    cap, chunk = "", [lines[0]]
                chunk.append(line)
            out.append(cap + "<pre>" + escape("\n".join(chunk)) + "</pre>")
        else:
            text = escape(b)
            while len(text) > _BUDGET:
                cut = text.rfind("\n", 0, _BUDGET)
                cut = cut if cut > 0 else _BUDGET
                while "&" in text[max(0, cut - 6):cut] and ";" not in text[text.rfind("&", 0, cut):cut]:
                    cut -= 1  # never cut inside an entity such as &amp;
                out.append(text[:cut])
                text = text[cut:].lstrip("\n")
            out.append(text)
    if reply.footer:
        out.append(f"<i>{escape(reply.footer)}</i>")
    return out


def render_html(reply: Reply) -> list[str]:
    """HTML parse-mode messages for one reply, joined greedily up to the limit."""
    messages: list[str] = []
    current = ""
    for block in _html_blocks(reply):
        candidate = f"{current}\n\n{block}" if current else block
        if len(candidate) <= TELEGRAM_LIMIT:
            current = candidate
        else:
            messages.append(current)
            current = block
    if current:
        messages.append(current)
    return messages
