"""The exchange-flow watcher of one provider: fetch recent days, store them, hand new days to listeners."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from core.models import FlowDay
from core.store import MarketStore
from watchers.errors import SourceError, SourceRejected
from watchers.flows.models import FlowProvider

log = logging.getLogger(__name__)

FlowListener = Callable[[str, str, Sequence[FlowDay]], Awaitable[object]]
RejectedListener = Callable[[str, str], Awaitable[object]]


def _now_ms() -> int:
    return int(time.time() * 1000)


class FlowWatcher:
    """Polls one provider for each configured asset; one asset's failure does not hide the others'."""

    def __init__(self, provider: FlowProvider, store: MarketStore, assets: Sequence[str], *, days: int = 45,
                 listeners: Sequence[FlowListener] = (), on_rejected: RejectedListener | None = None,
                 clock_ms: Callable[[], int] = _now_ms) -> None:
        self.provider = provider
        self.store = store
        self.assets = [a.upper() for a in assets]
        self.days = days
        self.listeners = list(listeners)
        self.on_rejected = on_rejected
        self.clock_ms = clock_ms
        self.requests = 0
        self._rejected = False

    @property
    def name(self) -> str:
        return f"flows:{self.provider.name}"

    async def poll_once(self) -> int:
        """Fetch every asset; returns how many new days were stored. Raises the last SourceError, if any."""
        t0 = time.perf_counter()
        start = self.requests
        new_total = 0
        failure: SourceError | None = None
        ok = 0
        for asset in self.assets:
            self.requests += 1
            try:
                rows = await self.provider.fetch_days(asset, self.days)
            except SourceError as e:
                failure = e
                log.warning("provider=%s asset=%s poll failed: %s", self.provider.name, asset, e)
                continue
            ok += 1
            new = await self.store.write_flows(self.provider.name, asset, rows, now_ms=self.clock_ms())
            new_total += len(new)
            if new:
                log.info("provider=%s asset=%s %d new day(s), latest %s", self.provider.name, asset, len(new),
                         rows[-1].day)
            if self.listeners:  # rules look back further than one fetch (a 60-day change): give them what is stored
                stored = (await self.store.read_flows(asset, (self.provider.name,))).get(self.provider.name, rows)
                for listener in self.listeners:
                    await listener(self.provider.name, asset, stored)
        name = self.provider.name
        latency_ms = int((time.perf_counter() - t0) * 1000)
        if failure is not None and ok:  # some assets answered: their data is fresh, the error still shows
            await self.store.record_success(name, now_ms=self.clock_ms(), latency_ms=latency_ms, requests=0)
        if failure is not None:
            await self.store.record_failure(name, f"{type(failure).__name__}: {failure}", now_ms=self.clock_ms(),
                                            requests=self.requests - start)
            if isinstance(failure, SourceRejected) and not self._rejected:
                self._rejected = True  # tell the admins once, not on every retry
                if self.on_rejected is not None:
                    await self.on_rejected(name, str(failure))
            raise failure
        self._rejected = False
        await self.store.record_success(name, now_ms=self.clock_ms(), latency_ms=latency_ms,
                                        requests=self.requests - start)
        return new_total
