"""Photos and inline-button presses for the Bot API double, installed on an instance with ``install``.

Kept apart from ``tests/fakes/telegram.py``: ``install(double)`` adds ``sendPhoto`` (multipart, the
PNG's bytes kept in ``Sent.params["photo"]["data"]``), ``editMessageReplyMarkup`` and, unless the double
has it already, ``answerCallbackQuery``; ``press`` pushes a callback query from a user.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from aiohttp import web

from tests.fakes.telegram import ApiError, BotApiDouble, Sent

_ids = itertools.count(1)


def install(double: BotApiDouble) -> BotApiDouble:
    """Teach one double photos and callback answers; returns it."""
    read = double._read_params

    async def read_with_files(request: web.Request) -> dict[str, Any]:
        params = await read(request)
        if request.content_type.startswith("multipart/"):
            for key, value in (await request.post()).items():  # aiohttp caches the parsed form
                if isinstance(value, web.FileField):
                    value.file.seek(0)
                    params[key] = {
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "data": value.file.read(),
                    }
        return params

    double._read_params = read_with_files  # type: ignore[method-assign]
    if not hasattr(double, "callback_answers"):
        double.callback_answers = []  # type: ignore[attr-defined]
    double._methods["sendphoto"] = lambda p: _send_photo(double, p)
    double._methods["editmessagereplymarkup"] = lambda p: _edit_markup(double, p)
    double._methods.setdefault("answercallbackquery", lambda p: _answer(double, p))
    return double


def _send_photo(double: BotApiDouble, params: dict[str, Any]) -> Any:
    chat_id = double._chat_id(params)
    photo = params.get("photo")
    if not isinstance(photo, dict) or not photo.get("data"):
        raise ApiError(400, "Bad Request: there is no photo in the request")
    caption = str(params.get("caption") or "")
    if len(caption) > 1024:
        raise ApiError(400, "Bad Request: message caption is too long")
    double._check_limits(chat_id, time.monotonic()) if double._limits else None
    message_id = double._new_message_id(chat_id)
    message: dict[str, Any] = {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": double._chat(chat_id),
        "from": double.bot_user,
        "caption": caption,
        "photo": [{"file_id": f"photo{next(_ids)}", "file_unique_id": "u", "width": 1200, "height": 750}],
    }
    markup = params.get("reply_markup")
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        message["reply_markup"] = markup
    double._messages.setdefault(chat_id, {})[message_id] = message
    double.sent.append(
        Sent(
            chat_id=chat_id,
            text=caption,
            parse_mode=None,
            message_id=message_id,
            at=time.monotonic(),
            params=params,
            plain=caption,
            reply_markup=markup if isinstance(markup, dict) else None,
            method="sendPhoto",
        )
    )
    for fut in double._sent_waiters:
        if not fut.done():
            fut.set_result(None)
    return message


def _edit_markup(double: BotApiDouble, params: dict[str, Any]) -> Any:
    chat_id = double._chat_id(params)
    message = double._messages.get(chat_id, {}).get(params.get("message_id"))  # type: ignore[arg-type]
    if message is None:
        raise ApiError(400, "Bad Request: message to edit not found")
    markup = params.get("reply_markup")
    if markup == message.get("reply_markup"):
        raise ApiError(400, "Bad Request: message is not modified")
    message["reply_markup"] = markup
    double.edits.append(
        Sent(
            chat_id=chat_id,
            text=message.get("text", ""),
            parse_mode=None,
            message_id=int(message["message_id"]),
            at=time.monotonic(),
            params=params,
            reply_markup=markup if isinstance(markup, dict) else None,
            method="editMessageReplyMarkup",
        )
    )
    return message


def _answer(double: BotApiDouble, params: dict[str, Any]) -> Any:
    double.callback_answers.append(params)  # type: ignore[attr-defined]
    return True


def press(double: BotApiDouble, chat_id: int, message_id: int, data: str, *, user_id: int = 1001) -> str:
    """A user presses an inline button of one of the bot's messages; returns the callback query id."""
    query_id = f"cq{next(_ids)}"
    message = double._messages[chat_id][message_id]
    double.push_update(
        {
            "callback_query": {
                "id": query_id,
                "from": double._user(user_id),
                "message": message,
                "chat_instance": f"ci{chat_id}",
                "data": data,
            }
        }
    )
    return query_id
