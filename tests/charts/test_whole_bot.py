"""The whole bot: exchanges -> watchers -> history in Redis -> /chart as a photo; an alert with buttons, pressed."""

from __future__ import annotations

import asyncio
import io

from PIL import Image as PILImage

from bot.app import run
from core.keys import Keys
from tests.fakes import telegram_media
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.telegram import BotApiDouble
from tests.local_bot import local_settings
from tests.test_alerts_end_to_end import say, set_btc_funding

ADMIN, CHAT = 42, 501


async def test_chart_and_alert_buttons_through_the_whole_bot(
    exchanges: ExchangeDouble, telegram: BotApiDouble, redis_url: str, redis: object, keys: Keys
) -> None:
    telegram_media.install(telegram)
    for v in ExchangeDouble.VENUES:
        set_btc_funding(exchanges, v, 0.0001)
    settings = local_settings(
        exchanges, telegram, redis_url, keys, alerts={"telegram_admins": [ADMIN], "default_rules": []}
    )
    stop = asyncio.Event()
    app = asyncio.create_task(run(settings, stop))
    try:
        assert "Rule r1 set" in await say(
            telegram, ADMIN, "/threshold set funding btc above 0.05% venue okx", user=ADMIN
        )
        assert "receive funding BTC alerts" in await say(telegram, CHAT, "/subscribe funding btc", user=CHAT)
        for _ in range(100):  # the first polls have written history
            if await say(telegram, CHAT, "/funding btc", user=CHAT) and await redis.exists(  # type: ignore[attr-defined]
                keys.history("funding", "BTC", "okx")
            ):
                break
            await asyncio.sleep(0.1)
        seen = len(telegram.sent_to(CHAT))
        telegram.push_message(CHAT, "/chart funding btc 1d", user_id=CHAT)
        photo = (await telegram.wait_sent(seen + 1, chat_id=CHAT, timeout=15))[seen]
        assert photo.method == "sendPhoto", photo.plain
        assert PILImage.open(io.BytesIO(photo.params["photo"]["data"])).size == (1200, 750)

        seen = len(telegram.sent_to(CHAT))
        set_btc_funding(exchanges, "okx", 0.0007)
        alert = (await telegram.wait_sent(seen + 1, chat_id=CHAT, timeout=15))[seen]
        assert "BTC funding above" in alert.plain and alert.reply_markup is not None
        buttons = {b["text"]: b["callback_data"] for b in alert.reply_markup["inline_keyboard"][0]}
        telegram_media.press(telegram, CHAT, alert.message_id, buttons["Mute 1h"], user_id=CHAT)
        for _ in range(100):
            if telegram.callback_answers:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.05)
        assert "Muted for 1h" in telegram.callback_answers[0]["text"]  # type: ignore[attr-defined]
        assert "Muted for another" in await say(telegram, CHAT, "/alerts", user=CHAT)
    finally:
        stop.set()
        await asyncio.wait_for(app, 15)
