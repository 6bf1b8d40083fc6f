"""A local Telegram Bot API double that the real python-telegram-bot talks to over HTTP.

Usage::

    async with BotApiDouble() as tg:
        app = (
            ApplicationBuilder().token(TOKEN).base_url(tg.base_url).base_file_url(tg.base_file_url).build()
        )
        ...
        tg.push_message(42, "/start")
        sent = await tg.wait_sent(1, chat_id=42)

The double speaks the real wire format (``{"ok": true, "result": ...}`` /
``{"ok": false, "error_code": N, "description": ..., "parameters": {...}}``), so PTB maps its
answers to its own exceptions exactly as it would for api.telegram.org:

* 429 with ``parameters.retry_after``        -> ``telegram.error.RetryAfter``
* 400 with ``parameters.migrate_to_chat_id`` -> ``telegram.error.ChatMigrated``
* 403                                        -> ``telegram.error.Forbidden``
* 400                                        -> ``telegram.error.BadRequest`` (a NetworkError subclass!)
* 401 / 404                                  -> ``telegram.error.InvalidToken``
                                                (404 after initialize -> ``EndPointNotFound``)
* 409                                        -> ``telegram.error.Conflict``
* 5xx                                        -> ``telegram.error.NetworkError``

It is stricter than Telegram in one respect on purpose: with ``parse_mode=HTML`` a bare ``<``,
``>`` or ``&`` outside a tag or entity is rejected, so escaping bugs fail loudly in tests.

Flood control (``enforce_limits``) follows Telegram's model: a send beyond a chat's window or the
bot's overall rate is refused with 429 and ``retry_after``, and that scope (the chat, or the whole
bot after an overall overrun) stays refused until ``retry_after`` has passed (a flood wait);
``flood_wait`` imposes one directly. Groups also model forum topics (``message_thread_id``),
callback queries (``push_callback``), edits (``push_edit``) and messages sent as a chat
(``sender_chat``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["MAX_TEXT_LENGTH", "TOKEN", "BotApiDouble", "Sent", "parse_html", "parse_markdown_v2"]

TOKEN = "123456:TEST-TOKEN"
MAX_TEXT_LENGTH = 4096


@dataclass
class Sent:
    """One accepted sendMessage (or editMessageText, in ``BotApiDouble.edits``) call."""

    chat_id: int
    text: str  # the raw text as the client sent it
    parse_mode: str | None
    message_id: int
    at: float  # time.monotonic() when accepted
    params: dict[str, Any]  # everything the client sent (JSON-ish values decoded)
    plain: str = ""  # text after entity parsing: tags stripped, entities unescaped
    entities: list[dict[str, Any]] = field(default_factory=list)
    reply_to: int | None = None  # reply_to_message_id / reply_parameters.message_id
    link_preview_disabled: bool | None = None  # disable_web_page_preview / link_preview_options.is_disabled
    reply_markup: dict[str, Any] | None = None
    method: str = "sendMessage"
    thread_id: int | None = None  # message_thread_id the client sent (a forum topic)


class ApiError(Exception):
    """Raised inside method handlers; turned into a Bot API error response."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


FAIL_KINDS = ("429", "blocked", "kicked", "migrate", "not_found", "500", "502")


def _failure(kind: str, chat_id: int, retry_after: int, new_chat_id: int | None) -> ApiError:
    if kind == "429":
        return ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
    if kind == "blocked":
        return ApiError(403, "Forbidden: bot was blocked by the user")
    if kind == "kicked":
        return ApiError(403, "Forbidden: bot was kicked from the group chat")
    if kind == "migrate":
        target = new_chat_id if new_chat_id is not None else int(f"-100{abs(chat_id)}")
        return ApiError(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            {"migrate_to_chat_id": target},
        )
    if kind == "not_found":
        return ApiError(400, "Bad Request: chat not found")
    if kind == "500":
        return ApiError(500, "Internal Server Error")
    if kind == "502":
        return ApiError(502, "Bad Gateway")
    raise ValueError(f"unknown failure kind {kind!r}; expected one of {FAIL_KINDS}")


# --------------------------------------------------------------------------------------------
# Entity parsing (HTML and MarkdownV2)
# --------------------------------------------------------------------------------------------


class EntityParseError(ValueError):
    pass


def _u16(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def _byte_offset(text: str, i: int) -> int:
    return len(text[:i].encode("utf-8"))


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_SPECIAL = re.compile(r"[<>&]")
_HTML_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,7}));")
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_TAG_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")
_ATTR_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_:.-]*")
_WS = re.compile(r"\s*")


def _html_unescape_strict(text: str, base: int, full: str) -> str:
    """Decode entities in ``text``; a bare ``&`` is an error (``base`` = offset of text in full)."""
    out: list[str] = []
    pos = 0
    for m in re.finditer("&", text):
        start = m.start()
        if start < pos:
            continue
        out.append(text[pos:start])
        em = _HTML_ENTITY.match(text, start)
        if em is None:
            raise EntityParseError(f'Unescaped "&" at byte offset {_byte_offset(full, base + start)}: write &amp;')
        out.append(_decode_entity(em, full, base + start))
        pos = em.end()
    out.append(text[pos:])
    return "".join(out)


