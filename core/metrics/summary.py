"""/summary: the six factors of a selloff side by side, like an analyst's checklist.

Funding (mean and max across venues, annualized), basis (front quarterly, annualized, highest
venue), open interest (total USD), exchange net flow (latest day and 7 days), liquidations (24h
long and short, from the ``liqs`` metric when this deployment has one) and dealer gamma (total and
flip level against spot). Each line carries its change over 24h (flows: against the day before),
the data's age, and a marker when it is inside the alert zone of a rule set for it (a global
above/below rule on that factor, or such a condition of a combined rule).

Everything is read in two Redis round trips: the latest samples of every factor, the rule index
of every factor's topic and the history points 24h back in one pipeline, then the rules it lists.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.alerts.rules import Rule
from core.alerts.signals import level
from core.metrics.alert_text import stamp
from core.metrics.base import Metric, Query, View, fmt_amount
from core.metrics.gamma import chain_figures, flip_text
from core.parsing import parse_asset
from core.render import fmt_age, fmt_pct, margin_label
from core.reply import Reply

DAY_MS = 86_400_000
ANNUAL_8H = 3 * 365  # funding per 8h -> per year
FACTORS = ("funding", "basis", "oi", "flows", "liqs", "gamma")
NAMES = {
    "funding": "Funding",
    "basis": "Basis",
    "oi": "Open interest",
    "flows": "Exchange net flow",
    "liqs": "Liquidations 24h",
    "gamma": "Dealer gamma",
}


@dataclass(slots=True)
class _Read:
    """What the first round trip brought back."""

    latest: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # metric -> venue -> samples
    rule_ids: set[str] = field(default_factory=set)
    signal_24h: dict[str, float] = field(default_factory=dict)  # metric -> its headline signal 24h ago
    oi_24h: dict[str, float] = field(default_factory=dict)  # venue -> total USD 24h ago
    basis_24h: dict[str, list[str]] = field(default_factory=dict)  # venue -> history members 24h ago


def _s(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _is_quarterly(expiry_ms: int) -> bool:
    """Last Friday of March, June, September or December."""
    d = dt.datetime.fromtimestamp(expiry_ms / 1000, dt.UTC).date()
    return d.month % 3 == 0 and d.weekday() == 4 and (d + dt.timedelta(days=7)).month != d.month


class Summary(Metric):
    name = "summary"
    title = "Six factors"
    sample_type = None
    example = "/summary btc"
    summary = "the six factors side by side: funding, basis, OI, exchange flows, liquidations, dealer gamma"
    kinds = ()
    aggregates = ()
    overview = True

    async def reply(self, q: Query, args: list[str]) -> Reply:
        """/summary <asset>: funding, basis, open interest, net flow, liquidations and dealer gamma in one message."""
        asset = parse_asset(args, "summary")
        now = q.now()
        metrics = {n: m for n in FACTORS if (m := q.registry.find(n)) is not None}
        sources = {n: tuple(q.all_sources.get(n, q.venues)) for n in metrics}
        read = await self._read(q, asset, metrics, sources, now)
        rules = await self._rules(q, read.rule_ids)
        window = {n: m.fresh_for_s(q.stale_after_s) * 1000 for n, m in metrics.items()}
        fresh = {
            n: {
                v: kept
                for v, ss in read.latest.get(n, {}).items()
                if (kept := [s for s in ss if now - s.ts_ms <= window[n]])
            }
            for n in metrics
        }
        if "liqs" in metrics:  # liquidations are events: the metric's own summary judges their window
            fresh["liqs"] = read.latest.get("liqs", {})
        lines: dict[str, Callable[[], tuple[str, list[int]]]] = {
            "funding": lambda: self._funding(fresh["funding"], read, now),
            "basis": lambda: self._basis(metrics["basis"], fresh["basis"], read, now),
            "oi": lambda: self._oi(fresh["oi"], read, now),
            "flows": lambda: self._flows(read.latest.get("flows", {}), sources.get("flows", ()), now),
            "liqs": lambda: self._liqs(metrics["liqs"], asset, fresh["liqs"], now),
            "gamma": lambda: self._gamma(metrics["gamma"], fresh["gamma"], read, now),
        }
        fields: list[tuple[str, str]] = []
        points: dict[tuple[str, str], list[Any]] = {}  # (metric, series) -> its points, computed once
        for name in FACTORS:
            if name not in metrics or not sources.get(name):  # not registered, or no source serves it here
                fields.append((NAMES[name], "no data: not watched by this deployment"))
                continue
            text, ts = lines[name]()
            zone = [r.id for r in rules if self._in_zone(metrics[name], r, fresh[name], read, now, points)]
            age = f" · {fmt_age((now - max(ts)) / 1000)} old" if ts else ""
            mark = f" · ⚠ in the zone of {', '.join(sorted(set(zone)))}" if zone else ""
            fields.append((("⚠ " if zone else "") + NAMES[name], text + age + mark))
        return Reply(
            title=f"{asset} six factors · {stamp(now)}",
            fields=tuple(fields),
            footer="Changes over 24h (flows: against the day before) · ⚠ = inside the alert zone of a rule "
            "set for it · details: /funding /basis /oi /flows /gamma",
        )

    # reads ---------------------------------------------------------------------------------
    async def _read(
        self, q: Query, asset: str, metrics: Mapping[str, Metric], sources: Mapping[str, tuple[str, ...]], now: int
    ) -> _Read:
        keys, tol = q.store.keys, max(600_000, int(q.stale_after_s * 1000))
        pipe = q.store.redis.pipeline(transaction=False)
        plan: list[tuple[str, Any]] = []
        for n, m in metrics.items():
            for v in sources[n]:
                pipe.hgetall(keys.latest(n, asset, v))
                plan.append(("latest", (m, v)))
            pipe.smembers(keys.rules_topic(f"{n}:{asset}"))
            plan.append(("rules", n))
        for n, selector in (("funding", "mean"), ("gamma", "total@sum")):
            if n in metrics:
                pipe.zrevrangebyscore(
                    keys.signal_history(n, asset, selector), now - DAY_MS, now - DAY_MS - tol, start=0, num=1
                )
                plan.append(("signal", n))
        for v in sources.get("oi", ()):
            pipe.zrevrangebyscore(keys.history("oi", asset, v), now - DAY_MS, now - DAY_MS - tol, start=0, num=1)
            plan.append(("oi", v))
        for v in sources.get("basis", ()):
            pipe.zrangebyscore(keys.history("basis", asset, v), now - DAY_MS - tol, now - DAY_MS)
            plan.append(("basis", v))
        out = _Read()
        for (what, arg), raw in zip(plan, await pipe.execute(), strict=True):
            if what == "latest" and raw:
                m, v = arg
                out.latest.setdefault(m.name, {})[v] = sorted((m.decode(x) for x in raw.values()), key=m.sort_key)
            elif what == "rules":
                out.rule_ids |= {_s(i) for i in raw}
            elif what == "signal" and raw:
                out.signal_24h[arg] = float(_s(raw[0]).split("|")[1])
            elif what == "oi" and raw:
                out.oi_24h[arg] = float(_s(raw[0]).split("|")[1])
            elif what == "basis" and raw:
                out.basis_24h[arg] = [_s(x) for x in raw]
        return out

    @staticmethod
    async def _rules(q: Query, ids: set[str]) -> list[Rule]:
        """The listed rules and the conditions of combined ones (the second round trip)."""
        if not ids:
            return []
        raw = await q.store.redis.hmget(q.store.keys.rules(), sorted(ids))
        out: list[Rule] = []
        for r in (Rule.from_json(x) for x in raw if x):
            out += [replace_id(p, r.id) for p in r.parts] if r.combine else [r]
        return out

    @staticmethod
    def _in_zone(
        m: Metric,
        r: Rule,
        fresh: Mapping[str, Sequence[Any]],
        read: _Read,
        now: int,
        points: dict[tuple[str, str], list[Any]],
    ) -> bool:
        """An above/below rule whose condition holds on the current figures."""
        if r.metric != m.name or r.kind not in ("above", "below"):
            return False
        if m.discrete:
            rows = sorted(read.latest.get(m.name, {}).get(r.selector, ()), key=m.sort_key)
            value = getattr(rows[-1], r.field, None) if rows else None
        else:
            if (m.name, r.field) not in points:
                points[(m.name, r.field)] = m.points(fresh, r.field, now)
            lv = level(points[(m.name, r.field)], r.selector)
            value = lv.value if lv is not None else None
        if value is None:
            return False
        return bool(value > r.threshold) if r.kind == "above" else bool(value < r.threshold)

    # lines ---------------------------------------------------------------------------------
    @staticmethod
    def _funding(fresh: Mapping[str, Sequence[Any]], read: _Read, now: int) -> tuple[str, list[int]]:
        live = [(v, s) for v, ss in fresh.items() for s in ss]
        if not live:
            return "no data", []
        p8 = [(s.rate_per_interval * 28_800 / s.interval_s, v, s) for v, s in live]
        mean = statistics.fmean(x for x, _, _ in p8)
        top, venue, s = max(p8, key=lambda t: t[0])
        text = (
            f"mean {fmt_pct(mean * ANNUAL_8H, 1)} ann. ({fmt_pct(mean, 4)}/8h) · max {fmt_pct(top * ANNUAL_8H, 1)}"
            f" ann. on {margin_label(venue, s.settle, s.inverse)} · {len(live)} perps"
        )
        old = read.signal_24h.get("funding")
        text += f" · 24h {fmt_pct((mean - old) * ANNUAL_8H, 1)} ann." if old is not None else " · 24h —"
        return text, [s.ts_ms for _, s in live]

    @staticmethod
    def _basis(m: Metric, fresh: Mapping[str, Sequence[Any]], read: _Read, now: int) -> tuple[str, list[int]]:
        min_days = float(m.options["min_days_to_expiry"])
        futures = [(v, s) for v, ss in fresh.items() for s in ss if s.basis_annualized(now, min_days) is not None]
        if not futures:
            return "no data", []
        quarterly = [(v, s) for v, s in futures if _is_quarterly(s.expiry_ms)]
        pool, what = (quarterly, "front quarterly") if quarterly else (futures, "front future")
        day = min(s.expiry_ms // DAY_MS for _, s in pool)
        front = [(v, s) for v, s in pool if s.expiry_ms // DAY_MS == day]
        venue, s = max(front, key=lambda p: p[1].basis_annualized(now, min_days))
        ann = s.basis_annualized(now, min_days)
        date = dt.datetime.fromtimestamp(s.expiry_ms / 1000, dt.UTC).strftime("%Y-%m-%d")
        text = (
            f"{what} {date}: {fmt_pct(ann, 1)} ann. on {margin_label(venue, s.settle, s.inverse)} (highest of "
            f"{len(front)})"
        )
        then = [x for x in read.basis_24h.get(venue, ()) if x.split("|")[1] == s.symbol]
        if then:
            _ts, _sym, fut, idx, exp = then[-1].split("|")
            days = (int(exp) - (now - DAY_MS)) / DAY_MS
            old = (float(fut) - float(idx)) / float(idx) * 365 / days if days > 0 else None
            text += f" · 24h {fmt_pct(ann - old, 1)}" if old is not None else " · 24h —"
        else:
            text += " · 24h —"
        return text, [s.ts_ms for _, s in futures]

    @staticmethod
    def _oi(fresh: Mapping[str, Sequence[Any]], read: _Read, now: int) -> tuple[str, list[int]]:
        if not fresh:
            return "no data", []
        total = sum(s.usd for ss in fresh.values() for s in ss)
        text = f"{fmt_amount(total, prefix='$')} total on {len(fresh)} venues"
        both = [v for v in fresh if v in read.oi_24h]
        old = sum(read.oi_24h[v] for v in both)
        new = sum(s.usd for v in both for s in fresh[v])
        text += f" · 24h {(new - old) / old * 100:+.1f}%" if old > 0 else " · 24h —"
        return text, [s.ts_ms for ss in fresh.values() for s in ss]

    @staticmethod
    def _flows(latest: Mapping[str, Sequence[Any]], providers: Sequence[str], now: int) -> tuple[str, list[int]]:
        for provider in providers:
            rows = sorted(latest.get(provider, ()), key=lambda r: r.day)
            if not rows or rows[-1].netflow is None:
                continue
            last = rows[-1]
            week = rows[-7:]
            net7 = (
                sum(r.netflow for r in week if r.netflow is not None)
                if len(week) == 7 and all(r.netflow is not None for r in week)
                else None
            )
            text = (
                f"{last.netflow:+,.0f} {last.asset} on {last.day} · 7d "
                + (f"{net7:+,.0f}" if net7 is not None else "—")
                + f" ({provider})"
            )
            prev = rows[-2] if len(rows) > 1 else None
            text += f" · day before {prev.netflow:+,.0f}" if prev is not None and prev.netflow is not None else ""
            return text, [last.available_ms]
        return "no data", []

    @staticmethod
    def _liqs(m: Metric, asset: str, fresh: dict[str, list[Any]], now: int) -> tuple[str, list[int]]:
        if not fresh:
            return "no data yet", []
        line = m.summary_line(View(asset, fresh), now)
        return line.split(": ", 1)[-1] if line.startswith(m.name) else line, [
            s.ts_ms for ss in fresh.values() for s in ss
        ]

    @staticmethod
    def _gamma(m: Metric, fresh: Mapping[str, Sequence[Any]], read: _Read, now: int) -> tuple[str, list[int]]:
        chain = [o for ss in fresh.values() for o in ss]
        if not chain:
            return "no data", []
        _, total, spot, flip = chain_figures(chain, now, m.options["max_days"] or None)
        text = f"total {fmt_amount(total, signed=True, prefix='$')} per 1% · {flip_text(flip, spot)}"
        old = read.signal_24h.get("gamma")
        text += f" · 24h {fmt_amount(total - old, signed=True, prefix='$')}" if old is not None else " · 24h —"
        return text, [max(o.ts_ms for o in chain)]


def replace_id(part: Rule, owner: str) -> Rule:
    """A combined rule's condition, named after the rule it belongs to (the marker shows that id)."""
    from dataclasses import replace

    return replace(part, id=owner)
