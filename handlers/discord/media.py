"""Discord side of images: a Reply's chart as an attachment shown as the embed's image."""

from __future__ import annotations

import io

import discord

from core.reply import Image
from handlers.discord.render import COLOUR


def image_message(image: Image) -> tuple[discord.Embed, discord.File]:
    """An embed titled with the caption whose image is the attached PNG (``attachment://<file>``)."""
    embed = discord.Embed(colour=COLOUR, title=image.caption[:256])
    embed.set_image(url=f"attachment://{image.filename}")
    return embed, discord.File(io.BytesIO(image.data), filename=image.filename)