def _decode_entity(m: re.Match[str], full: str, at: int) -> str:
    named, dec, hexa = m.groups()
    if named:
        return _HTML_NAMED[named]
    cp = int(dec) if dec else int(hexa, 16)
    if cp == 0 or cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
        raise EntityParseError(f"Invalid character entity at byte offset {_byte_offset(full, at)}")
    return chr(cp)


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram's HTML subset. Returns (plain text, entities) or raises EntityParseError."""
    out: list[str] = []
    u16 = 0  # length of the plain text so far, in UTF-16 code units (Telegram's offsets)
    # stack entries: [tag, entity type, start offset, extra entity fields]
    stack: list[tuple[str, str, int, dict[str, Any]]] = []
    entities: list[dict[str, Any]] = []
    i = 0
    n = len(text)
    while i < n:
        m = _HTML_SPECIAL.search(text, i)
        if m is None:
            chunk = text[i:]
            out.append(chunk)
            u16 += _u16(chunk)
            break
        j = m.start()
        if j > i:
            chunk = text[i:j]
            out.append(chunk)
            u16 += _u16(chunk)
        c = text[j]
        if c == ">":
            raise EntityParseError(f'Unescaped ">" at byte offset {_byte_offset(text, j)}: write &gt;')
        if c == "&":
            em = _HTML_ENTITY.match(text, j)
            if em is None:
                raise EntityParseError(f'Unescaped "&" at byte offset {_byte_offset(text, j)}: write &amp;')
            ch = _decode_entity(em, text, j)
            out.append(ch)
            u16 += _u16(ch)
            i = em.end()
            continue
        # c == "<"
        if text.startswith("</", j):
            end = text.find(">", j)
            if end < 0:
                raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(text, j)}")
            name = text[j + 2 : end].strip().lower()
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(text, j)}")
            tag, etype, start, extra = stack.pop()
            if name != tag:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {_byte_offset(text, j)}, expected "</{tag}>", found "</{name}>"'
                )
            if u16 > start and etype:
                entities.append({"type": etype, "offset": start, "length": u16 - start, **extra})
            i = end + 1
            continue
        nm = _TAG_NAME.match(text, j + 1)
        if nm is None:
            raise EntityParseError(f'Unescaped "<" at byte offset {_byte_offset(text, j)}: write &lt;')
        name = nm.group().lower()
        if name not in _HTML_TAGS:
            raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, j)}')
        k = nm.end()
        attrs: dict[str, str] = {}
        while True:
            k = _WS.match(text, k).end()  # type: ignore[union-attr]
            if k >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, j)}")
            if text[k] == ">":
                k += 1
                break
            am = _ATTR_NAME.match(text, k)
            if am is None:
                raise EntityParseError(
                    f'Unexpected "{text[k]}" in start tag "{name}" at byte offset {_byte_offset(text, k)}'
                )
            attr = am.group().lower()
            k = _WS.match(text, am.end()).end()  # type: ignore[union-attr]
            if k < n and text[k] == "=":
                k = _WS.match(text, k + 1).end()  # type: ignore[union-attr]
                if k < n and text[k] in "\"'":
                    q = text[k]
                    close = text.find(q, k + 1)
                    if close < 0:
                        raise EntityParseError(f"Unclosed attribute value at byte offset {_byte_offset(text, k)}")
                    raw, vstart, k = text[k + 1 : close], k + 1, close + 1
                else:
                    vm = re.compile(r"[^\s\"'<>=`]+").match(text, k)
                    if vm is None:
                        raise EntityParseError(f"Empty attribute value at byte offset {_byte_offset(text, k)}")
                    raw, vstart, k = vm.group(), k, vm.end()
                if "<" in raw:
                    raise EntityParseError(
                        f'Unescaped "<" in attribute value at byte offset {_byte_offset(text, vstart)}'
                    )
                attrs[attr] = _html_unescape_strict(raw, vstart, text)
            else:
                attrs[attr] = ""
        etype = _HTML_TAGS[name]
        extra: dict[str, Any] = {}
        if name == "span":
            if attrs.get("class") != "tg-spoiler":
                raise EntityParseError('Tag "span" must have class "tg-spoiler"')
        elif name == "a":
            href = attrs.get("href", "")
            if href:
                extra = {"url": href}
            else:
                etype = ""
        elif name == "tg-emoji":
            emoji_id = attrs.get("emoji-id", "")
            if not emoji_id:
                raise EntityParseError('Tag "tg-emoji" must have attribute "emoji-id"')
            extra = {"custom_emoji_id": emoji_id}
        elif name == "blockquote" and "expandable" in attrs:
            etype = "expandable_blockquote"
        elif name == "code":
            lang = attrs.get("class", "")
            if lang.startswith("language-") and stack and stack[-1][0] == "pre" and stack[-1][2] == u16:
                tag, ptype, start, _ = stack[-1]
                stack[-1] = (tag, ptype, start, {"language": lang[len("language-") :]})
        stack.append((name, etype, u16, extra))
        i = k
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


