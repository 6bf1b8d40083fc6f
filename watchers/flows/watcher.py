"""The exchange-flow watcher of one provider: fetch recent days, store them, hand new days to listeners."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from core.metrics.base import Metric
from core.models import FlowDay
from core.store import MarketStore
from watchers.errors import SourceError, SourceRejected
from watchers.flows.models import FlowProvider

log = logging.getLogger(__name__)

FlowListener = Callable[[str, str, Sequence[Any]], Awaitable[object]]  # (metric, provider, stored rows)
RejectedListener = Callable[[str, str], Awaitable[object]]


def _now_ms() -> int:
    return int(time.time() * 1000)


class FlowWatcher:
    """Polls one provider for each configured asset; one asset's failure does not hide the others'."""

    def __init__(
        self,
        provider: FlowProvider,
        store: MarketStore,
        metric: Metric,
        assets: Sequence[str],
        *,
        days: int = 45,
        retention_days: int = 400,
        listeners: Sequence[FlowListener] = (),
        on_rejected: RejectedListener | None = None,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self.provider = provider
        self.store = store
        self.metric = metric
        self.retention_days = retention_days
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

    async def _store(self, asset: str, rows: Sequence[FlowDay]) -> tuple[int, list[FlowDay]]:
        """Upsert the fetched days (revisions overwrite), drop days past retention; returns (new, stored days)."""
        name = self.provider.name
        good = [r for r in rows if self.metric.problem(r) is None]
        if len(good) < len(rows):
            log.warning("provider=%s asset=%s %d implausible day(s) dropped", name, asset, len(rows) - len(good))
        if not good:
            return 0, []
        known = await self.store.known_instruments(self.metric.name, asset, name, [r.day for r in good])
        now = self.clock_ms()
        await self.store.write_samples(self.metric, name, good, now_ms=now, replace=False)
        cutoff = time.strftime("%Y-%m-%d", time.gmtime(now / 1000 - self.retention_days * 86_400))
        by_venue, _ = await self.store.read_latest(self.metric, asset, (name,))
        stored = by_venue.get(name, [])
        await self.store.delete_instruments(self.metric.name, asset, name, [r.day for r in stored if r.day < cutoff])
        new = sum(1 for k in known if not k)
        if new:
            log.info("provider=%s asset=%s %d new day(s), latest %s", name, asset, new, good[-1].day)
        return new, [r for r in stored if r.day >= cutoff]

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
            new, stored = await self._store(asset, rows)
            new_total += new
            # rules look back further than one fetch (a 60-day change): give them every stored day
            for listener in self.listeners:
                await listener(self.metric.name, self.provider.name, stored)
        name = self.provider.name
        latency_ms = int((time.perf_counter() - t0) * 1000)
        if failure is not None and ok:  # some assets answered: their data is fresh, the error still shows
            await self.store.record_success(name, now_ms=self.clock_ms(), latency_ms=latency_ms, requests=0)
        if failure is not None:
            await self.store.record_failure(
                name, f"{type(failure).__name__}: {failure}", now_ms=self.clock_ms(), requests=self.requests - start
            )
            if isinstance(failure, SourceRejected) and not self._rejected:
                self._rejected = True  # tell the admins once, not on every retry
                if self.on_rejected is not None:
                    await self.on_rejected(name, str(failure))
            raise failure
        self._rejected = False
        await self.store.record_success(
            name, now_ms=self.clock_ms(), latency_ms=latency_ms, requests=self.requests - start
        )
        return new_total
