"""A line-based console front end over the command core."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from core.commands import CommandCore
from core.parsing import split_command
from core.render import to_plain
from handlers.console.media import image_line

log = logging.getLogger(__name__)

BANNER = "Console chat ready. Type /help, /basis btc, /funding eth, /status; /quit to stop."


class Console:
    """Reads commands from a stream, writes plain-text replies."""

    def __init__(
        self,
        core: CommandCore,
        reader: asyncio.StreamReader,
        write: Callable[[str], None],
        files_dir: str = "data/charts",
    ) -> None:
        self.core = core
        self.reader = reader
        self.write = write
        self.files_dir = files_dir  # where charts are written (their path is printed)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until /quit, end of input, or ``stop``."""
        self.write(BANNER + "\n> ")
        while not stop.is_set():
            line_task = asyncio.ensure_future(self.reader.readline())
            stop_task = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({line_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            for t in (line_task, stop_task):
                if t not in done:
                    t.cancel()
            await asyncio.gather(line_task, stop_task, return_exceptions=True)
            if line_task not in done or line_task.cancelled():
                return
            raw = line_task.result()
            if not raw:  # end of input
                self.write("\n")
                stop.set()
                return
            text = raw.decode(errors="replace").strip()
            if not text:
                self.write("> ")
                continue
            name, args = split_command(text)
            if name in ("quit", "exit"):
                stop.set()
                return
            reply = await self.core.run(name, args)
            if reply.image is not None:
                self.write(image_line(reply.image, self.files_dir) + "\n> ")
                continue
            self.write(to_plain(reply) + "\n> ")
