"""Chart kinds by metric name: a metric's charts are listed here, and only metrics in the registry get them.

``/chart`` asks the kinds of the named metric which one takes the words; it never switches on a metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from core.charts.base import Chart
from core.metrics.registry import Registry


def chart_classes() -> dict[str, tuple[type[Chart], ...]]:
    """Metric name -> its chart kinds, in the order /chart tries them."""
    from core.charts.flows import FlowsChart
    from core.charts.gamma import GammaChart
    from core.charts.liquidations import LiquidationsChart
    from core.charts.market import BasisChart, BasisCurveChart, FundingChart, OpenInterestChart

    return {
        "funding": (FundingChart,),
        "basis": (BasisChart, BasisCurveChart),
        "oi": (OpenInterestChart,),
        "flows": (FlowsChart,),
        "gamma": (GammaChart,),
        "liqs": (LiquidationsChart,),
    }


class ChartCatalog:
    """The chart kinds of one deployment: those of the registered metrics that have sources."""

    def __init__(
        self,
        registry: Registry,
        sources: Mapping[str, Sequence[str]],
        classes: Mapping[str, Sequence[type[Chart]]] | None = None,
    ) -> None:
        classes = chart_classes() if classes is None else classes
        self.by_metric: dict[str, tuple[Chart, ...]] = {
            m.name: tuple(cls(m) for cls in classes[m.name])
            for m in registry
            if m.name in classes and sources.get(m.name)
        }

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.by_metric)

    def usage(self) -> str:
        lines = [f"{c.usage()} — {c.summary}" for charts in self.by_metric.values() for c in charts]
        return "\n".join(lines)
