"""Backfill through ccxt against the exchange double's history routes: paging, rate limits, resume, idempotence."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from bot.backfill_cli import Progress
from core.keys import Keys
from core.metrics.registry import default_registry
from core.store import MarketStore
from tests.fakes.exchange_payloads import expiry_ms, listed_futures, listed_perps
from tests.fakes.exchanges import ExchangeDouble, Perp
from tests.fakes.flow_providers import DaySpec, FlowProvidersDouble
from tests.fakes.history_payloads import funding_at, history_of, mark_at, settlements
from watchers.backfill import Backfill
from watchers.errors import SourceUnavailable
from watchers.flows import CoinMetricsProvider
from watchers.venues import VenueClient
from watchers.venues.history import HistoryClient

REGISTRY = default_registry()
HOUR = 3_600_000
DAY = 86_400_000
NOW = int(time.time() * 1000)
START = (NOW // DAY - 60) * DAY  # 60 days ago, 00:00 UTC
END = (NOW // DAY - 1) * DAY - 1  # the end of the day before yesterday
VENUES = ("binanceusdm", "bybit", "deribit", "okx")


def iso_day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat()


async def command(*argv: str) -> tuple[bytes, bytes, int | None]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return out, err, proc.returncode


def unified(venue: str, p: Perp) -> str:
    if venue == "deribit" and p.linear:
        return f"{p.asset}/USDC:USDC"
    return f"{p.asset}/USDT:USDT" if p.linear else f"{p.asset}/USD:{p.asset}"


def expected_members(exchanges: ExchangeDouble, venue: str) -> dict[str, set[str]]:
    """symbol -> the history members the funding metric stores, from the double's own settlement schedule."""
    out = {}
    for p in listed_perps(venue, exchanges.venues[venue]):
        if p.asset == "BTC":
            sym = unified(venue, p)
            if venue == "deribit":  # an hourly row of the 8h accrual, stored per 8h
                out[sym] = {f"{t}|{sym}|{funding_at(p, t)!r}|28800" for t in settlements(p, START, END, NOW, step_h=1)}
            else:
                out[sym] = {
                    f"{t}|{sym}|{funding_at(p, t)!r}|{p.interval_h * 3600}" for t in settlements(p, START, END, NOW)
                }
    return out


async def stored(redis: Redis, keys: Keys, venue: str, metric: str = "funding") -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for raw in await redis.zrange(keys.history(metric, "BTC", venue), 0, -1):
        member = raw.decode()
        out.setdefault(member.split("|")[1], set()).add(member)
    return out


@pytest.fixture
async def clients(exchanges: ExchangeDouble) -> AsyncIterator[dict[str, VenueClient]]:
    out = {v: VenueClient(v, timeout_s=2, rest_base_url=exchanges.url(v)) for v in VENUES}
    for c in out.values():  # ccxt's own spacing (okx: 200 ms and more a call) off: what limits here is ours
        c.exchange.enableRateLimit = False
    try:
        yield out
    finally:
        for c in out.values():
            await c.close()


def job(
    redis: Redis,
    keys: Keys,
    clients: dict[str, VenueClient],
    *,
    min_interval_s: float = 0.0,
    providers: tuple[CoinMetricsProvider, ...] = (),
    progress: list[tuple[int, int, str]] | None = None,
    max_retries: int = 5,
) -> Backfill:
    store = MarketStore(redis, keys, retention_ms=90 * DAY)
    hcs = [HistoryClient(clients[v], min_interval_s=min_interval_s) for v in VENUES]
    return Backfill(
        store,
        keys,
        REGISTRY,
        hcs,
        providers,
        asset="btc",
        start_ms=START,
        end_ms=END,
        progress=(lambda d, t, w: progress.append((d, t, w))) if progress is not None else (lambda d, t, w: None),
        max_retries=max_retries,
        retry_base_s=0.05,
    )


