"""Backfill: the venues' public history and the flow providers' past days, into the live history keys.

Funding settlements, the dated futures' hourly basis and the perpetuals' open interest (5-minute
totals) go into the same history ZSETs the market watcher writes (``MarketStore``, each metric's
member format), flow days into the same rows the flow watcher upserts, so ``/backtest``, the
charts and ``/oi``'s changes read them like live data (change and z-score rules read the alert
service's own signal history, which a backfill does not write). Each part (a venue's perpetual,
a venue's open-interest total, a provider) advances page by page; after every stored page its
checkpoint in Redis moves, so an interrupted run resumes where it stopped, and writing the same
history again changes nothing (members are keyed by time and value). Transient errors
(timeouts, 5xx, 429) are retried with capped exponential backoff; a part that keeps failing
stops the run with its error.

Open interest is stored as the live poll stores it, one total per venue and asset, but the
venues' history covers perpetuals only while the live total also counts dated futures: so it is
backfilled only where the venue lists no dated future of the asset (the perpetuals are its whole
open interest, and a backfilled total compares with a live one); elsewhere the part is skipped
with why.
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
from watchers.venues.history import BASIS_PAGE, FUNDING_PAGE, HOUR_MS, OI_PAGE, OI_STEP_MS, HistoryClient

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
T = TypeVar("T")
FUNDING, BASIS, OI = "funding", "basis", "oi"
Progress = Callable[[int, int, str], None]  # done, total, what is being fetched


@dataclass(slots=True)
class BackfillReport:
    stored: dict[str, int] = field(default_factory=dict)  # part -> samples (or days) written this run
    skipped: list[str] = field(default_factory=list)  # parts not available, with why
    resumed: list[str] = field(default_factory=list)  # parts that continued from a checkpoint
    requests: int = 0


def _page_ms(metric: str, venue: str) -> int:
    if metric == OI:
        return OI_PAGE[venue] * OI_STEP_MS
    return (FUNDING_PAGE if metric == FUNDING else BASIS_PAGE)[venue] * HOUR_MS


def _now_ms() -> int:
    return int(time.time() * 1000)


class Backfill:
    """One job: an asset over [start_ms, end_ms] from the given venues and providers."""

    def __init__(
        self,
        store: MarketStore,
        keys: Keys,
        registry: Registry,
        venues: Sequence[HistoryClient],
        providers: Sequence[FlowProvider],
        *,
        asset: str,
        start_ms: int,
        end_ms: int,
        progress: Progress = lambda done, total, what: None,
        max_retries: int = 5,
        retry_base_s: float = 1.0,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
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
        self._oi_symbols: dict[str, list[str]] = {}  # venue -> the perpetuals its open-interest total sums

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self.max_retries + 1):
            try:
                return await call()
            except SourceRejected:
                raise
            except SourceError as e:
                if attempt >= self.max_retries:
                    raise
                delay = min(30.0, self.retry_base_s * 2**attempt)
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
            await self._plan_oi(hc, plan, report)
        self._total = sum(
            math.ceil(max(0, self.end_ms - since + 1) / _page_ms(metric, hc.venue)) for metric, hc, _, since in plan
        ) + len(self.providers)
        self.progress(0, self._total, "starting")
        for metric, hc, symbol, since in plan:
            m = self.registry.get(metric)
            part = f"{metric}|{hc.venue}|{symbol}"
            stored = 0
            while since <= self.end_ms:
                before = hc.client.requests
                if metric == OI:
                    perps = self._oi_symbols[hc.venue]
                    call = functools.partial(hc.oi_page, self.asset, perps, since, self.end_ms)
                else:
                    call = functools.partial(
                        hc.funding_page if metric == FUNDING else hc.basis_page, symbol, since, self.end_ms
                    )
                page = await self._retrying(part, call)
                report.requests += hc.client.requests - before
                good = [s for s in page.samples if m.problem(s) is None]
                if good:
                    await self.store.write_samples(m, hc.venue, [], history=good, replace=False, now_ms=self.clock_ms())
                stored += len(good)
                since = page.window_end_ms + 1
                await self.store.redis.hset(self.checkpoints, part, since)
                self._tick(f"{hc.venue} {symbol}")
            report.stored[part] = stored
        await self._flows(report)
        return report

    async def _plan_oi(
        self, hc: HistoryClient, plan: list[tuple[str, HistoryClient, str, int]], report: BackfillReport
    ) -> None:
        """One part per venue (its total over the perpetuals), where that total is the venue's whole OI."""
        if OI not in self.registry:
            return
        if not hc.supports_oi:
            report.skipped.append(f"{hc.venue}: oi history not supported (no endpoint with both coins and USD)")
            return
        futures = await self._retrying(f"{hc.venue} markets", functools.partial(hc.futures, self.asset))
        if futures:
            report.skipped.append(
                f"{hc.venue}: oi history not stored: its history covers perpetuals only and "
                f"{len(futures)} dated futures of {self.asset} count in the live total"
            )
            return
        perps = await self._retrying(f"{hc.venue} markets", functools.partial(hc.perpetuals, self.asset))
        if not perps:
            return
        self._oi_symbols[hc.venue] = perps
        part = f"{OI}|{hc.venue}|{self.asset}"
        since = await self._checkpoint(part)
        if since is not None:
            report.resumed.append(part)
        plan.append((OI, hc, self.asset, self.start_ms if since is None else since))

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
