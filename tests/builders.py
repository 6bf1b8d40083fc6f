"""Builders the tests share: the registry, sources, a command core and writes through the real store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from core.alert_commands import AlertCommands, AlertCommandSettings
from core.alerts.rules import Rule, parse_rule
from core.alerts.store import AlertStore
from core.commands import CommandCore, CoreSettings
from core.metrics.registry import Registry, default_registry
from core.store import MarketStore


def sources(
    registry: Registry, venues: Sequence[str], providers: Sequence[str] = ("coinmetrics",)
) -> dict[str, tuple[str, ...]]:
    """Metric -> sources, as the wiring builds it: providers for flows, venues for the market metrics."""
    return {
        m.name: ()
        if m.overview
        else tuple(providers)
        if m.source_word == "provider"
        else tuple(v for v in venues if v in m.fixed_sources)
        if m.fixed_sources
        else tuple(venues)
        for m in registry
    }


async def write_venue(
    store: MarketStore,
    venue: str,
    funding: Iterable[Any] = (),
    basis: Iterable[Any] = (),
    oi: Iterable[Any] = (),
    *,
    now_ms: int,
    registry: Registry | None = None,
    history: bool = False,
) -> None:
    """Store one venue's poll the way the market watcher does: each metric's part replaces the venue's set."""
    reg = registry or default_registry()
    for name, samples in (("funding", list(funding)), ("basis", list(basis)), ("oi", list(oi))):
        if samples:
            m = reg.get(name)
            await store.write_samples(
                m, venue, samples, now_ms=now_ms, history=m.history_samples(samples) if history else ()
            )


def command_core(
    store: MarketStore,
    venues: Sequence[str],
    *,
    providers: Sequence[str] = ("coinmetrics",),
    admins: dict[str, frozenset[str]] | None = None,
    clock_ms: Callable[[], int] | None = None,
    registry: Registry | None = None,
    stale_after_s: float = 180.0,
    alerts: bool = True,
) -> CommandCore:
    reg = registry or default_registry()
    src = sources(reg, venues, providers)
    kw: dict[str, Any] = {"clock_ms": clock_ms} if clock_ms else {}
    alert_commands = (
        AlertCommands(
            AlertStore(store.redis, store.keys), AlertCommandSettings(sources=src, bot_admins=admins or {}), reg, **kw
        )
        if alerts
        else None
    )
    return CommandCore(
        store,
        CoreSettings(venues=tuple(venues), providers=tuple(providers), sources=src, stale_after_s=stale_after_s),
        reg,
        alerts=alert_commands,
        **kw,
    )


def rule_from(
    text: str,
    *,
    rule_id: str = "r1",
    venues: Sequence[str] = ("binanceusdm", "okx", "bybit"),
    providers: Sequence[str] = ("coinmetrics",),
    registry: Registry | None = None,
    now_ms: int = 0,
    default_cooldown_s: int = 0,
    **kw: Any,
) -> Rule:
    reg = registry or default_registry()
    return parse_rule(
        text.split(),
        registry=reg,
        sources=sources(reg, venues, providers),
        rule_id=rule_id,
        default_cooldown_s=default_cooldown_s,
        now_ms=now_ms,
        created_by="t",
        **kw,
    )


async def read(
    store: MarketStore, metric: str, asset: str, venues: Sequence[str], registry: Registry | None = None
) -> dict[str, list[Any]]:
    """The latest samples of one metric and asset, venue -> samples, as the commands read them."""
    by_venue, _ = await store.read_latest((registry or default_registry()).get(metric), asset, venues)
    return by_venue
