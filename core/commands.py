"""The command core: one implementation of every chat command, returning neutral Replies.

Platforms bind the ``COMMANDS`` specs, parse the words after the command, call
``CommandCore.run`` and render the Reply. Nothing here talks to an exchange: every answer
comes from Redis, with the data's age.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from core.alert_commands import AlertCommands
from core.charts.command import ChartCommands
from core.context import CONSOLE, ChatContext
from core.history.backtest import Backtester
from core.metrics.base import Metric, Query
from core.metrics.registry import Registry
from core.render import VENUE_LABELS, fmt_age
from core.reply import Reply, Table, UserError
from core.store import MarketStore
from core.streams import StreamHealthStore, status_blocks


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One chat command: its name, argument hint, example and one-line help."""

    name: str
    args: str
    example: str
    summary: str


def command_specs(registry: Registry, metrics: Sequence[str]) -> tuple[CommandSpec, ...]:
    """The command table: one command per metric in ``metrics``, then the status and alert commands."""
    topics = "|".join((*metrics, "all"))
    return (
        *(CommandSpec(m.name, m.args, m.example, m.summary) for m in registry if m.command and m.name in metrics),
        CommandSpec("status", "", "/status", "health of every data source"),
        CommandSpec(
            "subscribe",
            f"<{topics}> <asset>",
            "/subscribe funding btc",
            "receive that topic's alerts (in groups: admins)",
        ),
        CommandSpec("unsubscribe", f"<{topics}> <asset>", "/unsubscribe all", "stop alerts (in groups: admins)"),
        CommandSpec("alerts", "[page]", "/alerts", "what this chat receives: rules, thresholds, states"),
        CommandSpec("mute", "<duration|off>", "/mute 2h", "silence this chat's alerts for a while (in groups: admins)"),
        CommandSpec(
            "threshold",
            "set|list|del|history",
            "/threshold set funding btc above 0.05%",
            "alert rules (admins); funding in % per 8h, basis in annualized %, oi in USD, gamma in USD "
            "per 1%; combine factors with all(rule; rule) or any(rule; rule)",
        ),
        CommandSpec(
            "backtest",
            "<rule> [period]",
            "/backtest funding btc above 0.1% 90d",
            "how often and when a rule would have fired on stored history",
        ),
        CommandSpec("admin", "add|remove|list <user id>", "/admin add 123456789", "bot admins (bot admins only)"),
        CommandSpec("help", "", "/help", "this list"),
    )


ALERT_COMMANDS = ("subscribe", "unsubscribe", "alerts", "mute", "threshold", "admin")


@dataclass(frozen=True, slots=True)
class CoreSettings:
    """What the command core needs to know about the deployment."""

    venues: tuple[str, ...]
    providers: tuple[str, ...] = ()
    sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # metric -> its venues or providers
    stale_after_s: float = 180.0
    product_name: str = "basiswatch"
    # venue -> what it serves and what it does not ('funding, oi; no basis (no dated futures listed)')
    venue_notes: Mapping[str, str] = field(default_factory=dict)


log = logging.getLogger(__name__)


def _ignore_ctx(fn: Callable[[list[str]], Awaitable[Reply]]) -> Callable[[list[str], ChatContext], Awaitable[Reply]]:
    async def call(args: list[str], ctx: ChatContext) -> Reply:
        return await fn(args)

    return call


Handler = Callable[[list[str], ChatContext], Awaitable[Reply]]


def _with_sub(handler: Handler, word: str, sub: Handler) -> Handler:
    """``/<command> <word> ...`` goes to ``sub``; everything else to the command's own handler."""

    async def call(args: list[str], ctx: ChatContext) -> Reply:
        if args and args[0].lower() == word:
            return await sub(args[1:], ctx)
        return await handler(args, ctx)

    return call


def _now_ms() -> int:
    return int(time.time() * 1000)


