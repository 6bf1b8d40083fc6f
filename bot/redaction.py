"""The last line of defence for secrets in logs: a filter on every handler masking configured secrets.

Secrets are redacted at their source (URLs are stripped of credentials before ccxt or aiohttp see
them, start-up errors are rewritten without the token); this filter catches whatever a library
still puts in a log record: the message, its arguments, the traceback and the stack.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bot.settings import Settings
from core.redaction import basic_auth, scrub, split_userinfo, url_secrets


def configured_secrets(settings: Settings) -> list[str]:
    """Every secret the settings hold: tokens, API keys and credentials inside configured URLs."""
    out = [
        settings.telegram.token.get(),
        settings.discord.token.get(),
        settings.flows.glassnode_api_key.get(),
        settings.flows.cryptoquant_api_key.get(),
    ]
    token = settings.telegram.token.get()
    if ":" in token:
        out.append(token.split(":", 1)[1])  # the secret half of a Telegram token, should it appear alone
    urls = [
        settings.redis.url,
        settings.telegram.base_url,
        settings.telegram.base_file_url,
        *settings.watchers.rest_base_urls.values(),
        *settings.flows.base_urls.values(),
    ]
    for url in urls:
        out += url_secrets(url)
        _, creds = split_userinfo(url)
        if creds is not None:  # the header a relay's credentials travel in, should a library log headers
            out.append(basic_auth(creds).split(" ", 1)[1])
    return [s for s in out if s]


class SecretFilter(logging.Filter):
    """Masks the given secrets (and any ``scheme://user:pass@``) in every record it sees."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed %-format: keep what we can show
            message = f"{record.msg!r} {record.args!r}"
        if not hasattr(record, "template"):  # the format string, for handlers grouping alike lines
            record.template = (
                str(record.msg),
                str(record.args[0]) if isinstance(record.args, tuple) and record.args else "",
            )
        record.msg, record.args = scrub(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, self.secrets)
        return True


def install(secrets: Iterable[str], logger: logging.Logger | None = None) -> SecretFilter:
    """Add one SecretFilter to every handler of ``logger`` (the root logger by default)."""
    target = logger or logging.getLogger()
    flt = SecretFilter(secrets)
    for handler in target.handlers:
        handler.addFilter(flt)
    return flt
