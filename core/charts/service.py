"""Drawing charts off the event loop: a bounded worker pool, a short cache, one render per identical ask.

Rendering is CPU work that holds the GIL, so by default it runs in worker processes: the event
loop keeps answering other commands while charts are drawn. At most ``max_pending`` charts wait or
draw at once; beyond that a request is answered "busy" at once instead of queueing without end.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

from core.charts.draw import render_png
from core.charts.figure import Figure
from core.reply import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)  # no slots: settings read the defaults from the class
class ChartSettings:
    workers: int = 2
    pool: str = "process"  # "process" or "thread"
    cache_s: float = 60.0  # an identical chart asked again within this is not redrawn
    max_pending: int = 12  # charts drawing or waiting at once; more are refused as busy
    files_dir: str = "data/charts"  # the console writes charts here and prints their path


class ChartService:
    """Renders Figures to PNG in a pool; the caller owns ``start``/``close``."""

    def __init__(
        self,
        settings: ChartSettings = ChartSettings(),
        *,
        render: Callable[[Figure, str], bytes] = render_png,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.render = render
        self.clock = clock
        self._executor: Executor | None = None
        self._cache: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Future[bytes | None]] = {}
        self.pending = 0
        self.rendered = 0

    def _pool(self) -> Executor:
        if self._executor is None:
            if self.settings.pool == "thread":
                self._executor = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="chart")
            else:  # spawn: a fork of a process with running threads (asyncio, Redis) is not safe
                self._executor = ProcessPoolExecutor(
                    self.settings.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_watch_parent,
                    initargs=(os.getpid(),),
                )
                for _ in range(self.settings.workers):  # every worker up and warm, not only the first
                    self._executor.submit(draw, self.render, _blank, "light", True)
        return self._executor

    def start(self) -> None:
        """Start the workers now, each drawing one blank chart (matplotlib imported, fonts cached), in the
        background: nothing waits for it. Without it the pool starts with the first chart asked for."""
        self._pool()

    async def close(self) -> None:
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(executor.shutdown, wait=True, cancel_futures=True)
            )

    def cached(self, key: Hashable) -> bytes | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        if hit[0] < self.clock():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return hit[1]

    async def png(self, key: Hashable, build: Callable[[], Figure], theme: str = "light") -> bytes | None:
        """The chart for ``key``: from the cache, from a render of the same key in flight, or drawn now.

        ``build`` (picklable: the chart's pure data-to-series step over what was read) runs in the worker
        too, so the event loop only reads Redis; None when the series hold no point (nothing is drawn)."""
        hit = self.cached(key)
        if hit is not None:
            return hit
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        if self.pending >= self.settings.max_pending:
            raise UserError("Charts are busy right now; try again in a few seconds.")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes | None] = loop.create_future()
        self._inflight[key] = fut
        self.pending += 1
        try:
            pool = self._pool()
            try:
                data = await loop.run_in_executor(pool, draw, self.render, build, theme)
            except BrokenExecutor:  # a worker died (killed, out of memory): the next chart gets a new pool
                log.error("charts: the chart pool broke; starting a new one for the next chart")
                if self._executor is pool:
                    self._executor = None
                    pool.shutdown(wait=False, cancel_futures=True)
                raise UserError("Drawing that chart failed; please try again.") from None
            self.rendered += 1
            if data is not None:
                self._cache[key] = (self.clock() + self.settings.cache_s, data)
            while len(self._cache) > 128:
                self._cache.popitem(last=False)
            fut.set_result(data)
            return data
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: waiters get it, nobody else needs to
            raise
        finally:
            self.pending -= 1
            del self._inflight[key]


def _watch_parent(parent_pid: int) -> None:
    """In each worker: exit when the bot process is gone (killed with SIGKILL, it cannot stop its pool),
    so no orphan keeps running or keeps the bot's output pipes open."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="chart-parent-watch", daemon=True).start()


def _blank() -> Figure:
    return Figure(title="", y_label="", series=(), footer="", caption="")


def draw(
    render: Callable[[Figure, str], bytes], build: Callable[[], Figure], theme: str, empty_too: bool = False
) -> bytes | None:
    """In the worker: the series, then the PNG (None for a chart without any point, unless ``empty_too``)."""
    fig = build()
    if not fig.points and not empty_too:
        return None
    return render(fig, theme)
