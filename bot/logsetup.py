"""Logging for the process: text or JSON lines, a level per component, secrets masked on every handler.

``--log-format json`` writes one JSON object per line: ``ts``, ``level``, ``logger``, ``msg`` and, as
fields of their own, the ids a line names (``venue=okx``, ``asset=BTC``, ``chat=tg:42``, ``alert=...``,
``provider=``, ``symbol=``, ``rule=``), whether passed with ``extra=`` or written ``key=value`` in the
message. ``--log-level watchers=DEBUG,telegram=WARNING`` sets levels per logger (component);
a bare level sets the root.

With the console chat, log lines would break into the prompt: they go to a file in the data folder,
named at start, and only what the user must know (warnings and errors) shows as a short notice line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bot.redaction import SecretFilter

FIELDS = ("venue", "asset", "chat", "alert", "provider", "symbol", "rule", "source", "platform", "command")
_KV = re.compile(r"\b(" + "|".join(FIELDS) + r")=([^\s,;]+)")
_SOURCE = re.compile(r"^(market|flows):([\w.-]+):")  # the runner's "market:okx: poll failed ..."
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOTICE_MAX_CHARS = 140
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the ids the record names as separate fields."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": msg,
        }
        for key, value in _KV.findall(msg):
            doc.setdefault(key, value)
        if m := _SOURCE.match(msg):
            doc.setdefault("source", f"{m[1]}:{m[2]}")
            doc.setdefault("venue" if m[1] == "market" else "provider", m[2])
        for key in FIELDS:
            if key in record.__dict__:
                doc[key] = record.__dict__[key]
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        return json.dumps(doc, default=str, ensure_ascii=False)


class NoticeHandler(logging.Handler):
    """Warnings and errors as one short line for the console user (the details are in the log file).

    The same line (same logger and format string, e.g. a venue's retries) shows at most once a minute.
    """

    def __init__(self, write: Callable[[str], None], *, repeat_after_s: float = 60.0) -> None:
        super().__init__(logging.WARNING)
        self.write = write
        self.repeat_after_s = repeat_after_s
        self._shown: dict[tuple[str, str, str], float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            template = getattr(record, "template", None)  # set by SecretFilter, which formats the message first
            if template is None:
                template = (
                    str(record.msg),
                    str(record.args[0]) if isinstance(record.args, tuple) and record.args else "",
                )
            key = (record.name, *template)
            now = time.monotonic()
            if now - self._shown.get(key, -1e9) < self.repeat_after_s:
                return
            self._shown[key] = now
            text = " ".join(record.getMessage().split())
            if len(text) > NOTICE_MAX_CHARS:
                text = text[: NOTICE_MAX_CHARS - 1] + "…"
            self.write(f"! {text}\n")
        except Exception:
            self.handleError(record)


class TracebackDropper(logging.Filter):
    """Keeps a library's record but drops its traceback, for errors whose message already says it all."""

    def __init__(self, *exc_types: type[BaseException]) -> None:
        super().__init__()
        self.exc_types = exc_types

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.exc_types):
            record.exc_info, record.exc_text = None, None
        return True


def parse_levels(spec: str) -> dict[str, str]:
    """``"INFO"`` or ``"watchers=DEBUG,telegram=WARNING"`` -> {logger: level} ('' is the root)."""
    out: dict[str, str] = {}
    for item in (x.strip() for x in spec.split(",")):
        if not item:
            continue
        name, _, level = item.rpartition("=")
        level = level.upper()
        if level not in LEVELS:
            raise ValueError(
                f"--log-level {item!r} is not accepted: use LEVEL or component=LEVEL with LEVEL one "
                f"of {', '.join(LEVELS)}, e.g. watchers=DEBUG,telegram=WARNING"
            )
        out[name.strip()] = level
    return out


def setup(
    *,
    level: str,
    levels: dict[str, str],
    fmt: str,
    secrets: Iterable[str],
    log_file: Path | None = None,
    notice: Callable[[str], None] | None = None,
) -> None:
    """Configure the root logger once: one main handler (stderr or ``log_file``), an optional notice line."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    main: logging.Handler
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        main = logging.FileHandler(log_file, encoding="utf-8")
    else:
        main = logging.StreamHandler(sys.stderr)
    main.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handlers: list[logging.Handler] = [main]
    if notice is not None:
        handlers.append(NoticeHandler(notice))
    flt = SecretFilter(secrets)
    for h in handlers:
        h.addFilter(flt)
        root.addHandler(h)
    root.setLevel(levels.get("", level))
    # httpx logs every request URL, and the Telegram URL contains the bot token
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name, lv in levels.items():
        if name:
            logging.getLogger(name).setLevel(lv)
    # PTB logs a non-JSON answer (a wrong base URL's 404 page) with a traceback, then raises InvalidToken,
    # which start-up reports in one line
    logging.getLogger("telegram.request.BaseRequest").addFilter(TracebackDropper(json.JSONDecodeError))


def console_log_path(data_dir: str) -> Path:
    """Where a console session's log goes: a file named by the start time in the data folder."""
    return Path(data_dir).resolve() / "logs" / time.strftime("basiswatch-%Y%m%d-%H%M%S.log")
