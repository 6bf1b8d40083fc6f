"""Rule evaluation on new samples, real Redis: firing, persistence, cooldown, change and z-score rules."""

from __future__ import annotations

import random

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from core.alerts.events import AlertEvent
from core.alerts.rules import Rule
from core.alerts.service import AlertService, AlertSettings
from core.alerts.store import AlertStore
from core.keys import Keys
from core.metrics.registry import default_registry
from core.models import MS_PER_DAY, BasisSample, FundingSample
from core.render import to_plain
from core.reply import Reply
from core.store import MarketStore
from tests.builders import rule_from, sources

T0 = 1_800_000_000_000
VENUES = ("binanceusdm", "okx", "bybit")


def perp(venue: str, rate: float, *, asset: str = "BTC", interval_h: int = 8, ts: int = T0) -> FundingSample:
    return FundingSample(
        venue=venue,
        symbol=f"{asset}/USDT:USDT",
        asset=asset,
        settle="USDT",
        inverse=False,
        rate_per_interval=rate,
        interval_s=interval_h * 3600,
        next_funding_ms=None,
        predicted_rate=None,
        mark_usd=100.0,
        index_usd=100.0,
        ts_ms=ts,
    )


def fut(venue: str, price: float, days: float, now: int = T0) -> BasisSample:
    return BasisSample(
        venue=venue,
        symbol=f"BTC/USDT:USDT-{days:.0f}",
        asset="BTC",
        settle="USDT",
        inverse=False,
        expiry_ms=now + int(days * MS_PER_DAY),
        future_usd=price,
        index_usd=100.0,
        ts_ms=now,
    )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def alerts(redis: Redis, keys: Keys) -> AlertStore:
    return AlertStore(redis, keys)


REGISTRY = default_registry()


def make_service(redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock, step_s: float = 60) -> AlertService:
    return AlertService(
        alerts,
        MarketStore(redis, keys, retention_ms=40 * MS_PER_DAY),
        keys,
        REGISTRY,
        AlertSettings(sources=sources(REGISTRY, VENUES), history_step_s=step_s),
        clock_ms=clock,
    )


async def feed(svc: AlertService, venue: str, funding: list[FundingSample], basis: list[BasisSample]) -> int:
    """A venue's poll as the market watcher hands it over: each metric's part (basis only when it has one)."""
    n = await svc.on_samples("funding", venue, funding)
    if basis:
        n += await svc.on_samples("basis", venue, basis)
    return n


async def add(alerts: AlertStore, text: str, **kw: object) -> Rule:
    rule = rule_from(text, rule_id=await alerts.next_rule_id(), venues=VENUES, now_ms=T0, **kw)
    await alerts.save_rule(rule, who="t", action="set", now_ms=T0)
    return rule


def rendered(alert: dict[str, str]) -> Reply:
    """The message a platform renders from the typed event on the stream."""
    return REGISTRY.render(AlertEvent.from_json(alert["event"]))


async def fired(redis: Redis, keys: Keys) -> list[dict[str, str]]:
    out = []
    for _id, fields in await redis.xrange(keys.alerts()):
        out.append({k.decode(): v.decode() for k, v in fields.items()})
    return out


async def test_fires_once_with_message_and_survives_restart(
    redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock
) -> None:
    rule = await add(alerts, "funding btc above 0.05%")
    svc = make_service(redis, keys, alerts, clock)
    await svc.start()
    await feed(svc, "okx", [perp("okx", 0.0003, ts=clock.now)], [])
    await feed(svc, "bybit", [perp("bybit", 0.0004, ts=clock.now)], [fut("bybit", 110.0, 90, now=clock.now)])
    assert await fired(redis, keys) == []
    await feed(svc, "binanceusdm", [perp("binanceusdm", 0.0007, ts=clock.now)], [])
    (alert,) = await fired(redis, keys)
    assert alert["rule"] == rule.id and alert["topic"] == "funding:BTC" and alert["scope"] == "global"
    text = to_plain(rendered(alert))
    assert "BTC funding above +0.0500%/8h" in text
    assert "Now +0.0700%/8h on binance BTC/USDT:USDT" in text
    assert "okx +0.0300%" in text and "bybit +0.0400%" in text  # context: the other venues
    assert f"Basis: max {0.10 * 365 / 90 * 100:+.1f}% ann." in text  # context: the basis
    assert "/mute 2h" in text and "/unsubscribe funding btc" in text
    await feed(svc, "binanceusdm", [perp("binanceusdm", 0.0008, ts=clock.now)], [])
    assert len(await fired(redis, keys)) == 1  # still above: no repeat
    await svc.stop()
    svc2 = make_service(redis, keys, alerts, clock)  # a restart
    await svc2.start()
    await feed(svc2, "binanceusdm", [perp("binanceusdm", 0.0009, ts=clock.now)], [])
    assert len(await fired(redis, keys)) == 1


