"""The registry of metrics: what the command table, rule grammar, topics and settings are built from.

A registry is a value built at wiring time (no module-level instance): ``default_registry()``
gives the project's metrics, and a test may build one with a metric of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from core.alerts.events import AlertEvent
from core.metrics.base import Metric
from core.reply import Reply, UserError


class Registry:
    """Metrics by name, in registration order."""

    def __init__(self, metrics: Iterable[Metric] = ()) -> None:
        self._metrics: dict[str, Metric] = {}
        for m in metrics:
            self.register(m)

    def register(self, metric: Metric) -> Metric:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name!r} registered twice")
        metric.registry = self
        self._metrics[metric.name] = metric
        return metric

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._metrics.values())

    def __contains__(self, name: object) -> bool:
        return name in self._metrics

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._metrics)

    def find(self, name: str) -> Metric | None:
        return self._metrics.get(name)

    def get(self, name: str) -> Metric:
        """The metric called ``name``; a UserError naming the accepted ones otherwise."""
        m = self._metrics.get(name.lower())
        if m is None:
            raise UserError(f"Unknown metric '{name[:20]}': accepted are {', '.join(self.names)}")
        return m

    def render(self, event: AlertEvent) -> Reply:
        """An alert event as a platform-neutral message (notices carry their own text)."""
        if event.metric == "notice":
            return Reply(title=str(event.extra.get("title", "Notice")), blocks=(str(event.extra.get("text", "")),))
        if event.extra.get("combine"):
            from core.alerts.combined import render_combined

            return render_combined(self, event)
        m = self._metrics.get(event.metric)
        if m is None:  # an event from a newer version, or a metric since removed from the config
            return Reply(title=f"{event.asset} {event.metric} alert ({event.rule_text})")
        return m.render_alert(event)


def metric_classes() -> tuple[type[Metric], ...]:
    """The project's metrics, in the order commands and help list them."""
    from core.metrics.basis import Basis
    from core.metrics.flows import Flows
    from core.metrics.funding import Funding
    from core.metrics.gamma import Gamma
    from core.metrics.liquidations import Liquidations
    from core.metrics.open_interest import OpenInterest
    from core.metrics.summary import Summary

    return (Basis, Funding, OpenInterest, Flows, Gamma, Summary, Liquidations)


def default_registry(options: Mapping[str, Mapping[str, Any]] | None = None) -> Registry:
    """The project's metrics; ``options`` holds each metric's config section."""
    opts = options or {}
    return Registry(cls(opts.get(cls.name)) for cls in metric_classes())
