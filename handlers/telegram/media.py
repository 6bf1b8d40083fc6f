"""Telegram side of images: a Reply's chart as sendPhoto (multipart), its caption under Telegram's limit."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from telegram import Bot, InputFile, Message
from telegram.constants import ParseMode

from core.reply import Image, Reply
from handlers.telegram.render import render_html

CAPTION_LIMIT = 1024


async def reply_image(msg: Message, image: Image, **kw: Any) -> Message:
    """A command's chart in answer to ``msg`` (in its chat and forum topic), with sendPhoto."""
    return await msg.reply_photo(
        photo=InputFile(image.data, filename=image.filename), caption=image.caption[:CAPTION_LIMIT], **kw
    )


async def send_image(bot: Bot, chat_id: int, image: Image, **kw: Any) -> Message:
    """Upload the PNG with sendPhoto; ``kw`` passes reply_markup, message_thread_id and the like."""
    kw.setdefault("caption", image.caption[:CAPTION_LIMIT])
    return await bot.send_photo(chat_id, photo=InputFile(image.data, filename=image.filename), **kw)


async def send_with_image(
    bot: Bot,
    chat_id: int,
    reply: Reply,
    *,
    reply_markup: Any = None,
    first: dict[str, Any] | None = None,
    rest: dict[str, Any] | None = None,
    **kw: Any,
) -> None:
    """An alert with its chart: one photo with the alert as caption when it fits, else the text then the photo.

    ``first`` goes with the first request only (the pacer slot it was granted), ``rest`` with the others."""
    assert reply.image is not None
    parts = render_html(replace(reply, image=None))
    if len(parts) == 1 and len(parts[0]) <= CAPTION_LIMIT:
        await send_image(
            bot,
            chat_id,
            reply.image,
            caption=parts[0],
            parse_mode=ParseMode.HTML,
            reply_markup=reply_markup,
            **(first or {}),
            **kw,
        )
        return
    for i, part in enumerate(parts):
        await bot.send_message(
            chat_id,
            part,
            parse_mode=ParseMode.HTML,
            disable_web_page_preview=True,
            **((first if i == 0 else rest) or {}),
            **kw,
        )
    await send_image(bot, chat_id, reply.image, reply_markup=reply_markup, **(rest or {}), **kw)
