"""Reply -> Discord embeds, within Discord's limits.

Limits: embed title 256, description 4096, footer 2048, 25 fields (name 256, value 1024), 10 embeds
per message and 6000 characters across all embeds of one message; a reply's fields go on its first embed.
A reply becomes one or more messages, each a list of embeds:
the title on the first embed, the footer on the last, tables as ``` code blocks, never cut
inside a row (a long table continues in another block with its header repeated).
"""

from __future__ import annotations

import discord
from discord.utils import escape_markdown

from core.render import table_lines
from core.reply import Reply, Table

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FOOTER_LIMIT = 2048
EMBEDS_PER_MESSAGE = 10
MESSAGE_TOTAL_LIMIT = 6000
FIELDS_PER_EMBED = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024

COLOUR = 0x5865F2
ERROR_COLOUR = 0xED4245

_FENCE = "```"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at line breaks where possible."""
    out = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > 0 else limit
        out.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text:
        out.append(text)
    return out


def _code(lines: list[str]) -> str:
    return f"{_FENCE}\n" + "\n".join(lines) + f"\n{_FENCE}"


def _table_pieces(t: Table, limit: int) -> list[str]:
    lines = [ln.replace(_FENCE, "'''") for ln in table_lines(t)]
    caption = f"**{escape_markdown(t.caption)}**\n" if t.caption else ""
    overhead = len(_code([]))
    longest = max(1, (limit - overhead - len(caption)) // 2 - 1)  # header + one row always fit
    lines = [_cut(ln, longest) for ln in lines]
    pieces: list[str] = []
    chunk: list[str] = []
    size = len(caption) + overhead
    for line in lines:
        if chunk and size + len(line) + 1 > limit:
            pieces.append(caption + _code(chunk))
            caption, chunk = "", [lines[0]]
            size = overhead + len(lines[0]) + 1
        chunk.append(line)
        size += len(line) + 1
    pieces.append(caption + _code(chunk))
    return pieces


def _pieces(reply: Reply, limit: int) -> list[str]:
    out: list[str] = []
    for b in reply.blocks:
        if isinstance(b, Table):
            out.extend(_table_pieces(b, limit))
        else:
            out.extend(_split_text(escape_markdown(b), limit))
    return out


def render_embeds(reply: Reply) -> list[list[discord.Embed]]:
    """The reply as messages, each a list of embeds that Discord accepts in one message."""
    colour = ERROR_COLOUR if reply.error else COLOUR
    title = _cut(reply.title, TITLE_LIMIT)
    footer = _cut(reply.footer, FOOTER_LIMIT) if reply.footer else ""
    blocks = list(reply.blocks)
    if reply.error:  # a user mistake: the one line goes in the description, where it wraps
        blocks.insert(0, reply.title)
        title = ""
    # every message keeps room for a title and the footer, wherever they end up
    fields_size = sum(
        min(len(n), FIELD_NAME_LIMIT) + min(len(v), FIELD_VALUE_LIMIT) for n, v in reply.fields[:FIELDS_PER_EMBED]
    )
    budget = min(DESCRIPTION_LIMIT, MESSAGE_TOTAL_LIMIT - TITLE_LIMIT - len(footer) - fields_size - 64)
    pieces = _pieces(Reply(title="", blocks=tuple(blocks)), budget)

    descriptions: list[str] = []
    current = ""
    for p in pieces:
        candidate = f"{current}\n\n{p}" if current else p
        if len(candidate) <= budget:
            current = candidate
        else:
            descriptions.append(current)
            current = p
    if current or not descriptions:
        descriptions.append(current)

    messages: list[list[discord.Embed]] = []
    batch: list[discord.Embed] = []
    used = 0
    for i, desc in enumerate(descriptions):
        if batch and (len(batch) >= EMBEDS_PER_MESSAGE or used + len(desc) > budget):
            messages.append(batch)
            batch, used = [], 0
        embed = discord.Embed(colour=colour, description=desc or None)
        if i == 0 and title:
            embed.title = title
        batch.append(embed)
        used += len(desc)
    messages.append(batch)
    for name, value in reply.fields[:FIELDS_PER_EMBED]:  # fields sit on the first embed, under its title
        messages[0][0].add_field(name=_cut(name, FIELD_NAME_LIMIT), value=_cut(value, FIELD_VALUE_LIMIT), inline=False)
    if footer:
        messages[-1][-1].set_footer(text=footer)
    return messages
