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

    async def wait_turn(self, chat_id: int, thread_id: int | None = None) -> None:
        return None  # a terminal has no flood limit

    async def send(self, chat_id: int, reply: Reply, thread_id: int | None = None) -> SendResult:
        self.write("\n" + to_plain(reply) + "\n> ")
        return SendResult(Outcome.OK)
