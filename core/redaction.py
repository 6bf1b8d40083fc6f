"""Keeping credentials out of text: URL userinfo stripped, configured secrets masked (pure functions).

A URL such as ``http://user:pass@relay:8443/fapi`` is split into the URL without ``user:pass@`` (what
may appear in an error message, a log line or ``/status``) and the credentials (sent as a header).
``scrub`` is the last line of defence for any text: it masks every ``scheme://user:pass@`` it finds
and every configured secret, also in its URL-encoded form.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "***"
# scheme://[user][:password]@host: the userinfo part, wherever it appears in a text
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<info>[^/\s@]*)@")
MIN_SECRET_LEN = 4  # shorter values would mask ordinary words


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its ``user:password@`` part, and the (user, password) it carried, if any."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    info, _, host = parts.netloc.rpartition("@")
    user, _, password = info.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))


def basic_auth(creds: tuple[str, str]) -> str:
    """The ``Authorization`` header value for (user, password)."""
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries (password, and user when it is the only credential)."""
    _, creds = split_userinfo(url)
    if creds is None:
        return []
    user, password = creds
    return [s for s in (password or user,) if s]


def safe_url(url: str) -> str:
    """A URL fit for a log line: its credentials replaced by ``***``."""
    clean, creds = split_userinfo(url)
    if creds is None:
        return url
    parts = urlsplit(clean)
    return urlunsplit(parts._replace(netloc=f"{MASK}@{parts.netloc}"))


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL credentials and every given secret (plain or URL-encoded) masked."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@" if m["info"] else m[0], text)
    for s in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True):
        text = text.replace(s, MASK)
        encoded = quote(s, safe="")
        if encoded != s:
            text = text.replace(encoded, MASK)
    return text
