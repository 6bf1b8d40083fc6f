"""/summary btc end to end: exchange, option-chain and flow doubles -> watchers -> Redis -> Telegram and Discord.

Every figure is computed here from the doubles' states, not read back from the bot.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import statistics
import time
from collections.abc import AsyncIterator

import pytest

from bot.app import run
from core.keys import Keys
from core.metrics.base import fmt_amount
from core.models import MS_PER_DAY
from core.render import fmt_pct
from tests.fakes.deribit_options import set_chain
from tests.fakes.discord_server import DiscordDouble
from tests.fakes.exchange_payloads import expiry_ms, listed_futures, listed_perps
from tests.fakes.exchanges import ExchangeDouble
from tests.fakes.flow_providers import DaySpec, FlowProvidersDouble
from tests.fakes.telegram import BotApiDouble
from tests.local_bot import local_settings
from tests.test_end_to_end import wait_for_reply
from tests.test_gamma import SPOT, by_hand_flip, by_hand_total, small_chain

GUILD, CHANNEL, ADMIN = 9001, 9101, 42
VENUES = ("bybit", "deribit")


@pytest.fixture
async def discord_double() -> AsyncIterator[DiscordDouble]:
    async with DiscordDouble() as dd:
        dd.add_guild(GUILD, channel_ids=[CHANNEL])
        with dd.patch_discord():
            yield dd


@pytest.fixture
async def flow_double() -> AsyncIterator[FlowProvidersDouble]:
    async with FlowProvidersDouble() as d:
        yield d


async def test_summary_on_telegram_and_discord(
    exchanges: ExchangeDouble,
    telegram: BotApiDouble,
    discord_double: DiscordDouble,
    flow_double: FlowProvidersDouble,
    redis_url: str,
    redis: object,
    keys: Keys,
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    rates = iter((0.0001, 0.0003, 0.00005, 0.0002))
    for v in VENUES:
        for p in exchanges.venues[v].perps:
            if p.asset == "BTC":
                p.funding_rate = next(rates)
    marks = iter((101_500.0, 101_200.0, 102_000.0))
    front = min(f.expiry for f in exchanges.venues["bybit"].futures)
    for v in VENUES:
        for f in listed_futures(v, exchanges.venues[v]):
            if f.asset == "BTC" and f.expiry == front:
                f.mark = next(marks)
    set_chain(exchanges.venues["deribit"], small_chain(today))
    flow_days = [
        DaySpec(
            (today - dt.timedelta(days=i)).isoformat(),
            inflow=10_000.0 + 150 * i,
            outflow=9_000.0,
            balance=2e6,
            price=90_000.0,
            available_at=f"{today - dt.timedelta(days=i - 1)}T04:00:00Z",
        )
        for i in range(12, 0, -1)
    ]
    flow_double.days["BTC"] = flow_days
    settings = local_settings(
        exchanges,
        telegram,
        redis_url,
        keys,
        discord={"token": "discord-test-token-0123456789"},
        watchers={
            "venues": list(VENUES),
            "poll_interval_s": 0.3,
            "request_timeout_s": 2.0,
            "max_backoff_s": 0.5,
            "rest_base_urls": {v: exchanges.url(v) for v in VENUES},
        },
        flows={
            "providers": ["coinmetrics"],
            "assets": ["BTC"],
            "base_urls": {"coinmetrics": flow_double.url("coinmetrics")},
        },
        gamma={"currencies": ["BTC"], "refresh_s": 1},
        alerts={"telegram_admins": [ADMIN], "default_rules": ["funding btc above 0.01%"]},
    )
    stop = asyncio.Event()
    app = asyncio.create_task(run(settings, stop))
    try:
        perps = [p for v in VENUES for p in listed_perps(v, exchanges.venues[v]) if p.asset == "BTC"]
        deadline = time.monotonic() + 25
        while True:  # until every watcher has reported (each factor without data says "no data")
            reply = await wait_for_reply(telegram, 501, "/summary btc", "Dealer gamma: total", within_s=20)
            if (
                reply.count("no data") == 1 and f"{len(perps)} perps" in reply and "on 2 venues" in reply
            ) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        now = time.time() * 1000
        sent = telegram.sent_to(501)[-1]
        assert sent.parse_mode == "HTML" and "<b>Dealer gamma</b>" in sent.text
        lines = {ln.split(": ", 1)[0].lstrip("⚠ "): ln for ln in reply.split("\n") if ": " in ln}

        p8 = [p.funding_rate * 8 / p.interval_h for p in perps]
        assert f"mean {fmt_pct(statistics.fmean(p8) * 1095, 1)} ann." in lines["Funding"]
        assert f"max {fmt_pct(max(p8) * 1095, 1)} ann." in lines["Funding"]
        assert lines["Funding"].startswith("⚠ Funding") and "in the zone of r1" in lines["Funding"]

        exp_ms = expiry_ms(next(f for f in exchanges.venues["deribit"].futures if f.expiry == front))
        days = (exp_ms - now) / MS_PER_DAY
        assert f"front quarterly {front:%Y-%m-%d}: {fmt_pct(0.02 * 365 / days, 1)} ann. on deribit" in lines["Basis"]

        contracts = [
            x
            for v in VENUES
            for x in (*listed_perps(v, exchanges.venues[v]), *listed_futures(v, exchanges.venues[v]))
            if x.asset == "BTC"
        ]
        total_usd = sum(x.open_interest_base * x.mark for x in contracts)
        assert f"{fmt_amount(total_usd, prefix='$')} total on 2 venues" in lines["Open interest"]

        newest = flow_days[-1]
        assert f"{newest.net:+,.0f} BTC on {newest.day}" in lines["Exchange net flow"]
        assert f"7d {sum(d.net for d in flow_days[-7:]):+,.0f}" in lines["Exchange net flow"]
        assert lines["Liquidations 24h"].endswith("no data: not watched by this deployment")

        opts = small_chain(today)
        assert f"total {fmt_amount(by_hand_total(opts, now), signed=True, prefix='$')} per 1%" in lines["Dealer gamma"]
        m = re.search(r"flip ([\d,]+) ", lines["Dealer gamma"])
        want_flip = by_hand_flip(opts, now)
        assert m and want_flip and abs(float(m.group(1).replace(",", "")) - want_flip) / SPOT < 0.001

        await discord_double.wait_ready(timeout=10)
        for _ in range(100):
            if discord_double.commands:
                break
            await asyncio.sleep(0.1)
        res = await discord_double.interact(
            "summary", {"asset": "btc"}, user_id=7, guild_id=GUILD, channel_id=CHANNEL, timeout=10
        )
        (embed,) = res["data"]["embeds"]
        assert embed["title"].startswith("BTC six factors")
        fields = {f["name"].lstrip("⚠ "): f["value"] for f in embed["fields"]}
        assert list(fields) == [
            "Funding",
            "Basis",
            "Open interest",
            "Exchange net flow",
            "Liquidations 24h",
            "Dealer gamma",
        ]
        assert f"mean {fmt_pct(statistics.fmean(p8) * 1095, 1)} ann." in fields["Funding"]
        assert f"{fmt_amount(total_usd, prefix='$')} total" in fields["Open interest"]
        assert f"{newest.net:+,.0f} BTC on {newest.day}" in fields["Exchange net flow"]
        assert "flip" in fields["Dealer gamma"] and "per 1%" in fields["Dealer gamma"]
    finally:
        stop.set()
        await asyncio.wait_for(app, 20)
