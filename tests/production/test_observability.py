"""/metrics scraped and parsed with prometheus-client's parser while the whole bot runs; /healthz; JSON logs."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.app import run
from bot.logsetup import JsonFormatter, NoticeHandler, parse_levels
from bot.redaction import SecretFilter
from core.keys import Keys
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.telegram import BotApiDouble
from tests.local_bot import local_settings
from tests.production.helpers import free_port

ADMIN = 42


async def scrape(session: aiohttp.ClientSession, port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def say(tg: BotApiDouble, chat_id: int, text: str, user: int) -> str:
    seen = len(tg.sent_to(chat_id))
    tg.push_message(chat_id, text, user_id=user, chat_type="private")
    return (await tg.wait_sent(seen + 1, chat_id=chat_id, timeout=10))[seen].plain


async def test_metrics_series_move_while_the_bot_runs(
    exchanges: ExchangeDouble, telegram: BotApiDouble, redis_url: str, redis: object, keys: Keys
) -> None:
    port = free_port()
    settings = local_settings(
        exchanges,
        telegram,
        redis_url,
        keys,
        flows={"providers": []},
        alerts={"telegram_admins": [ADMIN], "default_rules": []},
        observability={"port": port, "host": "127.0.0.1"},
    )
    stop = asyncio.Event()
    app = asyncio.create_task(run(settings, stop))
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    first = await scrape(session, port)
                    if value(first, "basiswatch_source_poll_seconds_count", source="market:okx") >= 1:
                        break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            rule = "/threshold set funding btc above 0.05% venue okx"
            assert "Rule r1 set" in await say(telegram, ADMIN, rule, ADMIN)
            assert "receive funding BTC" in await say(telegram, 501, "/subscribe funding btc", 501)
            for p in exchanges.venues["okx"].perps:
                if p.asset == "BTC":
                    p.funding_rate = 0.0007
            await telegram.wait_sent(2, chat_id=501, timeout=15)  # the alert arrived
            exchanges.venues["bybit"].fault = "500"
            await asyncio.sleep(1.0)
            second = await scrape(session, port)
            async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                health = await resp.json()
                assert resp.status == 200 and health["redis"] == "ok"
    finally:
        stop.set()
        await asyncio.wait_for(app, 15)

    okx_polls = "basiswatch_source_poll_seconds_count"
    assert value(second, okx_polls, source="market:okx") > value(first, okx_polls, source="market:okx")
    assert value(second, "basiswatch_source_poll_errors_total", source="market:bybit") >= 1
    assert value(second, "basiswatch_source_errors", source="bybit") >= 1
    assert 0 <= value(second, "basiswatch_source_data_age_seconds", source="okx") < 5
    assert value(second, "basiswatch_source_data_age_seconds", source="bybit") >= 0.5  # silent since the fault
    assert value(second, "basiswatch_alerts_fired_total", metric="funding") == 1
    assert value(second, "basiswatch_deliveries_total", platform="telegram", outcome="ok") >= 1
    assert value(second, "basiswatch_stream_length") >= 1
    assert ("basiswatch_stream_pending", (("group", "telegram"),)) in second
    assert ("basiswatch_stream_lag", (("group", "telegram"),)) in second
    assert value(second, "basiswatch_command_seconds_count", command="subscribe") == 1
    assert value(second, "basiswatch_command_seconds_count", command="threshold") == 1
    assert value(second, "basiswatch_redis_up") == 1


def test_json_log_lines_carry_ids_as_fields() -> None:
    record = logging.LogRecord(
        "watchers.market",
        logging.WARNING,
        __file__,
        1,
        "venue=%s symbol=%s rejected: %s",
        ("okx", "BTC/USDT:USDT", "bad"),
        None,
    )
    record.chat = "tg:501"
    record.alert = "1700000000000-0"
    doc = json.loads(JsonFormatter().format(record))
    assert doc["venue"] == "okx" and doc["symbol"] == "BTC/USDT:USDT" and doc["level"] == "WARNING"
    assert doc["chat"] == "tg:501" and doc["alert"] == "1700000000000-0" and doc["logger"] == "watchers.market"
    assert doc["msg"] == "venue=okx symbol=BTC/USDT:USDT rejected: bad"
    runner = logging.LogRecord(
        "watchers.runner",
        logging.WARNING,
        __file__,
        1,
        "%s: poll failed (%s); retry %d in %.1fs",
        ("market:bybit", "500", 2, 1.5),
        None,
    )
    doc = json.loads(JsonFormatter().format(runner))
    assert doc["source"] == "market:bybit" and doc["venue"] == "bybit"


def test_log_levels_per_component_and_console_notices() -> None:
    assert parse_levels("watchers=DEBUG,telegram=warning") == {"watchers": "DEBUG", "telegram": "WARNING"}
    assert parse_levels("INFO") == {"": "INFO"}
    try:
        parse_levels("watchers=LOUD")
    except ValueError as e:
        assert "component=LEVEL" in str(e)
    else:
        raise AssertionError("a bad level was accepted")
    lines: list[str] = []
    handler = NoticeHandler(lines.append)
    handler.addFilter(SecretFilter(["s3cret-value"]))  # as installed: the filter formats the message first
    log = logging.getLogger("tests.notice")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.info("routine line, not for the console")
        log.warning("%s: poll failed (SourceUnavailable: %s); retry %d", "market:bybit", "x" * 500, 1)
        log.warning("%s: poll failed (SourceUnavailable: %s); retry %d", "market:bybit", "y", 2)  # again: not shown
        log.warning("market:okx: poll failed with s3cret-value")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert len(lines) == 2 and lines[0].startswith("! market:bybit: poll failed") and len(lines[0]) <= 143
    assert lines[1] == "! market:okx: poll failed with ***\n"
