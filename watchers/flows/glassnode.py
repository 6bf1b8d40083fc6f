"""Glassnode (paid API): daily exchange inflow, outflow, netflow and balance, aggregated over exchanges.

Four requests per fetch, the key in the ``X-Api-Key`` header (never in the URL)::

    GET /v1/metrics/distribution/balance_exchanges                   -> balance
    GET /v1/metrics/transactions/transfers_volume_to_exchanges_sum   -> inflow
    GET /v1/metrics/transactions/transfers_volume_from_exchanges_sum -> outflow
    GET /v1/metrics/transactions/transfers_volume_exchanges_net      -> netflow (cross-check only)
        ?a=BTC&i=24h&e=aggregated&s=<unix s>&u=<unix s>

    [{"t": 1618185600, "v": 24561.31}, ...]

``t`` is the start of the UTC day, ``v`` a number in coins. Every series must hold every day of the
window; a day missing from one of them, a null or non-numeric ``v``, or a negative flow or balance
fails the whole fetch. netflow is inflow - outflow; price_usd is None (these endpoints carry none).

Availability: Glassnode gives no publication time, so ``available_ms = t + 1 day + publication_lag_s``
(default 4 h, an assumption to tune from observation), capped at the time we received the answer.
A row for the current, unfinished day is dropped.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from watchers.errors import MalformedResponse
from watchers.flows.http import KeyedProvider, get_json
from watchers.flows.models import (
    DAY_S,
    FlowDay,
    assemble,
    check_asset,
    check_days,
    complete,
    day_of_ms,
    non_negative,
    number,
    require_key,
)

GLASSNODE_ASSETS = {"BTC": "BTC", "ETH": "ETH"}
SERIES = {
    "balance": "/v1/metrics/distribution/balance_exchanges",
    "inflow": "/v1/metrics/transactions/transfers_volume_to_exchanges_sum",
    "outflow": "/v1/metrics/transactions/transfers_volume_from_exchanges_sum",
    "netflow": "/v1/metrics/transactions/transfers_volume_exchanges_net",
}


class GlassnodeProvider(KeyedProvider):
    """Daily exchange flows from Glassnode's metrics API (needs a key)."""

    name = "glassnode"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: str | None,
        base_url: str = "https://api.glassnode.com",
        **kwargs: Any,
    ) -> None:
        super().__init__(session, api_key, base_url, **kwargs)

    async def fetch_days(self, asset: str, days: int) -> list[FlowDay]:
        """The last ``days`` complete UTC days, oldest first."""
        key = require_key(self.name, self._api_key)
        code = check_asset(self.name, asset, GLASSNODE_ASSETS)
        check_days(days)
        today_s = self.clock() // 1000 // DAY_S * DAY_S
        # one spare day at the old end; the unfinished current day is dropped after the fetch
        params = {"a": code, "i": "24h", "e": "aggregated", "s": str(today_s - (days + 1) * DAY_S), "u": str(today_s)}
        series: dict[str, dict[str, float]] = {}
        for name, path in SERIES.items():
            self.requests += 1
            body = await get_json(
                self.session,
                self.name,
                self.base_url + path,
                params=params,
                headers={"X-Api-Key": key},
                timeout_s=self.timeout_s,
                secret=key,
                limiter=self.limiter,
            )
            series[name] = self._series(name, body, self.clock())
        return assemble(
            self.name, asset.strip().upper(), series, received_ms=self.clock(), lag_s=self.publication_lag_s, days=days
        )

    def _series(self, name: str, body: Any, received_ms: int) -> dict[str, float]:
        if not isinstance(body, list):
            raise MalformedResponse(f"{self.name}: {name} answer is a {type(body).__name__}, not a list")
        out: dict[str, float] = {}
        for point in body:
            if not isinstance(point, dict):
                raise MalformedResponse(f"{self.name}: {name} point is a {type(point).__name__}, not an object")
            t = point.get("t")
            if isinstance(t, bool) or not isinstance(t, int) or t % DAY_S:
                raise MalformedResponse(f"{self.name}: {name} point time {t!r} is not the start of a UTC day")
            day = day_of_ms(t * 1000)
            if not complete(day, received_ms):
                continue  # the running day: its values may be unfinished (or null)
            what = f"{name} {day}"
            out[day] = (
                number(self.name, point.get("v"), what)
                if name == "netflow"
                else non_negative(self.name, point.get("v"), what)
            )
        return out
