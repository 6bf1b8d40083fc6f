"""The whole bot with venues beyond the five: configured by name, an unknown one reported, answers over Telegram."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.app import run
from core.keys import Keys
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.telegram import BotApiDouble
from tests.local_bot import local_settings

VENUES = ["hyperliquid", "bitget", "gate", "kucoinfutures", "okx"]


async def ask(tg: BotApiDouble, chat_id: int, text: str) -> str:
    seen = len(tg.sent_to(chat_id))
    tg.push_message(chat_id, text, user_id=chat_id)
    return (await tg.wait_sent(seen + 1, chat_id=chat_id, timeout=10))[seen].plain


async def test_new_venues_configured_unknown_one_reported(
    exchanges: ExchangeDouble, telegram: BotApiDouble, redis_url: str, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    settings = local_settings(
        exchanges,
        telegram,
        redis_url,
        keys,
        watchers={
            "venues": [*VENUES, "kraken"],
            "poll_interval_s": 0.3,
            "request_timeout_s": 2.0,
            "max_backoff_s": 0.5,
            "rest_base_urls": {v: exchanges.url(v) for v in VENUES},
        },
        alerts={"default_rules": []},
    )
    assert settings.unknown_venues == ("kraken",)
    caplog.set_level(logging.INFO, logger="bot.app")
    stop = asyncio.Event()
    app = asyncio.create_task(run(settings, stop))
    try:
        text = ""
        for _ in range(40):  # until every venue has polled once
            text = await ask(telegram, 7, "/oi btc")
            if "on 5 venues" in text:
                break
            await asyncio.sleep(0.25)
        assert "on 5 venues" in text, text
        status = await ask(telegram, 7, "/status")
        assert "hyperliquid: funding, oi; no basis (no dated futures listed)" in status, status
        assert "kraken: unknown venue, not polled" in status, status
        funding = await ask(telegram, 7, "/funding btc")
        assert all(v in funding for v in ("hyperliquid", "bitget", "gate", "kucoin")), funding
        basis = await ask(telegram, 7, "/basis btc")
        assert "futures on 4 venues" in basis, basis  # okx, bitget, gate, kucoinfutures list quarterlies
        refused = await ask(telegram, 7, "/threshold set basis btc above 10% venue hyperliquid")
        # hyperliquid lists no dated futures, so it is no basis source: the accepted ones are named instead
        assert "not accepted for basis" in refused, refused
        accepted = refused.split(":", 1)[1]
        assert "gate" in accepted and "kucoinfutures" in accepted and "hyperliquid" not in accepted, refused
    finally:
        stop.set()
        await asyncio.wait_for(app, 15)
    logged = [r.getMessage() for r in caplog.records]
    assert any("venue=kraken is not polled" in m for m in logged), logged
    assert any("venue=hyperliquid serves funding" in m and "not served: basis" in m for m in logged), logged
    assert not [u for u in exchanges.unknown if not u.startswith(("binance", "bybit", "deribit"))], exchanges.unknown
