"""A metric is one module: one defined here gets its command, help, rules, subscriptions and alerts with no
change to the command core, the alert service, the store or the platform adapters. Real Redis."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Self

from redis.asyncio import Redis

from core.alerts.events import AlertEvent
from core.alerts.service import AlertService, AlertSettings
from core.alerts.signals import Point
from core.alerts.store import AlertStore
from core.commands import command_specs
from core.context import ChatContext
from core.keys import Keys
from core.metrics.base import Metric, Query, Setting
from core.metrics.registry import Registry, metric_classes
from core.parsing import parse_asset
from core.render import to_plain
from core.reply import Reply, Table, UserError
from core.store import MarketStore
from handlers.discord.commands import slash_definitions
from tests.builders import command_core, sources

T0 = 1_800_000_000_000
VENUES = ("binanceusdm", "okx")
ADMIN = ChatContext(platform="tg", chat_id=42, user_id=42)


@dataclass(frozen=True, slots=True)
class RatioSample:
    """Accounts long / accounts short on one perpetual."""

    venue: str
    symbol: str
    asset: str
    ratio: float
    ts_ms: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        return cls(**json.loads(raw))


class LongShort(Metric):
    name = "lsr"
    title = "Long/short ratio"
    sample_type = RatioSample
    unit = "ratio"
    example = "/lsr btc"
    summary = "accounts long vs short per venue"
    kinds = ("above", "below")
    settings_spec = (Setting("hysteresis", 0.1, "re-arm band", float),)

    def problem(self, s: RatioSample) -> str | None:
        return None if 0 < s.ratio < 100 else f"ratio {s.ratio} is implausible"

    def parse_threshold(self, kind: str, text: str, field_: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise UserError(f"'{text[:20]}' is not a ratio, e.g. 2.5") from None
        if not 0 < value < 100:
            raise UserError("a ratio threshold is between 0 and 100, e.g. 2.5")
        return value

    def fmt_value(self, value: float, field_: str = "", *, signed: bool = True) -> str:
        return f"{value:.2f}"

    def points(self, by_venue: Mapping[str, Sequence[Any]], field_: str, now_ms: int) -> list[Point]:
        return [Point(v, s.symbol, s.ratio, "USDT", False) for v, ss in by_venue.items() for s in ss]

    async def reply(self, q: Query, args: list[str]) -> Reply:
        """/lsr <asset>: the long/short account ratio per venue."""
        asset = parse_asset(args, self.name)
        view = await q.view(self, asset)
        rows = tuple((v, s.symbol, f"{s.ratio:.2f}") for v, s in view.samples())
        return Reply(title=f"{asset} long/short", blocks=(Table(("venue", "contract", "ratio"), rows, "llr"),))


def registry() -> Registry:
    return Registry([*(cls() for cls in metric_classes()), LongShort()])


async def test_a_metric_defined_here_gets_command_rules_topics_and_alerts(redis: Redis, keys: Keys) -> None:
    reg = registry()
    lsr = reg.get("lsr")
    store = MarketStore(redis, keys, retention_ms=86_400_000)
    await store.write_samples(lsr, "okx", [RatioSample("okx", "BTC/USDT:USDT", "BTC", 1.8, T0)], now_ms=T0)
    core = command_core(store, VENUES, registry=reg, admins={"tg": frozenset({"42"})}, clock_ms=lambda: T0)

    # the command, and /help built from the registry
    assert "okx" in to_plain(await core.run("lsr", ["btc"])) and "1.80" in to_plain(await core.run("lsr", ["btc"]))
    assert "/lsr <asset> — accounts long vs short per venue" in to_plain(await core.run("help", []))
    assert any(c.name == "lsr" for c in command_specs(reg, reg.names))
    # Discord gets a slash command with an asset option, and the metric among the subscription choices
    defs = {d.path: d for d in slash_definitions(core.specs, core.names, reg, reg.names, VENUES)}
    assert defs[("lsr",)].options[0].name == "asset"
    assert ("lsr", "lsr") in defs[("subscribe",)].options[0].choices
    # subscriptions and rules in the one grammar, with the metric's own units and errors
    assert not (await core.run("subscribe", ["lsr", "btc"], ADMIN)).error
    bad = await core.run("threshold", ["set", "lsr", "btc", "above", "lots"], ADMIN)
    assert bad.error and "is not a ratio" in bad.title
    bad_kind = await core.run("threshold", ["set", "lsr", "btc", "crosses", "2"], ADMIN)
    assert bad_kind.error and "accepted are above, below" in bad_kind.title
    ok = await core.run("threshold", ["set", "lsr", "btc", "above", "2.5"], ADMIN)
    assert not ok.error and "lsr BTC above 2.50 (max of venues)" in ok.title

    # the one evaluation path fires it and the event renders with the metric's units
    svc = AlertService(
        AlertStore(redis, keys), store, keys, reg, AlertSettings(sources=sources(reg, VENUES)), clock_ms=lambda: T0
    )
    await svc.start()
    assert await svc.on_samples("lsr", "okx", [RatioSample("okx", "BTC/USDT:USDT", "BTC", 2.2, T0)]) == 0
    assert await svc.on_samples("lsr", "okx", [RatioSample("okx", "BTC/USDT:USDT", "BTC", 3.1, T0)]) == 1
    ((_id, fields),) = await redis.xrange(keys.alerts())
    event = AlertEvent.from_json(fields[b"event"])
    assert (event.metric, event.topic, event.value, event.venue) == ("lsr", "lsr:BTC", 3.1, "okx")
    text = to_plain(reg.render(event))
    assert "BTC lsr above 2.50" in text and "Now 3.10 on okx BTC/USDT:USDT" in text and "/unsubscribe lsr btc" in text
    await svc.stop()
