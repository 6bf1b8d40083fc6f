"""Discord front end: binds the command core to discord.py slash commands, manual lifecycle.

Thin like the Telegram adapter: options -> the core's argument words -> ``CommandCore.run`` ->
embeds. Rights are the core's: bot admins by id, and in a guild the members whose permissions in
the channel include Manage Server (read from ``interaction.permissions``, no extra request).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

import discord
from discord import app_commands
from redis.asyncio import Redis

from core.commands import CommandCore
from core.context import ChatContext
from core.pacer import DISCORD_LIMITS, Limits, Pacer, SharedSlots
from core.reply import Reply
from handlers.discord import components
from handlers.discord.commands import CHOICES_LIMIT, Option, SlashDef, group_description, slash_definitions
from handlers.discord.media import image_message
from handlers.discord.render import render_embeds

log = logging.getLogger(__name__)

Choice = app_commands.Choice


class SyncState(Protocol):
    """Where the hash of the last synced command definitions is kept."""

    async def get(self) -> str | None: ...

    async def set(self, value: str) -> None: ...


class RedisSyncState:
    """The synced-definitions hash in one Redis string key."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis = redis
        self.key = key

    async def get(self) -> str | None:
        raw = await self.redis.get(self.key)
        return raw.decode() if isinstance(raw, bytes) else raw

    async def set(self, value: str) -> None:
        await self.redis.set(self.key, value)


class _Client(discord.Client):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.ready_event = asyncio.Event()

    async def on_ready(self) -> None:
        self.ready_event.set()


Callback = Callable[..., Coroutine[Any, Any, None]]
Completer = Callable[[discord.Interaction[Any], str], Coroutine[Any, Any, list[Choice[str]]]]


