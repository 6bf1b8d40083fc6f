"""One-tap buttons under alerts: which ones an alert carries, what a press may run, who may press.

A button's data is ``bw:`` plus the command words it runs (``bw:mute 1h``, ``bw:unsubscribe funding
BTC``, ``bw:chart funding BTC``), at most 64 bytes (Telegram's callback_data limit). Only these
three commands are accepted back from a press, whatever the data says, and a press is answered by
the same command core as a typed command, so rights are the core's: in a group, muting or
unsubscribing needs the group's administrators (or a bot admin); anyone may ask for the chart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from core.alerts.events import AlertEvent
from core.context import ChatContext
from core.reply import Action, Reply

if TYPE_CHECKING:
    from core.commands import CommandCore

PREFIX = "bw:"
DONE = "bw:done"  # the data of a button that was used (pressing it again only says so)
DATA_LIMIT = 64  # bytes
MANAGE = ("mute", "unsubscribe")  # presses that change the chat's alerts: the chat's administrators only
REFUSAL = "Only this group's administrators can do that; nothing was changed."


def encode(action: Action) -> str:
    """The button data of an action; ValueError when it does not fit Telegram's 64 bytes."""
    data = PREFIX + action.command
    if len(data.encode()) > DATA_LIMIT:
        raise ValueError(f"button data over {DATA_LIMIT} bytes: {data!r}")
    return data


def decode(data: str) -> list[str] | None:
    """The command words of a button's data, None unless it is one of ours and one of the accepted commands."""
    if not data.startswith(PREFIX) or len(data.encode()) > DATA_LIMIT:
        return None
    words = data[len(PREFIX) :].split()
    if not words:
        return None
    name, args = words[0].lower(), words[1:]
    if name == "mute" and args == ["1h"]:
        return words
    if name in ("unsubscribe", "chart") and 2 <= len(args) <= 3 and all(a.isalnum() for a in args):
        return words
    return None


def alert_actions(e: AlertEvent, chart_metrics: Sequence[str]) -> tuple[Action, ...]:
    """Mute 1h, Unsubscribe (from the topic) and Chart (when the metric has one) for an alert."""
    if e.metric == "notice" or not e.asset:
        return ()
    actions = [Action("Mute 1h", "mute 1h")]
    if e.scope == "global":  # a chat's own rule is not a subscription: /threshold del stops it
        actions.append(Action("Unsubscribe", f"unsubscribe {e.metric} {e.asset}"))
    if e.metric in chart_metrics:
        actions.append(Action("Chart", f"chart {e.metric} {e.asset}"))
    return tuple(a for a in actions if len((PREFIX + a.command).encode()) <= DATA_LIMIT)


def with_actions(render: Callable[[AlertEvent], Reply], chart_metrics: Sequence[str]) -> Callable[[AlertEvent], Reply]:
    """A renderer of alerts whose messages carry the buttons."""

    def rendered(e: AlertEvent) -> Reply:
        reply = render(e)
        return replace(reply, actions=alert_actions(e, chart_metrics))

    return rendered


def chart_of(reply: Reply) -> tuple[str, str] | None:
    """(metric, asset) of an alert's Chart button, if it has one."""
    for a in reply.actions:
        words = a.command.split()
        if words[0] == "chart" and len(words) >= 3:
            return words[1], words[2]
    return None


@dataclass(frozen=True, slots=True)
class Press:
    """What a press did: the short answer shown to the presser, and what the platform does next."""

    answer: str
    refused: bool = False
    reply: Reply | None = None  # something to send into the chat (the chart)
    done_label: str | None = None  # the pressed button now reads this (and does nothing more)


async def press(core: CommandCore, data: str, ctx: ChatContext) -> Press:
    """Run a button's command for the user who pressed it, with the same rights as typing it."""
    if data == DONE:
        return Press("Done already.")
    words = decode(data)
    if words is None:
        return Press("This button is not (or no longer) valid; type the command instead.", refused=True)
    name, args = words[0].lower(), words[1:]
    if name in MANAGE and ctx.is_group and not await ctx.chat_admin():
        alerts = core.alerts
        if alerts is None or not await alerts.is_bot_admin(ctx):
            return Press(REFUSAL, refused=True)
    reply = await core.run(name, args, ctx)
    if reply.error:
        return Press(reply.title[:190], refused=True)
    if reply.image is not None:
        return Press("Chart sent.", reply=reply)
    label = {"mute": "✓ Muted 1h", "unsubscribe": "✓ Unsubscribed"}.get(name)
    return Press(reply.title[:190], done_label=label)
