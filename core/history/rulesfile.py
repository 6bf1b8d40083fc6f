"""A rules file for replays: the rules in the words of ``/threshold set``, one string each.

    # rules.toml
    rules = [
        "funding btc above 0.05% venue binance",
        "flows btc netflow above 3000",
    ]

Rules get the ids r1, r2, ... in file order; a rule without ``cooldown`` takes the default one.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping

from core.alerts.rules import Rule, parse_rule
from core.metrics.registry import Registry
from core.reply import UserError


def parse_rules_toml(
    text: str,
    *,
    registry: Registry,
    sources: Mapping[str, tuple[str, ...]],
    default_cooldown_s: int,
    name: str = "rules file",
) -> list[Rule]:
    """The rules of a TOML rules file; a UserError names the rule and what is accepted."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{name}: not valid TOML ({e})") from None
    raw = data.get("rules")
    if not isinstance(raw, list) or not raw or not all(isinstance(r, str) for r in raw):
        raise UserError(f'{name}: expected rules = ["funding btc above 0.05%", ...] (the words of /threshold set)')
    rules = []
    for n, text_ in enumerate(raw, start=1):
        words = rule_words(text_).split()
        try:
            rules.append(
                parse_rule(
                    words,
                    registry=registry,
                    sources=sources,
                    rule_id=f"r{n}",
                    default_cooldown_s=default_cooldown_s,
                    now_ms=0,
                    created_by="replay",
                )
            )
        except UserError as e:
            raise UserError(f"{name}: rule {n} ('{text_[:60]}'): {e}") from None
    return rules


def rule_words(text: str) -> str:
    """A rule as typed, without a leading '/threshold set' and with single spaces."""
    words = text.split()
    return " ".join(words[2:] if [w.lower() for w in words[:2]] == ["/threshold", "set"] else words)


def rule_texts(text: str) -> list[str]:
    """The rules of a valid rules file as typed, in order (r1, r2, ...)."""
    return [rule_words(r) for r in tomllib.loads(text).get("rules", [])]