_MD_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MD_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
}


def parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    """A compact MarkdownV2 parser enforcing Telegram's escaping rules."""
    out: list[str] = []
    u16 = 0
    stack: list[tuple[str, int, int]] = []  # (type, plain start, byte offset of the marker)
    entities: list[dict[str, Any]] = []
    quote_start: int | None = None
    i, n = 0, len(text)

    def emit(s: str) -> None:
        nonlocal u16
        out.append(s)
        u16 += _u16(s)

    def toggle(etype: str, at: int) -> None:
        if stack and stack[-1][0] == etype:
            _, start, _ = stack.pop()
            if u16 > start:
                entities.append({"type": etype, "offset": start, "length": u16 - start})
        elif any(e[0] == etype for e in stack):
            raise EntityParseError(f"Can't find end of {_MD_NAMES[stack[-1][0]]} entity at byte offset {stack[-1][2]}")
        else:
            stack.append((etype, u16, _byte_offset(text, at)))

    while i < n:
        c = text[i]
        line_start = i == 0 or text[i - 1] == "\n"
        if line_start and quote_start is not None and c != ">":
            entities.append({"type": "blockquote", "offset": quote_start, "length": u16 - quote_start - 1})
            quote_start = None
        if c == "\\":
            if i + 1 >= n or not 1 <= ord(text[i + 1]) <= 126:
                raise EntityParseError("Character '\\' is reserved and must be escaped with the preceding '\\'")
            emit(text[i + 1])
            i += 2
            continue
        if c == "`":
            fence = 3 if text.startswith("```", i) else 1
            j = i + fence
            lang = ""
            if fence == 3:
                nl = text.find("\n", j)
                if nl >= 0 and re.fullmatch(r"[A-Za-z0-9_+#-]*", text[j:nl]):
                    lang, j = text[j:nl], nl + 1
            start = u16
            buf: list[str] = []
            while True:
                if j >= n:
                    etype = "Pre" if fence == 3 else "Code"
                    raise EntityParseError(f"Can't find end of {etype} entity at byte offset {_byte_offset(text, i)}")
                if text[j] == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                    continue
                if text.startswith("`" * fence, j):
                    break
                buf.append(text[j])
                j += 1
            emit("".join(buf))
            if u16 > start:
                ent: dict[str, Any] = {"type": "pre" if fence == 3 else "code", "offset": start}
                ent["length"] = u16 - start
                if lang:
                    ent["language"] = lang
                entities.append(ent)
            i = j + fence
            continue
        if c == "*":
            if line_start and text.startswith("**>", i):
                i += 2
                continue
            toggle("bold", i)
            i += 1
            continue
        if c == "_":
            if text.startswith("__", i):
                toggle("underline", i)
                i += 2
            else:
                toggle("italic", i)
                i += 1
            continue
        if c == "~":
            toggle("strikethrough", i)
            i += 1
            continue
        if c == "|" and text.startswith("||", i):
            if text.startswith("||", i) and i + 2 == n and quote_start is not None and not stack:
                i += 2  # expandable blockquote terminator
                continue
            toggle("spoiler", i)
            i += 2
            continue
        if c == "!" and text.startswith("![", i):
            i += 1
            continue
        if c == "[":
            stack.append(("text_link", u16, _byte_offset(text, i)))
            i += 1
            continue
        if c == "]" and stack and stack[-1][0] == "text_link":
            if not text.startswith("(", i + 1):
                raise EntityParseError("Character ']' is reserved and must be escaped with the preceding '\\'")
            j = i + 2
            url: list[str] = []
            while j < n and text[j] != ")":
                if text[j] == "\\" and j + 1 < n:
                    url.append(text[j + 1])
                    j += 2
                    continue
                url.append(text[j])
                j += 1
            if j >= n:
                raise EntityParseError(f"Can't find end of a URL at byte offset {_byte_offset(text, i + 1)}")
            _, start, _ = stack.pop()
            link = "".join(url)
            if u16 > start:
                etype = "custom_emoji" if link.startswith("tg://emoji") else "text_link"
                key = "custom_emoji_id" if etype == "custom_emoji" else "url"
                value = link.split("id=", 1)[-1] if etype == "custom_emoji" else link
                entities.append({"type": etype, "offset": start, "length": u16 - start, key: value})
            i = j + 1
            continue
        if c == ">" and line_start:
            if quote_start is None:
                quote_start = u16
            i += 1
            continue
        if c in _MD_RESERVED:
            raise EntityParseError(f"Character '{c}' is reserved and must be escaped with the preceding '\\'")
        j = i + 1
        while j < n and text[j] not in _MD_RESERVED and text[j] not in "\\\n":
            j += 1
        if j < n and text[j] == "\n":
            j += 1
        emit(text[i:j])
        i = j
    if stack:
        etype, _, at = stack[-1]
        raise EntityParseError(f"Can't find end of {_MD_NAMES[etype]} entity at byte offset {at}")
    if quote_start is not None and u16 > quote_start:
        entities.append({"type": "blockquote", "offset": quote_start, "length": u16 - quote_start})
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def parse_text(text: str, parse_mode: str | None) -> tuple[str, list[dict[str, Any]]]:
    if not parse_mode:
        return text, []
    mode = parse_mode.lower()
    try:
        if mode == "html":
            return parse_html(text)
        if mode == "markdownv2":
            return parse_markdown_v2(text)
    except EntityParseError as exc:
        raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
    if mode == "markdown":  # legacy Markdown: not validated
        return text, []
    raise ApiError(400, "Bad Request: unsupported parse_mode")