class CommandCore:
    """Answers commands from the store alone."""

    def __init__(
        self,
        store: MarketStore,
        settings: CoreSettings,
        registry: Registry,
        alerts: AlertCommands | None = None,
        clock_ms: Callable[[], int] = _now_ms,
        charts: ChartCommands | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.registry = registry
        self.clock_ms = clock_ms
        served = tuple(m.name for m in registry if settings.sources.get(m.name) or m.overview)
        self.specs = command_specs(registry, served)
        handlers: dict[str, Callable[[list[str], ChatContext], Awaitable[Reply]]] = {
            m.name: _ignore_ctx(self._metric_reply(m)) for m in registry if m.command and m.name in served
        }
        handlers |= {
            "status": _ignore_ctx(self.status),
            "help": _ignore_ctx(self.help),
            "start": _ignore_ctx(self.help),
        }
        if alerts is not None:
            handlers.update({name: getattr(alerts, name) for name in ALERT_COMMANDS})
            handlers["backtest"] = Backtester(
                store,
                registry,
                settings.sources,
                clock_ms=clock_ms,
                default_cooldown_s=alerts.settings.default_cooldown_s,
            ).backtest
        self.alerts = alerts
        self.charts = charts
        if charts is not None:
            handlers["chart"] = charts.chart
            if "alerts" in handlers:
                handlers["alerts"] = _with_sub(handlers["alerts"], "charts", charts.alerts_charts)
            n = sum(1 for c in self.specs if c.name in served)
            spec = CommandSpec(
                "chart",
                "<metric> <asset> [window]",
                "/chart funding btc 7d",
                f"a chart of {', '.join(charts.catalog.metrics)} over a window (see /chart)",
            )
            self.specs = (*self.specs[:n], spec, *self.specs[n:])
        self._handlers = handlers

    def _metric_reply(self, m: Metric) -> Callable[[list[str]], Awaitable[Reply]]:
        q = Query(
            store=self.store,
            sources=self.settings.sources.get(m.name, ()),
            clock_ms=self.clock_ms,
            stale_after_s=self.settings.stale_after_s,
            registry=self.registry,
            venues=self.settings.venues,
            all_sources=self.settings.sources,
        )

        async def reply(args: list[str]) -> Reply:
            return await m.reply(q, args)

        return reply

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

    async def status(self, args: list[str]) -> Reply:
        """/status: each source's state, data age, last error, request count, and any failing part."""
        health = await self.store.read_health((*self.settings.venues, *self.settings.providers))
        now = self.clock_ms()
        rows = []
        errors = []
        for h in health:
            state = "down" if h.down else "degraded" if h.degraded else "ok" if h.last_ok_ms else "waiting"
            rows.append(
                (
                    VENUE_LABELS.get(h.name, h.name),
                    state,
                    fmt_age((now - h.last_ok_ms) / 1000) if h.last_ok_ms else "never",
                    str(h.requests),
                    str(h.errors),
                )
            )
            for part in h.degraded:
                ep = h.endpoints[part]
                age = fmt_age((now - ep.error_ms) / 1000) if ep.error_ms else "?"
                errors.append(f"{h.name} {part}: {ep.error} ({age} ago; the rest of {h.name} works)")
            if h.last_error and h.last_error_ms and (h.down or not h.degraded):
                errors.append(f"{h.name}: {h.last_error} ({fmt_age((now - h.last_error_ms) / 1000)} ago)")
        table = Table(header=("source", "state", "last ok", "reqs", "errs"), rows=tuple(rows), align="llrrr")
        blocks: list[str | Table] = [table]
        if errors:
            blocks.append("Last errors:\n" + "\n".join(errors))
        blocks += status_blocks(await StreamHealthStore(self.store.redis, self.store.keys).read_all(), now)
        if self.settings.venue_notes:
            blocks.append(
                "What each venue serves:\n"
                + "\n".join(f"{VENUE_LABELS.get(v, v)}: {note}" for v, note in self.settings.venue_notes.items())
            )
        return Reply(
            title="Data sources",
            blocks=tuple(blocks),
            footer="'last ok' is the age of the newest successful poll; degraded: one part of the "
            "source fails while the rest works",
        )

    async def help(self, args: list[str]) -> Reply:
        """/help: the command list with one example each."""
        lines = [
            f"/{c.name} {c.args}".rstrip() + f" — {c.summary}. e.g. {c.example}"
            for c in self.specs
            if c.name in self._handlers
        ]
        blocks = ["\n".join(lines), "Assets are case-insensitive: btc, ETH, sol, … any base asset the venues list."]
        if "threshold" in self._handlers:
            blocks.append(
                "Rules that combine factors: /threshold set all(basis btc above 40%; funding btc above "
                "0.05%; flows btc netflow above 3000) fires once when every condition holds at the same "
                "time; any(...) when the first one does. Each condition keeps its own hysteresis; add "
                "cooldown 4h after the parenthesis."
            )
        return Reply(title=f"{self.settings.product_name}: derivatives market structure in chat", blocks=tuple(blocks))
