"""The whole bot: a liquidation on a venue's websocket -> a Telegram alert; /liqs and /status over Telegram."""

from __future__ import annotations

import asyncio

from bot.app import run
from core.keys import Keys
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.telegram import BotApiDouble
from tests.fakes.ws_exchanges import WsExchangeDouble, binance_force_order, okx_liquidation
from tests.local_bot import local_settings
from tests.streams.harness import now_ms, until

ADMIN = 42


async def say(tg: BotApiDouble, chat_id: int, text: str) -> str:
    seen = len(tg.sent_to(chat_id))
    tg.push_message(chat_id, text, user_id=chat_id, chat_type="private")
    sent = await tg.wait_sent(seen + 1, chat_id=chat_id, timeout=10)
    return sent[seen].plain


async def test_liquidation_alert_reaches_telegram(
    exchanges: ExchangeDouble, telegram: BotApiDouble, redis_url: str, redis: object, keys: Keys
) -> None:
    async with WsExchangeDouble() as ws:
        settings = local_settings(
            exchanges,
            telegram,
            redis_url,
            keys,
            alerts={"telegram_admins": [ADMIN], "default_rules": []},
            streams={
                "venues": ["binanceusdm", "okx"],
                "funding": False,
                "stall_after_s": 2,
                "ping_interval_s": 0.5,
                "ws_base_urls": {v: ws.ws_url(v) for v in ("binanceusdm", "okx")},
            },
        )
        stop = asyncio.Event()
        app = asyncio.create_task(run(settings, stop))
        try:
            assert "Rule r1 set" in await say(telegram, ADMIN, "/threshold set liqs btc above 100k 1h")
            assert "receive liqs BTC alerts" in await say(telegram, 501, "/subscribe liqs btc")
            await ws.wait_subscribed("binanceusdm", "!forceOrder@arr")
            await ws.wait_subscribed("okx", "liquidation-orders:SWAP")
            t = now_ms()
            await ws.push("binanceusdm", "!forceOrder@arr", binance_force_order("BTCUSDT", "SELL", 0.6, 100_000, t))
            seen = len(telegram.sent_to(501))
            await ws.push("okx", "liquidation-orders:SWAP", okx_liquidation("BTC-USDT-SWAP", "short", 50, 100_000, t))
            (alert,) = (await telegram.wait_sent(seen + 1, chat_id=501, timeout=10))[seen:]
            # 0.6 BTC long on binance + 50 okx contracts of 0.01 BTC short, at 100,000: 110k
            assert "BTC liquidations above $100.0k in 1h" in alert.plain and "$110.0k" in alert.plain
            assert "/unsubscribe liqs btc" in alert.plain

            reply = await say(telegram, 501, "/liqs btc")
            assert "BTC liquidations · 2 in 24h on 2 venues" in reply and "lower bounds" in reply
            status = await say(telegram, 501, "/status")
            assert "binance liqs" in status and "okx liqs" in status and "live" in status

            # the venue replays the frame after a reconnect: nothing fires again
            ws.replay["okx"] = [okx_liquidation("BTC-USDT-SWAP", "short", 50, 100_000, t)]
            await ws.drop("okx")
            await until(lambda: ws.connections["okx"] >= 2, what="the reconnect")
            await ws.wait_subscribed("okx", "liquidation-orders:SWAP")
            await asyncio.sleep(0.5)
            assert len(telegram.sent_to(501)) == seen + 3  # the alert, /liqs and /status replies only
        finally:
            stop.set()
            await asyncio.wait_for(app, 15)
