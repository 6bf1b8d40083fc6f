"""The command core against a real Redis, with samples written through the store."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from core.commands import CommandCore
from core.keys import Keys
from core.models import MS_PER_DAY, BasisSample, FundingSample
from core.render import to_plain
from core.store import MarketStore
from tests.builders import command_core, write_venue

NOW = 1_790_000_000_000
VENUES = ("binanceusdm", "okx", "deribit")


def perp(
    venue: str,
    asset: str,
    rate: float,
    *,
    interval_h: int = 8,
    settle: str = "USDT",
    inverse: bool = False,
    mark: float = 100.0,
    index: float = 100.0,
    predicted: float | None = None,
    ts: int = NOW,
) -> FundingSample:
    return FundingSample(
        venue=venue,
        symbol=f"{asset}/{settle}:{settle}",
        asset=asset,
        settle=settle,
        inverse=inverse,
        rate_per_interval=rate,
        interval_s=interval_h * 3600,
        next_funding_ms=NOW + 3 * 3600_000,
        predicted_rate=predicted,
        mark_usd=mark,
        index_usd=index,
        ts_ms=ts,
    )


def fut(venue: str, asset: str, price: float, index: float, days: float, ts: int = NOW) -> BasisSample:
    return BasisSample(
        venue=venue,
        symbol=f"{asset}/USD:{asset}-{days:.0f}",
        asset=asset,
        settle=asset,
        inverse=True,
        expiry_ms=NOW + int(days * MS_PER_DAY),
        future_usd=price,
        index_usd=index,
        ts_ms=ts,
    )


@pytest.fixture
async def core(redis: Redis, keys: Keys) -> CommandCore:
    store = MarketStore(redis, keys, retention_ms=MS_PER_DAY)
    await write_venue(
        store,
        "binanceusdm",
        [perp("binanceusdm", "BTC", 0.0001, mark=60_100, index=60_000)],
        [fut("binanceusdm", "BTC", 61_000, 60_000, 91)],
        now_ms=NOW,
    )
    await write_venue(
        store,
        "okx",
        [perp("okx", "BTC", 0.0003, interval_h=4, predicted=0.0002)],
        [fut("okx", "BTC", 60_600, 60_000, 91), fut("okx", "BTC", 60_030, 60_000, 1)],
        now_ms=NOW,
    )
    await write_venue(
        store,
        "deribit",
        [perp("deribit", "ETH", -0.0002, settle="ETH", inverse=True, ts=NOW - 600_000)],
        [],
        now_ms=NOW,
    )
    return command_core(store, VENUES, clock_ms=lambda: NOW, alerts=False)


async def test_basis_groups_by_expiry_with_independent_figures(core: CommandCore) -> None:
    reply = await core.run("basis", ["btc"])
    assert not reply.error
    text = to_plain(reply)
    # 91-day contract: binance 61,000 vs 60,000 -> basis 1000/60000, annualized x 365/91
    assert f"{1000 / 60000 * 100:+.2f}%" in text
    assert f"{1000 / 60000 * 365 / 91 * 100:+.1f}%" in text
    # okx 60,600 -> 1.00%, annualized 4.01%
    assert f"{600 / 60000 * 365 / 91 * 100:+.1f}%" in text
    # one-day contract: raw basis only, flagged as not annualized
    assert "under 3d: not annualized" in text
    assert "+0.05%" in text
    assert "3 futures on 2 venues" in reply.title
    # perpetual premium of binance 60,100 vs 60,000
    assert "+0.167%" in text


async def test_funding_per_interval_annualized_and_summary(core: CommandCore) -> None:
    reply = await core.run("funding", ["BTC"])
    text = to_plain(reply)
    assert "+0.0100%" in text and "8h" in text and f"{0.0001 * 3 * 365 * 100:+.1f}%" in text
    assert "+0.0300%" in text and "4h" in text and f"{0.0003 * 6 * 365 * 100:+.1f}%" in text
    assert "+0.0200%" in text  # okx predicted
    # mean per 8h: binance 0.0001, okx 0.0003 per 4h = 0.0006 per 8h
    assert f"Mean {(0.0001 + 0.0006) / 2 * 100:+.4f}%/8h" in text
    assert "3h00m" in text


async def test_stale_rows_marked(core: CommandCore) -> None:
    text = to_plain(await core.run("funding", ["eth"]))
    assert "deribit*" in text and "stale" in text


async def test_unknown_asset_lists_accepted(core: CommandCore) -> None:
    reply = await core.run("basis", ["doge"])
    assert reply.error
    assert "No venue lists DOGE" in reply.title and "btc" in reply.title


@pytest.mark.parametrize(
    ("args", "fragment"),
    [([], "Usage: /funding <asset>"), (["b$c"], "not an asset ticker"), (["btc", "eth"], "takes one asset")],
)
async def test_malformed_input_one_line(core: CommandCore, args: list[str], fragment: str) -> None:
    reply = await core.run("funding", args)
    assert reply.error and fragment in reply.title and "\n" not in reply.title


async def test_unknown_command_and_help(core: CommandCore) -> None:
    assert "Try /help" in (await core.run("nope", [])).title
    help_text = to_plain(await core.run("help", []))
    for example in ("/basis btc", "/funding eth", "/status"):
        assert example in help_text


async def test_status_reports_errors(core: CommandCore) -> None:
    await core.store.record_success("binanceusdm", now_ms=NOW - 5000, latency_ms=40, requests=2)
    await core.store.record_failure("okx", "SourceUnavailable: timeout", now_ms=NOW - 2000, requests=1)
    text = to_plain(await core.run("status", []))
    assert "okx: SourceUnavailable: timeout (2s ago)" in text
    lines = {ln.split()[0]: ln.split() for ln in text.splitlines() if ln.startswith(("binance ", "okx ", "deribit "))}
    assert lines["binance"][1:3] == ["ok", "5s"]
    assert lines["okx"][1:3] == ["down", "never"]
    assert lines["deribit"][1:3] == ["waiting", "never"]


async def test_read_is_one_round_trip(core: CommandCore, redis: Redis) -> None:
    """Each command reads Redis once (a pipeline): the connection sees exactly one command batch."""
    sent: list[int] = []
    conn_cls = redis.connection_pool.connection_class
    original = conn_cls.send_packed_command

    async def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        sent.append(1)
        return await original(self, command, check_health)

    conn_cls.send_packed_command = counting  # counts wire writes; not a replacement of our code
    try:
        await core.run("basis", ["btc"])
        basis_trips = len(sent)
        sent.clear()
        await core.run("funding", ["btc"])
        funding_trips = len(sent)
    finally:
        conn_cls.send_packed_command = original
    assert basis_trips == 1
    assert funding_trips == 1


async def test_oi_totals_changes_and_series_from_stored_history(redis: Redis, keys: Keys) -> None:
    from core.metrics.registry import default_registry
    from core.models import OpenInterestSample

    reg = default_registry()
    oi = reg.get("oi")
    store = MarketStore(redis, keys, retention_ms=30 * MS_PER_DAY)

    def sample(venue: str, symbol: str, coins: float, usd: float, ts: int, inverse: bool = False) -> OpenInterestSample:
        return OpenInterestSample(
            venue=venue,
            symbol=symbol,
            asset="BTC",
            settle="BTC" if inverse else "USDT",
            inverse=inverse,
            kind="swap",
            coins=coins,
            usd=usd,
            ts_ms=ts,
        )

    now = {
        "binanceusdm": [sample("binanceusdm", "BTC/USDT:USDT", 1000, 60e6, NOW)],
        "okx": [sample("okx", "BTC/USDT:USDT", 500, 30e6, NOW), sample("okx", "BTC/USD:BTC", 200, 12e6, NOW, True)],
    }
    # stored totals: one hour ago both venues had 80% of today's, a day ago only binance reported (half)
    for venue, ss in now.items():
        total = sum(s.usd for s in ss)
        history = [sample(venue, "*total*", 0, total * 0.8, NOW - 3_600_000)]
        if venue == "binanceusdm":
            history.append(sample(venue, "*total*", 0, total * 0.5, NOW - 86_400_000))
        await store.write_samples(oi, venue, ss, now_ms=NOW, history=history)
    core = command_core(store, ("binanceusdm", "okx"), clock_ms=lambda: NOW, alerts=False, registry=reg)
    text = to_plain(await core.run("oi", ["btc"]))
    assert "BTC open interest · $102.0M on 2 venues" in text
    assert "okx" in text and "inverse" in text and "USDT" in text and "1,700" in text  # coins in total
    assert f"1h {(102 - 0.8 * 102) / (0.8 * 102) * 100:+.1f}%" in text  # both venues an hour ago
    assert f"24h {(60 - 30) / 30 * 100:+.1f}%" in text  # only the venue with history a day ago
    assert "7d —" in text
    series = to_plain(await core.run("oi", ["btc", "7d"]))
    assert "Total open interest, last 7d" in series and "$81.60M" in series  # the hour-ago bucket: 0.8 x 102M
    assert (await core.run("oi", ["btc", "90d"])).error
