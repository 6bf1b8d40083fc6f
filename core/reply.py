"""Platform-neutral replies: what a command says, before any platform formats it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Table:
    """A small table; each platform renders it monospace (Telegram ``<pre>``, Discord code block)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: str  # one "l" or "r" per column
    caption: str | None = None


Block = str | Table


@dataclass(frozen=True, slots=True)
class Image:
    """A picture a reply carries (a chart): PNG bytes, a file name, and the caption shown under it."""

    data: bytes
    filename: str
    caption: str


@dataclass(frozen=True, slots=True)
class Action:
    """A one-tap button under a message: its label and the command words a press runs (``mute 1h``)."""

    label: str
    command: str


@dataclass(frozen=True, slots=True)
class Reply:
    """A command's answer: a title, blocks of text and tables, an optional footer, image and buttons."""

    title: str
    blocks: tuple[Block, ...] = ()
    footer: str | None = None
    error: bool = False
    next_page: str | None = None  # the command words that show the next page, e.g. "alerts 2"
    fields: tuple[tuple[str, str], ...] = ()  # (name, value) pairs after the blocks: Discord embed fields
    image: Image | None = None  # platforms send it as a photo (Telegram), an embed image (Discord), a file
    actions: tuple[Action, ...] = ()  # buttons (Telegram inline keyboard, Discord components)

    @classmethod
    def fail(cls, message: str) -> Reply:
        """A one-line answer to a user mistake."""
        return cls(title=message, error=True)


class UserError(Exception):
    """Bad user input; the message is the one-line reply (what was wrong, what is accepted)."""


def reply_to_json(reply: Reply) -> str:
    """Serialize a reply for the alert stream (rendered per platform at delivery)."""
    blocks: list[Any] = [
        b if isinstance(b, str) else {"header": b.header, "rows": b.rows, "align": b.align, "caption": b.caption}
        for b in reply.blocks
    ]
    return json.dumps({"title": reply.title, "blocks": blocks, "footer": reply.footer, "error": reply.error})


def reply_from_json(raw: str | bytes) -> Reply:
    d = json.loads(raw)
    blocks: list[Block] = [
        b
        if isinstance(b, str)
        else Table(
            header=tuple(b["header"]), rows=tuple(tuple(r) for r in b["rows"]), align=b["align"], caption=b["caption"]
        )
        for b in d["blocks"]
    ]
    return Reply(title=d["title"], blocks=tuple(blocks), footer=d["footer"], error=d["error"])