# --------------------------------------------------------------------------------------------
# Flood control
# --------------------------------------------------------------------------------------------


class _Window:
    """At most ``limit`` events in any ``span`` seconds (sliding window over accepted events)."""

    __slots__ = ("limit", "span", "stamps")

    def __init__(self, limit: int, span: float) -> None:
        self.limit = limit
        self.span = span
        self.stamps: deque[float] = deque()

    @classmethod
    def per_second(cls, rate: float) -> _Window:
        limit = max(1, math.floor(rate))
        return cls(limit, limit / rate)

    def wait(self, now: float) -> float:
        """Seconds until one more event fits (0 if it fits now)."""
        stamps = self.stamps
        cutoff = now - self.span
        while stamps and stamps[0] <= cutoff:
            stamps.popleft()
        if len(stamps) < self.limit:
            return 0.0
        return stamps[-self.limit] + self.span - now

    def add(self, now: float) -> None:
        self.stamps.append(now)


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------

# Fields that are always strings, never JSON-decoded or turned into numbers.
_STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "title",
        "description",
        "short_description",
        "name",
        "query",
        "custom_title",
        "first_name",
        "last_name",
        "username",
        "emoji",
        "explanation",
        "question",
        "url",
        "secret_token",
        "parse_mode",
        "language_code",
        "inline_message_id",
        "callback_query_id",
    }
)
_INT_RE = re.compile(r"-?\d+")
_FLOAT_RE = re.compile(r"-?\d+\.\d+")


