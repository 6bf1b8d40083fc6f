"""The whole bot: a liquidation or a price tick on a websocket -> a Telegram alert; /liqs, /basis and /status."""

from __future__ import annotations

import asyncio

from bot.app import run
from core.keys import Keys
from tests.fakes.exchange_payloads import okx_inst_id
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.telegram import BotApiDouble
from tests.fakes.ws_exchanges import (
    WsExchangeDouble,
    binance_force_order,
    deribit_ticker,
    okx_index,
    okx_liquidation,
    okx_mark_price,
)
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


async def test_streamed_funding_and_basis_reach_telegram(
    exchanges: ExchangeDouble, telegram: BotApiDouble, redis_url: str, redis: object, keys: Keys
) -> None:
    """okx and deribit price streams in the whole bot: a funding tick becomes an alert, /basis and /status show them."""
    async with WsExchangeDouble() as ws:
        t = now_ms()
        futures = [f for f in exchanges.venues["okx"].futures if f.asset == "BTC"]
        for f in futures:
            ws.okx_state[f"mark-price:{okx_inst_id(f)}"] = okx_mark_price(okx_inst_id(f), 101_234.5, t)
        for index in ("BTC-USDT", "BTC-USD"):
            ws.okx_state[f"index-tickers:{index}"] = okx_index(index, 100_000.0, t)
        settings = local_settings(
            exchanges,
            telegram,
            redis_url,
            keys,
            alerts={"telegram_admins": [ADMIN], "default_rules": []},
            streams={
                "venues": ["okx", "deribit"],
                "liquidations": False,
                "symbol_assets": ["BTC"],
                "stall_after_s": 2,
                "ping_interval_s": 0.5,
                "ws_base_urls": {v: ws.ws_url(v) for v in ("okx", "deribit")},
            },
        )
        stop = asyncio.Event()
        app = asyncio.create_task(run(settings, stop))
        try:
            assert "Rule r1 set" in await say(telegram, ADMIN, "/threshold set funding btc above 0.05% venue deribit")
            assert "receive funding BTC alerts" in await say(telegram, 501, "/subscribe funding btc")
            topic = "ticker.BTC-PERPETUAL.100ms"
            await ws.wait_subscribed("deribit", topic)
            await ws.wait_subscribed("okx", f"mark-price:{okx_inst_id(futures[0])}")
            seen = len(telegram.sent_to(501))
            # 0.08% per 8h on deribit's perpetual: the rule fires from the stream, without a poll
            frame = deribit_ticker("BTC-PERPETUAL", mark=100_050.0, index=100_000.0, ts_ms=now_ms(), funding_8h=0.0008)
            await ws.push("deribit", topic, frame)
            (alert,) = (await telegram.wait_sent(seen + 1, chat_id=501, timeout=10))[seen:]
            assert "BTC funding" in alert.plain and "deribit" in alert.plain and "+0.0800%" in alert.plain

            reply = await say(telegram, 501, "/basis btc")
            assert reply.count("101,234") == len(futures), reply  # okx futures at their streamed mark
            status = await say(telegram, 501, "/status")
            for row in ("okx basis", "deribit funding"):
                line = next(x for x in status.splitlines() if row in x)
                assert "live" in line, status
        finally:
            stop.set()
            await asyncio.wait_for(app, 15)
