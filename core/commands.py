"""The command core: one implementation of every chat command, returning neutral Replies.

Platforms bind the ``COMMANDS`` specs, parse the words after the command, call
``CommandCore.run`` and render the Reply. Nothing here talks to an exchange: every answer
comes from Redis, with the data's age.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from core.alert_commands import AlertCommands
from core.context import CONSOLE, ChatContext
from core.flows_command import flows_reply
from core.models import EIGHT_HOURS_S, BasisSample
from core.parsing import parse_asset
from core.render import VENUE_LABELS, fmt_age, fmt_duration, fmt_interval, fmt_pct, fmt_price, venue_label
from core.reply import Reply, Table, UserError
from core.store import BASIS, FUNDING, MarketStore


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One chat command: its name, argument hint, example and one-line help."""

    name: str
    args: str
    example: str
    summary: str


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("basis", "<asset>", "/basis btc", "dated futures vs index, annualized, per venue"),
    CommandSpec("funding", "<asset>", "/funding eth", "perpetual funding per venue, annualized"),
    CommandSpec("flows", "<asset> [Nd]", "/flows btc", "on-chain exchange inflow, outflow, net and balance"),
    CommandSpec("status", "", "/status", "health of every data source"),
    CommandSpec("subscribe", "<funding|basis|all> <asset>", "/subscribe funding btc", "receive that topic's alerts"),
    CommandSpec("unsubscribe", "<funding|basis|all> <asset>", "/unsubscribe all", "stop alerts"),
    CommandSpec("alerts", "", "/alerts", "what this chat receives: rules, thresholds, states"),
    CommandSpec("mute", "<duration|off>", "/mute 2h", "silence this chat's alerts for a while"),
    CommandSpec("threshold", "set|list|del|history", "/threshold set funding btc above 0.05%",
                "alert rules (admins); funding in % per 8h, basis in annualized %"),
    CommandSpec("admin", "add|remove|list <user id>", "/admin add 123456789", "bot admins (bot admins only)"),
    CommandSpec("help", "", "/help", "this list"),
)
ALERT_COMMANDS = ("subscribe", "unsubscribe", "alerts", "mute", "threshold", "admin")


@dataclass(frozen=True, slots=True)
class CoreSettings:
    """What the command core needs to know about the deployment."""

    venues: tuple[str, ...]
    providers: tuple[str, ...] = ()
    basis_min_days: float = 3.0
    stale_after_s: float = 180.0
    product_name: str = "basiswatch"


log = logging.getLogger(__name__)


def _ignore_ctx(fn: Callable[[list[str]], Awaitable[Reply]]) -> Callable[[list[str], ChatContext], Awaitable[Reply]]:
    async def call(args: list[str], ctx: ChatContext) -> Reply:
        return await fn(args)

    return call


def _now_ms() -> int:
    return int(time.time() * 1000)


