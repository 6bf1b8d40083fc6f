"""Console side of alert delivery: alerts for the console chat are printed in the terminal."""

from __future__ import annotations

from collections.abc import Callable

from core.alerts.delivery import Outcome, SendResult
from core.render import to_plain
from core.reply import Reply
from handlers.console.media import image_line


class ConsoleSender:
    platform = "console"

    def __init__(self, write: Callable[[str], None], files_dir: str = "data/charts") -> None:
        self.write = write
        self.files_dir = files_dir

    async def wait_turn(self, chat_id: int, thread_id: int | None = None) -> None:
        return None  # a terminal has no flood limit

    async def send(self, chat_id: int, reply: Reply, thread_id: int | None = None) -> SendResult:
        chart = f"\n{image_line(reply.image, self.files_dir)}" if reply.image is not None else ""
        self.write("\n" + to_plain(reply) + chart + "\n> ")
        return SendResult(Outcome.OK)
