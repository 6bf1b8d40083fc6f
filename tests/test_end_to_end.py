"""The whole bot: local exchanges -> watchers -> Redis -> a Telegram user's command -> Bot API server."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import sys
import time
from pathlib import Path

from bot.app import run
from bot.settings import Settings
from core.keys import Keys
from core.models import MS_PER_DAY
from tests.fakes.exchanges import ExchangeDouble, Future
from tests.fakes.telegram import BotApiDouble
from tests.local_bot import local_settings

ROOT = Path(__file__).resolve().parents[1]


def settings_for(exchanges: ExchangeDouble, tg: BotApiDouble, redis_url: str, keys: Keys) -> Settings:
    return local_settings(exchanges, tg, redis_url, keys, request_timeout_s=1.0)


async def wait_for_reply(tg: BotApiDouble, chat_id: int, text: str, needle: str, within_s: float = 15.0) -> str:
    """Send ``text`` until a reply containing ``needle`` arrives (the watchers may still be loading)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        seen = len(tg.sent_to(chat_id))
        tg.push_message(
            chat_id,
            text,
            user_id=chat_id if chat_id > 0 else 1001,
            chat_type="private" if chat_id > 0 else "supergroup",
        )
        sent = await tg.wait_sent(seen + 1, chat_id=chat_id, timeout=5)
        reply = "\n".join(s.plain for s in sent[seen:])
        if needle in reply:
            return reply
        await asyncio.sleep(0.3)
    raise AssertionError(f"no reply with {needle!r} to {text!r}; last: {reply!r}")


async def test_basis_funding_status_through_telegram(
    exchanges: ExchangeDouble, telegram: BotApiDouble, redis_url: str, redis: object, keys: Keys
) -> None:
    expiry = dt.date.today() + dt.timedelta(days=45)
    for v, state in exchanges.venues.items():
        state.futures = [Future("BTC", expiry, 101_000.0, 100_000.0, linear=v not in ("binancecoinm", "deribit"))]
        for p in state.perps:
            if p.asset == "BTC":
                p.mark, p.index, p.funding_rate = 100_050.0, 100_000.0, 0.00025
    stop = asyncio.Event()
    app = asyncio.create_task(run(settings_for(exchanges, telegram, redis_url, keys), stop))
    try:
        reply = await wait_for_reply(telegram, 501, "/basis btc", "5 futures on 5 venues")
        days = (
            dt.datetime.combine(expiry, dt.time(8), tzinfo=dt.UTC).timestamp() * 1000 - time.time() * 1000
        ) / MS_PER_DAY
        assert f"{0.01 * 365 / days * 100:+.1f}%" in reply  # 1% basis annualized over the days left
        assert "+1.00%" in reply and "101,000" in reply and "100,000" in reply
        assert "+0.050%" in reply  # perpetual premium 50 / 100,000
        sent = telegram.sent_to(501)[-1]
        assert sent.parse_mode == "HTML" and "<pre>" in sent.text

        reply = await wait_for_reply(telegram, -1001, "/funding@basiswatch_bot BTC", "funding")
        assert "+0.0250%" in reply and f"{0.00025 * 3 * 365 * 100:+.1f}%" in reply

        # open interest, the third metric, through the same path: the total of the double's BTC contracts
        reply = await wait_for_reply(telegram, 501, "/oi btc", "on 5 venues")
        assert "BTC open interest · $" in reply and "Change of the total" in reply
        assert "receive oi BTC alerts" in await wait_for_reply(telegram, 501, "/subscribe oi btc", "oi BTC")

        exchanges.venues["bybit"].fault = "500"
        await asyncio.sleep(1.0)
        reply = await wait_for_reply(telegram, 501, "/status", "bybit: ")
        assert "ExchangeNotAvailable" in reply
        reply = await wait_for_reply(telegram, 501, "/basis BTC", "futures")
        assert "bybit" in reply and "Data age" in reply

        for bad, needle in (
            ("/basis", "Usage: /basis <asset>"),
            ("/basis zzz", "No venue lists ZZZ"),
            ("/nonsense", "Try /help"),
            ("/help", "/funding <asset>"),
        ):
            assert needle in await wait_for_reply(telegram, 502, bad, needle, within_s=5)
        assert telegram.commands, "the command menu was registered"
    finally:
        stop.set()
        await asyncio.wait_for(app, 15)


async def test_embedded_default_console(exchanges: ExchangeDouble, tmp_path: Path) -> None:
    """`python -m bot` with no Redis URL and no token: embedded Redis, watchers, console chat."""
    cfg = tmp_path / "config.toml"
    urls = "\n".join(f'{v} = "{exchanges.url(v)}"' for v in ExchangeDouble.VENUES)
    cfg.write_text(
        f'[redis]\ndata_dir = "{tmp_path / "data"}"\n[watchers]\npoll_interval_s = 0.5\n'
        f"[watchers.rest_base_urls]\n{urls}\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TELEGRAM_BOT_TOKEN")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--config",
        str(cfg),
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin and proc.stdout
    out = b""
    try:
        deadline = time.monotonic() + 30
        while b"futures on 5 venues" not in out and time.monotonic() < deadline:
            proc.stdin.write(b"/basis btc\n")
            await proc.stdin.drain()
            try:
                while True:
                    out += await asyncio.wait_for(proc.stdout.read(4096), 0.7)
            except TimeoutError:
                pass
        assert b"futures on 5 venues" in out, out.decode()[-2000:]
        proc.stdin.write(b"/funding eth\n/quit\n")
        await proc.stdin.drain()
        rest, err = await asyncio.wait_for(proc.communicate(), 20)
        out += rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"ETH funding" in out
    assert (tmp_path / "data" / "appendonly.aof").exists() or (tmp_path / "data" / "appendonlydir").exists()
    assert b"Traceback" not in err and b"was never awaited" not in err and b"Task was destroyed" not in err


async def test_sigterm_shuts_down_cleanly(exchanges: ExchangeDouble, tmp_path: Path) -> None:
    """SIGTERM stops watchers, delivery and the embedded Redis, with no pending-task warnings."""
    cfg = tmp_path / "config.toml"
    urls = "\n".join(f'{v} = "{exchanges.url(v)}"' for v in ExchangeDouble.VENUES)
    cfg.write_text(
        f'[redis]\ndata_dir = "{tmp_path / "data"}"\n[console]\nenabled = "on"\n'
        f"[flows]\nproviders = []\n[watchers]\npoll_interval_s = 0.5\n"
        f"[watchers.rest_base_urls]\n{urls}\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TELEGRAM_BOT_TOKEN")}
    env["PYTHONWARNINGS"] = "error::RuntimeWarning"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-X",
        "dev",
        "-m",
        "bot",
        "--config",
        str(cfg),
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout
    out = b""
    deadline = time.monotonic() + 20
    while b"Console chat ready" not in out and time.monotonic() < deadline:
        out += await asyncio.wait_for(proc.stdout.read(256), 20)
    await asyncio.sleep(2.0)  # let the watchers poll and the delivery worker block on the stream
    proc.terminate()
    rest, err = await asyncio.wait_for(proc.communicate(), 20)
    # with the console chat, log lines go to the file named at start, not into the prompt
    log_file = Path(re.search(rb"Logging to (\S+?);", out + rest)[1].decode())  # type: ignore[index]
    text = err.decode() + await asyncio.to_thread(log_file.read_text, encoding="utf-8")
    assert proc.returncode == 0, text[-3000:]
    assert "shutting down" in text
    for bad in ("Traceback", "Task was destroyed", "was never awaited", "Unclosed", "unclosed"):
        assert bad not in text, text[-3000:]
