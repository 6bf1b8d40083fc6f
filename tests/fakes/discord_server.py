"""Local Discord gateway + REST double that the real discord.py client runs against offline.

Usage::

    async with DiscordDouble() as dd:
        dd.add_guild(1000, channel_ids=[2000])
        dd.add_member(1000, 7, permissions=0x20)
        with dd.patch_discord():
            client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
            task = asyncio.create_task(client.start("any-token"))
            ...
            await client.close()
            await task

Only what a bot needs is modelled: login (``GET /users/@me``, ``GET /oauth2/applications/@me``), the
gateway handshake (HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME, member chunk requests),
application command sync, interactions (callback, followups, ``@original`` edits), channel messages, and
Discord-shaped rate limit headers / 429s / error bodies.  Every JSON response carries
``Content-Type: application/json`` exactly (discord.py only parses JSON with that exact value).
"""

# The public API takes `timeout=` parameters on purpose (the product tests call it that way).
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

DISCORD_EPOCH_MS = 1420070400000

# Permission bits used to build realistic role payloads.
_P_CREATE_INVITE = 1 << 0
_P_ADMINISTRATOR = 1 << 3
_P_ADD_REACTIONS = 1 << 6
_P_VIEW_CHANNEL = 1 << 10
_P_SEND_MESSAGES = 1 << 11
_P_EMBED_LINKS = 1 << 14
_P_ATTACH_FILES = 1 << 15
_P_READ_HISTORY = 1 << 16
_P_EXTERNAL_EMOJIS = 1 << 18
_P_CONNECT = 1 << 20
_P_SPEAK = 1 << 21
_P_CHANGE_NICK = 1 << 26
_P_USE_APP_COMMANDS = 1 << 31
_P_SEND_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 53) - 1

EVERYONE_PERMISSIONS = (
    _P_CREATE_INVITE
    | _P_ADD_REACTIONS
    | _P_VIEW_CHANNEL
    | _P_SEND_MESSAGES
    | _P_EMBED_LINKS
    | _P_ATTACH_FILES
    | _P_READ_HISTORY
    | _P_EXTERNAL_EMOJIS
    | _P_CONNECT
    | _P_SPEAK
    | _P_CHANGE_NICK
    | _P_USE_APP_COMMANDS
    | _P_SEND_IN_THREADS
)
BOT_ROLE_PERMISSIONS = (
    _P_VIEW_CHANNEL | _P_SEND_MESSAGES | _P_EMBED_LINKS | _P_ATTACH_FILES | _P_READ_HISTORY | _P_ADD_REACTIONS
)

_PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message_content


def _snowflake_time(ms: float | None = None) -> int:
    ms = time.time() * 1000 if ms is None else ms
    return int(ms) - DISCORD_EPOCH_MS


def _iso(ts: float | None = None) -> str:
    ts = time.time() if ts is None else ts
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1e6):06d}+00:00"


def _json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON response with ``Content-Type: application/json`` exactly (no charset suffix)."""
    hdrs = {"Content-Type": "application/json"}
    if headers:
        hdrs.update(headers)
    return web.Response(body=json.dumps(payload).encode(), status=status, headers=hdrs)


@dataclass
class _Window:
    start: float
    count: int = 0


@dataclass
class _Failure:
    status: int
    retry_after: float
    via: bool


@dataclass
class _Guild:
    id: int
    name: str
    owner_id: int
    channel_ids: list[int]
    roles: list[dict[str, Any]] = field(default_factory=list)
    members: dict[int, dict[str, Any]] = field(default_factory=dict)  # user_id -> member payload


@dataclass
class _Interaction:
    id: int
    token: str
    type: int
    channel_id: int
    guild_id: int | None
    created: float
    callback: dict[str, Any] | None = None
    original: dict[str, Any] | None = None  # message object of the original response
    edits: list[dict[str, Any]] = field(default_factory=list)
    followups: list[dict[str, Any]] = field(default_factory=list)


class _Session:
    def __init__(self, ws: web.WebSocketResponse, query: dict[str, str]) -> None:
        self.ws = ws
        self.query = query
        self.seq = 0
        self.session_id = secrets.token_hex(16)
        self.identified = False
        self.identify: dict[str, Any] | None = None
        self.lock = asyncio.Lock()

    async def send(self, payload: dict[str, Any]) -> None:
        async with self.lock:
            if not self.ws.closed:
                await self.ws.send_str(json.dumps(payload))

    async def dispatch(self, event: str, data: Any) -> None:
        async with self.lock:
            self.seq += 1
            if not self.ws.closed:
                await self.ws.send_str(json.dumps({"op": 0, "t": event, "s": self.seq, "d": data}))


def _bucket_template(method: str, rel: str) -> tuple[str, str]:
    """Return (route template, major parameter) for a relative API path, like Discord's bucketing."""
    parts = rel.strip("/").split("/")
    out: list[str] = []
    major = ""
    i = 0
    while i < len(parts):
        seg = parts[i]
        out.append(seg)
        if seg in ("channels", "guilds", "webhooks", "interactions") and i + 1 < len(parts) and not major:
            major = parts[i + 1]
            out.append("{major}")
            i += 2
            if seg in ("webhooks", "interactions") and i < len(parts):
                major += "/" + parts[i]
                out.append("{token}")
                i += 1
            continue
        if seg.isdigit():
            out[-1] = "{id}"
        i += 1
    return f"{method} /" + "/".join(out), major


