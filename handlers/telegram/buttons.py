"""Inline buttons on Telegram: the keyboard of a Reply's actions, and presses answered in place.

``register`` adds one callback-query handler for our button data (``bw:...``) ahead of any other
handler: a press runs through ``core.buttons.press`` (same command core, same rights), is answered
(answerCallbackQuery, a refusal as an alert box), and then the pressed button is relabelled
(editMessageReplyMarkup) or the chart is sent into the chat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.ext import Application, ApplicationHandlerStop, CallbackQueryHandler, ContextTypes

from core.buttons import DONE, PREFIX, encode, press
from core.commands import CommandCore
from core.context import ChatContext
from core.reply import Action
from handlers.telegram.media import send_image

log = logging.getLogger(__name__)

GROUP = -1  # before the front end's own handlers (group 0): our presses stop there


def keyboard(actions: Sequence[Action]) -> InlineKeyboardMarkup | None:
    """One row of buttons, or None without actions."""
    if not actions:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(a.label, callback_data=encode(a)) for a in actions]])


def relabel(markup: InlineKeyboardMarkup, data: str, label: str) -> InlineKeyboardMarkup:
    """The same keyboard with the pressed button reading ``label`` (and doing nothing more)."""
    rows = [
        [InlineKeyboardButton(label, callback_data=DONE) if b.callback_data == data else b for b in row]
        for row in markup.inline_keyboard
    ]
    return InlineKeyboardMarkup(rows)


def register(
    app: Application,  # type: ignore[type-arg]  # PTB's generics, as in bot.py
    core: CommandCore,
    context_of: Callable[[Update], ChatContext],
) -> None:
    """Answer presses of our buttons in ``app`` (one handler, ahead of the others)."""

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        q = update.callback_query
        if q is None:
            return
        data = q.data or ""
        result = await press(core, data, context_of(update))
        await q.answer(result.answer[:200], show_alert=result.refused)
        msg = q.message if isinstance(q.message, Message) else None
        if msg is not None and result.reply is not None and result.reply.image is not None:
            thread: dict[str, Any] = {"message_thread_id": msg.message_thread_id} if msg.is_topic_message else {}
            await send_image(app.bot, msg.chat_id, result.reply.image, reply_to_message_id=msg.message_id, **thread)
        if msg is not None and result.done_label and msg.reply_markup is not None:
            try:
                await msg.edit_reply_markup(relabel(msg.reply_markup, data, result.done_label))
            except BadRequest as e:  # "message is not modified": a second press of the same button
                if "not modified" not in str(e).lower():
                    raise
        raise ApplicationHandlerStop  # handled: no other callback handler sees it

    app.add_handler(CallbackQueryHandler(on_press, pattern=f"^{PREFIX}"), group=GROUP)
