"""Dealer gamma: a small chain with known inputs in the Deribit double, fetched by the real ccxt, checked by hand."""

from __future__ import annotations

import datetime as dt
import math
import time
from statistics import NormalDist

import pytest
from redis.asyncio import Redis

from core.alerts.events import AlertEvent
from core.alerts.service import AlertService, AlertSettings
from core.alerts.store import AlertStore
from core.gamma import OptionSample, flip_level, gex_by_strike
from core.keys import Keys
from core.metrics.base import fmt_amount
from core.metrics.registry import default_registry
from core.models import MS_PER_DAY
from core.render import fmt_price, to_plain
from core.store import MarketStore
from tests.builders import command_core, rule_from, sources
from tests.fakes.deribit_options import Option, set_chain
from tests.fakes.exchanges import ExchangeDouble
from watchers.options import OptionChainWatcher
from watchers.venues.options import OptionChainClient

SPOT = 100_000.0
PDF = NormalDist().pdf


def small_chain(today: dt.date) -> list[Option]:
    """Two expiries, five strikes; puts heavy below spot, calls above: short gamma under a level below spot."""
    out = []
    for days, fwd, iv_atm in ((9, 100_150.0, 52.0), (37, 100_600.0, 58.0)):
        expiry = today + dt.timedelta(days=days)
        for k, call_oi, put_oi in (
            (90_000, 40.0, 900.0),
            (95_000, 120.0, 1500.0),
            (100_000, 700.0, 650.0),
            (105_000, 1100.0, 90.0),
            (110_000, 800.0, 30.0),
        ):
            iv = iv_atm + abs(k - SPOT) / 1000 * 0.6  # a smile
            out.append(Option("BTC", expiry, k, True, call_oi, iv, fwd, SPOT))
            out.append(Option("BTC", expiry, k, False, put_oi, iv + 1.5, fwd, SPOT))
    return out


def by_hand_gamma(f: float, k: float, iv_pct: float, expiry_ms: int, now_ms: int) -> float:
    sigma, t = iv_pct / 100, (expiry_ms - now_ms) / (365 * MS_PER_DAY)
    d1 = (math.log(f / k) + sigma**2 * t / 2) / (sigma * math.sqrt(t))
    return PDF(d1) / (f * sigma * math.sqrt(t))


def by_hand_total(opts: list[Option], now_ms: int, scale: float = 1.0) -> float:
    total = 0.0
    for o in opts:
        f = o.underlying * scale
        g = by_hand_gamma(f, o.strike, o.mark_iv, o.expiry_ms, now_ms)
        total += (1 if o.call else -1) * g * o.open_interest * f * f * 0.01
    return total


def by_hand_flip(opts: list[Option], now_ms: int) -> float | None:
    """Scan 0.01% steps over ±30% and take the sign change nearest spot (linear interpolation)."""
    prev_s, prev_v, best = None, None, None
    for i in range(-3000, 3001):
        s = 1 + i / 10_000
        v = by_hand_total(opts, now_ms, s)
        if prev_v is not None and (prev_v < 0) != (v < 0):
            cross = prev_s + (s - prev_s) * prev_v / (prev_v - v)
            if best is None or abs(cross - 1) < abs(best - 1):
                best = cross
        prev_s, prev_v = s, v
    return None if best is None else best * SPOT


@pytest.fixture
async def chain_stored(exchanges: ExchangeDouble, redis: Redis, keys: Keys):  # type: ignore[no-untyped-def]
    today = dt.datetime.now(dt.UTC).date()
    opts = small_chain(today)
    set_chain(exchanges.venues["deribit"], opts)
    store = MarketStore(redis, keys, retention_ms=MS_PER_DAY)
    reg = default_registry()
    client = OptionChainClient(timeout_s=2, rest_base_url=exchanges.url("deribit"))
    seen: list[tuple[str, str, int]] = []

    async def listener(metric: str, venue: str, samples: list[OptionSample], *, replace: bool = True) -> None:
        seen.append((metric, venue, len(samples)))

    watcher = OptionChainWatcher(client, store, reg.get("gamma"), ("BTC", "ETH"), listeners=[listener])
    try:
        stored = await watcher.poll_once()
        yield opts, store, reg, stored, seen, exchanges.venues["deribit"].requests
    finally:
        await client.close()


