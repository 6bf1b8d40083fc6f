"""/chart and /alerts charts: the chart commands, answered from Redis and drawn in the chart pool."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

from core.alerts.store import AlertStore
from core.charts.base import Chart, ChartRequest, ChartSource
from core.charts.catalog import ChartCatalog
from core.charts.figure import LevelLine
from core.charts.service import ChartService
from core.context import ChatContext
from core.metrics.registry import Registry
from core.parsing import ASSET_RE
from core.reply import Image, Reply, UserError
from core.store import MarketStore

THEMES = ("light", "dark")
LEVEL_KINDS = ("above", "below", "crosses")


def _now_ms() -> int:
    return int(time.time() * 1000)


class ChartCommands:
    """Builds chart requests from words, reads what they need, has them drawn; keeps /alerts charts."""

    def __init__(
        self,
        catalog: ChartCatalog,
        service: ChartService,
        store: MarketStore,
        registry: Registry,
        sources: dict[str, tuple[str, ...]],
        alert_store: AlertStore | None = None,
        clock_ms: Callable[[], int] = _now_ms,
        history_step_s: float = 300.0,
    ) -> None:
        self.catalog = catalog
        self.service = service
        self.store = store
        self.registry = registry
        self.sources = sources
        self.alert_store = alert_store
        self.clock_ms = clock_ms
        self.history_step_ms = int(history_step_s * 1000)  # the watchers' [history] step_s

    def usage(self) -> str:
        return "Usage: /chart <metric> <asset> [window], e.g. /chart funding btc 7d. Accepted:\n" + self.catalog.usage()

    def parse(self, args: Sequence[str]) -> tuple[Chart, ChartRequest]:
        """The chart kind and request the words name; a UserError saying what is accepted otherwise."""
        if not args:
            raise UserError(self.usage())
        charts = self.catalog.by_metric.get(args[0].lower())
        if charts is None:
            raise UserError(
                f"No chart of '{args[0][:20]}': accepted are {', '.join(self.catalog.metrics)}. "
                f"e.g. /chart funding btc 7d"
            )
        if len(args) < 2 or not ASSET_RE.match(args[1].upper()):
            raise UserError(f"Which asset? {' or '.join(c.usage() for c in charts)}, e.g. /chart {args[0].lower()} btc")
        words = [w.lower() for w in args[2:]]
        theme = next((w for w in words if w in THEMES), "light")
        words = [w for w in words if w not in THEMES]
        for chart in charts:
            req = chart.request(args[1].upper(), words, theme)
            if req is not None:
                return chart, req
        raise UserError(f"'{' '.join(args[2:])[:30]}' is not accepted: " + "; ".join(c.usage() for c in charts))

    async def chart(self, args: list[str], ctx: ChatContext) -> Reply:
        """/chart <metric> <asset> [window|curve] [ann] [dark]: a chart of what Redis holds."""
        chart, req = self.parse(args)
        levels = await self.levels(chart, req, ctx.target)
        return Reply(title=_caption(chart, req), image=await self.draw(chart, req, levels))

    async def draw(self, chart: Chart, req: ChartRequest, levels: Sequence[LevelLine]) -> Image:
        """Read what the chart needs (unless cached) and have it drawn in the pool."""
        key = (req, tuple(levels))
        filename = f"{req.metric}-{req.asset.lower()}-{req.window}.png"
        hit = self.service.cached(key)
        if hit is not None:
            return Image(hit, filename, _caption(chart, req))
        now = self.clock_ms()
        raw = await chart.load(self.source(req.metric), req, now)
        data = await self.service.png(key, functools.partial(chart.figure, raw, req, tuple(levels), now), req.theme)
        if data is None:
            where = f"in the last {req.window}" if req.window_s else "now"
            raise UserError(
                f"No {req.metric} data for {req.asset} {where} yet (history is kept for the assets in "
                "[history] assets; see /status)."
            )
        return Image(data, filename, _caption(chart, req))

    def source(self, metric: str) -> ChartSource:
        """What a chart of ``metric`` may read."""
        return ChartSource(
            self.store, self.registry.get(metric), self.sources.get(metric, ()), self.clock_ms, self.history_step_ms
        )

    async def levels(self, chart: Chart, req: ChartRequest, target: str) -> list[LevelLine]:
        """The thresholds of the rules this chat receives on the chart's metric and asset, as lines."""
        rules: list[Any] = []
        if self.alert_store is not None:
            topic = f"{req.metric}:{req.asset}"
            index = [self.alert_store.keys.rules_target(target)]
            if topic in await self.alert_store.topics_of(target):
                index.append(self.alert_store.keys.rules_topic(topic))
            found, _ = await self.alert_store.rules_in(index)
            rules += found
        metric = self.registry.get(req.metric)
        out: dict[str, LevelLine] = {}
        for r in rules:
            if r.metric != req.metric or r.asset != req.asset or r.kind not in LEVEL_KINDS:
                continue
            if r.field not in ("", "netflow"):
                continue
            value = chart.level(r.threshold, req)
            if value is not None:
                out[r.id] = LevelLine(f"{r.id} {r.kind} {metric.fmt_threshold(r.kind, r.threshold, r.field)}", value)
        return [out[k] for k in sorted(out)]

    # /alerts charts on|off -----------------------------------------------------------------
    async def alerts_charts(self, args: list[str], ctx: ChatContext) -> Reply:
        """/alerts charts on|off: this chat's alerts carry a chart of the metric (or not)."""
        if len(args) != 1 or args[0].lower() not in ("on", "off"):
            raise UserError("Usage: /alerts charts on | /alerts charts off")
        if ctx.is_group and not await ctx.chat_admin():
            return Reply.fail("Only this group's administrators can change how its alerts look.")
        on = args[0].lower() == "on"
        await self.set_charts(ctx.target, on)
        return Reply(title="This chat's alerts now carry a chart." if on else "This chat's alerts come without charts.")

    async def set_charts(self, target: str, on: bool) -> None:
        key = self.store.keys.chart_prefs()
        if on:
            await self.store.redis.hset(key, target, "1")
        else:
            await self.store.redis.hdel(key, target)

    async def charts_on(self, target: str) -> bool:
        return bool(await self.store.redis.hexists(self.store.keys.chart_prefs(), target))

    async def alert_image(self, metric: str, asset: str, *, target: str = "") -> Image | None:
        """The metric's first chart at its default window with the chat's thresholds; None without one."""
        charts = self.catalog.by_metric.get(metric)
        if not charts:
            return None
        chart = next((c for c in charts if c.snapshot is None), charts[0])
        req = chart.request(asset, [], "light")
        if req is None:
            return None
        try:
            return await self.draw(chart, req, await self.levels(chart, req, target))
        except UserError:  # no history yet: the alert goes without its chart
            return None


def _caption(chart: Chart, req: ChartRequest) -> str:
    """'BTC funding · last 7d (ann)': metric, asset and window."""
    opts = f" ({', '.join(req.options)})" if req.options else ""
    window = "now" if not req.window_s else f"last {req.window}"
    return f"{req.asset} {chart.name} · {window}{opts}"
