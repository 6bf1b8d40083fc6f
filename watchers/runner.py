"""The one loop every watcher runs: poll, sleep, back off with jitter on failure, stop promptly."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


def backoff_delay(failures: int, interval_s: float, max_backoff_s: float, rng: random.Random) -> float:
    """Exponential backoff from the poll interval, capped, with 'equal jitter' (half fixed, half random)."""
    base = min(max_backoff_s, interval_s * float(2 ** min(failures, 20)))
    return float(base / 2 + rng.uniform(0, base / 2))


async def _step_or_stop(step: Callable[[], Awaitable[object]], stop: asyncio.Event) -> bool:
    """Run one step, abandoning it when ``stop`` is set (a slow venue must not hold up shutdown).

    Returns False when stopped; re-raises the step's exception.
    """
    step_task = asyncio.ensure_future(step())
    stop_task = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({step_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_task.cancel()
        if not step_task.done():
            step_task.cancel()
            await asyncio.gather(step_task, return_exceptions=True)
    if step_task.cancelled():
        return False
    step_task.result()
    return True


async def run_periodic(
    name: str,
    step: Callable[[], Awaitable[object]],
    *,
    interval_s: float,
    max_backoff_s: float,
    stop: asyncio.Event,
    rng: random.Random | None = None,
) -> None:
    """Call ``step`` every ``interval_s`` until ``stop`` is set; failures back off, never end the loop."""
    rng = rng or random.Random()
    failures = 0
    while not stop.is_set():
        try:
            if not await _step_or_stop(step, stop):
                return  # stopped mid-poll: polls are idempotent, the next start simply polls again
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a watcher must survive anything a source throws at it
            failures += 1
            # a source's Retry-After outranks our own backoff, even beyond its cap
            delay = max(backoff_delay(failures, interval_s, max_backoff_s, rng), getattr(e, "retry_after_s", 0.0))
            log.warning("%s: poll failed (%s: %s); retry %d in %.1fs", name, type(e).__name__, e, failures, delay)
        else:
            if failures:
                log.info("%s: recovered after %d failure(s)", name, failures)
            failures = 0
            # a little jitter keeps many replicas from polling a venue in lockstep
            delay = interval_s * rng.uniform(0.95, 1.05)
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            pass
