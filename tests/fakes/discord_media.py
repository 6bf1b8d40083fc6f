"""Files sent with interaction responses, and button presses, for the Discord double (``install``, ``press``).

Kept apart from ``tests/fakes/discord_server.py``: ``install(double)`` records the files of each
interaction callback in ``double.interaction_files[interaction id]``; ``press`` dispatches a
MESSAGE_COMPONENT interaction (a button press on one of the bot's messages) and waits for its answer.
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from typing import Any

from aiohttp import web

from tests.fakes.discord_server import DiscordDouble, _Interaction


def install(double: DiscordDouble) -> DiscordDouble:
    route = double._route
    files_by_interaction: dict[int, list[dict[str, Any]]] = {}

    async def route_with_files(
        method: str, rel: str, request: web.Request, body: Any, files: list[dict[str, Any]], headers: dict[str, str]
    ) -> web.StreamResponse:
        m = re.fullmatch(r"/interactions/(\d+)/([^/]+)/callback", rel)
        if m and files:
            files_by_interaction.setdefault(int(m.group(1)), []).extend(files)
        return await route(method, rel, request, body, files, headers)

    double._route = route_with_files  # type: ignore[method-assign]
    double.interaction_files = files_by_interaction  # type: ignore[attr-defined]
    return double


async def press(
    double: DiscordDouble,
    message: dict[str, Any],
    custom_id: str,
    *,
    user_id: int,
    guild_id: int | None,
    permissions: int | None = None,
    within_s: float = 5.0,
) -> dict[str, Any]:
    """A user presses the button ``custom_id`` on ``message``; returns the interaction's callback body."""
    channel_id = int(message["channel_id"])
    iid = double._next_id()
    token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
    user = double._user_payload_for(user_id)
    payload: dict[str, Any] = {
        "id": str(iid),
        "application_id": str(double.APP_ID),
        "type": 3,
        "token": token,
        "version": 1,
        "locale": "en-US",
        "entitlements": [],
        "channel_id": str(channel_id),
        "message": copy.deepcopy(message),
        "data": {"custom_id": custom_id, "component_type": 2},
        "attachment_size_limit": 10 * 1024 * 1024,
    }
    if guild_id is not None:
        g = double._guilds[guild_id]
        member = copy.deepcopy(g.members[user_id]) if user_id in g.members else double._member_payload(user, [])
        perms = permissions if permissions is not None else double._member_permissions(guild_id, user_id)
        member["permissions"] = str(perms)
        payload.update(
            guild_id=str(guild_id),
            guild={"id": str(guild_id), "locale": "en-US", "features": []},
            guild_locale="en-US",
            member=member,
            channel=double._channel_payload(channel_id),
            app_permissions=str(double._member_permissions(guild_id, double.BOT_USER_ID)),
            authorizing_integration_owners={"0": str(guild_id)},
            context=0,
        )
    else:
        payload.update(
            user=user,
            channel={"id": str(channel_id), "type": 1, "last_message_id": None, "flags": 0, "recipients": [user]},
            app_permissions="0",
            authorizing_integration_owners={"0": "0"},
            context=1,
        )
    rec = _Interaction(id=iid, token=token, type=3, channel_id=channel_id, guild_id=guild_id, created=time.monotonic())
    double.interactions[iid] = rec
    double._interactions_by_token[token] = rec
    await double.dispatch("INTERACTION_CREATE", payload)
    await double._wait_for(lambda: rec.callback is not None, within_s, f"an answer to the press of {custom_id}")
    assert rec.callback is not None
    return {"interaction_id": iid, **rec.callback}
