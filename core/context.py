"""Who is asking, from where: what platform adapters pass to the command core."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


async def _no() -> bool:
    return False


@dataclass(frozen=True, slots=True)
class ChatContext:
    """The chat and user of one command. ``target`` is how alerts address the chat."""

    platform: str  # "tg", "dc" or "console"
    chat_id: int
    user_id: int
    user_name: str = ""
    is_group: bool = False
    chat_admin: Callable[[], Awaitable[bool]] = _no  # asks the platform whether the user administers the chat

    @property
    def target(self) -> str:
        return f"{self.platform}:{self.chat_id}"

    @property
    def who(self) -> str:
        return f"{self.platform}:{self.user_id}" + (f" ({self.user_name})" if self.user_name else "")


CONSOLE = ChatContext(platform="console", chat_id=0, user_id=0, user_name="console")
