"""Chat commands of the alert side: subscriptions, thresholds, admins, mute."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from core.alerts.engine import RuleState
from core.alerts.rules import Rule, fmt_duration_s, parse_duration, parse_rule, usage
from core.alerts.store import AlertStore
from core.context import ChatContext
from core.metrics.registry import Registry
from core.parsing import ASSET_RE
from core.quotas import Quotas
from core.reply import Reply, Table, UserError

MAX_CHAT_RULES = 50
ALERTS_PAGE_ROWS = 20  # rules per /alerts page: one page always fits one message
_STATE_TEXT = {"a": "armed", "f": "fired, waiting to re-arm", "+": "above", "-": "below", "?": "waiting for data"}


@dataclass(frozen=True, slots=True)
class AlertCommandSettings:
    sources: dict[str, tuple[str, ...]]  # metric -> the venues (or providers) a rule may name
    bot_admins: dict[str, frozenset[str]] = field(default_factory=dict)  # platform -> user ids from config
    default_cooldown_s: int = 3600


def _role_of(entry: dict[str, object]) -> str:
    """What a non-admin may see of who changed a rule: the kind of admin, not the person."""
    return "bot admin" if entry.get("scope") == "global" else "chat admin"


class AlertCommands:
    """The alert commands; the store is shared with evaluation and delivery."""

    def __init__(
        self,
        store: AlertStore,
        settings: AlertCommandSettings,
        registry: Registry,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        quotas: Quotas | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.registry = registry
        self.clock_ms = clock_ms
        self.quotas = quotas  # None: any well-formed asset, MAX_CHAT_RULES rules (tests of the grammar alone)
        self.metrics = tuple(m for m in registry.names if settings.sources.get(m))  # the topics one can subscribe

    def _topics(self, args: list[str], command: str) -> list[str]:
        hint = f"Usage: /{command} <{'|'.join(self.metrics)}|all> <asset>, e.g. /{command} funding btc"
        if len(args) != 2:
            raise UserError(hint)
        metric, asset = args[0].lower(), args[1].upper()
        if metric not in (*self.metrics, "all"):
            raise UserError(f"Unknown metric '{args[0][:20]}': accepted are {', '.join(self.metrics)} or all. {hint}")
        if not ASSET_RE.match(asset):
            raise UserError(f"'{args[1][:20]}' is not an asset ticker. {hint}")
        return [f"{m}:{asset}" for m in (self.metrics if metric == "all" else (metric,))]

    async def is_bot_admin(self, ctx: ChatContext) -> bool:
        if ctx.platform == "console":
            return True  # whoever runs the process owns the bot
        uid = str(ctx.user_id)
        if uid in self.settings.bot_admins.get(ctx.platform, frozenset()):
            return True
        return uid in await self.store.admins(ctx.platform)

    async def _can_manage_chat(self, ctx: ChatContext) -> bool:
        return not ctx.is_group or await ctx.chat_admin()

    async def _may_manage_alerts(self, ctx: ChatContext) -> bool:
        """In a group, only its administrators (and bot admins) change what it receives."""
        return await self._can_manage_chat(ctx) or await self.is_bot_admin(ctx)

    # subscriptions --------------------------------------------------------------------
    async def subscribe(self, args: list[str], ctx: ChatContext) -> Reply:
        """/subscribe <funding|basis|all> <asset>: this chat receives that topic's alerts (group admins in groups)."""
        if not await self._may_manage_alerts(ctx):
            return Reply.fail(
                "Only this group's administrators can subscribe it to alerts; /alerts shows what it receives."
            )
        topics = self._topics(args, "subscribe")
        if self.quotas is not None:
            topics = await self.quotas.listed_topics(topics)
            self.quotas.check_subscriptions(await self.store.topics_of(ctx.target), topics)
        await self.store.subscribe(ctx.target, topics)
        names = ", ".join(t.replace(":", " ") for t in topics)
        where = "This group" if ctx.is_group else "You"
        return Reply(
            title=f"{where} will receive {names} alerts.",
            blocks=("See the rules with /alerts; silence for a while with /mute 2h.",),
        )

    async def unsubscribe(self, args: list[str], ctx: ChatContext) -> Reply:
        """/unsubscribe <funding|basis|all> <asset>, or /unsubscribe all (group admins in groups)."""
        if not await self._may_manage_alerts(ctx):
            return Reply.fail("Only this group's administrators can unsubscribe it; /alerts shows what it receives.")
        if [a.lower() for a in args] == ["all"]:
            removed = await self.store.unsubscribe(ctx.target)
        else:
            removed = await self.store.unsubscribe(ctx.target, self._topics(args, "unsubscribe"))
        if not removed:
            return Reply.fail("This chat was not subscribed to that. /alerts shows what it receives.")
        return Reply(title=f"Unsubscribed from {', '.join(t.replace(':', ' ') for t in removed)}.")

    async def alerts(self, args: list[str], ctx: ChatContext) -> Reply:
        """/alerts [page]: what this chat receives: topics, each rule, its threshold and state."""
        if len(args) > 1 or (args and not (args[0].isdigit() and 1 <= int(args[0]) <= 9999)):
            raise UserError("Usage: /alerts, or /alerts <page> for a later page, e.g. /alerts 2")
        page = int(args[0]) if args else 1
        topics = await self.store.topics_of(ctx.target)
        mine, states = await self.store.rules_in(
            [*(self.store.keys.rules_topic(t) for t in topics), self.store.keys.rules_target(ctx.target)]
        )
        blocks: list[str | Table] = []
        muted = await self.store.mute_left_s(ctx.target)
        if muted:
            blocks.append(f"Muted for another {fmt_duration_s(max(60, muted // 60 * 60))} (/mute off to resume).")
        if not topics and not mine:
            return Reply(
                title="This chat receives no alerts.",
                blocks=("Subscribe with /subscribe funding btc or /subscribe all eth.",),
            )
        if topics:
            listed = ", ".join(t.replace(":", " ") for t in topics)
            if len(listed) > 600:  # hundreds of topics: the page stays readable
                listed = f"{listed[:600]}… ({len(topics)} topics)"
            blocks.append("Subscribed: " + listed)
        if not mine:
            blocks.append("No rules for these topics yet: an admin adds them with /threshold set.")
            return Reply(title="Alerts for this chat", blocks=tuple(blocks))
        table = self._rules_table(mine, states)
        pages = max(1, -(-len(table.rows) // ALERTS_PAGE_ROWS))
        page = min(page, pages)
        rows = table.rows[(page - 1) * ALERTS_PAGE_ROWS : page * ALERTS_PAGE_ROWS]
        blocks.append(Table(header=table.header, rows=rows, align=table.align))
        if pages == 1:
            return Reply(title="Alerts for this chat", blocks=tuple(blocks))
        more = f"alerts {page + 1}" if page < pages else None
        footer = f"Page {page} of {pages} ({len(table.rows)} rules)" + (f" · next: /{more}" if more else "")
        return Reply(
            title=f"Alerts for this chat · page {page}/{pages}", blocks=tuple(blocks), footer=footer, next_page=more
        )

    @staticmethod
    def _rules_table(rules: list[Rule], states: dict[str, RuleState]) -> Table:
        rows = []
        for r in sorted(rules, key=lambda x: int(x.id[1:]) if x.id[1:].isdigit() else 0):
            st = states.get(r.id)
            mode = st.mode if st else ("?" if r.kind == "crosses" else "a")
            rows.append((r.id, "global" if r.scope == "global" else "chat", r.describe(), _STATE_TEXT.get(mode, mode)))
        return Table(header=("id", "scope", "rule", "state"), rows=tuple(rows), align="llll")

    async def mute(self, args: list[str], ctx: ChatContext) -> Reply:
        """/mute <duration> (e.g. 2h) silences this chat's alerts for a while; /mute off resumes."""
        if not await self._can_manage_chat(ctx) and not await self.is_bot_admin(ctx):
            return Reply.fail("Only this group's administrators can mute its alerts.")
        if len(args) != 1:
            raise UserError("Usage: /mute <duration>, e.g. /mute 2h or /mute 1d; /mute off to resume")
        if args[0].lower() in ("off", "0"):
            await self.store.mute(ctx.target, 0)
            return Reply(title="Alerts resumed for this chat.")
        seconds = parse_duration(args[0], "mute", lo_s=60, hi_s=30 * 86_400)
        await self.store.mute(ctx.target, seconds)
        return Reply(title=f"Muted for {fmt_duration_s(seconds)}. /mute off resumes sooner.")

    # thresholds -----------------------------------------------------------------------
    async def threshold(self, args: list[str], ctx: ChatContext) -> Reply:
        """/threshold set|list|del|history: alert rules (admins)."""
        sub = args[0].lower() if args else ""
        if sub == "set":
            return await self._set(args[1:], ctx)
        if sub == "list":
            visible, states = await self.store.rules_in(
                [self.store.keys.rules_global(), self.store.keys.rules_target(ctx.target)]
            )
            if not visible:
                return Reply(title="No alert rules yet.", blocks=(usage(self.registry),))
            return Reply(
                title=f"{len(visible)} alert rule(s)",
                blocks=(self._rules_table(visible, states),),
                footer="Delete with /threshold del <id>",
            )
        if sub in ("del", "delete", "rm"):
            return await self._delete(args[1:], ctx)
        if sub == "history":
            entries = [
                e for e in await self.store.rule_log(200) if e.get("scope") == "global" or e.get("target") == ctx.target
            ][:15]
            if not entries:
                return Reply(title="No rule changes yet.")
            # who changed a rule identifies an admin: shown to bot admins only
            show_who = await self.is_bot_admin(ctx)
            rows = tuple(
                (
                    time.strftime("%m-%d %H:%M", time.gmtime(e["ts_ms"] / 1000)),
                    e["who"] if show_who or e["who"] == "config" else _role_of(e),
                    e["action"],
                    f"{e['rule']}: {e['text']}",
                )
                for e in entries
            )
            return Reply(
                title="Rule changes, newest first",
                blocks=(Table(header=("when (UTC)", "who", "action", "rule"), rows=rows, align="llll"),),
            )
        raise UserError(
            "Usage: /threshold set ... | /threshold list | /threshold del <id> | /threshold history. "
            + usage(self.registry)
        )

    async def _refusal(self) -> Reply:
        return Reply.fail(
            "Only bot admins (configured, or added with /admin add) can set global alert rules, "
            "and only a group's administrators can set rules for their group."
        )

    async def _set(self, args: list[str], ctx: ChatContext) -> Reply:
        bot_admin = await self.is_bot_admin(ctx)
        if not bot_admin and not await self._can_manage_chat(ctx):
            return await self._refusal()
        scope, target = ("global", "") if bot_admin else ("chat", ctx.target)
        now = self.clock_ms()
        probe = parse_rule(
            args,
            registry=self.registry,
            sources=self.settings.sources,
            rule_id="r?",
            default_cooldown_s=self.settings.default_cooldown_s,
            now_ms=now,
            created_by=ctx.who,
            scope=scope,
            target=target,
        )  # validates first
        if self.quotas is not None:
            await self.quotas.check_asset(probe.metric, probe.asset)
            if scope == "chat":
                self.quotas.check_rules(await self.store.chat_rule_count(target))
        elif scope == "chat" and await self.store.chat_rule_count(target) >= MAX_CHAT_RULES:
            raise UserError(f"This chat has {MAX_CHAT_RULES} rules already: delete some with /threshold del")
        rule = replace(probe, id=await self.store.next_rule_id())
        await self.store.save_rule(rule, who=ctx.who, action="set", now_ms=now)
        if scope == "global":
            subs = await self.store.subscribers(rule.topic)
            note = f"Global: every chat subscribed to {rule.metric} {rule.asset} receives it ({len(subs)} now)."
        else:
            note = "Only this chat receives it."
        subscribed = rule.topic in await self.store.topics_of(ctx.target)
        hint = (
            ""
            if subscribed or scope == "chat"
            else f" This chat is not subscribed: /subscribe {rule.metric} {rule.asset.lower()}"
        )
        return Reply(title=f"Rule {rule.id} set: {rule.describe()}", blocks=(note + hint,))

    async def _delete(self, args: list[str], ctx: ChatContext) -> Reply:
        if len(args) != 1:
            raise UserError("Usage: /threshold del <id>, e.g. /threshold del r3 (ids in /threshold list)")
        rule = await self.store.get_rule(args[0].lower())
        if rule is None:
            raise UserError(f"No rule '{args[0][:20]}': /threshold list shows the ids")
        bot_admin = await self.is_bot_admin(ctx)
        allowed = bot_admin or (rule.target == ctx.target and await self._can_manage_chat(ctx))
        if not allowed:
            return await self._refusal()
        await self.store.delete_rule(rule, who=ctx.who, now_ms=self.clock_ms())
        return Reply(title=f"Rule {rule.id} deleted: {rule.describe()}")

    # admins ---------------------------------------------------------------------------
    async def admin(self, args: list[str], ctx: ChatContext) -> Reply:
        """/admin add|remove <user id>, /admin list: bot admins (bot admins only)."""
        if not await self.is_bot_admin(ctx):
            return Reply.fail("Only bot admins can manage bot admins.")
        sub = args[0].lower() if args else ""
        platform = "tg" if ctx.platform == "console" else ctx.platform
        if sub == "list":
            configured = sorted(self.settings.bot_admins.get(platform, frozenset()))
            added = sorted(await self.store.admins(platform) - set(configured))
            return Reply(
                title="Bot admins",
                blocks=(
                    f"From config: {', '.join(configured) or 'none'}\nAdded by command: {', '.join(added) or 'none'}",
                ),
            )
        if sub in ("add", "remove") and len(args) == 2 and args[1].isdigit():
            if sub == "add":
                await self.store.add_admin(platform, args[1])
                return Reply(title=f"User {args[1]} is now a bot admin.")
            if args[1] in self.settings.bot_admins.get(platform, frozenset()):
                raise UserError(f"User {args[1]} is an admin by config; remove them from the config file")
            if not await self.store.remove_admin(platform, args[1]):
                raise UserError(f"User {args[1]} was not a bot admin")
            return Reply(title=f"User {args[1]} is no longer a bot admin.")
        raise UserError(
            "Usage: /admin add <user id> | /admin remove <user id> | /admin list "
            "(a user's numeric id, e.g. /admin add 123456789)"
        )