class DiscordFrontend:
    """Answers slash commands in guild channels and DMs; the caller owns start/stop."""

    def __init__(
        self,
        core: CommandCore,
        *,
        token: str,
        application_id: int | None = None,
        guild_ids: Sequence[int] | None = None,
        sync_state: SyncState | None = None,
        guild_ready_timeout_s: float = 2.0,
        defer_after_s: float = 2.0,
        proxy: str | None = None,
        limits: Limits = DISCORD_LIMITS,
        shared: SharedSlots | None = None,
    ) -> None:
        self.core = core
        # the token's one pacer: interaction answers (replies, first) and channel alerts (per-channel lanes)
        self.pacer = Pacer(limits, shared=shared)
        self._token = token
        self.guild_ids = tuple(guild_ids or ())
        self.sync_state = sync_state
        self.defer_after_s = defer_after_s
        intents = discord.Intents.none()
        intents.guilds = True  # interactions need no intent; guilds keeps the channel cache sane
        self.client = _Client(
            intents=intents,
            application_id=application_id,
            proxy=proxy,
            guild_ready_timeout=guild_ready_timeout_s,
            max_ratelimit_timeout=30.0,
        )
        self.tree: app_commands.CommandTree[_Client] = app_commands.CommandTree(self.client)
        self.tree.error(self._on_tree_error)
        self.metrics = tuple(m for m in core.registry.names if core.settings.sources.get(m))
        self.definitions = slash_definitions(core.specs, core.names, core.registry, self.metrics, core.settings.venues)
        self._register()
        # alert buttons: Mute 1h, Unsubscribe, Chart
        components.register(self.client, core, self.context_of, self.pacer)
        self._task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- command tree
    def _register(self) -> None:
        guilds = [discord.Object(g) for g in self.guild_ids]

        def add(cmd: app_commands.Command[Any, ..., None] | app_commands.Group) -> None:
            if guilds:
                self.tree.add_command(cmd, guilds=guilds)
            else:
                self.tree.add_command(cmd)

        groups: dict[str, app_commands.Group] = {}
        for d in self.definitions:
            cmd = self._command(d)
            if len(d.path) == 1:
                add(cmd)
                continue
            group = groups.get(d.command)
            if group is None:
                description = group_description(self.core.specs, d.command)
                group = groups[d.command] = app_commands.Group(name=d.command, description=description)
                add(group)
            group.add_command(cmd)

    def _command(self, d: SlashDef) -> app_commands.Command[Any, ..., None]:
        async def callback(interaction: discord.Interaction, **values: str | None) -> None:
            await self._run(d, interaction, values)

        params = [
            inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction)
        ]
        for o in d.options:
            params.append(
                inspect.Parameter(
                    o.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=str if o.required else str | None,
                    default=inspect.Parameter.empty if o.required else None,
                )
            )
        # discord.py reads a command's options from its callback's signature: give the one generic
        # callback the signature of this definition (it is then called with those keyword arguments)
        callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        fn: Callback = app_commands.describe(**{o.name: o.description for o in d.options})(callback)
        choices = {o.name: [Choice(name=n, value=v) for n, v in o.choices] for o in d.options if o.choices}
        if choices:
            fn = app_commands.choices(**choices)(fn)
        completers = {o.name: self._asset_completer(o) for o in d.options if o.assets}
        if completers:
            fn = app_commands.autocomplete(**completers)(fn)
        return app_commands.Command(name=d.path[-1], description=d.description, callback=fn)

    def _asset_completer(self, option: Option) -> Completer:
        async def complete(interaction: discord.Interaction[Any], current: str) -> list[Choice[str]]:
            chosen = interaction.namespace.metric
            metrics = (chosen,) if chosen in self.metrics else option.assets
            try:
                known: dict[str, set[str]] = {}
                for m in metrics:
                    for asset, venues in (await self.core.store.known_assets(m)).items():
                        known.setdefault(asset, set()).update(venues)
            except Exception:  # a slow or failed lookup must not break typing the command
                log.exception("discord: asset autocomplete failed")
                return []
            q = (current or "").strip().upper()
            hits = sorted((a for a in known if q in a), key=lambda a: (not a.startswith(q), -len(known[a]), a))
            return [Choice(name=a, value=a) for a in hits[:CHOICES_LIMIT]]

        return complete

    def command_payloads(self) -> dict[str, Any]:
        """What a sync sends: the global commands and each guild's, as Discord JSON."""
        return {
            "application_id": self.client.application_id,
            "global": [c.to_dict(self.tree) for c in self.tree.get_commands()],
            "guilds": {
                str(g): [c.to_dict(self.tree) for c in self.tree.get_commands(guild=discord.Object(g))]
                for g in self.guild_ids
            },
        }

    def definition_hash(self) -> str:
        raw = json.dumps(self.command_payloads(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(raw.encode()).hexdigest()

    async def sync_commands(self, *, force: bool = False) -> bool:
        """Upload the commands unless the stored hash says Discord has these already; True when synced."""
        digest = self.definition_hash()
        if not force and self.sync_state is not None and await self.sync_state.get() == digest:
            log.info("discord: slash commands unchanged, not synced")
            return False
        await self.tree.sync()  # with guild_ids this clears global commands left from a global setup
        for g in self.guild_ids:
            await self.tree.sync(guild=discord.Object(g))
        if self.sync_state is not None:
            await self.sync_state.set(digest)
        log.info("discord: %d slash commands synced", len(self.definitions))
        return True

    # ---------------------------------------------------------------- interactions
    def context_of(self, interaction: discord.Interaction) -> ChatContext:
        """Who asks from where; chat admin in a guild = Manage Server (or Administrator) here."""
        is_group = interaction.guild_id is not None
        perms = interaction.permissions

        async def chat_admin() -> bool:
            return not is_group or perms.manage_guild or perms.administrator

        user = interaction.user
        return ChatContext(
            platform="dc",
            chat_id=interaction.channel_id or 0,
            user_id=user.id,
            user_name=user.name,
            is_group=is_group,
            chat_admin=chat_admin,
        )

    async def _run(self, d: SlashDef, interaction: discord.Interaction, values: dict[str, str | None]) -> None:
        task = asyncio.ensure_future(self.core.run(d.command, d.args(values), self.context_of(interaction)))
        try:
            try:
                reply = await asyncio.wait_for(asyncio.shield(task), self.defer_after_s)
            except TimeoutError:  # Discord wants an answer within 3 s: say "thinking", then answer
                await interaction.response.defer(thinking=True)
                reply = await task
        except Exception:
            log.exception("discord: /%s failed", " ".join(d.path))
            reply = Reply.fail("Something went wrong answering that; please try again in a minute.")
        await self.respond(interaction, reply)

    async def respond(self, interaction: discord.Interaction, reply: Reply) -> None:
        """Send a reply; errors and refusals only to the user who asked (ephemeral)."""
        if reply.image is not None:  # a chart: one embed showing the attached PNG, paced like any answer
            embed, file = image_message(reply.image)
            await self.pacer.acquire(None)
            if not interaction.response.is_done():
                await interaction.response.send_message(embed=embed, file=file)
            else:
                await interaction.followup.send(embed=embed, file=file)
            return
        for embeds in render_embeds(reply):
            # interaction answers go to the interaction's webhook, not the channel's bucket: global rate only
            await self.pacer.acquire(None)
            if not interaction.response.is_done():
                await interaction.response.send_message(embeds=embeds, ephemeral=reply.error)
            else:
                await interaction.followup.send(embeds=embeds, ephemeral=reply.error)

    async def _on_tree_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch):
            text = "This command changed or no longer exists; Discord will update the list shortly. Try /help."
        else:
            log.error("discord: command error: %s", error, exc_info=error)
            text = "Something went wrong answering that; please try again in a minute."
        with contextlib.suppress(discord.HTTPException):
            await self.respond(interaction, Reply.fail(text))

    # ---------------------------------------------------------------- lifecycle
    async def start(self, ready_timeout_s: float = 60.0, *, connect: bool = True) -> None:
        """Log in, connect the gateway in a background task, wait for READY, sync commands if changed.

        ``connect=False``: log in only (sending works over REST); ``connect_gateway`` later.
        """
        try:
            await self.client.login(self._token)
        except BaseException:
            await self.stop()
            raise
        if connect:
            await self.connect_gateway(ready_timeout_s)

    async def connect_gateway(self, ready_timeout_s: float = 60.0) -> None:
        """Connect the gateway (slash commands arrive on it), wait for READY, sync commands if changed."""
        try:
            self.client.ready_event.clear()
            self._task = asyncio.create_task(self.client.connect(reconnect=True), name="discord-gateway")
            self._task.add_done_callback(self._gateway_ended)
            ready = asyncio.create_task(self.client.ready_event.wait())
            done, _ = await asyncio.wait(
                {self._task, ready}, timeout=ready_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            ready.cancel()
            if ready not in done:
                if self._task in done:
                    self._task.result()  # the gateway's error (bad token, disallowed intents)
                raise TimeoutError(f"discord: not ready after {ready_timeout_s:g}s")
        except BaseException:
            await self.stop()
            raise
        try:
            await self.sync_commands()
        except discord.HTTPException as e:  # a stale command list must not stop the bot
            log.warning("discord: command sync failed: %s", e)
        assert self.client.user is not None
        log.info("discord: connected as %s (%d guilds)", self.client.user, len(self.client.guilds))

    async def disconnect_gateway(self) -> None:
        """Leave the gateway (another process answers slash commands now); REST sending keeps working."""
        task, self._task = self._task, None
        if self.client.ws is not None:  # close first: a cancelled reader would leave the socket open
            await self.client.ws.close(code=1000)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        log.info("discord: gateway left")

    def _gateway_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self._task is task:
            log.error("discord: gateway stopped: %r", task.exception())

    async def stop(self) -> None:
        """Close the gateway and the HTTP session; idempotent."""
        await self.pacer.aclose()
        await self.client.close()
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=10)
        if not done:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=2)
        if task in done and not task.cancelled() and task.exception() is not None:
            log.debug("discord: gateway task ended with %r", task.exception())