async def test_chain_fetched_in_bulk_and_gex_matches_by_hand(chain_stored) -> None:  # type: ignore[no-untyped-def]
    opts, store, reg, stored, seen, requests = chain_stored
    assert stored == len(opts) and seen == [("gamma", "deribit", len(opts))]
    summaries = [r for r in requests if "get_book_summary_by_currency" in r]
    assert len(summaries) == 2 and all("kind=option" in r for r in summaries)  # one per currency, never per option
    assert sum("get_instruments" in r for r in requests) == 1
    by_venue, _ = await store.read_latest(reg.get("gamma"), "BTC", ("deribit",))
    chain = by_venue["deribit"]
    now = int(time.time() * 1000)
    ours = gex_by_strike(chain, now)
    for k in {o.strike for o in opts}:
        want = sum(
            (1 if o.call else -1)
            * by_hand_gamma(o.underlying, k, o.mark_iv, o.expiry_ms, now)
            * o.open_interest
            * o.underlying**2
            * 0.01
            for o in opts
            if o.strike == k
        )
        assert ours[k] == pytest.approx(want, rel=1e-6)
    from core.gamma import black76_gamma

    for o, s in zip(sorted(opts, key=lambda o: (o.expiry_ms, o.strike, o.call)), chain, strict=True):
        assert s.strike == o.strike and s.call == o.call and s.open_interest == o.open_interest
        g = black76_gamma(s.underlying_usd, s.strike, s.mark_iv_pct / 100, (s.expiry_ms - now) / (365 * MS_PER_DAY))
        assert g == pytest.approx(by_hand_gamma(o.underlying, o.strike, o.mark_iv, o.expiry_ms, now), rel=1e-6)
    flip = flip_level(chain, now, SPOT)
    want_flip = by_hand_flip(opts, now)
    assert want_flip is not None and flip is not None
    assert abs(flip - want_flip) / SPOT < 0.001
    assert abs(flip / SPOT - 1) < 0.30


async def test_gamma_reply_states_figures_and_convention(chain_stored) -> None:  # type: ignore[no-untyped-def]
    opts, store, reg, *_ = chain_stored
    now = int(time.time() * 1000)
    core = command_core(store, ExchangeDouble.VENUES, clock_ms=lambda: now, registry=reg)
    text = to_plain(await core.run("gamma", ["btc"]))
    total = by_hand_total(opts, now)
    assert f"{fmt_amount(total, signed=True, prefix='$')} per 1%" in text
    flip = by_hand_flip(opts, now)
    assert flip is not None
    assert "flip " in text and "Black-76" in text and "dealers long calls, short puts" in text
    by_strike: dict[float, float] = {}
    for o in opts:
        g = by_hand_gamma(o.underlying, o.strike, o.mark_iv, o.expiry_ms, now)
        by_strike[o.strike] = (
            by_strike.get(o.strike, 0.0) + (1 if o.call else -1) * g * o.open_interest * o.underlying**2 * 0.01
        )
    for k, v in by_strike.items():
        assert f"{fmt_price(k)}" in text and fmt_amount(v, signed=True, prefix="$") in text
    worst = min((k for k in by_strike if k < SPOT), key=lambda k: by_strike[k])
    assert f"Largest negative gamma below spot: {fmt_price(worst)}" in text
    assert "ETH" not in text.split("\n")[0]
    for bad, needle in ((["btc", "x"], "is not a window"), (["zzz"], "ZZZ")):
        assert needle in to_plain(await core.run("gamma", bad))


async def test_no_flip_within_span_is_said() -> None:
    now = int(time.time() * 1000)
    calls = [
        OptionSample("deribit", f"C{k}", "BTC", k, now + 30 * MS_PER_DAY, True, 100.0, 50.0, SPOT, SPOT, now)
        for k in (90_000.0, 100_000.0, 110_000.0)
    ]
    assert flip_level(calls, now, SPOT) is None
    reg = default_registry()
    from core.metrics.base import View

    assert "none within ±30%" in reg.get("gamma").summary_line(View("BTC", {"deribit": calls}), now)


async def test_garbage_and_failures_never_crash_or_store(exchanges: ExchangeDouble, redis: Redis, keys: Keys) -> None:
    set_chain(exchanges.venues["deribit"], small_chain(dt.datetime.now(dt.UTC).date()))
    store = MarketStore(redis, keys, retention_ms=MS_PER_DAY)
    reg = default_registry()
    client = OptionChainClient(timeout_s=1, rest_base_url=exchanges.url("deribit"))
    watcher = OptionChainWatcher(client, store, reg.get("gamma"), ("BTC",))
    try:
        assert await watcher.poll_once() == 20
        for fault in ("garbage", "500", "malformed"):
            exchanges.venues["deribit"].fault = fault
            with pytest.raises(Exception) as e:
                await watcher.poll_once()
            assert type(e.value).__module__ == "watchers.errors"
        by_venue, health = await store.read_latest(reg.get("gamma"), "BTC", ("deribit",), with_health=True)
        assert len(by_venue["deribit"]) == 20  # the last good chain stays, marked not current
        assert health["deribit"].problem("gamma")
    finally:
        await client.close()


