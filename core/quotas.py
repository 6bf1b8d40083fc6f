"""What one chat may ask for: only assets a watched venue or provider lists, a cap on subscriptions and rules.

Without this, any user could subscribe to any string (2,000 ``/subscribe all`` made 6,000 keys).
Every refusal is a one-line UserError saying what is accepted. The listed assets are those the watchers
last reported (kept in Redis across restarts); only before a deployment's very first poll, when no venue
has reported any market metric yet, is any well-formed ticker accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.reply import UserError
from core.store import MarketStore


@dataclass(frozen=True, slots=True)
class QuotaSettings:
    max_subscriptions_per_chat: int = 60
    max_rules_per_chat: int = 50


class Quotas:
    """Checks subscriptions and rules against what the sources list and the per-chat caps."""

    def __init__(
        self,
        store: MarketStore,
        flow_assets: Sequence[str],
        settings: QuotaSettings,
        market_metrics: Sequence[str] = ("funding", "basis", "oi"),
        listed_as: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.flow_assets = frozenset(a.upper() for a in flow_assets)
        self.settings = settings
        self.market_metrics = tuple(market_metrics)
        # metric -> the metric whose assets it accepts (liqs: any asset with a listed perpetual, before its first
        # liquidation is seen)
        self.listed_as = dict(listed_as or {})

    async def listed(self, metric: str) -> frozenset[str] | None:
        """The assets a watched venue (market metrics) or a configured flow provider (flows) lists; None while
        no venue has reported anything yet (a fresh deployment's first poll)."""
        if metric == "flows":
            return self.flow_assets
        metric = self.listed_as.get(metric, metric)
        known = frozenset(await self.store.known_assets(metric))
        if known:
            return known
        for other in self.market_metrics:
            if other != metric and await self.store.known_assets(other):
                return known  # the venues report, just not this metric for any asset
        return None

    async def check_asset(self, metric: str, asset: str) -> None:
        """UserError unless some source lists ``asset`` for ``metric``."""
        known = await self.listed(metric)
        if known is None or asset in known:  # None: a fresh deployment's first poll is still running
            return
        if not known:
            raise UserError(f"No watched source reports {metric} for any asset: accepted topics are the other metrics.")
        sample = ", ".join(sorted(a.lower() for a in known)[:8])
        raise UserError(
            f"No watched source lists {asset} for {metric}. Accepted: a listed asset, e.g. {sample} "
            f"({len(known)} known)."
        )

    async def listed_topics(self, topics: Sequence[str]) -> list[str]:
        """The ``metric:ASSET`` topics whose asset is listed; UserError (for the first) when none is."""
        kept: list[str] = []
        first_error: UserError | None = None
        for topic in topics:
            metric, asset = topic.split(":", 1)
            try:
                await self.check_asset(metric, asset)
            except UserError as e:
                first_error = first_error or e
            else:
                kept.append(topic)
        if not kept and first_error is not None:
            raise first_error
        return kept

    def check_subscriptions(self, current: Sequence[str], adding: Sequence[str]) -> None:
        """UserError when subscribing ``adding`` would take the chat past its cap."""
        cap = self.settings.max_subscriptions_per_chat
        total = len(set(current) | set(adding))
        if total > cap:
            raise UserError(
                f"This chat may follow at most {cap} topics and has {len(set(current))}: remove some "
                "with /unsubscribe (see /alerts)."
            )

    def check_rules(self, current: int) -> None:
        """UserError when the chat already has its maximum of own rules."""
        cap = self.settings.max_rules_per_chat
        if current >= cap:
            raise UserError(f"This chat has {cap} rules already (the maximum): delete some with /threshold del")
