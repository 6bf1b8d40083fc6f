"""Alerts end to end: admin commands on Telegram -> exchange values move -> alerts reach exactly the right chats."""

from __future__ import annotations

import asyncio

from bot.app import run
from core.keys import Keys
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.telegram import BotApiDouble
from tests.local_bot import local_settings

ADMIN = 42


def set_btc_funding(exchanges: ExchangeDouble, venue: str, rate: float) -> None:
    for p in exchanges.venues[venue].perps:
        if p.asset == "BTC":
            p.funding_rate = rate


async def say(tg: BotApiDouble, chat_id: int, text: str, *, user: int, group: bool = False) -> str:
    seen = len(tg.sent_to(chat_id))
    tg.push_message(chat_id, text, user_id=user, chat_type="supergroup" if group else "private")
    sent = await tg.wait_sent(seen + 1, chat_id=chat_id, timeout=10)
    return sent[seen].plain


async def test_threshold_subscribe_fire_once_hysteresis_cooldown(
    exchanges: ExchangeDouble, telegram: BotApiDouble, redis_url: str, redis: object, keys: Keys
) -> None:
    for v in ExchangeDouble.VENUES:
        set_btc_funding(exchanges, v, 0.0001)
    settings = local_settings(
        exchanges, telegram, redis_url, keys, alerts={"telegram_admins": [ADMIN], "default_rules": []}
    )
    stop = asyncio.Event()
    app = asyncio.create_task(run(settings, stop))
    try:
        reply = await say(
            telegram, ADMIN, "/threshold set funding btc above 0.05% venue okx hysteresis 0.02% cooldown 1h", user=ADMIN
        )
        assert "Rule r1 set" in reply, reply
        assert "receive funding BTC alerts" in await say(telegram, 501, "/subscribe funding btc", user=501)
        assert "administrators" in await say(telegram, -1001, "/subscribe all btc", user=700, group=True)
        telegram.set_admins(-1001, [700])
        assert "funding BTC" in await say(telegram, -1001, "/subscribe all btc", user=700, group=True)
        assert "eth" in (await say(telegram, 502, "/subscribe funding eth", user=502)).lower()
        # a plain member may not set rules; the group's administrator sets one only the group receives
        refused = await say(telegram, -2002, "/threshold set funding btc above 0.06% venue okx", user=600, group=True)
        assert "Only bot admins" in refused
        telegram.set_admins(-2002, [601])
        ok = await say(telegram, -2002, "/threshold set funding btc above 0.06% venue okx", user=601, group=True)
        assert "Only this chat receives it" in ok

        before = {c: len(telegram.sent_to(c)) for c in (ADMIN, 501, 502, -1001, -2002)}
        set_btc_funding(exchanges, "okx", 0.0007)
        for chat in (501, -1001):
            (alert,) = (await telegram.wait_sent(before[chat] + 1, chat_id=chat, timeout=15))[before[chat] :]
            assert "BTC funding above +0.0500%/8h" in alert.plain and "+0.0700%/8h" in alert.plain
            assert "okx" in alert.plain and "/mute 2h" in alert.plain
        (group_alert,) = (await telegram.wait_sent(before[-2002] + 1, chat_id=-2002, timeout=15))[before[-2002] :]
        assert "above +0.0600%/8h" in group_alert.plain and "this chat's rule" in group_alert.plain

        await asyncio.sleep(2.0)  # several more polls with the value still high: nothing more
        after = {c: len(telegram.sent_to(c)) for c in before}
        assert after == {
            ADMIN: before[ADMIN],
            501: before[501] + 1,
            502: before[502],
            -1001: before[-1001] + 1,
            -2002: before[-2002] + 1,
        }

        # back inside the band (0.04% > 0.05% - 0.02%): not re-armed; below it and up again: cooldown holds
        set_btc_funding(exchanges, "okx", 0.0002)
        await asyncio.sleep(1.0)
        set_btc_funding(exchanges, "okx", 0.0008)
        await asyncio.sleep(2.0)
        assert len(telegram.sent_to(501)) == after[501]
        listing = await say(telegram, 501, "/alerts", user=501)
        assert "r1" in listing and "r2" not in listing  # the group's own rule is not shown elsewhere
    finally:
        stop.set()
        await asyncio.wait_for(app, 15)


async def test_data_and_chat_roles_in_separate_processes_share_redis(
    exchanges: ExchangeDouble, telegram: BotApiDouble, redis_url: str, redis: object, keys: Keys
) -> None:
    """One 'data' process (watchers, evaluation) and one 'chat' process (Telegram, delivery) on one Redis."""
    for v in ExchangeDouble.VENUES:
        set_btc_funding(exchanges, v, 0.0001)
    settings = local_settings(
        exchanges,
        telegram,
        redis_url,
        keys,
        flows={"providers": []},
        alerts={"telegram_admins": [ADMIN], "default_rules": []},
    )
    stop = asyncio.Event()
    data = asyncio.create_task(run(settings, stop, role="data"))
    chat = asyncio.create_task(run(settings, stop, role="chat"))
    try:
        assert "receive funding BTC" in await say(telegram, 501, "/subscribe funding btc", user=501)
        assert "Rule r1 set" in await say(
            telegram, ADMIN, "/threshold set funding btc above 0.05% venue okx", user=ADMIN
        )
        for _ in range(50):  # the chat process answers from what the data process stored
            if "okx" in await say(telegram, 501, "/funding btc", user=501):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the data process never stored okx funding")
        seen = len(telegram.sent_to(501))
        set_btc_funding(exchanges, "okx", 0.0007)
        sent = await telegram.wait_sent(seen + 1, chat_id=501, timeout=15)
        assert "BTC funding above +0.0500%/8h" in sent[seen].plain
        await asyncio.sleep(1.0)
        assert len(telegram.sent_to(501)) == seen + 1
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(data, chat), 15)