def _coerce(key: str, value: Any) -> Any:
    if not isinstance(value, str) or key in _STRING_FIELDS:
        return value
    if value[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    if value in ("true", "false"):
        return value == "true"
    if _INT_RE.fullmatch(value):
        return int(value)
    if _FLOAT_RE.fullmatch(value):
        return float(value)
    return value


def _group_type(chat_id: int) -> str:
    return "supergroup" if chat_id <= -1_000_000_000_000 else "group"


_CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"


class BotApiDouble:
    def __init__(
        self,
        token: str = TOKEN,
        bot_id: int = 999,
        bot_username: str = "basiswatch_bot",
        *,
        bot_name: str = "BasisWatch",
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.bot_user: dict[str, Any] = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.base_url = ""
        self.base_file_url = ""
        self.port = 0

        self.sent: list[Sent] = []
        self.edits: list[Sent] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[tuple[str, int, str]] = []  # (method, error_code, description) served
        self.unknown_methods: list[str] = []
        self.too_many_requests = 0
        self.flood_refusals: dict[str, int] = {"chat": 0, "bot": 0}  # 429s by the scope that was overrun
        self.callback_answers: list[dict[str, Any]] = []
        self.closed_by_client = False  # set by close/logOut
        self.commands: dict[str, list[dict[str, Any]]] = {}  # scope/lang key -> commands

        self._updates: deque[dict[str, Any]] = deque()
        self._update_ids = itertools.count(1)
        self._poller: asyncio.Future[str] | None = None
        self._sent_waiters: list[asyncio.Future[None]] = []
        self._chats: dict[int, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {bot_id: self.bot_user}
        self._messages: dict[int, dict[int, dict[str, Any]]] = {}
        self._next_message_id: dict[int, int] = {}
        self._admins: dict[int, tuple[list[int], int | None]] = {}
        self._fail_next: dict[int, deque[ApiError]] = {}
        self._fail_always: dict[int, ApiError] = {}

        self._limits = False
        self._global_rate: float | None = None
        self._chat_rate: float | None = None
        self._group_per_min: int | None = None
        self._global_window: _Window | None = None
        self._chat_windows: dict[int, _Window] = {}
        self._group_window_s = 60.0
        self._held_chats: dict[int, float] = {}  # chat -> monotonic time its flood wait ends
        self._held_bot = 0.0
        self._callback_ids = itertools.count(1)

        self._closing = False
        self._runner: web.AppRunner | None = None
        self._methods = {
            "getme": self._get_me,
            "logout": self._log_out,
            "close": self._close,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "getchat": self._get_chat,
            "getchatmember": self._get_chat_member,
            "getchatadministrators": self._get_chat_administrators,
            "setmycommands": self._set_my_commands,
            "deletemycommands": self._delete_my_commands,
            "getmycommands": self._get_my_commands,
            "answercallbackquery": self._answer_callback_query,
        }

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/file/bot{token}/{path:.*}", self._handle_file)
        # handler_cancellation: a long poll whose client went away (PTB cancels its pending
        # getUpdates on Updater.stop) is cancelled instead of lingering until its timeout.
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        self.base_url = f"http://{host}:{self.port}/bot"
        self.base_file_url = f"http://{host}:{self.port}/file/bot"

    async def close(self) -> None:
        self._closing = True
        if self._poller is not None and not self._poller.done():
            self._poller.set_result("closed")
        for fut in self._sent_waiters:
            if not fut.done():
                fut.set_result(None)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> BotApiDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- scripting -------------------------------------------------------------------------

    def push_update(self, update: dict[str, Any]) -> int:
        """Enqueue a raw Update dict (``update_id`` is assigned); returns the update_id."""
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, **update})
        if self._poller is not None and not self._poller.done():
            self._poller.set_result("update")
        return update_id

    def push_message(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int = 1001,
        chat_type: str = "private",
        first_name: str = "Trader",
        username: str | None = "trader",
        chat_title: str | None = None,
        thread_id: int | None = None,
        sender_chat: int | None = None,
    ) -> int:
        """A user's message; ``thread_id`` puts it in a forum topic, ``sender_chat`` sends it as a chat:
        the group itself (an anonymous admin, from GroupAnonymousBot) or a channel (from Channel_Bot)."""
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username is not None:
            user["username"] = username
        if sender_chat is not None:
            user = (
                {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
                if sender_chat == chat_id
                else {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
            )
        self._users[user["id"]] = user
        chat = self._chat(chat_id, chat_type=chat_type, title=chat_title, user=user)
        if thread_id is not None:
            chat["is_forum"] = True
        message: dict[str, Any] = {
            "message_id": self._new_message_id(chat_id),
            "date": int(time.time()),
            "chat": chat,
            "from": user,
            "text": text,
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if sender_chat is not None:
            message["sender_chat"] = (
                dict(chat)
                if sender_chat == chat_id
                else {"id": sender_chat, "type": "channel", "title": f"Channel {sender_chat}"}
            )
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0] if text.strip() else text
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": _u16(command)}]
        self._messages.setdefault(chat_id, {})[message["message_id"]] = message
        return self.push_update({"message": message})

    def push_edit(self, chat_id: int, message_id: int, text: str) -> int:
        """The user edited one of their messages: an ``edited_message`` update."""
        message = dict(self._messages[chat_id][message_id])
        message["text"] = text
        message["edit_date"] = int(time.time())
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": _u16(text.split()[0])}]
        self._messages[chat_id][message_id] = message
        return self.push_update({"edited_message": message})

    def push_callback(self, chat_id: int, message_id: int, data: str, *, user_id: int = 1001) -> str:
        """A press on an inline button of one of the bot's messages; returns the callback query id."""
        query_id = str(next(self._callback_ids))
        message = self._messages[chat_id][message_id]
        self.push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": self._user(user_id),
                    "message": message,
                    "chat_instance": f"ci{chat_id}",
                    "data": data,
                }
            }
        )
        return query_id

    def flood_wait(self, seconds: float, chat_id: int | None = None) -> None:
        """Refuse every send to ``chat_id`` (or, when None, to every chat) with 429 for ``seconds``."""
        until = time.monotonic() + seconds
        if chat_id is None:
            self._held_bot = until
        else:
            self._held_chats[chat_id] = until

    @property
    def pending_updates(self) -> int:
        return len(self._updates)

    async def wait_sent(
        self,
        n: int = 1,
        *,
        chat_id: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[Sent]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got = self.sent if chat_id is None else self.sent_to(chat_id)
            if len(got) >= n:
                return list(got)
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                break
            fut: asyncio.Future[None] = loop.create_future()
            self._sent_waiters.append(fut)
            try:
                async with asyncio.timeout(remaining):
                    await fut
            except TimeoutError:
                pass
            finally:
                with contextlib.suppress(ValueError):
                    self._sent_waiters.remove(fut)
        where = "" if chat_id is None else f" to chat {chat_id}"
        lines = [f"  {s.chat_id}: {s.text!r}" for s in self.sent[-20:]]
        errors = [f"  {m} -> {c} {d}" for m, c, d in self.errors[-10:]]
        raise AssertionError(
            f"expected {n} sent message(s){where} within {timeout}s, got {len(got)}.\n"
            f"sent ({len(self.sent)} total, last 20):\n" + ("\n".join(lines) or "  (none)") + "\n"
            "errors served (last 10):\n" + ("\n".join(errors) or "  (none)")
        )

    def sent_to(self, chat_id: int) -> list[Sent]:
        return [s for s in self.sent if s.chat_id == chat_id]

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [p for m, p in self.calls if m.lower() == method.lower()]

    def set_admins(self, chat_id: int, user_ids: list[int], creator: int | None = None) -> None:
        self._admins[chat_id] = (list(user_ids), creator)

    def fail_next(
        self,
        chat_id: int,
        kind: str,
        *,
        times: int = 1,
        retry_after: int = 1,
        new_chat_id: int | None = None,
    ) -> None:
        error = _failure(kind, chat_id, retry_after, new_chat_id)
        self._fail_next.setdefault(chat_id, deque()).extend([error] * times)

    def fail_always(self, chat_id: int, kind: str, *, retry_after: int = 1, new_chat_id: int | None = None) -> None:
        self._fail_always[chat_id] = _failure(kind, chat_id, retry_after, new_chat_id)

    def clear_failures(self, chat_id: int | None = None) -> None:
        if chat_id is None:
            self._fail_next.clear()
            self._fail_always.clear()
        else:
            self._fail_next.pop(chat_id, None)
            self._fail_always.pop(chat_id, None)

    def enforce_limits(
        self,
        *,
        global_per_s: float | None = 30,
        per_chat_per_s: float | None = 1,
        group_per_min: int | None = 20,
        group_window_s: float = 60.0,
    ) -> None:
        """Refuse what Telegram would; ``group_window_s`` shortens the group minute for fast tests."""
        self._limits = True
        self._global_rate = global_per_s
        self._chat_rate = per_chat_per_s
        self._group_per_min = group_per_min
        self._group_window_s = group_window_s
        self._global_window = _Window.per_second(global_per_s) if global_per_s else None
        self._chat_windows = {}

    def disable_limits(self) -> None:
        self._limits = False
        self._global_window = None
        self._chat_windows = {}

    def get_commands(self, scope: dict[str, Any] | None = None, language_code: str = "") -> list[dict[str, Any]]:
        return list(self.commands.get(self._commands_key(scope, language_code), []))

    # ---- HTTP plumbing ---------------------------------------------------------------------

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        raw: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    raw.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        raw[key] = {"filename": value.filename, "content_type": value.content_type}
                    else:
                        raw[key] = value
        return {k: _coerce(k, v) for k, v in raw.items()}

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params = await self._read_params(request)
        except ValueError:
            self.calls.append((method, {}))
            return self._error(method, ApiError(400, "Bad Request: can't parse request body"))
        self.calls.append((method, params))
        if request.match_info["token"] != self.token:
            return self._error(method, ApiError(401, "Unauthorized"))
        handler = self._methods.get(method.lower())
        if handler is None:
            self.unknown_methods.append(method)
            return self._error(method, ApiError(404, "Not Found"))
        try:
            result = handler(params)
            if asyncio.iscoroutine(result):
                result = await result
        except ApiError as exc:
            return self._error(method, exc)
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.Response:
        return self._error("file", ApiError(404, "Not Found"))

    def _error(self, method: str, exc: ApiError) -> web.Response:
        self.errors.append((method, exc.code, exc.description))
        return web.json_response(exc.payload(), status=exc.code)

    # ---- model helpers ---------------------------------------------------------------------

    def _new_message_id(self, chat_id: int) -> int:
        mid = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = mid + 1
        return mid

    def _user(self, user_id: int) -> dict[str, Any]:
        user = self._users.get(user_id)
        if user is None:
            user = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
            self._users[user_id] = user
        return user

    def _chat(
        self,
        chat_id: int,
        *,
        chat_type: str | None = None,
        title: str | None = None,
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        chat = self._chats.get(chat_id)
        if chat is not None and chat_type is None and title is None:
            return chat
        if chat_id < 0:
            ctype = chat_type if chat_type and chat_type != "private" else _group_type(chat_id)
            old_title = chat.get("title") if chat else None
            chat = {"id": chat_id, "type": ctype, "title": title or old_title or f"Group {chat_id}"}
        else:
            # a private chat is named after the user who writes in it (or the user with that id)
            who = user if user is not None else self._users.get(chat_id)
            chat = {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
            if who is not None:
                chat["first_name"] = who["first_name"]
                if "username" in who:
                    chat["username"] = who["username"]
        self._chats[chat_id] = chat
        return chat

    def _chat_id(self, params: dict[str, Any]) -> int:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            for known in self._chats.values():
                if isinstance(chat_id, str) and known.get("username") == chat_id.lstrip("@"):
                    return int(known["id"])
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    def _take_failure(self, chat_id: int) -> ApiError | None:
        queue = self._fail_next.get(chat_id)
        if queue:
            return queue.popleft()
        return self._fail_always.get(chat_id)

    def _held(self, chat_id: int, now: float) -> None:
        """A flood wait in force for the bot or this chat: 429 with the time that is left."""
        until = max(self._held_bot, self._held_chats.get(chat_id, 0.0))
        if until > now:
            self.too_many_requests += 1
            retry_after = max(1, math.ceil(until - now))
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})

    def _check_limits(self, chat_id: int, now: float) -> None:
        self._held(chat_id, now)
        if not self._limits:
            return
        if self._global_window is not None and (wait := self._global_window.wait(now)) > 0:
            self.too_many_requests += 1
            self.flood_refusals["bot"] += 1
            retry_after = max(1, math.ceil(wait))
            self._held_bot = now + retry_after  # an overall overrun: the whole bot waits
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
        windows: list[_Window] = []
        if self._global_window is not None:
            windows.append(self._global_window)
        chat_window = self._chat_windows.get(chat_id)
        if chat_window is None:
            if chat_id < 0 and self._group_per_min:
                chat_window = _Window(self._group_per_min, self._group_window_s)
            elif chat_id > 0 and self._chat_rate:
                chat_window = _Window.per_second(self._chat_rate)
            if chat_window is not None:
                self._chat_windows[chat_id] = chat_window
        if chat_window is not None:
            windows.append(chat_window)
        wait = max((w.wait(now) for w in windows), default=0.0)
        if wait > 0:
            self.too_many_requests += 1
            self.flood_refusals["chat"] += 1
            retry_after = max(1, math.ceil(wait))
            self._held_chats[chat_id] = now + retry_after  # this chat waits out its flood wait
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
        for w in windows:
            w.add(now)

    def _parse_checked(self, text: Any, parse_mode: str | None) -> tuple[str, list[dict[str, Any]]]:
        if text is None or text == "":
            raise ApiError(400, "Bad Request: message text is empty")
        text = str(text)
        plain, entities = parse_text(text, parse_mode)
        if not plain.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(plain) > MAX_TEXT_LENGTH:
            raise ApiError(400, "Bad Request: message is too long")
        return plain, entities

    @staticmethod
    def _preview_disabled(params: dict[str, Any]) -> bool | None:
        if "disable_web_page_preview" in params:
            return bool(params["disable_web_page_preview"])
        options = params.get("link_preview_options")
        if isinstance(options, dict) and "is_disabled" in options:
            return bool(options["is_disabled"])
        return None

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> str:
        scope = scope if isinstance(scope, dict) else {"type": "default"}
        return json.dumps([scope, language_code or ""], sort_keys=True)

    def _member(self, chat_id: int, user_id: int) -> dict[str, Any]:
        user = self._user(user_id)
        admins, creator = self._admins.get(chat_id, ([], None))
        if creator == user_id:
            return {"status": "creator", "user": user, "is_anonymous": False}
        if user_id in admins:
            return {
                "status": "administrator",
                "user": user,
                "can_be_edited": False,
                "is_anonymous": False,
                "can_manage_chat": True,
                "can_delete_messages": True,
                "can_manage_video_chats": True,
                "can_restrict_members": True,
                "can_promote_members": False,
                "can_change_info": True,
                "can_invite_users": True,
                "can_post_stories": False,
                "can_edit_stories": False,
                "can_delete_stories": False,
                "can_pin_messages": True,
            }
        return {"status": "member", "user": user}

    # ---- methods ---------------------------------------------------------------------------

    def _get_me(self, params: dict[str, Any]) -> Any:
        return self.bot_user

    def _log_out(self, params: dict[str, Any]) -> Any:
        self.closed_by_client = True
        return True

    def _close(self, params: dict[str, Any]) -> Any:
        self.closed_by_client = True
        return True

    def _delete_webhook(self, params: dict[str, Any]) -> Any:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _get_webhook_info(self, params: dict[str, Any]) -> Any:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    def _pending(self, limit: int, allowed: Any) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        for update in self._updates:
            if allowed and not any(k in allowed for k in update if k != "update_id"):
                continue
            batch.append(update)
            if len(batch) >= limit:
                break
        return batch

    async def _get_updates(self, params: dict[str, Any]) -> Any:
        offset = params.get("offset")
        if isinstance(offset, int):
            if offset < 0:
                while len(self._updates) > -offset:
                    self._updates.popleft()
            else:
                while self._updates and self._updates[0]["update_id"] < offset:
                    self._updates.popleft()
        limit = params.get("limit", 100)
        limit = min(100, max(1, limit)) if isinstance(limit, int) else 100
        timeout = params.get("timeout", 0)
        timeout = max(0.0, float(timeout)) if isinstance(timeout, int | float) else 0.0
        allowed = params.get("allowed_updates")
        allowed = allowed if isinstance(allowed, list) else None
        # A new getUpdates terminates an older pending one, like Telegram does.
        if self._poller is not None and not self._poller.done():
            self._poller.set_result("conflict")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batch = self._pending(limit, allowed)
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closing:
                return batch
            waiter: asyncio.Future[str] = loop.create_future()
            self._poller = waiter
            try:
                async with asyncio.timeout(remaining):
                    reason = await waiter
            except TimeoutError:
                reason = "timeout"
            finally:
                if self._poller is waiter:
                    self._poller = None
            if reason == "conflict":
                raise ApiError(409, _CONFLICT)

    def _send_message(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        failure = self._take_failure(chat_id)
        if failure is not None:
            raise failure
        parse_mode = params.get("parse_mode") or None
        text = params.get("text")
        plain, entities = self._parse_checked(text, parse_mode)
        if not entities and isinstance(params.get("entities"), list):
            entities = params["entities"]
        messages = self._messages.setdefault(chat_id, {})
        reply_to: int | None = None
        allow_missing = bool(params.get("allow_sending_without_reply"))
        reply_parameters = params.get("reply_parameters")
        if isinstance(reply_parameters, dict):
            reply_to = reply_parameters.get("message_id")
            allow_missing = allow_missing or bool(reply_parameters.get("allow_sending_without_reply"))
        elif isinstance(params.get("reply_to_message_id"), int):
            reply_to = params["reply_to_message_id"]
        if reply_to is not None and reply_to not in messages and not allow_missing:
            raise ApiError(400, "Bad Request: message to be replied not found")
        now = time.monotonic()
        self._check_limits(chat_id, now)
        message_id = self._new_message_id(chat_id)
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": self.bot_user,
            "text": plain,
        }
        if entities:
            message["entities"] = entities
        thread_id = params.get("message_thread_id")
        if isinstance(thread_id, int):
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        else:
            thread_id = None
        reply_markup = params.get("reply_markup")
        if isinstance(reply_markup, dict) and "inline_keyboard" in reply_markup:
            message["reply_markup"] = reply_markup
        preview_disabled = self._preview_disabled(params)
        if preview_disabled:
            message["link_preview_options"] = {"is_disabled": True}
        if reply_to is not None and reply_to in messages:
            replied = {k: v for k, v in messages[reply_to].items() if k != "reply_to_message"}
            message["reply_to_message"] = replied
        messages[message_id] = message
        self.sent.append(
            Sent(
                chat_id=chat_id,
                text=str(text),
                parse_mode=parse_mode,
                message_id=message_id,
                at=now,
                params=params,
                plain=plain,
                entities=entities,
                reply_to=reply_to,
                link_preview_disabled=preview_disabled,
                reply_markup=reply_markup if isinstance(reply_markup, dict) else None,
                thread_id=thread_id,
            )
        )
        if self._sent_waiters:
            for fut in self._sent_waiters:
                if not fut.done():
                    fut.set_result(None)
        return message

    def _edit_message_text(self, params: dict[str, Any]) -> Any:
        parse_mode = params.get("parse_mode") or None
        text = params.get("text")
        if params.get("inline_message_id"):
            plain, entities = self._parse_checked(text, parse_mode)
            return True
        chat_id = self._chat_id(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise ApiError(400, "Bad Request: message identifier is not specified")
        plain, entities = self._parse_checked(text, parse_mode)
        self._check_limits(chat_id, time.monotonic())
        message = self._messages.get(chat_id, {}).get(message_id)
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message["from"]["id"] != self.bot_id:
            raise ApiError(400, "Bad Request: message can't be edited")
        reply_markup = params.get("reply_markup")
        markup = reply_markup if isinstance(reply_markup, dict) and "inline_keyboard" in reply_markup else None
        if (
            message["text"] == plain
            and message.get("entities", []) == entities
            and message.get("reply_markup") == markup
        ):
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message",
            )
        message["text"] = plain
        message["edit_date"] = int(time.time())
        if entities:
            message["entities"] = entities
        else:
            message.pop("entities", None)
        if markup is not None:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        self.edits.append(
            Sent(
                chat_id=chat_id,
                text=str(text),
                parse_mode=parse_mode,
                message_id=message_id,
                at=time.monotonic(),
                params=params,
                plain=plain,
                entities=entities,
                link_preview_disabled=self._preview_disabled(params),
                reply_markup=reply_markup if isinstance(reply_markup, dict) else None,
                method="editMessageText",
            )
        )
        return message

    def _get_chat(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        return {
            **self._chat(chat_id),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _get_chat_member(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise ApiError(400, "Bad Request: invalid user_id specified")
        return self._member(chat_id, user_id)

    def _get_chat_administrators(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        if chat_id > 0:
            raise ApiError(400, "Bad Request: there are no administrators in the private chat")
        admins, creator = self._admins.get(chat_id, ([], None))
        ids = ([creator] if creator is not None else []) + [a for a in admins if a != creator]
        return [self._member(chat_id, uid) for uid in ids]

    def _set_my_commands(self, params: dict[str, Any]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        if len(commands) > 100:
            raise ApiError(400, "Bad Request: too many commands")
        for cmd in commands:
            name = cmd.get("command", "") if isinstance(cmd, dict) else ""
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            description = cmd.get("description", "")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        self.commands[key] = [{"command": c["command"], "description": c["description"]} for c in commands]
        return True

    def _delete_my_commands(self, params: dict[str, Any]) -> Any:
        self.commands.pop(self._commands_key(params.get("scope"), params.get("language_code")), None)
        return True

    def _get_my_commands(self, params: dict[str, Any]) -> Any:
        return self.commands.get(self._commands_key(params.get("scope"), params.get("language_code")), [])

    def _answer_callback_query(self, params: dict[str, Any]) -> Any:
        if not params.get("callback_query_id"):
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        text = params.get("text")
        if isinstance(text, str) and len(text) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self.callback_answers.append(params)
        return True