async def test_paging_within_rate_limits_and_flows(
    exchanges: ExchangeDouble, clients: dict[str, VenueClient], redis: Redis, keys: Keys
) -> None:
    for v in VENUES:
        history_of(exchanges.venues[v]).min_interval_s = 0.03
    progress: list[tuple[int, int, str]] = []
    async with FlowProvidersDouble() as flows, aiohttp.ClientSession() as session:
        today = dt.datetime.now(dt.UTC).date()
        flows.days["BTC"] = [
            DaySpec((today - dt.timedelta(days=i)).isoformat(), inflow=1000.0 + i, outflow=900.0, balance=2e6)
            for i in range(70, 0, -1)
        ]
        cm = CoinMetricsProvider(session, base_url=flows.url("coinmetrics"), min_interval_s=0)
        report = await job(redis, keys, clients, min_interval_s=0.04, providers=(cm,), progress=progress).run()
    for v in VENUES:
        assert await stored(redis, keys, v) == expected_members(exchanges, v)
        assert history_of(exchanges.venues[v]).rejected == 0  # paced under the venue's limit: never a 429
    # binance pages 1000 rows (1000h windows): 2 pages per perp for 60 days; bybit 200h windows: 8 per perp
    binance = history_of(exchanges.venues["binanceusdm"]).served
    binance_pages = [q for p, q in binance if p.endswith("fundingRate")]
    assert len(binance_pages) == 2 * len(expected_members(exchanges, "binanceusdm"))
    # the dated futures' basis: hourly mark and index closes, 1000 candles a page, stamped when the hour closes
    futures = [f for f in listed_futures("binanceusdm", exchanges.venues["binanceusdm"]) if f.asset == "BTC"]
    basis: dict[str, set[str]] = {}
    for f in futures:
        sym = f"BTC/USDT:USDT-{f.expiry:%y%m%d}"
        basis[sym] = {
            f"{t + HOUR}|{sym}|{mark_at(f, t)!r}|{f.index!r}|{expiry_ms(f)}" for t in range(START, END + 1, HOUR)
        }
    assert await stored(redis, keys, "binanceusdm", "basis") == basis
    kline_pages = [q for p, q in binance if "Klines" in p]
    assert len(kline_pages) == 2 * 2 * len(futures)  # mark and index, two pages each
    bybit_pages = [q for _p, q in history_of(exchanges.venues["bybit"]).served]
    assert len(bybit_pages) == 8 * len(expected_members(exchanges, "bybit"))
    assert all(int(q["endTime"]) - int(q["startTime"]) < 200 * HOUR for q in bybit_pages)
    deribit_pages = history_of(exchanges.venues["deribit"]).served  # 744 hourly rows a page: 2 per perp
    assert len(deribit_pages) == 2 * len(expected_members(exchanges, "deribit"))
    okx_pages = history_of(exchanges.venues["okx"]).served  # 100h windows between cursors: 15 per perp
    assert len(okx_pages) == 15 * len(expected_members(exchanges, "okx"))
    pages = len(binance_pages) + len(kline_pages) // 2 + len(bybit_pages) + len(deribit_pages) + len(okx_pages)
    assert progress[-1][0] == progress[-1][1] == pages + 1
    first, last = (
        dt.datetime.fromtimestamp(START / 1000, dt.UTC).date(),
        dt.datetime.fromtimestamp(END / 1000, dt.UTC).date(),
    )
    days = await MarketStore(redis, keys, retention_ms=90 * DAY).read_latest(
        REGISTRY.get("flows"), "BTC", ("coinmetrics",)
    )
    want = [d.day for d in flows.days["BTC"] if first.isoformat() <= d.day <= last.isoformat()]
    assert sorted(r.day for r in days[0]["coinmetrics"]) == want
    assert report.stored["flows|coinmetrics"] == len(want)


async def test_rate_limited_answers_are_retried(
    exchanges: ExchangeDouble, clients: dict[str, VenueClient], redis: Redis, keys: Keys
) -> None:
    h = history_of(exchanges.venues["binanceusdm"])
    h.min_interval_s = 0.2  # the client does not pace at all here: the venue answers 429
    await job(redis, keys, clients).run()
    assert h.rejected > 0
    assert await stored(redis, keys, "binanceusdm") == expected_members(exchanges, "binanceusdm")


