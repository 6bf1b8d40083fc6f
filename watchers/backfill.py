"""Backfill: the venues' public history and the flow providers' past days, into the live history keys.

Funding settlements and the dated futures' hourly basis go into the same history ZSETs the market
watcher writes (``MarketStore``, each metric's member format), flow days into the same rows the flow watcher upserts, so
``/backtest``, change and z-score rules and the charts read them like live data. Each part (a
venue's perpetual, a provider) advances page by page; after every stored page its checkpoint in
Redis moves, so an interrupted run resumes where it stopped, and writing the same history again
changes nothing (members are keyed by time and value). Transient errors (timeouts, 5xx, 429) are
retried with capped exponential backoff; a part that keeps failing stops the run with its error.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from core.keys import Keys
from core.metrics.registry import Registry
from core.store import MarketStore
from watchers.errors import SourceError, SourceRejected
from watchers.flows.models import FlowProvider
from watchers.venues.history import BASIS_PAGE, FUNDING_PAGE, HOUR_MS, HistoryClient

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
T = TypeVar("T")
FUNDING, BASIS = "funding", "basis"
Progress = Callable[[int, int, str], None]  # done, total, what is being fetched


@dataclass(slots=True)
class BackfillReport:
    stored: dict[str, int] = field(default_factory=dict)  # part -> samples (or days) written this run
    skipped: list[str] = field(default_factory=list)  # parts not available, with why
    resumed: list[str] = field(default_factory=list)  # parts that continued from a checkpoint
    requests: int = 0


def _page_hours(metric: str, venue: str) -> int:
    return (FUNDING_PAGE if metric == FUNDING else BASIS_PAGE)[venue]


def _now_ms() -> int:
    return int(time.time() * 1000)


class Backfill:
    """One job: an asset over [start_ms, end_ms] from the given venues and providers."""

    def __init__(self, store: MarketStore, keys: Keys, registry: Registry, venues: Sequence[HistoryClient],
                 providers: Sequence[FlowProvider], *, asset: str, start_ms: int, end_ms: int,
                 progress: Progress = lambda done, total, what: None, max_retries: int = 5,
                 retry_base_s: float = 1.0, clock_ms: Callable[[], int] = _now_ms) -> None:
        self.store = store
        self.registry = registry
        self.venues = list(venues)
        self.providers = list(providers)
        self.asset = asset.upper()
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.progress = progress
        self.max_retries = max_retries
        self.retry_base_s = retry_base_s
        self.clock_ms = clock_ms
        self.checkpoints = keys.backfill(f"{self.asset}|{start_ms}|{end_ms}")
        self._done = 0
        self._total = 0

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self.max_retries + 1):
            try:
                return await call()
            except SourceRejected:
                raise
            except SourceError as e:
                if attempt >= self.max_retries:
                    raise
                delay = min(30.0, self.retry_base_s * 2 ** attempt)
                log.warning("backfill %s: %s; retrying in %.1fs", what, e, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _checkpoint(self, part: str) -> int | None:
        raw = await self.store.redis.hget(self.checkpoints, part)
        return int(raw) if raw is not None else None

    def _tick(self, what: str, n: int = 1) -> None:
        self._done += n
        self.progress(min(self._done, self._total), self._total, what)

    async def run(self) -> BackfillReport:
        report = BackfillReport()
        plan: list[tuple[str, HistoryClient, str, int]] = []  # metric, venue, symbol, resume from
        for hc in self.venues:
            wanted = [(FUNDING, hc.supports_funding, hc.perpetuals), (BASIS, hc.supports_basis, hc.futures)]
            for metric, supported, listed in wanted:
                if metric not in self.registry:
                    continue
                if not supported:
                    report.skipped.append(f"{hc.venue}: {metric} history not supported yet")
                    continue
                symbols = await self._retrying(f"{hc.venue} markets", functools.partial(listed, self.asset))
                for symbol in symbols:
                    part = f"{metric}|{hc.venue}|{symbol}"
                    since = await self._checkpoint(part)
                    if since is not None:
                        report.resumed.append(part)
                    plan.append((metric, hc, symbol, self.start_ms if since is None else since))
        self._total = sum(math.ceil(max(0, self.end_ms - since + 1) / (_page_hours(metric, hc.venue) * HOUR_MS))
                          for metric, hc, _, since in plan) + len(self.providers)
        self.progress(0, self._total, "starting")
        for metric, hc, symbol, since in plan:
            m = self.registry.get(metric)
            part = f"{metric}|{hc.venue}|{symbol}"
            fetch = hc.funding_page if metric == FUNDING else hc.basis_page
            stored = 0
            while since <= self.end_ms:
                before = hc.client.requests
                page = await self._retrying(part, functools.partial(fetch, symbol, since, self.end_ms))
                report.requests += hc.client.requests - before
                good = [s for s in page.samples if m.problem(s) is None]
                if good:
                    await self.store.write_samples(m, hc.venue, [], history=good, replace=False,
                                                   now_ms=self.clock_ms())
                stored += len(good)
                since = page.window_end_ms + 1
                await self.store.redis.hset(self.checkpoints, part, since)
                self._tick(f"{hc.venue} {symbol}")
            report.stored[part] = stored
        await self._flows(report)
        return report

    async def _flows(self, report: BackfillReport) -> None:
        flows = self.registry.find("flows")
        for p in self.providers:
            part = f"flows|{p.name}"
            if flows is None:
                report.skipped.append(f"{p.name}: flows metric not configured")
                self._tick(part)
                continue
            days = max(1, math.ceil((self.clock_ms() - self.start_ms) / DAY_MS) + 1)
            try:
                rows = await self._retrying(part, functools.partial(p.fetch_days, self.asset, days))
            except SourceRejected as e:  # a missing or refused key: the venues' history is still worth having
                report.skipped.append(f"{p.name}: {e}")
                self._tick(part)
                continue
            report.requests += 1
            first = time.strftime("%Y-%m-%d", time.gmtime(self.start_ms / 1000))
            last = time.strftime("%Y-%m-%d", time.gmtime(self.end_ms / 1000))
            keep = [r for r in rows if first <= r.day <= last and flows.problem(r) is None]
            if keep:
                await self.store.write_samples(flows, p.name, keep, replace=False, now_ms=self.clock_ms())
            await self.store.redis.hset(self.checkpoints, part, self.end_ms + 1)
            report.stored[part] = len(keep)
            self._tick(part)
