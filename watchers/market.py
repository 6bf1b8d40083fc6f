"""The funding-and-basis watcher of one venue: poll, check, store, report health."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from core.models import BasisSample, FundingSample
from core.sanity import basis_problem, funding_problem
from core.store import MarketStore
from watchers.errors import MalformedResponse, SourceError
from watchers.venues import VenueClient

log = logging.getLogger(__name__)

SamplesListener = Callable[[str, Sequence[FundingSample], Sequence[BasisSample]], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class MarketWatcherConfig:
    markets_refresh_s: float = 3600.0
    history_step_s: float = 300.0
    history_assets: tuple[str, ...] = ("BTC", "ETH", "SOL")
    max_abs_funding: float = 0.05
    max_deviation: float = 0.5


def _now_ms() -> int:
    return int(time.time() * 1000)


class MarketWatcher:
    """Turns one venue's bulk answers into funding and basis samples in Redis."""

    def __init__(self, client: VenueClient, store: MarketStore, config: MarketWatcherConfig,
                 *, listeners: Sequence[SamplesListener] = (), clock_ms: Callable[[], int] = _now_ms) -> None:
        self.client = client
        self.store = store
        self.config = config
        self.listeners = list(listeners)
        self.clock_ms = clock_ms
        self.venue = client.venue
        self._last_history_ms: dict[str, int] = {}
        self._last_problem: dict[str, str] = {}

    @property
    def name(self) -> str:
        return f"market:{self.venue}"

    def _keep_history(self, s: FundingSample | BasisSample) -> bool:
        if "*" not in self.config.history_assets and s.asset not in self.config.history_assets:
            return False
        last = self._last_history_ms.get(s.symbol)
        if last is not None and s.ts_ms - last < self.config.history_step_s * 1000:
            return False
        self._last_history_ms[s.symbol] = s.ts_ms
        return True

    def _reject(self, symbol: str, problem: str | None) -> bool:
        if problem is None:
            self._last_problem.pop(symbol, None)
            return False
        if self._last_problem.get(symbol) != problem:  # log a bad value once, not every poll
            log.warning("venue=%s symbol=%s rejected: %s", self.venue, symbol, problem)
            self._last_problem[symbol] = problem
        return True

    async def poll_once(self) -> int:
        """Poll the venue once; returns how many samples were stored. Raises SourceError on failure."""
        start_req = self.client.requests
        t0 = time.perf_counter()
        try:
            loaded = self.client.markets_loaded_ms
            markets: int | None = None
            if loaded is None:
                markets = await self.client.load_markets()
            elif self.clock_ms() - loaded > self.config.markets_refresh_s * 1000:
                try:
                    markets = await self.client.load_markets(reload=True)
                except SourceError as e:  # the markets we have still serve; try the refresh again next poll
                    log.warning("venue=%s market refresh failed, keeping %d known markets: %s", self.venue,
                                len(self.client.derivatives()), e)
            snap = await self.client.snapshot()
            cfg = self.config
            funding = [s for s in snap.funding if not self._reject(
                s.symbol, funding_problem(s, max_abs_rate=cfg.max_abs_funding, max_deviation=cfg.max_deviation))]
            basis = [s for s in snap.basis if not self._reject(
                s.symbol, basis_problem(s, max_deviation=cfg.max_deviation))]
            if not funding and not basis:
                raise MalformedResponse(f"all {len(snap.funding) + len(snap.basis)} samples failed sanity checks")
        except SourceError as e:
            await self.store.record_failure(self.venue, f"{type(e).__name__}: {e}", now_ms=self.clock_ms(),
                                            requests=self.client.requests - start_req)
            raise
        now = self.clock_ms()
        samples: list[FundingSample | BasisSample] = [*funding, *basis]
        history = [s for s in samples if self._keep_history(s)]
        await self.store.write_venue(self.venue, funding, basis, history=history, now_ms=now)
        await self.store.record_success(self.venue, now_ms=now, latency_ms=int((time.perf_counter() - t0) * 1000),
                                        requests=self.client.requests - start_req, markets=markets)
        for listener in self.listeners:
            await listener(self.venue, funding, basis)
        log.debug("venue=%s stored %d funding, %d basis samples", self.venue, len(funding), len(basis))
        return len(funding) + len(basis)
