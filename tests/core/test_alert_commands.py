"""Alert commands through the command core, real Redis: rights, grammar, storage."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from core.alerts.store import AlertStore
from core.commands import CommandCore
from core.context import ChatContext
from core.keys import Keys
from core.render import to_plain
from core.store import MarketStore
from tests.builders import command_core

VENUES = ("binanceusdm", "okx", "bybit")
BOT_ADMIN = 42


def ctx(user: int, chat: int | None = None, *, admin_of_chat: bool = False) -> ChatContext:
    chat_id = user if chat is None else chat

    async def chat_admin() -> bool:
        return admin_of_chat

    return ChatContext(
        platform="tg", chat_id=chat_id, user_id=user, user_name=f"u{user}", is_group=chat_id < 0, chat_admin=chat_admin
    )


@pytest.fixture
def store(redis: Redis, keys: Keys) -> AlertStore:
    return AlertStore(redis, keys)


@pytest.fixture
def core(redis: Redis, keys: Keys, store: AlertStore) -> CommandCore:
    return command_core(MarketStore(redis, keys, retention_ms=1), VENUES, admins={"tg": frozenset({str(BOT_ADMIN)})})


async def test_subscribe_unsubscribe_and_alerts_listing(core: CommandCore, store: AlertStore) -> None:
    r = await core.run("subscribe", ["all", "btc"], ctx(7))
    assert not r.error and "funding BTC" in r.title and "basis BTC" in r.title
    assert await store.subscribers("funding:BTC") == {"tg:7"}
    await core.run("threshold", ["set", "funding", "btc", "above", "0.05%"], ctx(BOT_ADMIN))
    text = to_plain(await core.run("alerts", [], ctx(7)))
    assert "funding BTC above +0.0500%/8h" in text and "armed" in text
    r = await core.run("unsubscribe", ["funding", "BTC"], ctx(7))
    assert "funding BTC" in r.title
    assert await store.topics_of("tg:7") == ["basis:BTC", "flows:BTC", "liqs:BTC", "oi:BTC"]
    assert (await core.run("unsubscribe", ["funding", "btc"], ctx(7))).error
    await core.run("unsubscribe", ["all"], ctx(7))
    assert await store.topics_of("tg:7") == []


async def test_group_subscription_belongs_to_group(core: CommandCore, store: AlertStore) -> None:
    await core.run("subscribe", ["basis", "eth"], ctx(7, -100500, admin_of_chat=True))
    assert await store.subscribers("basis:ETH") == {"tg:-100500"}


async def test_in_a_group_only_admins_manage_subscriptions(core: CommandCore, store: AlertStore) -> None:
    """A member may read /alerts but neither subscribe, unsubscribe nor mute the group; bot admins may."""
    group = -100600
    assert not (await core.run("subscribe", ["funding", "btc"], ctx(7, group, admin_of_chat=True))).error
    for cmd, args in (("subscribe", ["basis", "btc"]), ("unsubscribe", ["all"]), ("mute", ["2h"])):
        refused = await core.run(cmd, args, ctx(8, group))
        assert refused.error and "administrators" in refused.title, (cmd, refused)
    assert await store.topics_of(f"tg:{group}") == ["funding:BTC"]
    assert await store.mute_left_s(f"tg:{group}") == 0
    assert not (await core.run("alerts", [], ctx(8, group))).error
    assert not (await core.run("unsubscribe", ["all"], ctx(BOT_ADMIN, group))).error
    assert await store.topics_of(f"tg:{group}") == []


async def test_long_alerts_listing_is_paginated(core: CommandCore, store: AlertStore) -> None:
    await core.run("subscribe", ["funding", "btc"], ctx(7))
    for i in range(45):
        await core.run("threshold", ["set", "funding", "btc", "above", f"{0.01 + i / 1000:.3f}%"], ctx(BOT_ADMIN))
    first = await core.run("alerts", [], ctx(7))
    assert first.next_page == "alerts 2" and "page 1/3" in first.title
    last = await core.run("alerts", ["3"], ctx(7))
    assert last.next_page is None and "45 rules" in (last.footer or "")
    assert sum(len(b.rows) for r in (first, last) for b in r.blocks if not isinstance(b, str)) == 20 + 5
    assert (await core.run("alerts", ["x"], ctx(7))).title.startswith("Usage: /alerts")


async def test_bot_admin_sets_global_rule_with_options(core: CommandCore, store: AlertStore) -> None:
    r = await core.run(
        "threshold",
        ["set", "basis", "btc", "above", "40%", "venue", "okx", "cooldown", "2h", "hysteresis", "3%"],
        ctx(BOT_ADMIN),
    )
    assert not r.error, r.title
    (rule,) = (await store.load_rules())[1]
    assert (rule.scope, rule.metric, rule.asset, rule.kind, rule.venue) == ("global", "basis", "BTC", "above", "okx")
    assert rule.threshold == pytest.approx(0.40) and rule.cooldown_s == 7200 and rule.hysteresis == pytest.approx(0.03)
    r = await core.run("threshold", ["set", "funding", "btc", "change", "0.03%", "8h"], ctx(BOT_ADMIN))
    assert "changes by" in r.title
    r = await core.run("threshold", ["set", "funding", "eth", "zscore", "3", "30d"], ctx(BOT_ADMIN))
    assert "z-score beyond 3" in r.title
    r = await core.run("threshold", ["set", "basis", "btc", "crosses", "0%"], ctx(BOT_ADMIN))
    assert "crosses" in r.title


async def test_non_admin_refused_chat_admin_gets_chat_rule(core: CommandCore, store: AlertStore) -> None:
    r = await core.run("threshold", ["set", "funding", "btc", "above", "0.05%"], ctx(9, -2000))
    assert r.error and "bot admins" in r.title and "administrators" in r.title
    assert (await store.load_rules())[1] == []
    r = await core.run("threshold", ["set", "funding", "btc", "above", "0.05%"], ctx(9, -2000, admin_of_chat=True))
    assert not r.error and "Only this chat" in to_plain(r)
    (rule,) = (await store.load_rules())[1]
    assert (rule.scope, rule.target) == ("chat", "tg:-2000")
    # a private chat belongs to its user
    r = await core.run("threshold", ["set", "funding", "eth", "below", "-0.03%"], ctx(11))
    assert not r.error
    # another chat's admin cannot delete it; the owner chat's admin and bot admins can
    assert (await core.run("threshold", ["del", rule.id], ctx(11))).error
    assert not (await core.run("threshold", ["del", rule.id], ctx(9, -2000, admin_of_chat=True))).error
    hist = to_plain(await core.run("threshold", ["history"], ctx(9, -2000)))
    assert "deleted" in hist and "set" in hist


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["set", "funding", "btc", "above", "banana"], "needs a % sign"),
        (["set", "funding", "btc", "above", "banana%"], "is not a number"),
        (["set", "funding", "btc", "above", "9%"], "out of range"),
        (["set", "vega", "btc", "above", "1%"], "Unknown metric"),
        (["set", "oi", "btc", "above", "1%"], "is not an amount"),
        (["set", "oi", "btc", "change", "-5%", "24h"], "must be positive"),
        (["set", "oi", "btc", "above", "30q"], "is not an amount"),
        (["set", "funding", "btc", "sideways", "1%"], "Unknown condition"),
        (["set", "funding", "btc", "above", "0.05%", "venue", "kraken"], "venue 'kraken' is not accepted"),
        (["set", "funding", "btc", "above", "0.05%", "cooldown", "soon"], "not a duration"),
        (["set", "funding", "btc", "change", "0.03%"], "needs a window"),
        (["set", "funding", "btc", "zscore", "3", "2h"], "window must be between"),
        (["set", "funding", "btc"], "Usage: /threshold set"),
        (["set", "funding", "btc", "zscore", "3", "30d", "hysteresis", "x"], "not a number of standard deviations"),
        (["set", "funding", "btc", "zscore", "3", "30d", "hysteresis", "nan"], "between 0 and 10"),
        (["set", "funding", "btc", "above", "0.05%", "hysteresis", "inf%"], "out of range"),
        (["frobnicate"], "Usage: /threshold"),
        (["del", "r999"], "No rule"),
    ],
)
async def test_bad_threshold_input_one_line_nothing_stored(
    core: CommandCore, store: AlertStore, args: list[str], fragment: str
) -> None:
    r = await core.run("threshold", args, ctx(BOT_ADMIN))
    assert r.error and fragment in r.title, r.title
    assert "\n" not in r.title
    assert (await store.load_rules())[1] == []


async def test_admin_add_remove_list(core: CommandCore) -> None:
    assert (await core.run("admin", ["add", "77"], ctx(5))).error  # not an admin
    assert not (await core.run("admin", ["add", "77"], ctx(BOT_ADMIN))).error
    assert not (await core.run("threshold", ["set", "funding", "btc", "above", "0.1%"], ctx(77))).error
    text = to_plain(await core.run("admin", ["list"], ctx(77)))
    assert str(BOT_ADMIN) in text and "77" in text
    assert (await core.run("admin", ["remove", str(BOT_ADMIN)], ctx(77))).error  # config admins stay
    assert not (await core.run("admin", ["remove", "77"], ctx(BOT_ADMIN))).error
    assert (await core.run("threshold", ["set", "funding", "btc", "above", "0.1%"], ctx(77, -5))).error
    assert (await core.run("admin", ["add", "bob"], ctx(BOT_ADMIN))).error


async def test_mute(core: CommandCore, store: AlertStore) -> None:
    assert not (await core.run("mute", ["2h"], ctx(7))).error
    assert 7100 < await store.mute_left_s("tg:7") <= 7200
    await core.run("subscribe", ["funding", "btc"], ctx(7))
    assert "Muted for another 2h" in to_plain(await core.run("alerts", [], ctx(7)))
    assert (await core.run("mute", ["2h"], ctx(8, -3))).error  # group member, not admin
    assert (await core.run("mute", ["forever"], ctx(7))).error
    await core.run("mute", ["off"], ctx(7))
    assert await store.mute_left_s("tg:7") == 0
