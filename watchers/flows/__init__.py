"""On-chain exchange flows: one HTTP client per provider, all returning normalized daily :class:`FlowDay` rows.

    provider      key                      available_ms from
    coinmetrics   none (CC BY-NC 4.0)      AssetEODCompletionTime, else day end + lag (4 h)
    glassnode     X-Api-Key header         day end + lag (4 h)
    cryptoquant   Authorization: Bearer    day end + lag (4 h)

Each takes an ``aiohttp.ClientSession`` the caller owns and raises only :mod:`watchers.errors` types;
an answer that is partial in any way raises MalformedResponse and yields no rows at all.
"""

from watchers.flows.coinmetrics import CoinMetricsProvider
from watchers.flows.cryptoquant import CryptoQuantProvider
from watchers.flows.glassnode import GlassnodeProvider
from watchers.flows.http import MinInterval
from watchers.flows.models import FlowDay, FlowProvider

__all__ = ["CoinMetricsProvider", "CryptoQuantProvider", "FlowDay", "FlowProvider", "GlassnodeProvider", "MinInterval"]