async def test_resume_after_interruption_then_idempotent(
    exchanges: ExchangeDouble, clients: dict[str, VenueClient], redis: Redis, keys: Keys
) -> None:
    bybit = history_of(exchanges.venues["bybit"])
    bybit.fail_after = 5  # bybit goes down after 5 pages: the first perp done, the second started
    with pytest.raises(SourceUnavailable):
        await job(redis, keys, clients, max_retries=1).run()
    first_run = list(bybit.served)
    assert len(first_run) == 5
    partial = await stored(redis, keys, "bybit")
    assert 0 < sum(map(len, partial.values())) < sum(map(len, expected_members(exchanges, "bybit").values()))

    bybit.fail_after = None
    report = await job(redis, keys, clients).run()
    assert any(p.startswith("funding|bybit|") for p in report.resumed)
    resumed = bybit.served[len(first_run) :]
    # no page fetched twice: the second run starts where the checkpoint stopped
    windows = [(q["symbol"], q["startTime"]) for _p, q in bybit.served]
    assert len(windows) == len(set(windows)) == 8 * len(expected_members(exchanges, "bybit"))
    assert resumed[0][1]["startTime"] != str(START)
    assert await stored(redis, keys, "bybit") == expected_members(exchanges, "bybit")

    # run again: the checkpoints say done, nothing is fetched
    served = len(bybit.served) + len(history_of(exchanges.venues["binanceusdm"]).served)
    await job(redis, keys, clients).run()
    assert len(bybit.served) + len(history_of(exchanges.venues["binanceusdm"]).served) == served
    # forget the checkpoints and fetch everything again: the history is the same, no duplicates
    await redis.delete(keys.backfill(f"BTC|{START}|{END}"))
    await job(redis, keys, clients).run()
    for v in VENUES:
        assert await stored(redis, keys, v) == expected_members(exchanges, v)


async def test_command_plain_progress_then_resume(
    exchanges: ExchangeDouble, redis_url: str, redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    """``python -m bot backfill`` against the double: progress lines off a terminal, a second run resumes."""
    config = tmp_path / "config.toml"
    urls = "\n".join(f'{v} = "{exchanges.url(v)}"' for v in VENUES)
    config.write_text(
        f'[redis]\nurl = "{redis_url}"\nkey_prefix = "{keys.prefix}"\n[history]\nretention_days = 90\n'
        f"[watchers]\nvenues = {list(VENUES)!r}\nrequest_timeout_s = 2\n[watchers.rest_base_urls]\n"
        f"{urls}\n".replace("'", '"')
    )
    argv = [
        sys.executable,
        "-m",
        "bot",
        "--config",
        str(config),
        "backfill",
        "--asset",
        "btc",
        "--from",
        iso_day(START),
        "--to",
        iso_day(END),
        "--no-flows",
        "--min-interval",
        "0.01",
        "--venues",
        "bybit",
    ]
    history_of(exchanges.venues["bybit"]).fail_after = 3
    out, err, code = await command(*argv, "--retries", "0")
    assert code == 1, err.decode()
    assert "run the same command again to resume" in err.decode()
    history_of(exchanges.venues["bybit"]).fail_after = None
    out, err, code = await command(*argv)
    assert code == 0, err.decode()
    text = out.decode()
    assert "backfill: 0/" in text and "(100%)" in text and "resumed" in text and "\r" not in text
    assert await stored(redis, keys, "bybit") == expected_members(exchanges, "bybit")
    # a start older than the store keeps is refused with what to change
    config.write_text(config.read_text().replace("retention_days = 90", "retention_days = 35"))
    out, err, code = await command(*argv)
    assert code == 2 and "retention_days" in err.decode() and "raise it to at least 61" in err.decode()


def test_progress_bar_on_a_terminal_lines_otherwise() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, plain = Terminal(), io.StringIO()
    for out in (tty, plain):
        p = Progress(out)
        for done in range(21):
            p(done, 20, f"bybit BTC/USDT:USDT {done}")
    assert tty.getvalue().count("\r") == 21 and tty.getvalue().endswith("\n")
    assert "[" + "#" * 30 + "] 20/20" in tty.getvalue()
    lines = plain.getvalue().splitlines()
    assert "\r" not in plain.getvalue() and len(lines) == 11  # one per tenth
    assert lines[0].startswith("backfill: 0/20 steps (0%)") and lines[-1].startswith("backfill: 20/20 steps (100%)")
