"""Telegram side of images: a Reply's chart as sendPhoto (multipart), its caption under Telegram's limit."""

from __future__ import annotations

from typing import Any

from telegram import Bot, InputFile, Message

from core.reply import Image

CAPTION_LIMIT = 1024


async def reply_image(msg: Message, image: Image, **kw: Any) -> Message:
    """A command's chart in answer to ``msg`` (in its chat and forum topic), with sendPhoto."""
    return await msg.reply_photo(photo=InputFile(image.data, filename=image.filename),
                                 caption=image.caption[:CAPTION_LIMIT], **kw)


async def send_image(bot: Bot, chat_id: int, image: Image, **kw: Any) -> Message:
    """Upload the PNG with sendPhoto; ``kw`` passes reply_markup, message_thread_id and the like."""
    return await bot.send_photo(chat_id, photo=InputFile(image.data, filename=image.filename),
                                caption=image.caption[:CAPTION_LIMIT], **kw)