class DiscordDouble:
    """In-process Discord: gateway websocket at ``/gateway`` and REST at ``/api/v10``."""

    APP_ID: int = 424242
    BOT_USER_ID: int = 424242
    BOT_NAME: str = "basiswatch"
    HEARTBEAT_INTERVAL_MS: int = 41250

    def __init__(self) -> None:
        self.rest_base: str = ""
        self.gateway_url: str = ""
        # knobs
        self.token: str | None = None  # when set, REST/IDENTIFY with another token get 401 / close 4004
        self.allow_privileged_intents: bool = True  # False -> IDENTIFY with privileged intents closes 4014
        self.interaction_ack_timeout: float = 3.0  # Discord: callback must come within 3s
        self.default_limit: int = 50  # advertised per-bucket limit when enforce_limits() was not called
        self.default_window_s: float = 1.0
        # recorded state
        self.requests: list[tuple[str, str]] = []
        self.request_log: list[dict[str, Any]] = []
        self.channel_messages: dict[int, list[dict[str, Any]]] = {}
        self.channel_files: dict[int, list[dict[str, Any]]] = {}
        self.messages: dict[int, dict[str, Any]] = {}  # message id -> message object (channel messages)
        self.commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.sync_count: int = 0
        self.guild_sync_count: int = 0
        self.too_many_requests: int = 0
        self.gateway_connections: list[dict[str, str]] = []  # query of every gateway connect
        self.gateway_received: list[dict[str, Any]] = []  # every op the client sent (minus heartbeats)
        self.interactions: dict[int, _Interaction] = {}
        # internals
        self._guilds: dict[int, _Guild] = {}
        self._channel_guild: dict[int, int] = {}
        self._sessions: list[_Session] = []
        self._failures: dict[int, deque[_Failure]] = {}
        self._windows: dict[tuple[str, str], _Window] = {}
        self._global_window: _Window | None = None
        self._enforce: dict[str, float] | None = None
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self._cond: asyncio.Condition | None = None
        self._ready: asyncio.Event | None = None
        self._interactions_by_token: dict[str, _Interaction] = {}

    # ------------------------------------------------------------------ lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._cond = asyncio.Condition()
        self._ready = asyncio.Event()
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        real_port = self._runner.addresses[0][1]
        self.rest_base = f"http://{host}:{real_port}/api/v10"
        self.gateway_url = f"ws://{host}:{real_port}/gateway"

    async def close(self) -> None:
        for sess in list(self._sessions):
            with contextlib.suppress(Exception):
                await sess.ws.close(code=1001, message=b"double shutting down")
        self._sessions.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[None]:
        """Point discord.py's REST base and default gateway at this double; restore on exit.

        Must be active when ``Client.start()/login()/connect()`` run (Route URLs are built per request,
        the gateway URL is read at connect/reconnect time).
        """
        import discord.gateway
        import discord.http
        import yarl

        old_base = discord.http.Route.BASE
        old_gw = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.rest_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gw

    # ------------------------------------------------------------------ world setup
    def _next_id(self) -> int:
        self._seq = (self._seq + 1) & 0xFFF
        return (_snowflake_time() << 22) | (1 << 17) | self._seq

    def add_guild(
        self,
        guild_id: int,
        name: str = "Traders",
        *,
        owner_id: int = 1,
        channel_ids: list[int] | None = None,
    ) -> None:
        chans = list(channel_ids) if channel_ids is not None else [guild_id + 1]
        g = _Guild(id=guild_id, name=name, owner_id=owner_id, channel_ids=chans)
        g.roles.append(self._role(guild_id, "@everyone", EVERYONE_PERMISSIONS, position=0))
        bot_role = self._role(self._next_id(), self.BOT_NAME, BOT_ROLE_PERMISSIONS, position=1, managed=True)
        bot_role["tags"] = {"bot_id": str(self.BOT_USER_ID)}
        g.roles.append(bot_role)
        self._guilds[guild_id] = g
        for cid in chans:
            self._channel_guild[cid] = guild_id
        g.members[self.BOT_USER_ID] = self._member_payload(self._bot_user(), [int(bot_role["id"])])
        if owner_id not in g.members:
            g.members[owner_id] = self._member_payload(self._user(owner_id, "owner"), [])

    def add_member(self, guild_id: int, user_id: int, *, permissions: int = 0, name: str = "member") -> None:
        """Add a member; ``permissions`` becomes a personal role on top of @everyone."""
        g = self._guilds[guild_id]
        role_ids: list[int] = []
        if permissions:
            role = self._role(self._next_id(), f"{name}-role", permissions, position=len(g.roles))
            g.roles.append(role)
            role_ids.append(int(role["id"]))
        g.members[user_id] = self._member_payload(self._user(user_id, name), role_ids)

    @staticmethod
    def _role(role_id: int, name: str, permissions: int, *, position: int, managed: bool = False) -> dict[str, Any]:
        return {
            "id": str(role_id),
            "name": name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": position,
            "permissions": str(permissions),
            "managed": managed,
            "mentionable": False,
            "flags": 0,
        }

    @staticmethod
    def _user(user_id: int, name: str) -> dict[str, Any]:
        return {
            "id": str(user_id),
            "username": name,
            "discriminator": "0",
            "global_name": name,
            "avatar": None,
            "public_flags": 0,
            "bot": False,
        }

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": str(self.BOT_USER_ID),
            "username": self.BOT_NAME,
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
            "public_flags": 0,
            "email": None,
            "locale": "en-US",
        }

    @staticmethod
    def _member_payload(user: dict[str, Any], role_ids: list[int]) -> dict[str, Any]:
        return {
            "user": user,
            "roles": [str(r) for r in role_ids],
            "nick": None,
            "avatar": None,
            "joined_at": _iso(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }

    def _channel_payload(self, channel_id: int) -> dict[str, Any]:
        guild_id = self._channel_guild.get(channel_id)
        pos = self._guilds[guild_id].channel_ids.index(channel_id) if guild_id is not None else 0
        data: dict[str, Any] = {
            "id": str(channel_id),
            "type": 0,
            "name": f"alerts-{pos}",
            "position": pos,
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        return data

    def _guild_payload(self, g: _Guild, intents: int | None = None) -> dict[str, Any]:
        # Like Discord for a small guild: the full member list only comes with GUILD_PRESENCES;
        # otherwise just the bot's own member (discord.py then chunks via op 8 if it has GUILD_MEMBERS).
        members = list(g.members.values())
        if intents is not None and not intents & (1 << 8):
            members = [m for m in members if m["user"]["id"] == str(self.BOT_USER_ID)]
        return {
            "id": str(g.id),
            "name": g.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(g.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "features": [],
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "premium_progress_bar_enabled": False,
            "roles": copy.deepcopy(g.roles),
            "emojis": [],
            "stickers": [],
            "joined_at": _iso(),
            "large": False,
            "unavailable": False,
            "lazy": True,
            "member_count": len(g.members),
            "voice_states": [],
            "members": copy.deepcopy(members),
            "channels": [self._channel_payload(c) for c in g.channel_ids],
            "threads": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _member_permissions(self, guild_id: int, user_id: int) -> int:
        g = self._guilds.get(guild_id)
        if g is None:
            return EVERYONE_PERMISSIONS
        if user_id == g.owner_id:
            return ALL_PERMISSIONS
        roles = {int(r["id"]): int(r["permissions"]) for r in g.roles}
        perms = roles.get(g.id, 0)
        member = g.members.get(user_id)
        if member:
            for rid in member["roles"]:
                perms |= roles.get(int(rid), 0)
        if perms & _P_ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def _user_payload_for(self, user_id: int) -> dict[str, Any]:
        for g in self._guilds.values():
            if user_id in g.members:
                return copy.deepcopy(g.members[user_id]["user"])
        return self._user(user_id, f"user{user_id}")

    # ------------------------------------------------------------------ waiting helpers
    async def _notify(self) -> None:
        assert self._cond is not None
        async with self._cond:
            self._cond.notify_all()

    async def _wait_for(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        assert self._cond is not None
        try:
            async with asyncio.timeout(timeout), self._cond:
                await self._cond.wait_for(pred)
        except TimeoutError:
            raise TimeoutError(f"DiscordDouble: timed out after {timeout}s waiting for {what}") from None

    async def wait_ready(self, timeout: float = 5.0) -> None:
        """A client identified and got READY + GUILD_CREATE (its on_ready fires guild_ready_timeout later)."""
        assert self._ready is not None
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise TimeoutError("DiscordDouble: no client identified on the gateway") from None

    async def wait_channel_messages(self, channel_id: int, n: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        await self._wait_for(
            lambda: len(self.channel_messages.get(channel_id, [])) >= n,
            timeout,
            f"{n} message(s) in channel {channel_id}",
        )
        return list(self.channel_messages[channel_id])

    # ------------------------------------------------------------------ failure / limit injection
    def fail_next(
        self, channel_id: int, status: int, *, times: int = 1, retry_after: float = 0.2, via: bool = True
    ) -> None:
        q = self._failures.setdefault(channel_id, deque())
        for _ in range(times):
            q.append(_Failure(status, retry_after, via))

    def enforce_limits(self, per_channel: int = 5, per_channel_window_s: float = 5.0, global_per_s: int = 50) -> None:
        self._enforce = {
            "per_channel": per_channel,
            "window": per_channel_window_s,
            "global": global_per_s,
        }

    # ------------------------------------------------------------------ gateway
    def _live_sessions(self) -> list[_Session]:
        return [s for s in self._sessions if s.identified and not s.ws.closed]

    async def dispatch(self, event: str, data: Any) -> None:
        """Send a raw DISPATCH to every identified gateway session."""
        sessions = self._live_sessions()
        if not sessions:
            raise RuntimeError("DiscordDouble: no identified gateway session to dispatch to")
        for s in sessions:
            await s.dispatch(event, data)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        query = dict(request.query)
        self.gateway_connections.append(query)
        if query.get("encoding", "json") != "json":
            await ws.close(code=4002, message=b"only encoding=json is supported")  # Decode error
            return ws
        sess = _Session(ws, query)
        self._sessions.append(sess)
        try:
            await sess.send({"op": 10, "d": {"heartbeat_interval": self.HEARTBEAT_INTERVAL_MS}, "s": None, "t": None})
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    if msg.type is WSMsgType.BINARY:
                        await ws.close(code=4002, message=b"binary frames not supported")
                    continue
                try:
                    payload = json.loads(msg.data)
                except ValueError:
                    await ws.close(code=4002, message=b"decode error")
                    break
                await self._on_gateway_op(sess, payload)
        finally:
            if sess in self._sessions:
                self._sessions.remove(sess)
        return ws

    async def _on_gateway_op(self, sess: _Session, payload: dict[str, Any]) -> None:
        op = payload.get("op")
        d = payload.get("d")
        if op != 1:
            self.gateway_received.append(payload)
        if op == 1:  # HEARTBEAT
            await sess.send({"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:  # IDENTIFY
            if sess.identified:
                await sess.ws.close(code=4005, message=b"Already authenticated.")
                return
            if self.token is not None and d.get("token") != self.token:
                await sess.ws.close(code=4004, message=b"Authentication failed.")
                return
            if not self.allow_privileged_intents and int(d.get("intents", 0)) & _PRIVILEGED_INTENTS:
                await sess.ws.close(code=4014, message=b"Disallowed intent(s).")
                return
            sess.identify = d
            sess.identified = True
            await self._send_ready(sess)
        elif op == 6:  # RESUME
            sess.identified = True
            sess.seq = int(d.get("seq") or 0)
            await sess.dispatch("RESUMED", {"_trace": ["fake-discord"]})
        elif op == 8:  # REQUEST_GUILD_MEMBERS
            gids = d.get("guild_id")
            for gid in gids if isinstance(gids, list) else [gids]:
                g = self._guilds.get(int(gid))
                members = copy.deepcopy(list(g.members.values())) if g else []
                chunk: dict[str, Any] = {
                    "guild_id": str(gid),
                    "members": members,
                    "chunk_index": 0,
                    "chunk_count": 1,
                }
                if d.get("nonce") is not None:
                    chunk["nonce"] = d["nonce"]
                await sess.dispatch("GUILD_MEMBERS_CHUNK", chunk)
        # op 3 (presence), 4 (voice state) and others are accepted silently.

    async def _send_ready(self, sess: _Session) -> None:
        assert sess.identify is not None and self._ready is not None
        ready: dict[str, Any] = {
            "v": 10,
            "user": self._bot_user(),
            "user_settings": {},
            "guilds": [{"id": str(gid), "unavailable": True} for gid in self._guilds],
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["rotterdam"],
            "session_id": sess.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.APP_ID), "flags": self._app_flags()},
            "_trace": ["fake-discord-gateway"],
        }
        if "shard" in sess.identify:
            ready["shard"] = sess.identify["shard"]
        await sess.dispatch("READY", ready)
        for g in self._guilds.values():
            await sess.dispatch("GUILD_CREATE", self._guild_payload(g, int(sess.identify.get("intents", 0))))
        self._ready.set()
        await self._notify()

    @staticmethod
    def _app_flags() -> int:
        return (1 << 19) | (1 << 23)  # GATEWAY_MESSAGE_CONTENT_LIMITED | APPLICATION_COMMAND_BADGE

    # ------------------------------------------------------------------ interactions (driving side)
    def _find_command(self, name: str, guild_id: int | None) -> tuple[dict[str, Any] | None, int | None]:
        if guild_id is not None:
            for c in self.guild_commands.get(guild_id, []):
                if c["name"] == name:
                    return c, guild_id
        for c in self.commands:
            if c["name"] == name:
                return c, None
        return None, None

    @staticmethod
    def _infer_type(value: Any) -> int:
        if isinstance(value, bool):
            return 5
        if isinstance(value, int):
            return 4
        if isinstance(value, float):
            return 10
        return 3

    def _build_options(
        self,
        command: dict[str, Any] | None,
        options: dict[str, Any],
        *,
        group: str | None,
        subcommand: str | None,
        focused: str | None,
        guild_id: int | None,
        resolved: dict[str, dict[str, Any]],
    ) -> list[dict[str, Any]]:
        spec: list[dict[str, Any]] | None = command.get("options", []) if command is not None else None
        if group is not None and spec is not None:
            grp = next((o for o in spec if o["name"] == group and o["type"] == 2), None)
            if grp is None:
                raise ValueError(f"command {command and command['name']!r} has no subcommand group {group!r}")
            spec = grp.get("options", [])
        if subcommand is not None and spec is not None:
            sub = next((o for o in spec if o["name"] == subcommand and o["type"] == 1), None)
            if sub is None:
                raise ValueError(f"command {command and command['name']!r} has no subcommand {subcommand!r}")
            spec = sub.get("options", [])
        if spec is not None:
            known = {o["name"]: o for o in spec}
            unknown = set(options) - set(known)
            if unknown:
                raise ValueError(f"unknown option(s) {sorted(unknown)}; registered: {sorted(known)}")
            if focused is None:
                missing = [o["name"] for o in spec if o.get("required") and o["name"] not in options]
                if missing:
                    raise ValueError(f"missing required option(s) {missing}")
            elif focused not in known:
                raise ValueError(f"focused option {focused!r} is not registered")
        leaf: list[dict[str, Any]] = []
        for name, value in options.items():
            otype = next(o["type"] for o in spec if o["name"] == name) if spec is not None else self._infer_type(value)
            entry: dict[str, Any] = {"name": name, "type": otype}
            if name == focused:
                entry["value"] = str(value)
                entry["focused"] = True
            elif otype in (6, 7, 8, 9, 11):
                entry["value"] = str(getattr(value, "id", value))
                self._resolve(otype, int(entry["value"]), guild_id, resolved)
            elif otype == 4:
                entry["value"] = int(value)
            elif otype == 10:
                entry["value"] = float(value)
            elif otype == 5:
                entry["value"] = bool(value)
            else:
                entry["value"] = str(value)
            leaf.append(entry)
        if subcommand is not None:
            leaf = [{"name": subcommand, "type": 1, "options": leaf}]
        if group is not None:
            leaf = [{"name": group, "type": 2, "options": leaf}]
        return leaf

    def _resolve(self, otype: int, snowflake: int, guild_id: int | None, resolved: dict[str, Any]) -> None:
        g = self._guilds.get(guild_id) if guild_id is not None else None
        if otype in (6, 9) and (otype == 6 or g is None or snowflake in g.members):
            resolved.setdefault("users", {})[str(snowflake)] = self._user_payload_for(snowflake)
            if g is not None and snowflake in g.members:
                m = {k: v for k, v in copy.deepcopy(g.members[snowflake]).items() if k != "user"}
                m["permissions"] = str(self._member_permissions(g.id, snowflake))
                resolved.setdefault("members", {})[str(snowflake)] = m
            return
        if otype == 7:
            ch = self._channel_payload(snowflake)
            ch["permissions"] = str(ALL_PERMISSIONS)
            resolved.setdefault("channels", {})[str(snowflake)] = ch
            return
        if otype in (8, 9) and g is not None:
            role = next((r for r in g.roles if int(r["id"]) == snowflake), None)
            if role is not None:
                resolved.setdefault("roles", {})[str(snowflake)] = copy.deepcopy(role)

    def _interaction_payload(
        self,
        itype: int,
        name: str,
        options: dict[str, Any] | None,
        *,
        user_id: int,
        guild_id: int | None,
        channel_id: int,
        permissions: int | None,
        subcommand: str | None,
        group: str | None,
        focused: str | None,
        locale: str,
    ) -> tuple[dict[str, Any], _Interaction]:
        command, cmd_guild = self._find_command(name, guild_id)
        resolved: dict[str, Any] = {}
        opts = self._build_options(
            command,
            dict(options or {}),
            group=group,
            subcommand=subcommand,
            focused=focused,
            guild_id=guild_id,
            resolved=resolved,
        )
        data: dict[str, Any] = {
            "id": command["id"] if command is not None else str(self._next_id()),
            "name": name,
            "type": 1,
            "options": opts,
        }
        if resolved:
            data["resolved"] = resolved
        if cmd_guild is not None:
            data["guild_id"] = str(cmd_guild)
        iid = self._next_id()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        user = self._user_payload_for(user_id)
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.APP_ID),
            "type": itype,
            "data": data,
            "token": token,
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": 10 * 1024 * 1024,
            "channel_id": str(channel_id),
        }
        if guild_id is not None:
            g = self._guilds.get(guild_id)
            if g is not None and user_id in g.members:
                member = copy.deepcopy(g.members[user_id])
            else:
                member = self._member_payload(user, [])
            perms = permissions if permissions is not None else self._member_permissions(guild_id, user_id)
            member["permissions"] = str(perms)
            payload.update(
                guild_id=str(guild_id),
                guild={"id": str(guild_id), "locale": "en-US", "features": []},
                guild_locale="en-US",
                member=member,
                channel=self._channel_payload(channel_id),
                app_permissions=str(self._member_permissions(guild_id, self.BOT_USER_ID)),
                authorizing_integration_owners={"0": str(guild_id)},
                context=0,
            )
        else:
            payload.update(
                user=user,
                channel={
                    "id": str(channel_id),
                    "type": 1,
                    "last_message_id": None,
                    "flags": 0,
                    "recipients": [user],
                },
                app_permissions=str(BOT_ROLE_PERMISSIONS),
                authorizing_integration_owners={"0": "0"},
                context=1,
            )
        rec = _Interaction(
            id=iid,
            token=token,
            type=itype,
            channel_id=channel_id,
            guild_id=guild_id,
            created=time.monotonic(),
        )
        self.interactions[iid] = rec
        self._interactions_by_token[token] = rec
        return payload, rec

    async def interact(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: int,
        guild_id: int | None,
        channel_id: int,
        permissions: int | None = None,
        subcommand: str | None = None,
        group: str | None = None,
        timeout: float = 5.0,
        locale: str = "en-US",
    ) -> dict[str, Any]:
        """Invoke a slash command and wait for the bot's response.

        Returns ``{"type", "data", "followups", "edits", "deferred", "interaction_id", "token"}``.
        ``followups``/``edits`` are live lists (they keep growing if the bot sends more later);
        see :meth:`wait_followups`.  For a deferred (type 5) callback, this waits for the first
        ``@original`` edit or followup and merges it into ``data``.
        """
        payload, rec = self._interaction_payload(
            2,
            name,
            options,
            user_id=user_id,
            guild_id=guild_id,
            channel_id=channel_id,
            permissions=permissions,
            subcommand=subcommand,
            group=group,
            focused=None,
            locale=locale,
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        await self._wait_for(lambda: rec.callback is not None, timeout, f"a callback to /{name}")
        assert rec.callback is not None
        cb_type = int(rec.callback["type"])
        data = dict(rec.callback.get("data") or {})
        deferred = cb_type in (5, 6)
        if deferred:
            await self._wait_for(lambda: bool(rec.edits or rec.followups), timeout, f"the deferred response of /{name}")
            data.update(rec.edits[-1] if rec.edits else rec.followups[0])
        return {
            "type": cb_type,
            "data": data,
            "followups": rec.followups,
            "edits": rec.edits,
            "deferred": deferred,
            "interaction_id": rec.id,
            "token": rec.token,
        }

    async def wait_followups(self, result: dict[str, Any], n: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        rec = self.interactions[int(result["interaction_id"])]
        await self._wait_for(lambda: len(rec.followups) >= n, timeout, f"{n} followup(s)")
        return list(rec.followups)

    async def autocomplete(
        self,
        name: str,
        focused: str,
        value: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: int,
        guild_id: int | None,
        channel_id: int,
        permissions: int | None = None,
        subcommand: str | None = None,
        group: str | None = None,
        timeout: float = 5.0,
        locale: str = "en-US",
    ) -> list[dict[str, Any]]:
        opts = dict(options or {})
        opts[focused] = value
        payload, rec = self._interaction_payload(
            4,
            name,
            opts,
            user_id=user_id,
            guild_id=guild_id,
            channel_id=channel_id,
            permissions=permissions,
            subcommand=subcommand,
            group=group,
            focused=focused,
            locale=locale,
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        await self._wait_for(lambda: rec.callback is not None, timeout, f"autocomplete choices for /{name}")
        assert rec.callback is not None
        if int(rec.callback["type"]) != 8:
            raise AssertionError(f"autocomplete answered with callback type {rec.callback['type']}, expected 8")
        return list((rec.callback.get("data") or {}).get("choices", []))

    # ------------------------------------------------------------------ REST plumbing
    def _ratelimit(self, method: str, rel: str, *, count_global: bool) -> tuple[bool, dict[str, str], bool]:
        """Account one request; return (allowed, headers, is_global_limit)."""
        loop_now = time.monotonic()
        template, major = _bucket_template(method, rel)
        bucket = hashlib.md5(template.encode()).hexdigest()
        enforce = self._enforce
        limit, window = self.default_limit, self.default_window_s
        if enforce is not None and "{major}" in template and template.split(" /", 1)[1].startswith("channels"):
            limit, window = int(enforce["per_channel"]), float(enforce["window"])
        if enforce is not None and count_global:
            gw = self._global_window
            if gw is None or loop_now >= gw.start + 1.0 - 0.005:
                gw = self._global_window = _Window(start=loop_now)
            if gw.count >= int(enforce["global"]):
                retry = max(gw.start + 1.0 - loop_now, 0.001)
                return False, self._rl_headers(limit, 0, retry, bucket, scope="global"), True
            gw.count += 1
        key = (bucket, major)
        w = self._windows.get(key)
        if w is None or loop_now >= w.start + window - 0.005:
            w = self._windows[key] = _Window(start=loop_now)
        reset_after = max(w.start + window - loop_now, 0.001)
        if w.count >= limit:
            return enforce is None, self._rl_headers(limit, 0, reset_after, bucket), False
        w.count += 1
        return True, self._rl_headers(limit, limit - w.count, reset_after, bucket), False

    @staticmethod
    def _rl_headers(limit: int, remaining: int, reset_after: float, bucket: str, scope: str = "user") -> dict[str, str]:
        reset_after = math.ceil(reset_after * 1000) / 1000
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
            "X-RateLimit-Scope": scope,
        }

    def _too_many(self, retry_after: float, headers: dict[str, str], *, is_global: bool, via: bool) -> web.Response:
        self.too_many_requests += 1
        hdrs = dict(headers)
        hdrs["X-RateLimit-Remaining"] = "0"
        hdrs["Retry-After"] = str(max(1, math.ceil(retry_after)))
        if is_global:
            hdrs["X-RateLimit-Global"] = "true"
            hdrs["X-RateLimit-Scope"] = "global"
        if via:
            hdrs["Via"] = "1.1 google"
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
        if is_global:
            body["code"] = 0
        return _json_response(body, 429, hdrs)

    @staticmethod
    def _error(status: int, message: str, code: int, headers: dict[str, str] | None = None) -> web.Response:
        return _json_response({"message": message, "code": code}, status, headers)

    async def _read_body(self, request: web.Request) -> tuple[Any, list[dict[str, Any]]]:
        ctype = request.headers.get("Content-Type", "")
        files: list[dict[str, Any]] = []
        if ctype.startswith("multipart/"):
            payload: Any = None
            reader = await request.multipart()
            async for part in reader:
                raw = await part.read()
                if part.name == "payload_json":
                    payload = json.loads(raw)
                else:
                    files.append(
                        {
                            "field": part.name,
                            "filename": part.filename,
                            "content_type": part.headers.get("Content-Type"),
                            "data": bytes(raw),
                        }
                    )
            return payload, files
        raw_text = await request.text()
        if not raw_text:
            return None, files
        return json.loads(raw_text), files

    def _message(
        self,
        channel_id: int,
        body: dict[str, Any],
        *,
        author: dict[str, Any] | None = None,
        webhook_id: int | None = None,
        interaction: _Interaction | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        mid = self._next_id()
        msg: dict[str, Any] = {
            "id": str(mid),
            "type": 20 if interaction is not None else 0,
            "channel_id": str(channel_id),
            "author": author or self._bot_user(),
            "content": body.get("content") or "",
            "timestamp": _iso(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts", False)),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [
                {
                    "id": str(self._next_id()),
                    "filename": f.get("filename") or "file",
                    "size": len(f["data"]),
                    "url": f"https://cdn.invalid/{f.get('filename')}",
                    "proxy_url": f"https://cdn.invalid/{f.get('filename')}",
                    "content_type": f.get("content_type"),
                }
                for f in files or []
            ],
            "embeds": copy.deepcopy(body.get("embeds") or []),
            "components": copy.deepcopy(body.get("components") or []),
            "pinned": False,
            "flags": int(body.get("flags") or 0),
        }
        guild_id = self._channel_guild.get(channel_id)
        if guild_id is not None:
            msg["guild_id"] = str(guild_id)
        if webhook_id is not None:
            msg["webhook_id"] = str(webhook_id)
            msg["application_id"] = str(self.APP_ID)
        if body.get("nonce") is not None:
            msg["nonce"] = body["nonce"]
        return msg

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        method = request.method
        rel = "/" + request.match_info["tail"]
        self.requests.append((method, rel))
        entry: dict[str, Any] = {"method": method, "path": rel, "query": dict(request.query)}
        self.request_log.append(entry)
        try:
            body, files = await self._read_body(request)
        except ValueError:
            return self._error(400, "400: Bad Request", 50109)
        entry["json"] = body
        is_interaction = rel.startswith("/interactions/") or rel.startswith("/webhooks/")
        if (
            not is_interaction
            and self.token is not None
            and request.headers.get("Authorization") != f"Bot {self.token}"
        ):
            entry["status"] = 401
            return self._error(401, "401: Unauthorized", 0)
        allowed, headers, is_global = self._ratelimit(method, rel, count_global=not is_interaction)
        if not allowed:
            entry["status"] = 429
            return self._too_many(float(headers["X-RateLimit-Reset-After"]), headers, is_global=is_global, via=True)
        resp = await self._route(method, rel, request, body, files, headers)
        entry["status"] = resp.status
        await self._notify()
        return resp

    async def _route(
        self,
        method: str,
        rel: str,
        request: web.Request,
        body: Any,
        files: list[dict[str, Any]],
        headers: dict[str, str],
    ) -> web.StreamResponse:
        app = str(self.APP_ID)
        m: re.Match[str] | None
        if method == "GET" and rel == "/users/@me":
            return _json_response(self._bot_user(), headers=headers)
        if method == "GET" and rel == "/oauth2/applications/@me":
            return _json_response(self._app_info(), headers=headers)
        if method == "GET" and rel in ("/gateway", "/gateway/bot"):
            out: dict[str, Any] = {"url": self.gateway_url}
            if rel == "/gateway/bot":
                out["shards"] = 1
                out["session_start_limit"] = {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                }
            return _json_response(out, headers=headers)
        if m := re.fullmatch(r"/applications/(\d+)/commands", rel):
            if m.group(1) != app:
                return self._error(403, "Missing Access", 50001, headers)
            if method == "PUT":
                self.sync_count += 1
                self.commands = self._register(body or [], self.commands, None)
                return _json_response(self.commands, headers=headers)
            if method == "GET":
                return _json_response(self.commands, headers=headers)
        if m := re.fullmatch(r"/applications/(\d+)/guilds/(\d+)/commands", rel):
            if m.group(1) != app:
                return self._error(403, "Missing Access", 50001, headers)
            gid = int(m.group(2))
            if method == "PUT":
                self.guild_sync_count += 1
                self.guild_commands[gid] = self._register(body or [], self.guild_commands.get(gid, []), gid)
                return _json_response(self.guild_commands[gid], headers=headers)
            if method == "GET":
                return _json_response(self.guild_commands.get(gid, []), headers=headers)
        if m := re.fullmatch(r"/interactions/(\d+)/([^/]+)/callback", rel):
            return self._interaction_callback(int(m.group(1)), m.group(2), body, request, headers)
        if m := re.fullmatch(r"/webhooks/(\d+)/([^/]+)(/messages/(@original|\d+))?", rel):
            return self._webhook(method, m.group(1), m.group(2), m.group(4), body, files, headers)
        if m := re.fullmatch(r"/channels/(\d+)(/.*)?", rel):
            return self._channel(method, int(m.group(1)), m.group(2) or "", body, files, headers)
        return self._error(404, "404: Not Found", 0, headers)

    def _app_info(self) -> dict[str, Any]:
        owner = self._user(1, "owner")
        return {
            "id": str(self.APP_ID),
            "name": self.BOT_NAME,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": owner,
            "team": None,
            "flags": self._app_flags(),
            "rpc_origins": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "tags": [],
            "install_params": {"scopes": ["bot", "applications.commands"], "permissions": "0"},
            "integration_types_config": {"0": {}, "1": {}},
            "approximate_guild_count": len(self._guilds),
            "bot": self._bot_user(),
        }

    def _register(
        self, payload: list[dict[str, Any]], previous: list[dict[str, Any]], guild_id: int | None
    ) -> list[dict[str, Any]]:
        old_ids = {c["name"]: c["id"] for c in previous}
        out = []
        for cmd in payload:
            c = copy.deepcopy(cmd)
            c["id"] = old_ids.get(c["name"]) or str(self._next_id())
            c["application_id"] = str(self.APP_ID)
            c["version"] = str(self._next_id())
            c.setdefault("type", 1)
            c.setdefault("description", "")
            c.setdefault("default_member_permissions", None)
            c.setdefault("nsfw", False)
            if guild_id is not None:
                c["guild_id"] = str(guild_id)
            out.append(c)
        return out

    def _interaction_callback(
        self, iid: int, token: str, body: Any, request: web.Request, headers: dict[str, str]
    ) -> web.Response:
        rec = self.interactions.get(iid)
        if rec is None or rec.token != token:
            return self._error(404, "Unknown interaction", 10062, headers)
        if time.monotonic() - rec.created > self.interaction_ack_timeout:
            return self._error(404, "Unknown interaction", 10062, headers)
        if rec.callback is not None:
            return self._error(400, "Interaction has already been acknowledged.", 40060, headers)
        if not isinstance(body, dict) or "type" not in body:
            return self._error(400, "Invalid Form Body", 50035, headers)
        rec.callback = copy.deepcopy(body)
        cb_type = int(body["type"])
        data = body.get("data") or {}
        if cb_type == 4:
            rec.original = self._message(rec.channel_id, data, webhook_id=self.APP_ID, interaction=rec)
        elif cb_type == 5:
            rec.original = self._message(
                rec.channel_id,
                {"flags": int(data.get("flags", 0)) | 128},
                webhook_id=self.APP_ID,
                interaction=rec,
            )
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204, headers=headers)
        flags = int(data.get("flags") or 0)
        resp: dict[str, Any] = {
            "interaction": {
                "id": str(rec.id),
                "type": rec.type,
                "response_message_loading": cb_type == 5,
                "response_message_ephemeral": bool(flags & 64),
            },
        }
        if rec.original is not None:
            resp["interaction"]["response_message_id"] = rec.original["id"]
        resource: dict[str, Any] = {"type": cb_type}
        if cb_type == 4 and rec.original is not None:
            resource["message"] = rec.original
        resp["resource"] = resource
        return _json_response(resp, headers=headers)

    def _webhook(
        self,
        method: str,
        webhook_id: str,
        token: str,
        message_id: str | None,
        body: Any,
        files: list[dict[str, Any]],
        headers: dict[str, str],
    ) -> web.Response:
        rec = self._interactions_by_token.get(token)
        if rec is None or webhook_id != str(self.APP_ID):
            return self._error(404, "Unknown Webhook", 10015, headers)
        if rec.callback is None:
            return self._error(404, "Unknown Webhook", 10015, headers)
        body = body if isinstance(body, dict) else {}
        if message_id is None:
            if method != "POST":
                return self._error(405, "405: Method Not Allowed", 0, headers)
            rec.followups.append(copy.deepcopy(body))
            msg = self._message(rec.channel_id, body, webhook_id=self.APP_ID, interaction=rec, files=files)
            return _json_response(msg, headers=headers)
        if message_id == "@original":
            if rec.original is None:
                return self._error(404, "Unknown Message", 10008, headers)
            if method == "GET":
                return _json_response(rec.original, headers=headers)
            if method == "DELETE":
                rec.original = None
                return web.Response(status=204, headers=headers)
            if method == "PATCH":
                rec.edits.append(copy.deepcopy(body))
                orig = rec.original
                for k in ("content", "embeds", "components"):
                    if k in body:
                        orig[k] = copy.deepcopy(body[k]) if body[k] is not None else ([] if k != "content" else "")
                orig["flags"] = int(orig.get("flags", 0)) & ~128
                orig["edited_timestamp"] = _iso()
                return _json_response(orig, headers=headers)
        if method in ("PATCH", "GET"):
            msg = self._message(rec.channel_id, body, webhook_id=self.APP_ID, interaction=rec)
            msg["id"] = str(message_id)
            return _json_response(msg, headers=headers)
        if method == "DELETE":
            return web.Response(status=204, headers=headers)
        return self._error(405, "405: Method Not Allowed", 0, headers)

    def _channel(
        self,
        method: str,
        channel_id: int,
        sub: str,
        body: Any,
        files: list[dict[str, Any]],
        headers: dict[str, str],
    ) -> web.Response:
        q = self._failures.get(channel_id)
        if q and method in ("POST", "PATCH"):
            fail = q.popleft()
            if fail.status == 429:
                h = dict(headers)
                h["X-RateLimit-Reset-After"] = f"{fail.retry_after:.3f}"
                h["X-RateLimit-Reset"] = f"{time.time() + fail.retry_after:.3f}"
                return self._too_many(fail.retry_after, h, is_global=False, via=fail.via)
            if fail.status == 403:
                return self._error(403, "Missing Access", 50001, headers)
            if fail.status == 404:
                return self._error(404, "Unknown Channel", 10003, headers)
            if fail.status == 401:
                return self._error(401, "401: Unauthorized", 0, headers)
            if fail.status >= 500:
                return _json_response({"message": "500: Internal Server Error", "code": 0}, fail.status, headers)
            return self._error(fail.status, "400: Bad Request", 50035, headers)
        if sub == "" and method == "GET":
            if channel_id not in self._channel_guild:
                return self._error(404, "Unknown Channel", 10003, headers)
            return _json_response(self._channel_payload(channel_id), headers=headers)
        if sub == "/messages" and method == "POST":
            body = body if isinstance(body, dict) else {}
            if not (body.get("content") or body.get("embeds") or files or body.get("components")):
                return self._error(400, "Cannot send an empty message", 50006, headers)
            self.channel_messages.setdefault(channel_id, []).append(copy.deepcopy(body))
            if files:
                self.channel_files.setdefault(channel_id, []).extend(files)
            msg = self._message(channel_id, body, files=files)
            self.messages[int(msg["id"])] = msg
            return _json_response(msg, headers=headers)
        if m := re.fullmatch(r"/messages/(\d+)", sub):
            msg = self.messages.get(int(m.group(1)))
            if msg is None or msg["channel_id"] != str(channel_id):
                return self._error(404, "Unknown Message", 10008, headers)
            if method == "GET":
                return _json_response(msg, headers=headers)
            if method == "DELETE":
                del self.messages[int(msg["id"])]
                return web.Response(status=204, headers=headers)
            if method == "PATCH":
                body = body if isinstance(body, dict) else {}
                for k in ("content", "embeds", "components", "flags"):
                    if k in body:
                        msg[k] = copy.deepcopy(body[k])
                msg["edited_timestamp"] = _iso()
                return _json_response(msg, headers=headers)
        if sub == "/typing" and method == "POST":
            return web.Response(status=204, headers=headers)
        return self._error(404, "404: Not Found", 0, headers)
