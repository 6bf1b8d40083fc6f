"""The slash command table, derived from the command core's table (``CommandCore.specs``) and its metrics.

Every core command becomes a slash command: a spec whose args are ``<asset>`` gets an asset option
with autocomplete, one without args gets none, and any other gets one free-text ``args`` option.
The alert commands have richer shapes (choices, subcommands) declared in ``SHAPES`` below; a
metric command added to the core later appears here with no change.

Options map back to the words a Telegram user would type, in order: ``/threshold set metric:funding
asset:btc condition:above value:0.05%`` runs the core's ``threshold`` with
``["set", "funding", "btc", "above", "0.05%"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.commands import CommandSpec
from core.metrics.registry import Registry
from core.render import VENUE_LABELS

DESCRIPTION_LIMIT = 100
CHOICES_LIMIT = 25


@dataclass(frozen=True, slots=True)
class Option:
    """One string option of a slash command."""

    name: str
    description: str
    required: bool = True
    choices: tuple[tuple[str, str], ...] = ()  # (shown name, value)
    assets: tuple[str, ...] = ()  # autocomplete assets of these metrics ("metric" option narrows it)
    words: bool = False  # free text: split into several words
    flag: str = ""  # emitted as "<flag> <value>" after the positional words
    venues: bool = False  # choices are the configured venues (filled in per deployment)


@dataclass(frozen=True, slots=True)
class SlashDef:
    """One slash command (or subcommand): the core command it runs and its options."""

    path: tuple[str, ...]  # ("basis",) or ("threshold", "set")
    description: str
    options: tuple[Option, ...] = ()

    @property
    def command(self) -> str:
        return self.path[0]

    def args(self, values: Mapping[str, str | None]) -> list[str]:
        """The core's argument words for these option values."""
        words = list(self.path[1:])
        flags: list[str] = []
        for opt in self.options:
            value = (values.get(opt.name) or "").strip()
            if not value:
                continue
            if opt.flag:
                flags += [opt.flag, value]
            elif opt.words:
                split = value.split()
                if split and split[0].lower() == self.path[-1] and len(self.path) > 1:
                    split = split[1:]  # rule:"set funding btc ..." repeats the subcommand
                words += split
            else:
                words.append(value)
        return words + flags


_ASSET = "base asset, e.g. btc"
_USER_ID = Option("user_id", "the user's numeric id (Developer Mode: right click, Copy User ID)")


def _asset(metrics: tuple[str, ...], required: bool = True) -> Option:
    return Option("asset", _ASSET, required=required, assets=metrics)


@dataclass(frozen=True, slots=True)
class _Shapes:
    """The option shapes of the commands that are more than '<asset>', for one deployment's metrics."""

    metrics: tuple[str, ...]
    kinds: tuple[str, ...]
    aggregates: tuple[str, ...]

    def threshold_set(self) -> tuple[Option, ...]:
        return (
            Option(
                "metric",
                "funding (% per 8h), basis (annualized %), oi (USD), flows (use rule: for series)",
                required=False,
                choices=tuple((m, m) for m in self.metrics),
            ),
            _asset(self.metrics, required=False),
            Option("condition", "when the rule fires", required=False, choices=tuple((k, k) for k in self.kinds)),
            Option(
                "value", "threshold: 0.05% (funding), 40% (basis), 30b (oi USD); a number for zscore", required=False
            ),
            Option("window", "look-back for change / zscore, e.g. 8h or 30d", required=False),
            Option("rule", "or the whole rule as text, e.g. funding btc above 0.05%", required=False, words=True),
            Option("venue", "one venue, or an aggregate across venues", required=False, flag="venue", venues=True),
            Option("cooldown", "quiet time after firing, e.g. 1h", required=False, flag="cooldown"),
            Option("hysteresis", "re-arm band, e.g. 0.01%", required=False, flag="hysteresis"),
        )

    def shapes(self) -> dict[str, tuple[Option, ...]]:
        choices = tuple((m, m) for m in (*self.metrics, "all"))
        return {
            "subscribe": (Option("metric", "which alerts", choices=choices), _asset(self.metrics)),
            "unsubscribe": (
                Option("metric", "which alerts; all without an asset stops every alert", choices=choices),
                _asset(self.metrics, required=False),
            ),
            "mute": (Option("duration", "e.g. 30m, 2h, 1d; off resumes"),),
        }

    def subcommands(self) -> dict[str, tuple[tuple[str, str, tuple[Option, ...]], ...]]:
        return {
            "threshold": (
                ("set", "add an alert rule (admins)", self.threshold_set()),
                ("list", "the alert rules this chat sees", ()),
                ("del", "delete a rule by id (admins)", (Option("id", "rule id from /threshold list, e.g. r3"),)),
                ("history", "recent rule changes", ()),
            ),
            "admin": (
                ("add", "make a user a bot admin (bot admins only)", (_USER_ID,)),
                ("remove", "remove a bot admin (bot admins only)", (_USER_ID,)),
                ("list", "the bot admins", ()),
            ),
        }


def _derived(spec: CommandSpec, metrics: tuple[str, ...]) -> tuple[Option, ...]:
    if not spec.args:
        return ()
    if spec.args == "<asset>":
        return (_asset((spec.name,) if spec.name in metrics else metrics),)
    if spec.name in metrics:  # "<asset> [Nd]": the asset, then the rest as words
        return (_asset((spec.name,)), Option("period", "optional, e.g. 7d", required=False))
    return (Option("args", spec.args[:DESCRIPTION_LIMIT], required=False, words=True),)


def _with_venues(opts: tuple[Option, ...], venues: tuple[str, ...], aggregates: tuple[str, ...]) -> tuple[Option, ...]:
    out = []
    for o in opts:
        if o.venues:
            names = [(VENUE_LABELS.get(v, v) + ("" if VENUE_LABELS.get(v, v) == v else f" ({v})"), v) for v in venues]
            o = Option(
                o.name,
                o.description,
                o.required,
                tuple((*names, *((a, a) for a in aggregates)))[:CHOICES_LIMIT],
                flag=o.flag,
            )
        out.append(o)
    return tuple(out)


def slash_definitions(
    specs: tuple[CommandSpec, ...],
    names: list[str] | tuple[str, ...],
    registry: Registry,
    metrics: tuple[str, ...],
    venues: tuple[str, ...],
) -> tuple[SlashDef, ...]:
    """The slash commands for the core commands in ``names``, with options from the deployment's metrics."""
    served = [registry.get(m) for m in metrics]
    shapes = _Shapes(
        metrics,
        tuple(dict.fromkeys(k for m in served for k in m.kinds)),
        tuple(dict.fromkeys(a for m in served for a in m.aggregates)),
    )
    fixed, subcommands = shapes.shapes(), shapes.subcommands()
    out: list[SlashDef] = []
    for spec in specs:
        if spec.name not in names:
            continue
        if spec.name in subcommands:
            for sub, description, opts in subcommands[spec.name]:
                out.append(SlashDef((spec.name, sub), description, _with_venues(opts, venues, shapes.aggregates)))
            continue
        opts = fixed.get(spec.name) or _derived(spec, metrics)
        out.append(
            SlashDef((spec.name,), spec.summary[:DESCRIPTION_LIMIT], _with_venues(opts, venues, shapes.aggregates))
        )
    return tuple(out)


def group_description(specs: tuple[CommandSpec, ...], name: str) -> str:
    spec = next((c for c in specs if c.name == name), None)
    return (spec.summary if spec else name)[:DESCRIPTION_LIMIT]
