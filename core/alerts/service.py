"""Rule evaluation on new samples: the listener the watchers call after every successful poll.

Runs in the process that runs the watchers. It keeps the latest samples of every venue in
memory (fed by the watchers themselves, seeded from Redis at start), so evaluating a batch costs
no Redis reads except the signal history of change and z-score rules. Rule changes made by
any process are picked up through a version counter. State changes and fired alerts are
written in one transaction, so a restart neither re-fires nor forgets.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.alerts.engine import RuleEngine, RuleState, Transition, group_key
from core.alerts.flows import flow_message, flow_value
from core.alerts.rules import Rule, fmt_duration_s, fmt_threshold
from core.alerts.signals import Level, Point, basis_points, funding_points, level, zscore
from core.alerts.store import AlertStore, FiredAlert
from core.keys import Keys
from core.models import BasisSample, FlowDay, FundingSample
from core.render import fmt_pct
from core.reply import Reply
from core.store import MarketStore

log = logging.getLogger(__name__)

LEASE_TTL_S = 30.0
LEASE_RENEW_S = 10.0
_ACQUIRE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

Samples = dict[str, list[FundingSample]] | dict[str, list[BasisSample]]


@dataclass(frozen=True, slots=True)
class AlertSettings:
    venues: tuple[str, ...]
    basis_min_days: float = 3.0
    history_assets: tuple[str, ...] = ("BTC", "ETH", "SOL")
    history_step_s: float = 300.0
    history_retention_ms: int = 35 * 86_400_000
    stale_after_ms: int = 180_000  # a venue's samples older than this leave every aggregate


def _now_ms() -> int:
    return int(time.time() * 1000)


class AlertService:
    """Evaluates rules when samples arrive and appends fired alerts to the stream."""

    def __init__(self, alerts: AlertStore, market: MarketStore, keys: Keys, settings: AlertSettings,
                 clock_ms: Callable[[], int] = _now_ms) -> None:
        self.alerts = alerts
        self.market = market
        self.keys = keys
        self.settings = settings
        self.clock_ms = clock_ms
        self.engine = RuleEngine()
        self.version = -1
        self.funding: dict[str, dict[str, list[FundingSample]]] = {}  # asset -> venue -> samples
        self.basis: dict[str, dict[str, list[BasisSample]]] = {}
        self._sig_written: dict[str, int] = {}
        self.flow_rules: list[Rule] = []
        self.flow_states: dict[str, RuleState] = {}
        # one evaluation at a time: a reload must never rebuild the engine under an uncommitted evaluation
        self._lock = asyncio.Lock()
        self.instance = uuid.uuid4().hex
        self._leader = False
        self._lease_checked = -1e9

    async def start(self) -> None:
        await self._reload()

    async def stop(self) -> None:
        """Hand the evaluator lease back so another process can take over at once."""
        await self.alerts.redis.eval(_RELEASE, 1, self.keys.evaluator_lease(), self.instance)
        self._leader = False

    async def _is_leader(self) -> bool:
        """Only the holder of the evaluator lease evaluates, so two data processes never double an alert."""
        now = time.monotonic()
        if now - self._lease_checked < LEASE_RENEW_S:
            return self._leader
        self._lease_checked = now
        got = bool(await self.alerts.redis.eval(_ACQUIRE, 1, self.keys.evaluator_lease(), self.instance,
                                                int(LEASE_TTL_S * 1000)))
        if got != self._leader:
            log.info("alerts: this process %s the evaluator lease", "holds" if got else "lost")
            if got:
                self.version = -1  # another process may have moved rule states: start from Redis
        self._leader = got
        return got

    async def _commit(self, transitions: list[Transition], fired: list[FiredAlert]) -> list[str]:
        try:
            return await self.alerts.commit(transitions, fired)
        except BaseException:
            self.version = -1  # the engine moved but Redis did not: rebuild from Redis next time
            raise

    async def _reload(self) -> None:
        version, rules, states = await self.alerts.load_rules()
        engine = RuleEngine()
        for r in rules:
            if r.metric != "flows":  # daily flows are judged day by day, not by crossing state
                engine.add(r, states.get(r.id))
        self.engine, self.version = engine, version
        self.flow_rules = [r for r in rules if r.metric == "flows"]
        self.flow_states = {r.id: states[r.id] for r in self.flow_rules if r.id in states}
        for asset in {r.asset for r in rules} - set(self.funding) - set(self.basis):
            view = await self.market.read_asset(asset, self.settings.venues)
            self.funding.setdefault(asset, {}).update(view.funding)
            self.basis.setdefault(asset, {}).update(view.basis)
        log.info("alerts: %d rules loaded (version %d)", len(rules), version)

    async def on_samples(self, venue: str, funding: Sequence[FundingSample], basis: Sequence[BasisSample]) -> int:
        """Listener for watchers: evaluate the rules of every asset in the batch; returns alerts fired."""
        async with self._lock:
            return await self._on_samples(venue, funding, basis)

    async def _on_samples(self, venue: str, funding: Sequence[FundingSample], basis: Sequence[BasisSample]) -> int:
        leader = await self._is_leader()
        if leader and await self.alerts.rules_version() != self.version:
            await self._reload()
        now = self.clock_ms()
        touched: set[tuple[str, str]] = set()
        fresh_f: dict[str, list[FundingSample]] = {}
        for f in funding:
            fresh_f.setdefault(f.asset, []).append(f)
        for asset, ss in fresh_f.items():
            self.funding.setdefault(asset, {})[venue] = ss
            touched.add(("funding", asset))
        fresh_b: dict[str, list[BasisSample]] = {}
        for b in basis:
            fresh_b.setdefault(b.asset, []).append(b)
        for asset, bs in fresh_b.items():
            self.basis.setdefault(asset, {})[venue] = bs
            touched.add(("basis", asset))
        if not leader:
            return 0
        return await self.evaluate(touched, now, venue)

    def _points(self, metric: str, asset: str, now: int) -> list[Point]:
        """Current points of a topic; a venue that stopped reporting drops out instead of voting with old data."""
        oldest = now - self.settings.stale_after_ms
        if metric == "funding":
            return funding_points({v: [s for s in ss if s.ts_ms >= oldest]
                                   for v, ss in self.funding.get(asset, {}).items()})
        return basis_points({v: [s for s in ss if s.ts_ms >= oldest] for v, ss in self.basis.get(asset, {}).items()},
                            now, self.settings.basis_min_days)

    async def evaluate(self, topics: set[tuple[str, str]], now: int, venue: str | None = None) -> int:
        """Evaluate the rule groups of the given (metric, asset) topics that ``venue``'s samples can move."""
        levels: dict[tuple[str, str, str], Level] = {}
        groups: list[tuple[str, str, str, str]] = []
        recorded: set[tuple[str, str, str]] = set()  # signals whose history change/zscore rules read
        keep_all = "*" in self.settings.history_assets
        for metric, asset in topics:
            # a group on one named venue only moves when that venue reports
            mine = [k for k in self.engine.groups_for(metric, asset)
                    if venue is None or "/" not in k[2] or k[2].startswith(f"{venue}/")]
            selectors = {k[2] for k in mine}
            recorded.update((metric, asset, k[2]) for k in mine if k[3] != "level")
            if keep_all or asset in self.settings.history_assets:
                selectors |= {"max", "min", "mean"}
                recorded.update((metric, asset, agg) for agg in ("max", "min", "mean"))
            if not selectors:
                continue
            pts = self._points(metric, asset, now)
            for sel in selectors:
                lv = level(pts, sel)
                if lv is not None:
                    levels[(metric, asset, sel)] = lv
            groups.extend(mine)
        relative = [k for k in groups if k[3] != "level"]
        history = await self._history(relative, levels, now)
        await self._record_history({k: levels[k] for k in recorded if k in levels}, now)

        transitions: list[Transition] = []
        for key in groups:
            lv = levels.get((key[0], key[1], key[2]))
            if lv is None:
                continue
            if key[3] == "level":
                transitions += self.engine.evaluate(key, lv.value, now)
            elif key in history:
                signed = history[key]
                transitions += self.engine.evaluate(key, abs(signed), now, signed=signed)
        if not transitions:
            return 0
        fired = [FiredAlert(t.rule, self.message(t, levels, history, now), now) for t in transitions if t.alert]
        ids = await self._commit(transitions, fired)
        for a, alert_id in zip(fired, ids, strict=True):
            log.info("alert %s fired: rule=%s %s", alert_id, a.rule.id, a.reply.title)
        return len(fired)

    async def _history(self, groups: list[tuple[str, str, str, str]], levels: dict[tuple[str, str, str], Level],
                       now: int) -> dict[tuple[str, str, str, str], float]:
        """Signed change or z-score per change/zscore group, from the signal history."""
        if not groups:
            return {}
        pipe = self.alerts.redis.pipeline(transaction=False)
        plan = []
        for key in groups:
            metric, asset, sel, sig = key
            kind, window_ms = sig.split(":")[0], int(sig.split(":")[1]) * 1000
            hkey = self.keys.signal_history(metric, asset, sel)
            if kind == "change":
                pipe.zrevrangebyscore(hkey, now - window_ms, "-inf", start=0, num=1)
            else:
                pipe.zrangebyscore(hkey, now - window_ms, "+inf")
            plan.append((key, kind))
        out = {}
        for (key, kind), raw in zip(plan, await pipe.execute(), strict=True):
            lv = levels.get((key[0], key[1], key[2]))
            if lv is None or not raw:
                continue
            values = [float(m.decode().split("|")[1]) for m in raw]
            if kind == "change":
                out[key] = lv.value - values[0]
            else:
                z = zscore(lv.value, values)
                if z is not None:
                    out[key] = z
        return out

    async def _record_history(self, levels: dict[tuple[str, str, str], Level], now: int) -> None:
        step_ms = self.settings.history_step_s * 1000
        due = []
        for (metric, asset, sel), lv in levels.items():
            hkey = self.keys.signal_history(metric, asset, sel)
            if now - self._sig_written.get(hkey, 0) >= step_ms:
                self._sig_written[hkey] = now
                due.append((hkey, lv.value))
        if not due:
            return
        pipe = self.alerts.redis.pipeline(transaction=False)
        for hkey, value in due:
            pipe.zadd(hkey, {f"{now}|{value!r}": now})
            pipe.zremrangebyscore(hkey, "-inf", now - self.settings.history_retention_ms)
        await pipe.execute()

    # daily flows ------------------------------------------------------------------------
    async def on_flow_days(self, provider: str, asset: str, rows: Sequence[FlowDay]) -> int:
        """Judge every day not judged before, each on its own; a refetched day never fires again.

        A rule without state judges only the newest day (it does not replay history on creation).
        The alert carries the time the day's value became available.
        """
        async with self._lock:
            return await self._on_flow_days(provider, asset, rows)

    async def _on_flow_days(self, provider: str, asset: str, rows: Sequence[FlowDay]) -> int:
        if not await self._is_leader():
            return 0
        if await self.alerts.rules_version() != self.version:
            await self._reload()
        rules = [r for r in self.flow_rules if r.asset == asset and r.provider == provider]
        if not rules or not rows:
            return 0
        by_day = {r.day: r for r in rows}
        ordered = sorted(by_day.values(), key=lambda r: r.day)
        transitions: list[Transition] = []
        fired: list[FiredAlert] = []
        for rule in rules:
            state = self.flow_states.get(rule.id)
            last_day = state.mode[1:] if state and state.mode.startswith("d") else None
            todo = [r for r in ordered if r.day > last_day] if last_day else ordered[-1:]
            last_fired = state.last_fired_ms if state else 0
            for row in todo:
                value = flow_value(rule, row, by_day)
                hit = value is not None and (
                    value > rule.threshold if rule.kind == "above" else
                    value < rule.threshold if rule.kind == "below" else abs(value) >= rule.threshold)
                alert = hit and (not last_fired or row.available_ms - last_fired >= rule.cooldown_s * 1000)
                if alert and value is not None:
                    last_fired = row.available_ms
                    fired.append(FiredAlert(rule, flow_message(rule, row, value, by_day), row.available_ms))
            if todo:
                new = RuleState(f"d{todo[-1].day}", last_fired)
                self.flow_states[rule.id] = new
                transitions.append(Transition(rule, new, False, 0.0))
        ids = await self._commit(transitions, fired)
        for a, alert_id in zip(fired, ids, strict=True):
            log.info("alert %s fired: rule=%s %s", alert_id, a.rule.id, a.reply.title)
        return len(fired)

    # message ----------------------------------------------------------------------------
    def message(self, t: Transition, levels: dict[tuple[str, str, str], Level],
                history: dict[tuple[str, str, str, str], float], now: int) -> Reply:
        r = t.rule
        key = group_key(r)
        lv = levels[(key[0], key[1], key[2])]

        def unit(x: float) -> str:
            return f"{x * 100:+.4f}%/8h" if r.metric == "funding" else f"{x * 100:+.1f}% ann."

        arrow = {"above": "🔺", "below": "🔻"}.get(r.kind, "↕")
        if r.kind == "crosses":
            arrow = "🔺" if t.state.mode == "+" else "🔻"
        cond = {"above": f"above {fmt_threshold(r.metric, r.kind, r.threshold)}",
                "below": f"below {fmt_threshold(r.metric, r.kind, r.threshold)}",
                "crosses": f"crossed {fmt_threshold(r.metric, r.kind, r.threshold)} "
                           f"{'upwards' if t.state.mode == '+' else 'downwards'}",
                "change": f"moved {fmt_threshold(r.metric, r.kind, r.threshold).lstrip('+')} "
                          f"within {fmt_duration_s(r.window_s)}",
                "zscore": f"{abs(t.value):.1f}σ from its {fmt_duration_s(r.window_s)} mean"}[r.kind]
        title = f"{arrow} {r.asset} {r.metric} {cond}"
        if lv.point is not None:
            where = f"on {lv.point.label} {lv.point.symbol}"
        else:
            scope = f"{r.venue} " if "/" in key[2] else ""
            where = f"({scope}mean of {len(lv.points)} contracts)"
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(now / 1000))
        if r.kind == "change":
            now_line = f"Changed {unit(t.value)} in {fmt_duration_s(r.window_s)}: now {unit(lv.value)} {where}"
        elif r.kind == "zscore":
            now_line = f"z = {t.value:+.2f}: now {unit(lv.value)} {where}"
        else:
            now_line = f"Now {unit(lv.value)} {where}"
        owner = "global rule" if r.scope == "global" else "this chat's rule"
        lines = [f"{now_line} · {stamp}",
                 f"Threshold {fmt_threshold(r.metric, r.kind, r.threshold)} · {owner} {r.id}"]
        lines += self._context(r, lv, now)
        footer = f"Mute: /mute 2h · Stop: /unsubscribe {r.metric} {r.asset.lower()}"
        return Reply(title=title, blocks=("\n".join(lines),), footer=footer)

    def _context(self, r: Rule, lv: Level, now: int) -> list[str]:
        """A line of context: the other venues, and the other metric of the same asset."""
        out = []
        others = sorted(lv.points, key=lambda p: -p.value)
        if r.metric == "funding":
            shown = ", ".join(f"{p.label} {fmt_pct(p.value, 4)}" for p in others[:6])
            out.append(f"Funding per 8h: {shown}" + (" …" if len(others) > 6 else ""))
            bpts = basis_points(self.basis.get(r.asset, {}), now, self.settings.basis_min_days)
            if bpts:
                front = level(bpts, "max")
                if front and front.point:
                    out.append(f"Basis: max {fmt_pct(front.value, 1)} ann. ({front.point.label} {front.point.symbol})")
        else:
            shown = ", ".join(f"{p.label} {fmt_pct(p.value, 1)}" for p in others[:6])
            out.append(f"Basis ann.: {shown}" + (" …" if len(others) > 6 else ""))
            fpts = funding_points(self.funding.get(r.asset, {}))
            if fpts:
                mean = level(fpts, "mean")
                if mean:
                    out.append(f"Funding: mean {fmt_pct(mean.value, 4)}/8h across {len(fpts)} perps")
        return out
