"""Parsing of user input into domain values; every failure is a one-line UserError."""

from __future__ import annotations

import re

from core.reply import UserError

ASSET_RE = re.compile(r"^[A-Z0-9]{1,15}$")  # a base asset ticker, upper case


def parse_asset(args: list[str], command: str, example: str = "btc") -> str:
    """The single asset argument of a market command, upper-cased."""
    if not args:
        raise UserError(f"Which asset? Usage: /{command} <asset>, e.g. /{command} {example}")
    if len(args) > 1:
        raise UserError(f"/{command} takes one asset, e.g. /{command} {example}")
    asset = args[0].strip().upper()
    if not ASSET_RE.match(asset):
        raise UserError(f"'{args[0][:20]}' is not an asset ticker: letters and digits only, e.g. /{command} {example}")
    return asset


def split_command(text: str) -> tuple[str, list[str]]:
    """'/basis@bot BTC' -> ('basis', ['BTC']); plain words without a slash are accepted too."""
    words = text.strip().split()
    if not words:
        return "", []
    head = words[0].lstrip("/").split("@", 1)[0].lower()
    return head, words[1:]
