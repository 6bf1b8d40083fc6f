"""Secrets never printed: tokens rejected at start, URL credentials in errors and /status, the log filter."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.app import run
from bot.redaction import SecretFilter, configured_secrets
from bot.settings import parse_settings
from bot.startup_errors import describe
from core.keys import Keys
from core.metrics.registry import default_registry
from core.redaction import basic_auth
from core.store import MarketStore
from tests.builders import command_core
from tests.fakes.discord_server import DiscordDouble
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.flow_providers import FlowProvidersDouble
from tests.fakes.telegram import BotApiDouble
from tests.production.helpers import bot_env, spawn_bot, write_config
from watchers.errors import SourceError
from watchers.market import MarketWatcher, MarketWatcherConfig
from watchers.venues import VenueClient

WRONG_TOKEN = "777777:WRONG-token-SeCrEt-abcdef"
URL_PASSWORD = "relay-PaSsWoRd-42"


@pytest.mark.parametrize("path", ["/bot", "/no-such-api/bot"])  # 401 for a wrong token, 404 for a wrong base path
async def test_rejected_telegram_token_is_one_line_without_the_token(
    telegram: BotApiDouble, redis_url: str, keys: Keys, tmp_path: Path, path: str
) -> None:
    base = telegram.base_url.rsplit("/bot", 1)[0]
    cfg = write_config(
        tmp_path / "config.toml",
        {
            "redis": {"url": redis_url, "key_prefix": keys.prefix},
            "telegram": {"base_url": base + path, "base_file_url": base + "/file" + path},
            "console": {"enabled": "off"},
            "flows": {"providers": []},
            "observability": {"port": 0},
        },
    )
    proc = await spawn_bot(
        "--config", str(cfg), "--role", "chat", "--log-level", "DEBUG", env=bot_env(TELEGRAM_BOT_TOKEN=WRONG_TOKEN)
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    printed = (out + err).decode()
    assert proc.returncode == 1, printed[-2000:]
    assert "Telegram rejected the bot token" in printed
    assert "Traceback" not in printed
    for secret in (WRONG_TOKEN, WRONG_TOKEN.split(":")[1]):
        assert secret not in printed
    assert printed.count("Telegram rejected") == 1


async def test_rejected_discord_token_is_one_line_without_the_token(
    redis_url: str, redis: object, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    token = "discord-WRONG-token-0123456789-SeCrEt"
    settings = parse_settings(
        {
            "redis": {"url": redis_url, "key_prefix": keys.prefix},
            "discord": {"token": token},
            "console": {"enabled": "off"},
            "flows": {"providers": []},
            "observability": {"port": 0},
        },
        env={},
    )
    caplog.handler.addFilter(SecretFilter(configured_secrets(settings)))
    caplog.set_level(logging.DEBUG)
    async with DiscordDouble() as dd:
        dd.token = "the-right-token-0123456789abcdef"
        with dd.patch_discord(), pytest.raises(BaseException) as info:
            await asyncio.wait_for(run(settings, asyncio.Event(), role="chat"), 20)
    line = describe(info.value)
    assert line is not None and "Discord rejected the bot token" in line and token not in line
    assert token not in caplog.text


async def test_url_credentials_never_reach_errors_status_or_logs(
    exchanges: ExchangeDouble, redis: object, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """A relay URL with user:password works (sent as a header) and its password appears nowhere, even at DEBUG."""
    caplog.set_level(logging.DEBUG)  # no filter installed: the URL must be clean at the source
    from redis.asyncio import Redis

    assert isinstance(redis, Redis)
    store = MarketStore(redis, keys, retention_ms=86_400_000)
    url = exchanges.url("okx").replace("http://", f"http://relay-user:{URL_PASSWORD}@")
    client = VenueClient("okx", timeout_s=0.3, rest_base_url=url)
    watcher = MarketWatcher(client, store, default_registry(), MarketWatcherConfig())
    try:
        assert await watcher.poll_once() > 0  # the credentials did not break the URL
        for fault in ("500", "timeout"):
            exchanges.venues["okx"].fault, exchanges.venues["okx"].delay_s = fault, 0.5
            with pytest.raises(SourceError) as info:
                await watcher.poll_once()
            assert URL_PASSWORD not in str(info.value)
        await exchanges.close()  # connection refused: ccxt's message carries the URL
        with pytest.raises(SourceError) as info:
            await watcher.poll_once()
        assert "127.0.0.1" in str(info.value) and URL_PASSWORD not in str(info.value)
    finally:
        await client.close()
    status = await command_core(store, ("okx",), providers=(), alerts=False).run("status", [])
    text = str(status)
    assert "okx" in text and URL_PASSWORD not in text and "relay-user" not in text
    assert URL_PASSWORD not in caplog.text


async def test_flow_provider_url_credentials_and_key_never_printed(caplog: pytest.LogCaptureFixture) -> None:
    import aiohttp

    from watchers.flows import GlassnodeProvider

    caplog.set_level(logging.DEBUG)
    key = FlowProvidersDouble.GLASSNODE_KEY
    errors: list[str] = []
    async with FlowProvidersDouble() as double, aiohttp.ClientSession() as session:
        base = double.url("glassnode").replace("http://", f"http://u:{URL_PASSWORD}@")
        provider = GlassnodeProvider(session, key, base_url=base)
        for fault in ("500", "401"):
            double.fault["glassnode"] = fault
            with pytest.raises(SourceError) as info:
                await provider.fetch_days("BTC", 35)
            errors.append(str(info.value))
        await double.close()
        with pytest.raises(SourceError) as info:
            await provider.fetch_days("BTC", 35)
        errors.append(str(info.value))
    for secret in (key, URL_PASSWORD):
        assert all(secret not in e for e in errors) and secret not in caplog.text


def test_log_filter_masks_every_configured_secret(caplog: pytest.LogCaptureFixture) -> None:
    """Whatever a library logs (message, args, traceback), the configured secrets come out masked."""
    settings = parse_settings(
        {
            "redis": {"url": "redis://:redis-PW-secret@127.0.0.1:6379/0"},
            "telegram": {"token": "123456:TOKEN-secret-part"},
            "discord": {"token": "discord-token-secret-0123456789"},
            "flows": {
                "providers": ["glassnode"],
                "glassnode_api_key": "glassnode-key-secret",
                "base_urls": {"glassnode": "https://user:gn-url-pass@relay.example/gn"},
            },
            "watchers": {"rest_base_urls": {"okx": "http://u:okx-url-pass@relay.example:8443"}},
        },
        env={},
    )
    secrets = configured_secrets(settings)
    caplog.handler.addFilter(SecretFilter(secrets))
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("telegram.ext.ExtBot")
    log.debug("POST https://api.telegram.org/bot%s/getMe", "123456:TOKEN-secret-part")
    log.debug("only the half: TOKEN-secret-part, encoded: %s", "123456%3ATOKEN-secret-part")
    logging.getLogger("discord.http").info("login with discord-token-secret-0123456789")
    try:
        raise RuntimeError("key glassnode-key-secret refused at https://user:gn-url-pass@relay.example/gn")
    except RuntimeError:
        logging.getLogger("watchers").exception("okx at http://u:okx-url-pass@relay.example:8443 failed")
    logging.getLogger("redis").warning("cannot reach redis://:redis-PW-secret@127.0.0.1:6379/0")
    logging.getLogger("ccxt").debug("GET /api, Request: {'Authorization': '%s'}", basic_auth(("u", "okx-url-pass")))
    text = caplog.text
    for s in (
        "TOKEN-secret-part",
        "discord-token-secret",
        "glassnode-key-secret",
        "gn-url-pass",
        "okx-url-pass",
        "redis-PW-secret",
        basic_auth(("u", "okx-url-pass")).split()[1],
    ):
        assert s not in text, s
    assert text.count("***") >= 7 and "Traceback" in text
