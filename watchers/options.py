"""The option chain watcher: Deribit's chains in bulk, stored as gamma samples, every few minutes."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from core.metrics.base import Metric
from core.store import MarketStore
from watchers.errors import MalformedResponse, SourceError
from watchers.venues.options import OptionChainClient

log = logging.getLogger(__name__)

# (metric, venue, samples, replace=...): the evaluator's ``on_samples``
ChainListener = Callable[..., Awaitable[object]]


def _now_ms() -> int:
    return int(time.time() * 1000)


class OptionChainWatcher:
    """One request per currency per poll; a failing currency keeps its stored chain, the others are replaced."""

    def __init__(
        self,
        client: OptionChainClient,
        store: MarketStore,
        metric: Metric,
        currencies: Sequence[str],
        *,
        listeners: Sequence[ChainListener] = (),
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self.client = client
        self.store = store
        self.metric = metric
        self.currencies = tuple(currencies)
        self.listeners = list(listeners)
        self.clock_ms = clock_ms
        self._last_problem: dict[str, str] = {}

    @property
    def name(self) -> str:
        return f"options:{self.client.venue}"

    async def poll_once(self) -> int:
        """Refresh every currency's chain; returns how many options were stored. Raises when nothing worked."""
        start = self.client.requests
        venue, part = self.client.venue, self.metric.name
        samples: list[Any] = []
        errors: dict[str, SourceError] = {}
        try:
            await self.client.load_markets()
        except SourceError as e:
            await self.store.record_part(
                venue,
                part,
                f"markets: {type(e).__name__}: {e}",
                now_ms=self.clock_ms(),
                requests=self.client.requests - start,
            )
            raise
        for currency in self.currencies:
            try:
                chain, _skipped = await self.client.chain(currency)
            except SourceError as e:
                log.warning("venue=%s asset=%s option chain failed: %s", venue, currency, e)
                errors[currency] = e
                continue
            good = [s for s in chain if not self._reject(s, self.metric.problem(s))]
            if chain and not good:
                errors[currency] = MalformedResponse(f"all {len(chain)} {currency} options failed sanity checks")
                continue
            samples += good
        now = self.clock_ms()
        error = "; ".join(f"{c}: {type(e).__name__}: {e}" for c, e in errors.items()) or None
        if len(errors) == len(self.currencies):
            await self.store.record_part(venue, part, error, now_ms=now, requests=self.client.requests - start)
            raise next(iter(errors.values()))
        replace = not errors  # a failing currency keeps its last chain (marked not current), the rest is fresh
        await self.store.write_samples(self.metric, venue, samples, now_ms=now, replace=replace)
        await self.store.record_part(venue, part, error, now_ms=now, requests=self.client.requests - start)
        for listener in self.listeners:
            await listener(part, venue, samples, replace=replace)
        log.debug("venue=%s stored %d options of %s", venue, len(samples), ", ".join(self.currencies))
        return len(samples)

    def _reject(self, s: Any, problem: str | None) -> bool:
        if problem is None:
            self._last_problem.pop(s.symbol, None)
            return False
        if self._last_problem.get(s.symbol) != problem:
            log.warning("venue=%s symbol=%s rejected: %s", self.client.venue, s.symbol, problem)
            self._last_problem[s.symbol] = problem
        return True
