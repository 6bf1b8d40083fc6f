"""Platform-neutral replies: what a command says, before any platform formats it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Table:
    """A small table; each platform renders it monospace (Telegram ``<pre>``, Discord code block)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: str  # one "l" or "r" per column
    caption: str | None = None


Block = str | Table


@dataclass(frozen=True, slots=True)
class Reply:
    """A command's answer: a title, blocks of text and tables, an optional footer."""

    title: str
    blocks: tuple[Block, ...] = ()
    footer: str | None = None
    error: bool = False

    @classmethod
    def fail(cls, message: str) -> Reply:
        """A one-line answer to a user mistake."""
        return cls(title=message, error=True)


class UserError(Exception):
    """Bad user input; the message is the one-line reply (what was wrong, what is accepted)."""
