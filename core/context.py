"""Who is asking, from where: what platform adapters pass to the command core."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


async def _no() -> bool:
    return False


@dataclass(frozen=True, slots=True)
class ChatContext:
    """The chat and user of one command. ``target`` is how alerts address the chat (or its forum topic)."""

    platform: str  # "tg", "dc" or "console"
    chat_id: int
    user_id: int
    user_name: str = ""
    is_group: bool = False
    chat_admin: Callable[[], Awaitable[bool]] = _no  # asks the platform whether the user administers the chat
    thread_id: int | None = None  # a forum topic: subscriptions made here are delivered into it

    @property
    def target(self) -> str:
        return format_target(self.platform, self.chat_id, self.thread_id)

    @property
    def who(self) -> str:
        return f"{self.platform}:{self.user_id}" + (f" ({self.user_name})" if self.user_name else "")


def format_target(platform: str, chat_id: int, thread_id: int | None = None) -> str:
    """'tg:-1001234' for a chat, 'tg:-1001234/17' for topic 17 of a forum supergroup."""
    return f"{platform}:{chat_id}" + (f"/{thread_id}" if thread_id is not None else "")


def parse_target(target: str) -> tuple[str, int, int | None]:
    """'tg:-1001234/17' -> ('tg', -1001234, 17); a target without a topic has thread None."""
    platform, _, rest = target.partition(":")
    chat, _, thread = rest.partition("/")
    return platform, int(chat), int(thread) if thread else None


CONSOLE = ChatContext(platform="console", chat_id=0, user_id=0, user_name="console")