async def test_gamma_rules_total_below_and_flip(redis: Redis, keys: Keys) -> None:
    reg = default_registry()
    alerts = AlertStore(redis, keys)
    t0 = 1_800_000_000_000
    clock = [t0]
    svc = AlertService(
        alerts,
        MarketStore(redis, keys, retention_ms=MS_PER_DAY),
        keys,
        reg,
        AlertSettings(sources=sources(reg, ("deribit",))),
        clock_ms=lambda: clock[0],
    )
    below = rule_from("gamma btc below -50m", rule_id="r1", venues=("deribit",), registry=reg)
    flip = rule_from("gamma btc flip", rule_id="r2", venues=("deribit",), registry=reg)
    assert below.field == "total" and below.threshold == -50e6 and "per 1%" in below.describe()
    assert flip.field == "flip" and flip.kind == "crosses" and flip.hysteresis == pytest.approx(0.0025)
    for r in (below, flip):
        await alerts.save_rule(r, who="t", action="set", now_ms=t0)
    await svc.start()

    def chain(spot: float, put_oi: float) -> list[OptionSample]:
        exp = t0 + 20 * MS_PER_DAY
        return [
            OptionSample("deribit", f"P{k}", "BTC", k, exp, False, put_oi, 55.0, spot, spot, clock[0])
            for k in (90_000.0, 95_000.0)
        ] + [
            OptionSample("deribit", f"C{k}", "BTC", k, exp, True, 2000.0, 55.0, spot, spot, clock[0])
            for k in (105_000.0, 110_000.0)
        ]

    assert await svc.on_samples("gamma", "deribit", chain(100_000.0, 500.0)) == 0  # positive, flip side noted
    first = chain(100_000.0, 500.0)
    want_flip = flip_level(first, t0, 100_000.0)
    assert want_flip is not None and want_flip < 100_000.0
    clock[0] += 60_000
    moved = chain(want_flip * 0.98, 500.0)  # spot 2% under the flip level: crossed beyond the band
    assert await svc.on_samples("gamma", "deribit", moved) == 1
    clock[0] += 60_000
    heavy = chain(100_000.0, 20_000.0)  # puts pile up: total far below -50m
    assert by_hand_total_samples(heavy, clock[0]) < -50e6
    assert await svc.on_samples("gamma", "deribit", heavy) >= 1
    raw = await redis.xrange(keys.alerts())
    texts = [to_plain(reg.render(AlertEvent.from_json(f[b"event"]))) for _, f in raw]
    assert any("crossed below the gamma flip level" in t for t in texts)
    assert any("gamma below" in t and "-$50.00M" in t for t in texts)


def by_hand_total_samples(chain: list[OptionSample], now: int) -> float:
    return sum(
        (1 if o.call else -1)
        * by_hand_gamma(o.underlying_usd, o.strike, o.mark_iv_pct, o.expiry_ms, now)
        * o.open_interest
        * o.underlying_usd**2
        * 0.01
        for o in chain
    )


async def test_a_currency_with_bad_rows_fails_alone(exchanges: ExchangeDouble, redis: Redis, keys: Keys) -> None:
    today = dt.datetime.now(dt.UTC).date()
    eth = [Option("ETH", today + dt.timedelta(days=9), k, True, 100.0, -5.0, 3500.0, 3500.0) for k in (3000, 4000)]
    set_chain(exchanges.venues["deribit"], [*small_chain(today), *eth])  # ETH's IV is negative: never stored
    store = MarketStore(redis, keys, retention_ms=MS_PER_DAY)
    reg = default_registry()
    client = OptionChainClient(timeout_s=2, rest_base_url=exchanges.url("deribit"))
    try:
        assert await OptionChainWatcher(client, store, reg.get("gamma"), ("BTC", "ETH")).poll_once() == 20
    finally:
        await client.close()
    by_venue, health = await store.read_latest(reg.get("gamma"), "BTC", ("deribit",), with_health=True)
    assert len(by_venue["deribit"]) == 20
    problem = health["deribit"].problem("gamma") or ""
    assert "ETH" in problem and "sanity" in problem
    assert (await store.read_latest(reg.get("gamma"), "ETH", ("deribit",)))[0] == {}


async def test_a_newly_listed_option_is_picked_up_by_a_market_reload(
    exchanges: ExchangeDouble, redis: Redis, keys: Keys
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    state = exchanges.venues["deribit"]
    set_chain(state, small_chain(today))
    store = MarketStore(redis, keys, retention_ms=MS_PER_DAY)
    client = OptionChainClient(timeout_s=2, rest_base_url=exchanges.url("deribit"))
    watcher = OptionChainWatcher(client, store, default_registry().get("gamma"), ("BTC",))
    try:
        assert await watcher.poll_once() == 20
        set_chain(
            state,
            [
                *small_chain(today),
                Option("BTC", today + dt.timedelta(days=9), 120_000, True, 10.0, 60.0, 100_150.0, SPOT),
            ],
        )
        assert await watcher.poll_once() == 20  # listed since the markets were loaded: skipped, reload asked
        assert await watcher.poll_once() == 21
        assert sum("get_instruments" in r for r in state.requests) == 2
    finally:
        await client.close()
