"""Flow providers against the local provider double: real HTTP, real parsing, numbers checked by hand."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.flow_providers import DaySpec, FlowProvidersDouble
from watchers.errors import MalformedResponse, RateLimited, SourceError, SourceRejected, SourceUnavailable
from watchers.flows import (
    CoinMetricsProvider,
    CryptoQuantProvider,
    FlowDay,
    FlowProvider,
    GlassnodeProvider,
    MinInterval,
)

REPLAY = Path(__file__).resolve().parents[2].parent / "shared" / "replay"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
PROVIDERS = ("coinmetrics", "glassnode", "cryptoquant")
KEYS = {"glassnode": FlowProvidersDouble.GLASSNODE_KEY, "cryptoquant": FlowProvidersDouble.CRYPTOQUANT_KEY}


def ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


NOW_MS = ms("2021-04-15T12:00:00Z")  # 2021-04-14 is the newest complete day
BTC_DAYS = [
    DaySpec(
        "2021-04-12",
        inflow=20123.45678901,
        outflow=21000.5,
        balance=1431000.12345678,
        price=59998.76,
        available_at="2021-04-13T04:36:01Z",
    ),
    DaySpec(
        "2021-04-13",
        inflow=25000.0,
        outflow=19999.75,
        balance=1436000.37345678,
        price=63503.2,
        available_at="2021-04-14T03:12:42Z",
    ),
    DaySpec("2021-04-14", inflow=18000.125, outflow=18500.0, balance=1435500.49845678, price=62985.1),
]
ETH_DAYS = [DaySpec("2021-04-14", inflow=350000.5, outflow=360000.25, balance=17000000.0, price=2300.5)]


@pytest.fixture
async def double() -> AsyncIterator[FlowProvidersDouble]:
    async with FlowProvidersDouble() as d:
        d.days["BTC"] = list(BTC_DAYS)
        d.days["ETH"] = list(ETH_DAYS)
        yield d


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def make(
    provider: str,
    session: aiohttp.ClientSession,
    double: FlowProvidersDouble,
    *,
    key: str | None = "default",
    clock: Callable[[], int] = lambda: NOW_MS,
    **kwargs: float,
) -> FlowProvider:
    """A provider pointed at the double (``key="default"``: the key the double accepts)."""
    if provider == "coinmetrics":
        kwargs.setdefault("min_interval_s", 0.0)
        return CoinMetricsProvider(session, base_url=double.url(provider), clock=clock, **kwargs)
    api_key = KEYS[provider] if key == "default" else key
    cls = GlassnodeProvider if provider == "glassnode" else CryptoQuantProvider
    return cls(session, api_key, base_url=double.url(provider), clock=clock, **kwargs)


def end_plus(day: str, hours: float) -> int:
    return ms(f"{day}T00:00:00Z") + DAY_MS + int(hours * HOUR_MS)


# values ------------------------------------------------------------------------------------------


async def test_coinmetrics_parses_string_values_and_completion_time(
    double: FlowProvidersDouble, session: aiohttp.ClientSession
) -> None:
    rows = await make("coinmetrics", session, double).fetch_days("BTC", 3)

    assert rows == [
        FlowDay(
            "coinmetrics",
            "BTC",
            "2021-04-12",
            ms("2021-04-13T04:36:01Z"),
            20123.45678901,
            21000.5,
            20123.45678901 - 21000.5,
            1431000.12345678,
            59998.76,
        ),
        FlowDay(
            "coinmetrics",
            "BTC",
            "2021-04-13",
            ms("2021-04-14T03:12:42Z"),
            25000.0,
            19999.75,
            25000.0 - 19999.75,
            1436000.37345678,
            63503.2,
        ),
        # no completion time served for this day: the day's end plus the 4h default lag
        FlowDay(
            "coinmetrics",
            "BTC",
            "2021-04-14",
            end_plus("2021-04-14", 4),
            18000.125,
            18500.0,
            18000.125 - 18500.0,
            1435500.49845678,
            62985.1,
        ),
    ]
    (req,) = double.of("coinmetrics")
    assert req.path == "/v4/timeseries/asset-metrics"
    assert req.query == {
        "assets": "btc",
        "frequency": "1d",
        "paging_from": "end",
        "page_size": "4",
        "metrics": "FlowInExNtv,FlowOutExNtv,SplyExNtv,PriceUSD,AssetEODCompletionTime",
    }
    assert req.auth == {}


async def test_coinmetrics_without_completion_metric_uses_the_configured_lag(
    double: FlowProvidersDouble, session: aiohttp.ClientSession
) -> None:
    double.coinmetrics_completion = False  # the metric left out of the rows, as for an unsupported metric
    rows = await make("coinmetrics", session, double, publication_lag_s=2 * 3600).fetch_days("BTC", 2)
    assert [(r.day, r.available_ms) for r in rows] == [
        ("2021-04-13", end_plus("2021-04-13", 2)),
        ("2021-04-14", end_plus("2021-04-14", 2)),
    ]


async def test_coinmetrics_follows_next_page_url_only_when_needed(
    double: FlowProvidersDouble, session: aiohttp.ClientSession
) -> None:
    double.days["BTC"] = [DaySpec(f"2021-04-{d:02d}", inflow=d, outflow=d / 2, balance=1000 + d) for d in range(5, 15)]
    double.coinmetrics_max_page_size = 4
    provider = make("coinmetrics", session, double)

    rows = await provider.fetch_days("BTC", 9)
    assert [r.day for r in rows] == [f"2021-04-{d:02d}" for d in range(6, 15)]
    assert [r.inflow for r in rows] == [float(d) for d in range(6, 15)]
    assert all(r.price_usd is None for r in rows)  # PriceUSD is optional
    reqs = double.of("coinmetrics")
    assert [r.query.get("next_page_token") for r in reqs] == [None, "6", "2"]
    assert all(r.query["page_size"] == "10" and r.query["assets"] == "btc" for r in reqs)

    double.requests.clear()
    assert [r.day for r in await provider.fetch_days("BTC", 3)] == ["2021-04-12", "2021-04-13", "2021-04-14"]
    assert len(double.of("coinmetrics")) == 1


@pytest.mark.parametrize("provider", ["glassnode", "cryptoquant"])
async def test_keyed_providers_parse_values_and_estimate_availability(
    provider: str, double: FlowProvidersDouble, session: aiohttp.ClientSession
) -> None:
    # the providers' own netflow is only a cross-check: the row carries inflow - outflow
    double.days["BTC"][1] = DaySpec(
        "2021-04-13", inflow=25000.0, outflow=19999.75, balance=1436000.37345678, netflow=5000.0
    )
    rows = await make(provider, session, double).fetch_days("BTC", 3)

    assert rows == [
        FlowDay(provider, "BTC", s.day, end_plus(s.day, 4), s.inflow, s.outflow, s.inflow - s.outflow, s.balance, None)
        for s in double.days["BTC"]
    ]
    reqs = double.of(provider)
    assert len(reqs) == 4
    key = KEYS[provider]
    for r in reqs:
        assert key not in str(r.query) and key not in r.path
    if provider == "glassnode":
        assert all(r.auth == {"X-Api-Key": key} for r in reqs)
        assert sorted(r.path.rsplit("/", 1)[1] for r in reqs) == [
            "balance_exchanges",
            "transfers_volume_exchanges_net",
            "transfers_volume_from_exchanges_sum",
            "transfers_volume_to_exchanges_sum",
        ]
        assert {(r.query["a"], r.query["i"], r.query["e"]) for r in reqs} == {("BTC", "24h", "aggregated")}
        assert {(r.query["s"], r.query["u"]) for r in reqs} == {
            (str(ms("2021-04-11T00:00:00Z") // 1000), str(ms("2021-04-15T00:00:00Z") // 1000))
        }
    else:
        assert all(r.auth == {"Authorization": f"Bearer {key}"} for r in reqs)
        assert sorted(r.path for r in reqs) == [
            f"/v1/btc/exchange-flows/{e}" for e in ("inflow", "netflow", "outflow", "reserve")
        ]
        assert {(r.query["exchange"], r.query["window"], r.query["limit"]) for r in reqs} == {
            ("all_exchange", "day", "5")
        }


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_eth(provider: str, double: FlowProvidersDouble, session: aiohttp.ClientSession) -> None:
    (row,) = await make(provider, session, double).fetch_days("eth", 5)
    assert (row.asset, row.day, row.inflow, row.outflow, row.balance) == (
        "ETH",
        "2021-04-14",
        350000.5,
        360000.25,
        17000000.0,
    )
    assert row.netflow == 350000.5 - 360000.25


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_running_day_dropped_and_availability_capped(
    provider: str, double: FlowProvidersDouble, session: aiohttp.ClientSession
) -> None:
    # the running day, with a value that would fail the fetch if it were parsed
    double.days["BTC"].append(DaySpec("2021-04-15", inflow=-1.0, outflow=1.0, balance=1.0, price=1.0))
    now = ms("2021-04-15T01:30:00Z")  # 2021-04-15 still running; 04-14 closed 1.5 h ago
    rows = await make(provider, session, double, clock=lambda: now).fetch_days("BTC", 2)
    assert [r.day for r in rows] == ["2021-04-13", "2021-04-14"]
    # a value we hold was known when we received it, even if the estimate says later
    assert rows[-1].available_ms == now


# errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("fault", "error", "text"),
    [
        ("401", SourceRejected, "HTTP 401"),
        ("403", SourceRejected, "HTTP 403"),
        ("429", RateLimited, "retry after 6s"),
        ("500", SourceUnavailable, "HTTP 500"),
        ("malformed", MalformedResponse, "not JSON"),
        ("partial", MalformedResponse, "2021-04-14"),
        ("empty", MalformedResponse, "no complete days"),
        ("non_numeric", MalformedResponse, "not a number"),
        ("nan", MalformedResponse, "not a finite number"),
        ("negative", MalformedResponse, "negative"),
    ],
)
async def test_faults(
    provider: str,
    fault: str,
    error: type[SourceError],
    text: str,
    double: FlowProvidersDouble,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    double.fault[provider] = fault
    caplog.set_level(logging.DEBUG)
    with pytest.raises(error, match=text) as info:
        await make(provider, session, double).fetch_days("BTC", 3)
    assert type(info.value) is error
    assert str(info.value).startswith(f"{provider}: ")
    if fault in ("401", "403") and provider != "coinmetrics":
        assert "key rejected" in str(info.value)
    for key in KEYS.values():
        assert key not in str(info.value) and key not in repr(info.value.args)
        assert key not in caplog.text


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_timeout_and_connection_errors_are_unavailable(
    provider: str, double: FlowProvidersDouble, session: aiohttp.ClientSession
) -> None:
    double.fault[provider] = "timeout"
    double.delay_s = 1.0
    with pytest.raises(SourceUnavailable, match="timeout"):
        await make(provider, session, double, timeout_s=0.2).fetch_days("BTC", 3)

    async with FlowProvidersDouble() as gone:
        url = gone.url(provider)
    closed: FlowProvider
    if provider == "coinmetrics":
        closed = CoinMetricsProvider(session, base_url=url, min_interval_s=0)
    elif provider == "glassnode":
        closed = GlassnodeProvider(session, KEYS[provider], base_url=url)
    else:
        closed = CryptoQuantProvider(session, KEYS[provider], base_url=url)
    with pytest.raises(SourceUnavailable, match="ClientConnectorError"):
        await closed.fetch_days("BTC", 3)


@pytest.mark.parametrize("provider", ["glassnode", "cryptoquant"])
async def test_wrong_or_missing_key_is_rejected_without_showing_it(
    provider: str, double: FlowProvidersDouble, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-key-that-must-not-leak"
    p = make(provider, session, double, key=wrong)
    with pytest.raises(SourceRejected, match=r"key rejected \(HTTP 401\)") as info:
        await p.fetch_days("BTC", 3)
    assert wrong not in str(info.value) and wrong not in caplog.text and wrong not in repr(p)
    assert all(wrong in str(r.auth) for r in double.of(provider))  # it was sent, in the header

    double.requests.clear()
    for missing in (None, "", "  "):
        with pytest.raises(SourceRejected, match="no API key configured"):
            await make(provider, session, double, key=missing).fetch_days("BTC", 3)
    assert double.requests == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_unknown_asset_is_rejected_with_what_is_supported(
    provider: str, double: FlowProvidersDouble, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(SourceRejected, match=r"'DOGE' is not supported \(supported: BTC, ETH\)"):
        await make(provider, session, double).fetch_days("DOGE", 3)
    assert double.requests == []


async def test_coinmetrics_refuses_to_follow_a_link_off_its_host(
    double: FlowProvidersDouble, session: aiohttp.ClientSession
) -> None:
    double.coinmetrics_max_page_size = 1
    double.coinmetrics_link_base = "https://elsewhere.example"
    with pytest.raises(MalformedResponse, match="next_page_url points outside"):
        await make("coinmetrics", session, double).fetch_days("BTC", 3)
    assert len(double.of("coinmetrics")) == 1


# rate limit --------------------------------------------------------------------------------------


async def test_min_interval_spaces_request_starts() -> None:
    clock = [100.0]
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        clock[0] += s

    limiter = MinInterval(0.6, monotonic=lambda: clock[0], sleep=fake_sleep)
    await limiter.wait()  # first request: no wait
    clock[0] += 0.2
    await limiter.wait()  # 0.2 s later: waits the remaining 0.4 s
    clock[0] += 1.0
    await limiter.wait()  # long after: no wait
    await limiter.wait()
    assert slept == [pytest.approx(0.4), pytest.approx(0.6)]


async def test_coinmetrics_requests_are_spaced_on_the_wire(
    double: FlowProvidersDouble, session: aiohttp.ClientSession
) -> None:
    double.coinmetrics_max_page_size = 1
    provider = make("coinmetrics", session, double, min_interval_s=0.15)
    rows = await provider.fetch_days("BTC", 3)
    await provider.fetch_days("ETH", 1)
    assert len(rows) == 3
    times = [r.at for r in double.of("coinmetrics")]
    assert len(times) == 4
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.14


# replay ------------------------------------------------------------------------------------------


@pytest.mark.replay
async def test_replay_april_2021_through_coinmetrics(
    double: FlowProvidersDouble, session: aiohttp.ClientSession
) -> None:
    path = REPLAY / "april-2021" / "exchange_flows_1d.csv"
    if not path.exists():
        pytest.skip(f"replay data not found at {path} (the shared replay directory sits next to the repo)")
    with path.open(newline="") as f:
        records = list(csv.DictReader(f))
    double.days["BTC"] = [
        DaySpec(
            r["date"],
            inflow=float(r["inflow_btc"]),
            outflow=float(r["outflow_btc"]),
            balance=float(r["exchange_balance_btc"]),
            price=float(r["price_usd"]),
            available_at=r["available_at_utc"],
        )
        for r in records
    ]
    # the real clock: every replay day is long published
    rows = await CoinMetricsProvider(session, base_url=double.url("coinmetrics"), min_interval_s=0).fetch_days(
        "BTC", len(records)
    )

    assert len(rows) == len(records) == 30
    for row, r in zip(rows, records, strict=True):
        assert row.day == r["date"]
        assert row.available_ms == ms(r["available_at_utc"])
        assert row.available_ms > ms(f"{r['date']}T00:00:00Z") + DAY_MS
        assert (row.inflow, row.outflow, row.balance, row.price_usd) == (
            float(r["inflow_btc"]),
            float(r["outflow_btc"]),
            float(r["exchange_balance_btc"]),
            float(r["price_usd"]),
        )
        assert row.netflow == pytest.approx(float(r["netflow_btc"]), abs=1e-6)
    selloff = next(r for r in rows if r.day == "2021-04-18")
    assert selloff.available_ms == ms(next(r["available_at_utc"] for r in records if r["date"] == "2021-04-18"))
