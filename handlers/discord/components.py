"""Buttons on Discord: message components for a Reply's actions, and presses answered in place.

``register`` makes the client answer component interactions whose custom_id is ours (``bw:...``)
through ``core.buttons.press``: a refusal or an answer only the presser sees (ephemeral), the
pressed button relabelled on the message (UPDATE_MESSAGE), or the chart posted into the channel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import discord

from core.buttons import DONE, PREFIX, encode, press
from core.commands import CommandCore
from core.context import ChatContext
from core.pacer import Pacer
from core.reply import Action, Reply
from handlers.discord.media import image_message

log = logging.getLogger(__name__)


def view(actions: Sequence[Action]) -> discord.ui.View | None:
    """One row of buttons, or None without actions (presses are handled by ``register``, not by the view)."""
    if not actions:
        return None
    v = discord.ui.View(timeout=None)
    for a in actions:
        v.add_item(discord.ui.Button(label=a.label, custom_id=encode(a), style=discord.ButtonStyle.secondary))
    return v


def alert_extras(reply: Reply, embeds: list[discord.Embed]) -> dict[str, Any]:
    """What the last message of an alert adds: its buttons and, with a chart, the image on its last embed."""
    kw: dict[str, Any] = {}
    v = view(reply.actions)
    if v is not None:
        kw["view"] = v
    if reply.image is not None:
        embed, file = image_message(reply.image)
        embeds[-1].set_image(url=embed.image.url)
        kw["file"] = file
    return kw


def relabelled(message: discord.Message, custom_id: str, label: str) -> discord.ui.View:
    """The message's buttons with the pressed one reading ``label``, disabled."""
    v = discord.ui.View(timeout=None)
    for row in message.components:
        for c in getattr(row, "children", ()):
            if not isinstance(c, discord.components.Button):
                continue
            if c.custom_id == custom_id:
                v.add_item(
                    discord.ui.Button(label=label, custom_id=DONE, disabled=True, style=discord.ButtonStyle.success)
                )
            else:
                v.add_item(discord.ui.Button(label=c.label, custom_id=c.custom_id, style=c.style))
    return v


def register(
    client: discord.Client,
    core: CommandCore,
    context_of: Callable[[discord.Interaction], ChatContext],
    pacer: Pacer | None = None,
) -> None:
    """Answer presses of our buttons on ``client`` (each answer paced by the token's ``pacer``)."""

    async def on_interaction(interaction: discord.Interaction) -> None:
        if interaction.type is not discord.InteractionType.component:
            return
        data: dict[str, Any] = dict(interaction.data or {})
        custom_id = str(data.get("custom_id", ""))
        if not custom_id.startswith(PREFIX):
            return
        try:
            result = await press(core, custom_id, context_of(interaction))
        except Exception:
            log.exception("discord: button %s failed", custom_id)
            await interaction.response.send_message("Something went wrong; please try again.", ephemeral=True)
            return
        if pacer is not None:  # an interaction answer: the global rate only, like a command's reply
            await pacer.acquire(None)
        if result.reply is not None and result.reply.image is not None:
            embed, file = image_message(result.reply.image)
            await interaction.response.send_message(embed=embed, file=file)
        elif result.done_label and interaction.message is not None:
            await interaction.response.edit_message(view=relabelled(interaction.message, custom_id, result.done_label))
            await interaction.followup.send(result.answer, ephemeral=True)
        else:
            await interaction.response.send_message(result.answer, ephemeral=True)

    client.event(on_interaction)