async def test_hysteresis_and_cooldown(redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock) -> None:
    await add(alerts, "funding btc above 0.05% venue okx hysteresis 0.02% cooldown 1h")
    svc = make_service(redis, keys, alerts, clock)
    await svc.start()
    for rate, expect in [(0.0006, 1), (0.00045, 1), (0.0006, 1), (0.0002, 1), (0.0006, 1)]:
        clock.now += 60_000
        await feed(svc, "okx", [perp("okx", rate, ts=clock.now)], [])
        assert len(await fired(redis, keys)) == expect, rate
    # back below the band, then above after the cooldown: fires again
    clock.now += 3600_000
    await feed(svc, "okx", [perp("okx", 0.0002, ts=clock.now)], [])
    await feed(svc, "okx", [perp("okx", 0.0006, ts=clock.now)], [])
    assert len(await fired(redis, keys)) == 2


async def test_funding_scaled_to_8h_and_basis_near_expiry_ignored(
    redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock
) -> None:
    await add(alerts, "funding btc above 0.05%")
    await add(alerts, "basis btc above 40%")
    svc = make_service(redis, keys, alerts, clock)
    await svc.start()
    # 0.01% per hour is 0.08% per 8h
    await feed(
        svc, "bybit", [perp("bybit", 0.0001, interval_h=1, ts=clock.now)], [fut("bybit", 100.5, 1, now=clock.now)]
    )
    alerts_now = await fired(redis, keys)
    assert [a["topic"] for a in alerts_now] == ["funding:BTC"]  # 0.5% one day out would be 182%/yr: not used
    await feed(svc, "okx", [], [fut("okx", 112.0, 91, now=clock.now)])  # 12% over 91 days = 48%/yr
    assert [a["topic"] for a in await fired(redis, keys)] == ["funding:BTC", "basis:BTC"]


async def test_rules_added_later_and_deleted_are_picked_up(
    redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock
) -> None:
    svc = make_service(redis, keys, alerts, clock)
    await svc.start()
    await feed(svc, "okx", [perp("okx", 0.0009, ts=clock.now)], [])
    rule = await add(alerts, "funding btc above 0.05%")  # condition already true: fires on the next sample
    await feed(svc, "okx", [perp("okx", 0.0009, ts=clock.now)], [])
    assert len(await fired(redis, keys)) == 1
    await alerts.delete_rule(rule, who="t", now_ms=T0)
    await add(alerts, "funding btc below 0%", scope="chat", target="tg:-5")
    await feed(svc, "okx", [perp("okx", -0.0001, ts=clock.now)], [])
    topics = [(a["scope"], a["target"]) for a in await fired(redis, keys)]
    assert topics == [("global", ""), ("chat", "tg:-5")]


async def test_change_rule_over_window(redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock) -> None:
    await add(alerts, "funding btc change 0.03% 8h venue okx")
    svc = make_service(redis, keys, alerts, clock, step_s=600)
    await svc.start()
    for _ in range(50):  # 50 x 10 min of flat funding
        clock.now += 600_000
        await feed(svc, "okx", [perp("okx", 0.0001, ts=clock.now)], [])
    assert await fired(redis, keys) == []
    clock.now += 600_000
    await feed(svc, "okx", [perp("okx", 0.00045, ts=clock.now)], [])  # +0.035% vs 8h ago
    (a,) = await fired(redis, keys)
    text = to_plain(rendered(a))
    assert "moved 0.0300%/8h within 8h" in text and "Changed +0.0350%/8h in 8h" in text


