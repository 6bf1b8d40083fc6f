"""Console side of alert delivery: alerts for the console chat are printed in the terminal."""

from __future__ import annotations

from collections.abc import Callable

from core.alerts.delivery import Outcome, SendResult
from core.render import to_plain
from core.reply import Reply


class ConsoleSender:
    platform = "console"

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write

    def is_group(self, chat_id: int) -> bool:
        return False

    async def send(self, chat_id: int, reply: Reply) -> SendResult:
        self.write("\n" + to_plain(reply) + "\n> ")
        return SendResult(Outcome.OK)
