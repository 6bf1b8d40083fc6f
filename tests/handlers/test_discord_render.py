"""Reply -> Discord embeds: layout, escaping, and Discord's size limits on long replies."""

from __future__ import annotations

import re

from core.reply import Reply, Table
from handlers.discord.render import (
    COLOUR,
    DESCRIPTION_LIMIT,
    EMBEDS_PER_MESSAGE,
    ERROR_COLOUR,
    MESSAGE_TOTAL_LIMIT,
    TITLE_LIMIT,
    render_embeds,
)


def _within_limits(messages: list) -> None:  # type: ignore[type-arg]
    for embeds in messages:
        assert 1 <= len(embeds) <= EMBEDS_PER_MESSAGE
        assert sum(len(e) for e in embeds) <= MESSAGE_TOTAL_LIMIT  # len(Embed) is Discord's count
        for e in embeds:
            assert len(e.description or "") <= DESCRIPTION_LIMIT
            assert len(e.title or "") <= TITLE_LIMIT
            assert (e.description or "").count("```") % 2 == 0  # code blocks balanced


def test_title_table_text_footer() -> None:
    table = Table(
        header=("venue", "rate"),
        rows=(("binance", "+0.0100%"), ("okx", "+0.0300%")),
        align="lr",
        caption="Perpetual premium",
    )
    reply = Reply(title="BTC funding", blocks=(table, "Mean +0.0200%/8h"), footer="Data age 3s–5s")
    (embeds,) = render_embeds(reply)
    (embed,) = embeds
    assert embed.title == "BTC funding" and embed.colour is not None and embed.colour.value == COLOUR
    assert embed.footer.text == "Data age 3s–5s"
    assert embed.description == (
        "**Perpetual premium**\n```\nvenue       rate\nbinance +0.0100%\nokx     +0.0300%\n```\n\nMean +0.0200%/8h"
    )


def test_markdown_escaped_outside_code_blocks_only() -> None:
    table = Table(header=("venue",), rows=(("deribit*",),), align="l")
    (embeds,) = render_embeds(Reply(title="t", blocks=("a *b* _c_", table)))
    desc = embeds[0].description or ""
    assert "a \\*b\\* \\_c\\_" in desc
    assert "```\nvenue\nderibit*\n```" in desc


def test_error_is_a_short_red_embed() -> None:
    (embeds,) = render_embeds(Reply.fail("'b$c' is not an asset ticker"))
    (embed,) = embeds
    assert embed.colour is not None and embed.colour.value == ERROR_COLOUR
    assert embed.title is None and embed.description == "'b$c' is not an asset ticker"


def test_long_table_split_between_rows_with_header_repeated() -> None:
    rows = tuple((f"venue{i}", f"{i:,}") for i in range(900))
    reply = Reply(
        title="x" * 400, blocks=(Table(header=("v", "n"), rows=rows, align="lr", caption="big"),), footer="f" * 300
    )
    messages = render_embeds(reply)
    assert len(messages) > 1
    _within_limits(messages)
    embeds = [e for m in messages for e in m]
    assert embeds[0].title == "x" * (TITLE_LIMIT - 1) + "…" and all(e.title is None for e in embeds[1:])
    assert embeds[-1].footer.text == "f" * 300 and all(e.footer.text is None for e in embeds[:-1])
    seen = []
    for e in embeds:
        for block in re.findall(r"```\n(.*?)\n```", e.description or "", re.S):
            lines = block.splitlines()
            assert lines[0].split() == ["v", "n"]
            seen += [ln.split()[0] for ln in lines[1:]]
    assert seen == [f"venue{i}" for i in range(900)]


def test_long_text_and_many_blocks() -> None:
    text = "\n".join(f"line {i} " + "y" * 60 for i in range(400))
    blocks = (text, *(f"block {i}" for i in range(300)))
    messages = render_embeds(Reply(title="t", blocks=blocks))
    _within_limits(messages)
    joined = "\n".join(e.description or "" for m in messages for e in m)
    assert all(f"line {i} " in joined for i in range(400))
    assert all(f"block {i}\n" in joined + "\n" for i in range(300))