async def test_zscore_rule(redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock) -> None:
    await add(alerts, "funding btc zscore 3 1d venue okx")
    svc = make_service(redis, keys, alerts, clock, step_s=600)
    await svc.start()
    rng = random.Random(3)
    for _ in range(100):
        clock.now += 600_000
        await feed(svc, "okx", [perp("okx", 0.0001 + rng.uniform(-0.00001, 0.00001), ts=clock.now)], [])  # |z| < 1.8
    assert await fired(redis, keys) == []
    clock.now += 600_000
    await feed(svc, "okx", [perp("okx", 0.0003, ts=clock.now)], [])
    (a,) = await fired(redis, keys)
    assert "σ from its 1d mean" in to_plain(rendered(a))


async def test_crosses_zero(redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock) -> None:
    await add(alerts, "funding btc crosses 0% hysteresis 0.005%")
    svc = make_service(redis, keys, alerts, clock)
    await svc.start()
    for rate in (0.0001, -0.00002, -0.0001, 0.0001):
        await feed(svc, "okx", [perp("okx", rate, ts=clock.now)], [])
    titles = [rendered(a).title for a in await fired(redis, keys)]
    assert titles == ["🔻 BTC funding crossed +0.0000%/8h downwards", "🔺 BTC funding crossed +0.0000%/8h upwards"]


async def test_silent_venue_drops_out_of_aggregates(redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock) -> None:
    """A venue that stopped reporting must not keep voting with its last (old) value."""
    await add(alerts, "funding btc above 0.1%")
    svc = make_service(redis, keys, alerts, clock)
    await svc.start()
    await feed(svc, "okx", [perp("okx", 0.0002, ts=clock.now)], [])
    clock.now += 6 * 3600_000  # okx goes silent for six hours
    await feed(svc, "bybit", [perp("bybit", 0.0001, ts=clock.now)], [])
    await add(alerts, "funding btc above 0.015%")  # okx's stale 0.02% would trip this one
    await feed(svc, "bybit", [perp("bybit", 0.0001, ts=clock.now)], [])
    assert await fired(redis, keys) == []


async def test_two_evaluators_never_double_an_alert(redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock) -> None:
    await add(alerts, "funding btc above 0.05%")
    a, b = make_service(redis, keys, alerts, clock), make_service(redis, keys, alerts, clock)
    await a.start()
    await b.start()
    counts = [await feed(s, "okx", [perp("okx", 0.0007, ts=clock.now)], []) for s in (a, b)]
    assert sorted(counts) == [0, 1] and len(await fired(redis, keys)) == 1
    await a.stop()
    await b.stop()


async def test_failed_commit_does_not_swallow_the_alert(redis_url: str, keys: Keys, clock: Clock, redis: Redis) -> None:
    """Redis drops the connection as the alert is written: the next sample fires it instead of it being lost."""
    from urllib.parse import urlparse

    from tests.fakes.tcp_proxy import TcpProxy

    u = urlparse(redis_url)
    async with TcpProxy(u.hostname or "127.0.0.1", u.port or 6379) as proxy:
        flaky = Redis(host="127.0.0.1", port=proxy.port, db=int((u.path or "/0")[1:] or 0))
        alerts = AlertStore(flaky, keys)
        try:
            await add(alerts, "funding btc above 0.05%")
            svc = make_service(flaky, keys, alerts, clock)
            await svc.start()
            await feed(svc, "okx", [perp("okx", 0.0001, ts=clock.now)], [])
            proxy.cut_on = b"XADD"
            with pytest.raises(RedisConnectionError):
                await feed(svc, "okx", [perp("okx", 0.0007, ts=clock.now)], [])
            assert proxy.cuts >= 1 and await fired(redis, keys) == []
            proxy.cut_on = None
            assert await feed(svc, "okx", [perp("okx", 0.0007, ts=clock.now)], []) == 1
            assert len(await fired(redis, keys)) == 1
            await svc.stop()
        finally:
            await flaky.aclose()
