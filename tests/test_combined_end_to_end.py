"""A combined rule end to end: set on Telegram, judged from the watchers' samples, one checklist alert delivered."""

from __future__ import annotations

import asyncio
import time

from bot.app import run
from core.keys import Keys
from core.models import MS_PER_DAY
from tests.fakes.exchange_payloads import expiry_ms
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.telegram import BotApiDouble
from tests.local_bot import local_settings
from tests.test_alerts_end_to_end import ADMIN, say, set_btc_funding


async def test_all_of_funding_and_basis_fires_once_with_a_checklist(
    exchanges: ExchangeDouble, telegram: BotApiDouble, redis_url: str, redis: object, keys: Keys
) -> None:
    for v in ExchangeDouble.VENUES:
        set_btc_funding(exchanges, v, 0.0001)
    bybit = exchanges.venues["bybit"]
    front = min(f.expiry for f in bybit.futures)
    settings = local_settings(
        exchanges,
        telegram,
        redis_url,
        keys,
        flows={"providers": []},
        alerts={"telegram_admins": [ADMIN], "default_rules": []},
    )
    stop = asyncio.Event()
    app = asyncio.create_task(run(settings, stop))
    try:
        rule = "all(funding btc above 0.05% venue bybit; basis btc above 40% venue bybit) cooldown 1h"
        reply = await say(telegram, ADMIN, f"/threshold set {rule}", user=ADMIN)
        assert "Rule r1 set: all of (funding BTC above +0.0500%/8h (bybit)" in reply, reply
        assert "receive funding BTC alerts" in await say(telegram, 501, "/subscribe funding btc", user=501)
        set_btc_funding(exchanges, "bybit", 0.0006)  # one condition holds: nothing yet
        await asyncio.sleep(1.5)
        assert len(telegram.sent_to(501)) == 1
        for f in bybit.futures:
            if f.asset == "BTC" and f.expiry == front:
                f.mark = f.index * 1.04  # both hold now
        (alert,) = (await telegram.wait_sent(2, chat_id=501, timeout=15))[1:]
        future = next(f for f in bybit.futures if f.asset == "BTC" and f.expiry == front)
        ann = 0.04 * 365 / ((expiry_ms(future) - time.time() * 1000) / MS_PER_DAY)
        assert "BTC: all 2 conditions hold" in alert.plain
        assert "☑ funding BTC above +0.0500%/8h (bybit)" in alert.plain and "now +0.0600%/8h" in alert.plain
        assert "☑ basis BTC above +40.0% (bybit)" in alert.plain and f"now {ann * 100:+.1f}% ann." in alert.plain
        await asyncio.sleep(1.5)  # more polls, both still holding: once
        assert len(telegram.sent_to(501)) == 2
        assert "fired, waiting to re-arm" in await say(telegram, ADMIN, "/threshold list", user=ADMIN)
    finally:
        stop.set()
        await asyncio.wait_for(app, 20)
