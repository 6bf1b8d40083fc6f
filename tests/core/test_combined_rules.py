"""Rules that combine factors: all(...) fires once when every condition holds, re-arms per hysteresis; any(...)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from core.alerts.store import AlertStore
from core.keys import Keys
from core.models import MS_PER_DAY, FlowDay
from core.render import to_plain
from core.reply import UserError
from tests.builders import command_core, rule_from
from tests.core.test_alert_service import (
    VENUES,
    Clock,
    add,
    feed,
    fired,
    fut,
    make_service,
    perp,
    rendered,
)
from tests.fakes.exchanges import ExchangeDouble


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def alerts(redis: Redis, keys: Keys) -> AlertStore:
    return AlertStore(redis, keys)


ALL = "all(funding btc above 0.05% venue okx; basis btc above 40% venue okx)"


def basis_price(annualized: float, days: float) -> float:
    """The future price (index 100) whose basis annualizes to ``annualized`` with ``days`` left."""
    return 100.0 * (1 + annualized * days / 365)


def test_grammar_and_its_errors() -> None:
    r = rule_from("all(basis btc above 40%; funding btc above 0.05%; flows btc netflow above 3000) cooldown 4h")
    assert r.combine == "all" and len(r.conditions) == 3 and r.cooldown_s == 4 * 3600
    assert [c.metric for c in r.conditions] == ["basis", "funding", "flows"]
    assert r.topic == "basis:BTC"  # delivered to the first condition's subscribers
    assert [p.id for p in r.parts] == ["r1.1", "r1.2", "r1.3"]
    assert r.text.startswith("all of (basis BTC above +40.0%") and "flows BTC netflow above +3,000" in r.text
    assert rule_from("any( funding btc above 0.05% ; oi btc above 30b )").combine == "any"
    for text, needle in (
        ("all(basis btc above 40%)", "2 to 6 conditions"),
        ("all(basis btc crosses 0%; funding btc above 0.05%)", "'crosses' has no state"),
        ("all(basis btc above 40%; funding btc above banana)", "Condition 2"),
        ("all(basis btc above 40%; funding btc above 0.05%) venue okx", "only 'cooldown <duration>'"),
        ("all(basis btc above 40%; funding btc above 0.05%", "all(<rule>; <rule>; ...)"),
    ):
        with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
            rule_from(text)


async def test_set_list_and_delete_through_the_command_core(redis: Redis, keys: Keys) -> None:
    from core.store import MarketStore

    core = command_core(MarketStore(redis, keys, retention_ms=MS_PER_DAY), ExchangeDouble.VENUES)
    typed = "set all(basis btc above 40%; funding btc above 0.05%; flows btc netflow above 3000)"
    text = typed.split()
    reply = to_plain(await core.run("threshold", text))
    assert "Rule r1 set: all of (basis BTC above +40.0%" in reply
    assert "all of (basis" in to_plain(await core.run("threshold", ["list"]))
    assert "needs a % sign" in to_plain(
        await core.run("threshold", ["set", "any(funding", "btc", "above", "1;", "basis", "btc", "above", "40%)"])
    )
    assert "deleted" in to_plain(await core.run("threshold", ["del", "r1"]))


async def test_all_fires_once_when_every_condition_holds_and_rearms_per_hysteresis(
    redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock
) -> None:
    rule = await add(alerts, ALL)
    svc = make_service(redis, keys, alerts, clock)
    await svc.start()

    async def poll(rate: float, annualized: float) -> int:
        clock.now += 60_000
        return await feed(
            svc, "okx", [perp("okx", rate, ts=clock.now)], [fut("okx", basis_price(annualized, 73), 73, now=clock.now)]
        )

    assert await poll(0.0006, 0.30) == 0  # funding holds, basis does not
    assert await poll(0.0003, 0.45) == 0  # basis holds, funding no longer (0.03% < 0.05% - 0.01% band)
    assert await poll(0.0006, 0.45) == 1  # both at once: fires
    (alert,) = await fired(redis, keys)
    assert alert["rule"] == rule.id and alert["topic"] == "funding:BTC"
    text = to_plain(rendered(alert))
    assert "BTC: all 2 conditions hold" in text
    assert "☑ funding BTC above +0.0500%/8h (okx), re-arm band 0.0100% — now +0.0600%/8h" in text
    assert f"☑ basis BTC above +40.0% (okx), re-arm band 5.0% — now {0.45 * 100:+.1f}% ann." in text
    assert await poll(0.0007, 0.50) == 0  # still holding: once
    assert await poll(0.00045, 0.50) == 0  # funding dipped inside its band: still holds, nothing re-arms
    assert await poll(0.0006, 0.50) == 0
    assert await poll(0.0006, 0.37) == 0  # basis 37% is inside its 5% band: still holds
    assert await poll(0.0006, 0.34) == 0  # basis re-armed (below 35%): the combination re-arms
    assert await poll(0.0006, 0.41) == 1  # and fires again
    await svc.stop()
    svc2 = make_service(redis, keys, alerts, clock)  # a restart neither re-fires nor forgets
    await svc2.start()
    clock.now += 60_000
    assert (
        await feed(
            svc2, "okx", [perp("okx", 0.0008, ts=clock.now)], [fut("okx", basis_price(0.48, 73), 73, now=clock.now)]
        )
        == 0
    )
    assert len(await fired(redis, keys)) == 2


async def test_cooldown_swallows_a_quick_second_firing(
    redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock
) -> None:
    await add(alerts, ALL + " cooldown 1h")
    svc = make_service(redis, keys, alerts, clock)
    await svc.start()
    for rate, expect in ((0.0006, 1), (0.0002, 1), (0.0006, 1)):  # fire, re-arm, hold again inside the hour
        clock.now += 60_000
        await feed(
            svc, "okx", [perp("okx", rate, ts=clock.now)], [fut("okx", basis_price(0.45, 73), 73, now=clock.now)]
        )
        assert len(await fired(redis, keys)) == expect
    clock.now += 3600_000
    for rate in (0.0002, 0.0006):
        await feed(
            svc, "okx", [perp("okx", rate, ts=clock.now)], [fut("okx", basis_price(0.45, 73), 73, now=clock.now)]
        )
    assert len(await fired(redis, keys)) == 2


async def test_any_fires_on_the_first_condition(redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock) -> None:
    await add(alerts, "any(funding btc above 0.05% venue okx; basis btc above 40% venue okx)")
    svc = make_service(redis, keys, alerts, clock)
    await svc.start()
    clock.now += 60_000
    assert (
        await feed(
            svc, "okx", [perp("okx", 0.0001, ts=clock.now)], [fut("okx", basis_price(0.45, 73), 73, now=clock.now)]
        )
        == 1
    )
    (alert,) = await fired(redis, keys)
    text = to_plain(rendered(alert))
    assert "1 of 2 conditions hold (any)" in text and "☐ funding BTC" in text and "☑ basis BTC" in text
    clock.now += 60_000
    assert (
        await feed(
            svc, "okx", [perp("okx", 0.0006, ts=clock.now)], [fut("okx", basis_price(0.45, 73), 73, now=clock.now)]
        )
        == 0
    )  # the second adds nothing
    clock.now += 60_000
    assert (
        await feed(
            svc, "okx", [perp("okx", 0.0001, ts=clock.now)], [fut("okx", basis_price(0.20, 73), 73, now=clock.now)]
        )
        == 0
    )  # none holds: re-armed
    clock.now += 60_000
    assert (
        await feed(
            svc, "okx", [perp("okx", 0.0006, ts=clock.now)], [fut("okx", basis_price(0.20, 73), 73, now=clock.now)]
        )
        == 1
    )


async def test_a_daily_flows_condition_holds_while_the_newest_day_does(
    redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock
) -> None:
    await add(alerts, "all(funding btc above 0.05% venue okx; flows btc netflow above 3000)")
    svc = make_service(redis, keys, alerts, clock)
    await svc.start()

    def day(d: str, net: float) -> FlowDay:
        return FlowDay("coinmetrics", "BTC", d, clock.now, net + 1000, 1000.0, net, 2e6, 60_000.0)

    clock.now += 60_000
    assert await svc.on_samples("flows", "coinmetrics", [day("2027-01-14", 4200.0)], replace=False) == 0
    assert await feed(svc, "okx", [perp("okx", 0.0006, ts=clock.now)], []) == 1
    text = to_plain(rendered((await fired(redis, keys))[0]))
    assert "☑ flows BTC netflow above +3,000" in text and "now +4,200/day" in text
    clock.now += 60_000
    await feed(svc, "okx", [perp("okx", 0.0002, ts=clock.now)], [])  # funding re-arms: so does the rule
    assert await svc.on_samples("flows", "coinmetrics", [day("2027-01-15", 1000.0)], replace=False) == 0
    clock.now += 60_000
    assert await feed(svc, "okx", [perp("okx", 0.0006, ts=clock.now)], []) == 0  # the newest day no longer holds
    assert await svc.on_samples("flows", "coinmetrics", [day("2027-01-16", 5000.0)], replace=False) == 1
    assert VENUES  # the helpers' venues


async def test_a_condition_on_a_silent_venue_no_longer_holds(
    redis: Redis, keys: Keys, alerts: AlertStore, clock: Clock
) -> None:
    await add(alerts, ALL)
    svc = make_service(redis, keys, alerts, clock)
    await svc.start()
    clock.now += 60_000
    assert await svc.on_samples("funding", "okx", [perp("okx", 0.0006, ts=clock.now)]) == 0  # funding holds
    clock.now += 600_000  # okx funding stops reporting; its old state must not count
    assert await svc.on_samples("basis", "okx", [fut("okx", basis_price(0.45, 73), 73, now=clock.now)]) == 0
    clock.now += 60_000
    assert await svc.on_samples("funding", "okx", [perp("okx", 0.0006, ts=clock.now)]) == 1  # current again: fires


async def test_a_back_test_asks_for_one_plain_rule(redis: Redis, keys: Keys) -> None:
    from core.store import MarketStore

    core = command_core(MarketStore(redis, keys, retention_ms=MS_PER_DAY), ExchangeDouble.VENUES)
    typed = "all(funding btc above 0.05%; basis btc above 40%) 30d"
    reply = await core.run("backtest", typed.split())
    assert reply.error and "runs one plain rule" in reply.title
