"""``/backtest <rule> [period]``: how often and when a rule would have fired on the stored history.

The rule is parsed by the ``/threshold set`` grammar and replayed (``core.history.replay``) through
the live evaluation path under a scratch key prefix that is dropped afterwards: the history the
watchers keep (``MarketStore`` history, flow days) is read once, bucketed so one back-test costs at
most about ``MAX_STEPS`` evaluations per source, and handed over source by source in time order.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from core.alerts.events import AlertEvent
from core.alerts.rules import Rule, parse_rule
from core.alerts.service import AlertSettings
from core.context import ChatContext
from core.history.replay import Batch, ReplayResult, drop_keys, replay, scratch_keys
from core.history.report import stale_after_ms
from core.metrics.base import Metric, fmt_duration_s
from core.metrics.registry import Registry
from core.render import fmt_duration
from core.reply import Reply, Table, UserError
from core.store import MarketStore

DAY_MS = 86_400_000
MAX_STEPS = 1500  # evaluations per source and back-test: 90 days are judged hourly, 5 days every 5 minutes
MIN_STEP_MS = 300_000
STEPS_MS = tuple(m * 60_000 for m in (5, 10, 15, 30, 60, 120, 240, 480))
MAX_DAYS = 365
_PERIOD = re.compile(r"^(\d{1,3})d$")
USAGE = (
    "Usage: /backtest <rule as for /threshold set> [period], e.g. /backtest funding btc above 0.1% 90d "
    f"(period 1d to {MAX_DAYS}d, 30d by default)"
)


def _stamp(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


class Backtester:
    """Back-tests rules on the deployment's stored history, one at a time per process."""

    def __init__(
        self,
        store: MarketStore,
        registry: Registry,
        sources: Mapping[str, tuple[str, ...]],
        *,
        default_cooldown_s: int,
        clock_ms: Callable[[], int],
    ) -> None:
        self.store = store
        self.registry = registry
        self.sources = sources
        self.default_cooldown_s = default_cooldown_s
        self.clock_ms = clock_ms
        self._one_at_a_time = asyncio.Lock()  # a back-test is CPU work: queue them instead of piling up

    def parse(self, args: list[str], now_ms: int) -> tuple[Rule, int, list[str]]:
        """The rule, the period (days) and the rule's words; raises UserError with the accepted form."""
        if len(args) < 4:
            raise UserError(USAGE)
        tries: list[tuple[list[str], int]] = []
        m = _PERIOD.match(args[-1].lower())
        if m:
            tries.append((args[:-1], int(m.group(1))))
        tries.append((args, 30))
        error: UserError | None = None
        for words, days in tries:
            try:
                rule = parse_rule(
                    words,
                    registry=self.registry,
                    sources=self.sources,
                    rule_id="backtest",
                    default_cooldown_s=self.default_cooldown_s,
                    now_ms=now_ms,
                    created_by="backtest",
                )
            except UserError as e:
                error = error or e
                continue
            if not 1 <= days <= MAX_DAYS:
                raise UserError(f"a back-test period is 1d to {MAX_DAYS}d, e.g. 90d")
            if rule.combine:
                raise UserError(
                    f"A back-test runs one plain rule: test the conditions of {rule.combine}(...) one "
                    "by one, e.g. /backtest funding btc above 0.05% 90d"
                )
            return rule, days, words
        assert error is not None
        raise error

    async def backtest(self, args: list[str], ctx: ChatContext) -> Reply:
        """/backtest <rule> [period]: how often and when the rule would have fired on stored history."""
        now = self.clock_ms()
        rule, days, words = self.parse(args, now)
        m = self.registry.get(rule.metric)
        since = now - days * DAY_MS
        async with self._one_at_a_time:
            batches, step_ms = await self._history(m, rule.asset, since, now)
            if not batches:
                return Reply.fail(
                    f"No stored {m.name} history for {rule.asset} in the last {days}d: back-tests "
                    "read what the watchers keep (see /status, and python -m bot backfill)."
                )
            settings = AlertSettings(
                sources=self.sources,
                history_assets=(),
                history_step_s=step_ms / 1000,
                history_retention_ms=(days + 1) * DAY_MS + max(rule.window_s, 0) * 1000,
                # a stored value counts until its series' next one (history is sparse)
                stale_after_ms=max(2 * step_ms + MIN_STEP_MS, stale_after_ms(batches, self.registry)),
            )
            keys = scratch_keys(self.store.keys, "backtest")
            try:
                result = await replay(
                    self.store.redis,
                    keys,
                    self.registry,
                    [rule],
                    batches,
                    settings=settings,
                    start_ms=batches[0].at_ms,
                    end_ms=now,
                )
            finally:
                await drop_keys(self.store.redis, keys)
        return self._reply(m, rule, days, step_ms, batches, result, words)

    async def _history(self, m: Metric, asset: str, since: int, now: int) -> tuple[list[Batch], int]:
        """The stored samples since ``since`` as batches: one per source and step (newest sample per instrument)."""
        sources = self.sources.get(m.name, ())
        if m.discrete:  # daily rows: the stored rows are the history; each exists from its publication
            by_source, _ = await self.store.read_latest(m, asset, sources)
            rows = [(r.ts_ms, src, r) for src, rs in by_source.items() for r in rs if since <= r.ts_ms <= now]
            return [Batch(ts, m.name, src, (r,)) for ts, src, r in sorted(rows, key=lambda x: x[0])], DAY_MS
        need = (now - since) / MAX_STEPS
        step_ms = next((s for s in STEPS_MS if s >= need), STEPS_MS[-1])
        hist = await self.store.history_since(m.name, asset, sources, since)
        buckets: dict[tuple[int, str], dict[str, Any]] = {}
        for venue, members in hist.items():
            for ts, member in members:
                s = m.from_history(venue, asset, ts, member)
                if s is None:
                    continue
                bucket = buckets.setdefault((ts // step_ms, venue), {})
                old = bucket.get(s.symbol)
                if old is None or old.ts_ms <= s.ts_ms:
                    bucket[s.symbol] = s
        batches = [
            Batch(max(s.ts_ms for s in ss.values()), m.name, venue, tuple(ss.values()))
            for (_b, venue), ss in buckets.items()
        ]
        batches.sort(key=lambda b: b.at_ms)
        return batches, step_ms

    def _reply(
        self,
        m: Metric,
        rule: Rule,
        days: int,
        step_ms: int,
        batches: Sequence[Batch],
        result: ReplayResult,
        words: Sequence[str],
    ) -> Reply:
        events = result.events
        start = batches[0].at_ms
        covered = (result.end_ms - start) / DAY_MS
        span = (
            f"the last {days}d"
            if covered >= days - 0.5
            else f"stored history from {_stamp(start)} ({covered:.1f} of the {days}d asked)"
        )
        blocks: list[str | Table] = []
        if not events:
            blocks.append(f"Would not have fired over {span}.")
        else:
            blocks.append(
                f"Would have fired {len(events)} time{'s' * (len(events) != 1)} over {span}: "
                f"first {_stamp(events[0].ts_ms)}, last {_stamp(events[-1].ts_ms)}."
            )
            blocks.append(self._longest(m, events, result.periods.get(rule.id, [])))
            shown = events[-10:]
            blocks.append(
                Table(
                    header=("UTC", "value", "where"),
                    rows=tuple((_stamp(e.ts_ms)[:16], m.fmt_value(e.value, e.field), _where(e)) for e in shown),
                    align="lrl",
                    caption=None if len(events) <= 10 else f"the last 10 of {len(events)}",
                )
            )
        how = (
            "each day judged once at its publication time"
            if m.discrete
            else f"judged every {fmt_duration_s(step_ms // 1000)}, {_count(len({b.venue for b in batches}), 'source')}"
        )
        samples = _count(sum(len(b.samples) for b in batches), "sample")
        return Reply(
            title=f"Backtest: {rule.describe()}",
            blocks=tuple(blocks),
            footer=f"The live rule engine on stored history ({samples}, {how}). "
            f"Set it with /threshold set {' '.join(w.lower() for w in words)}",
        )

    @staticmethod
    def _longest(m: Metric, events: Sequence[AlertEvent], periods: Sequence[tuple[int, int]]) -> str:
        if m.discrete:  # days in a row whose value met the rule
            fired_days = sorted({str(e.extra.get("day", "")) for e in events})
            best = run = 1
            for a, b in itertools.pairwise(fired_days):
                consecutive = dt.date.fromisoformat(b) - dt.date.fromisoformat(a) == dt.timedelta(days=1)
                run = run + 1 if consecutive else 1
                best = max(best, run)
            return f"Longest run: {best} day{'s' * (best != 1)} in a row."
        if not periods:
            return "Crosses rules have no time in alert: each crossing fires."
        lo, hi = max(periods, key=lambda p: p[1] - p[0])
        total = sum(b - a for a, b in periods)
        return (
            f"Longest time in alert: {fmt_duration((hi - lo) / 1000)} (from {_stamp(lo)}); in alert "
            f"{fmt_duration(total / 1000)} in all."
        )


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def _where(e: AlertEvent) -> str:
    day = e.extra.get("day")
    return str(day) if day else " ".join(x for x in (e.label or e.venue, e.instrument) if x)
