"""CryptoQuant (paid API): daily exchange reserve, inflow, outflow and netflow over all exchanges.

Four requests per fetch, the key as ``Authorization: Bearer <key>``::

    GET /v1/{btc,eth}/exchange-flows/reserve  -> "reserve"        (balance)
    GET /v1/{btc,eth}/exchange-flows/inflow   -> "inflow_total"   (inflow)
    GET /v1/{btc,eth}/exchange-flows/outflow  -> "outflow_total"  (outflow)
    GET /v1/{btc,eth}/exchange-flows/netflow  -> "netflow_total"  (cross-check only)
        ?exchange=all_exchange&window=day&limit=N

    {"status": {"code": 200, "message": "success"},
     "result": {"window": "day", "data": [{"date": "2026-11-25", "inflow_total": 12345.6, ...}]}}

Field names are CryptoQuant's documented ones as we know them (``reserve`` / ``reserve_usd``,
``inflow_total`` next to ``inflow_top10`` and ``inflow_mean``, likewise for outflow, ``netflow_total``);
they could not be checked against a live answer here, and a renamed field fails loudly as a
MalformedResponse. Rows may come newest first; they are sorted. A ``status.code`` other than 200 in
the body is treated like the same HTTP status. netflow is inflow_total - outflow_total; price_usd is
None (these endpoints give USD totals, not a price).

Availability: no publication time in the answer, so ``available_ms = date + 1 day +
publication_lag_s`` (default 4 h, an assumption), capped at the time we received the answer. The
current day, which CryptoQuant may list while it is still running, is dropped.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from watchers.errors import MalformedResponse
from watchers.flows.http import KeyedProvider, get_json, status_error
from watchers.flows.models import (
    FlowDay,
    assemble,
    check_asset,
    check_days,
    complete,
    non_negative,
    number,
    parse_day,
    require_key,
)

CRYPTOQUANT_ASSETS = {"BTC": "btc", "ETH": "eth"}
# our name -> (endpoint, field)
SERIES = {
    "balance": ("reserve", "reserve"),
    "inflow": ("inflow", "inflow_total"),
    "outflow": ("outflow", "outflow_total"),
    "netflow": ("netflow", "netflow_total"),
}


class CryptoQuantProvider(KeyedProvider):
    """Daily exchange flows from CryptoQuant's data API (needs a key)."""

    name = "cryptoquant"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: str | None,
        base_url: str = "https://api.cryptoquant.com",
        **kwargs: Any,
    ) -> None:
        super().__init__(session, api_key, base_url, **kwargs)

    async def fetch_days(self, asset: str, days: int) -> list[FlowDay]:
        """The last ``days`` complete UTC days, oldest first."""
        key = require_key(self.name, self._api_key)
        code = check_asset(self.name, asset, CRYPTOQUANT_ASSETS)
        check_days(days)
        # two spare rows: the running day, and one for series whose newest day differs
        params = {"exchange": "all_exchange", "window": "day", "limit": str(days + 2)}
        series: dict[str, dict[str, float]] = {}
        for name, (endpoint, field) in SERIES.items():
            self.requests += 1
            body = await get_json(
                self.session,
                self.name,
                f"{self.base_url}/v1/{code}/exchange-flows/{endpoint}",
                params=params,
                headers={"Authorization": f"Bearer {key}"},
                timeout_s=self.timeout_s,
                secret=key,
                limiter=self.limiter,
            )
            series[name] = self._series(name, field, body, self.clock())
        return assemble(
            self.name, asset.strip().upper(), series, received_ms=self.clock(), lag_s=self.publication_lag_s, days=days
        )

    def _series(self, name: str, field: str, body: Any, received_ms: int) -> dict[str, float]:
        if not isinstance(body, dict):
            raise MalformedResponse(f"{self.name}: {name} answer is not an object")
        status = body.get("status")
        code = status.get("code") if isinstance(status, dict) else None
        if isinstance(code, int) and not isinstance(code, bool) and code != 200:
            raise status_error(self.name, code, retry_after=None, detail="", keyed=True)
        result = body.get("result")
        data = result.get("data") if isinstance(result, dict) else None
        if not isinstance(data, list):
            raise MalformedResponse(f"{self.name}: {name} answer has no result.data list")
        window = result.get("window") if isinstance(result, dict) else None
        if window is not None and window != "day":
            raise MalformedResponse(f"{self.name}: {name} answer has window {window!r}, asked for 'day'")
        out: dict[str, float] = {}
        for row in data:
            if not isinstance(row, dict):
                raise MalformedResponse(f"{self.name}: {name} row is a {type(row).__name__}, not an object")
            day = parse_day(self.name, row.get("date", row.get("datetime")))
            if not complete(day, received_ms):
                continue  # the running day: its values may be unfinished (or null)
            if field not in row:
                raise MalformedResponse(f"{self.name}: {name} row {day} has no {field!r}")
            what = f"{day} {field}"
            out[day] = (
                number(self.name, row[field], what) if name == "netflow" else non_negative(self.name, row[field], what)
            )
        return out