class CommandCore:
    """Answers commands from the store alone."""

    def __init__(self, store: MarketStore, settings: CoreSettings, alerts: AlertCommands | None = None,
                 clock_ms: Callable[[], int] = _now_ms) -> None:
        self.store = store
        self.settings = settings
        self.clock_ms = clock_ms
        plain: dict[str, Callable[[list[str]], Awaitable[Reply]]] = {
            "basis": self.basis, "funding": self.funding, "status": self.status, "help": self.help,
            "start": self.help,
        }
        if settings.providers:
            plain["flows"] = self.flows
        self._handlers: dict[str, Callable[[list[str], ChatContext], Awaitable[Reply]]] = {
            name: _ignore_ctx(fn) for name, fn in plain.items()
        }
        if alerts is not None:
            self._handlers.update({name: getattr(alerts, name) for name in ALERT_COMMANDS})

    @property
    def names(self) -> list[str]:
        return list(self._handlers)

    async def run(self, name: str, args: list[str], ctx: ChatContext = CONSOLE) -> Reply:
        """Dispatch a command; user mistakes become one-line error replies."""
        handler = self._handlers.get(name.lower())
        if handler is None:
            return Reply.fail(f"Unknown command /{name[:30]}. Try /help for the list.")
        try:
            return await handler(args, ctx)
        except UserError as e:
            return Reply.fail(str(e))
        except Exception:  # a bug or a Redis outage: the user gets an answer, the operator the traceback
            log.exception("command /%s %s failed", name, " ".join(args)[:100])
            return Reply.fail("Sorry, that failed on our side; it has been logged. Try again in a moment.")

    # ---------------------------------------------------------------------------------
    async def _unknown_asset(self, asset: str, metric: str, command: str) -> UserError:
        known = await self.store.known_assets(metric)
        if not known:
            return UserError(f"No {metric} data yet for {asset}: the watchers have not reported. Try /status.")
        popular = sorted(known, key=lambda a: (-len(known[a]), a))[:8]
        return UserError(
            f"No venue lists {asset} ({metric}). Accepted: any listed base asset, "
            f"e.g. {', '.join(a.lower() for a in popular)} ({len(known)} known). Example: /{command} btc"
        )

    def _age_footer(self, ts: Sequence[int], now_ms: int, extra: str = "") -> str:
        ages = [(now_ms - t) / 1000 for t in ts]
        stale = sum(1 for a in ages if a > self.settings.stale_after_s)
        text = f"Data age {fmt_age(min(ages))}–{fmt_age(max(ages))}" if ages else "No data"
        if stale:
            text += f" · * = stale (older than {fmt_age(self.settings.stale_after_s)})"
        return text + extra

    def _mark(self, ts_ms: int, now_ms: int) -> str:
        return "*" if (now_ms - ts_ms) / 1000 > self.settings.stale_after_s else ""

    async def basis(self, args: list[str]) -> Reply:
        """/basis <asset>: every dated future against its index, annualized, grouped by expiry."""
        asset = parse_asset(args, "basis")
        view = await self.store.read_asset(asset, self.settings.venues)
        now = self.clock_ms()
        futures = [(v, s) for v, ss in view.basis.items() for s in ss if s.expiry_ms > now]
        perps = [(v, s) for v, ss in view.funding.items() for s in ss if s.premium_frac is not None]
        if not futures and not perps:
            raise await self._unknown_asset(asset, BASIS, "basis")
        blocks: list[str | Table] = []
        by_expiry: dict[int, list[tuple[str, BasisSample]]] = {}
        for v, s in futures:
            by_expiry.setdefault(s.expiry_ms, []).append((v, s))
        min_days = self.settings.basis_min_days
        for expiry_ms in sorted(by_expiry):
            rows = []
            group = sorted(by_expiry[expiry_ms], key=lambda p: venue_label(*p))
            days = group[0][1].days_to_expiry(now)
            for v, s in group:
                rows.append((
                    venue_label(v, s) + self._mark(s.ts_ms, now),
                    fmt_price(s.future_usd),
                    fmt_price(s.index_usd),
                    fmt_pct(s.basis_frac),
                    fmt_pct(s.basis_annualized(now, min_days), 1),
                ))
            date = time.strftime("%Y-%m-%d", time.gmtime(expiry_ms / 1000))
            note = f" (under {min_days:g}d: not annualized)" if days < min_days else ""
            blocks.append(Table(
                header=("venue", "future", "index", "basis", "ann."),
                rows=tuple(rows), align="lrrrr", caption=f"{date} · {days:.1f}d to expiry{note}",
            ))
        if not futures:
            blocks.append(f"No dated {asset} futures listed on the watched venues.")
        if perps:
            prem_rows = [
                (venue_label(v, s) + self._mark(s.ts_ms, now), fmt_price(s.mark_usd), fmt_price(s.index_usd),
                 fmt_pct(s.premium_frac, 3))
                for v, s in sorted(perps, key=lambda p: venue_label(*p))
            ]
            blocks.append(Table(header=("venue", "mark", "index", "premium"), rows=tuple(prem_rows), align="lrrr",
                                caption="Perpetual premium (mark vs index)"))
        n_venues = len({v for v, _ in futures})
        title = f"{asset} basis · {len(futures)} futures on {n_venues} venues"
        ts = [s.ts_ms for _, s in futures] + [s.ts_ms for _, s in perps]
        return Reply(title=title, blocks=tuple(blocks), footer=self._age_footer(ts, now))

    async def funding(self, args: list[str]) -> Reply:
        """/funding <asset>: current and predicted funding per venue, per interval and annualized."""
        asset = parse_asset(args, "funding", "eth")
        view = await self.store.read_asset(asset, self.settings.venues, basis=False)
        now = self.clock_ms()
        perps = sorted(((v, s) for v, ss in view.funding.items() for s in ss), key=lambda p: venue_label(*p))
        if not perps:
            raise await self._unknown_asset(asset, FUNDING, "funding")
        rows = []
        for v, s in perps:
            nxt = fmt_duration((s.next_funding_ms - now) / 1000) if s.next_funding_ms and s.next_funding_ms > now \
                else "—"
            rows.append((
                venue_label(v, s) + self._mark(s.ts_ms, now),
                fmt_pct(s.rate_per_interval, 4),
                fmt_interval(s.interval_s),
                fmt_pct(s.rate_annualized, 1),
                nxt,
                fmt_pct(s.predicted_rate, 4) if s.predicted_rate is not None else "",
            ))
        has_pred = any(r[5] for r in rows)
        header = ("venue", "rate", "int", "ann.", "next") + (("pred.",) if has_pred else ())
        table = Table(header=header, rows=tuple(r if has_pred else r[:5] for r in rows),
                      align="lrrrrr"[: len(header)])
        per8h = [s.rate_per_interval * EIGHT_HOURS_S / s.interval_s for _, s in perps]
        ann = [s.rate_annualized for _, s in perps]
        summary = (
            f"Mean {fmt_pct(statistics.fmean(per8h), 4)}/8h ({fmt_pct(statistics.fmean(ann), 1)} ann.) · "
            f"range {fmt_pct(min(per8h), 4)} to {fmt_pct(max(per8h), 4)} per 8h"
        )
        title = f"{asset} funding · {len(perps)} perps on {len({v for v, _ in perps})} venues"
        footer = self._age_footer([s.ts_ms for _, s in perps], now,
                                  " · rate per interval; ann. = rate × intervals per year")
        return Reply(title=title, blocks=(table, summary), footer=footer)

    async def flows(self, args: list[str]) -> Reply:
        """/flows <asset> [Nd]: on-chain exchange flows per provider; with 14d, the daily series."""
        async def index_usd(asset: str) -> float | None:  # only read when a provider gives no price
            view = await self.store.read_asset(asset, self.settings.venues, basis=False)
            idx = sorted(s.index_usd for ss in view.funding.values() for s in ss if s.index_usd)
            return idx[len(idx) // 2] if idx else None

        return await flows_reply(self.store, self.settings.providers, args, index_usd)

    async def status(self, args: list[str]) -> Reply:
        """/status: each source's last success, data age, last error and request count."""
        health = await self.store.read_health((*self.settings.venues, *self.settings.providers))
        now = self.clock_ms()
        rows = []
        errors = []
        for h in health:
            state = "ok" if h.last_ok_ms and h.consecutive_failures == 0 else "down" if h.consecutive_failures \
                else "waiting"
            rows.append((
                VENUE_LABELS.get(h.name, h.name),
                state,
                fmt_age((now - h.last_ok_ms) / 1000) if h.last_ok_ms else "never",
                str(h.requests),
                str(h.errors),
            ))
            if h.last_error and h.last_error_ms:
                errors.append(f"{h.name}: {h.last_error} ({fmt_age((now - h.last_error_ms) / 1000)} ago)")
        table = Table(header=("source", "state", "last ok", "reqs", "errs"), rows=tuple(rows), align="llrrr")
        blocks: list[str | Table] = [table]
        if errors:
            blocks.append("Last errors:\n" + "\n".join(errors))
        return Reply(title="Data sources", blocks=tuple(blocks),
                     footer="'last ok' is the age of the newest successful poll")

    async def help(self, args: list[str]) -> Reply:
        """/help: the command list with one example each."""
        lines = [f"/{c.name} {c.args}".rstrip() + f" — {c.summary}. e.g. {c.example}" for c in COMMANDS
                 if c.name in self._handlers]
        return Reply(
            title=f"{self.settings.product_name}: derivatives market structure in chat",
            blocks=("\n".join(lines), "Assets are case-insensitive: btc, ETH, sol, … any base asset the venues list."),
        )
