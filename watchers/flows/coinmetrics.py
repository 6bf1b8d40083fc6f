"""Coin Metrics community API: daily exchange inflow, outflow and balance, keyless.

Data licence: Coin Metrics community data are CC BY-NC 4.0 (attribution, non-commercial use only).
Anything that shows these numbers must credit Coin Metrics; a commercial deployment needs their Pro
API instead (same paths, ``api_key`` parameter; not implemented here).

One request (more only when the answer is paged)::

    GET /v4/timeseries/asset-metrics?assets=btc&frequency=1d&paging_from=end&page_size=N
        &metrics=FlowInExNtv,FlowOutExNtv,SplyExNtv,PriceUSD,AssetEODCompletionTime

    {"data": [{"asset": "btc", "time": "2021-04-12T00:00:00.000000000Z",
               "FlowInExNtv": "24561.3122425", "FlowOutExNtv": "25360.42655779",
               "SplyExNtv": "1427425.59819817", "PriceUSD": "58818.9770985973",
               "AssetEODCompletionTime": "1618288561"}],
     "next_page_url": "https://community-api.coinmetrics.io/v4/...&next_page_token=..."}

Values are strings. ``time`` is the start of the UTC day. A metric the asset lacks is left out of the
row; ``null`` means no value for that day. Inflow, outflow and balance are required (a row without one
of them fails the whole answer); PriceUSD is optional.

Availability: ``AssetEODCompletionTime`` (epoch seconds, as a string) is when Coin Metrics finished
the day's data; it is used as ``available_ms`` when present. When the response lacks it (the metric
not served, or null), ``available_ms = time + 1 day + publication_lag_s`` (default 4 h, an estimate
of their usual next-morning publication). Either way it is capped at the time we received the answer.

Rate limit: about 10 requests per 6 s per IP. Requests are spaced by ``min_interval_s`` (0.6 s); pass
one :class:`MinInterval` to every client sharing the IP. A 429 raises SourceUnavailable naming the
Retry-After.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

import aiohttp

from watchers.errors import MalformedResponse
from watchers.flows.http import MinInterval, get_json
from watchers.flows.models import (
    DAY_MS,
    Clock,
    FlowDay,
    check_asset,
    check_days,
    complete,
    day_start_ms,
    estimated_available_ms,
    last_days,
    non_negative,
    now_ms,
    parse_day,
)

log = logging.getLogger(__name__)

COINMETRICS_ASSETS = {"BTC": "btc", "ETH": "eth"}
INFLOW, OUTFLOW, BALANCE, PRICE, COMPLETION = (
    "FlowInExNtv",
    "FlowOutExNtv",
    "SplyExNtv",
    "PriceUSD",
    "AssetEODCompletionTime",
)
METRICS = (INFLOW, OUTFLOW, BALANCE, PRICE, COMPLETION)
PATH = "/v4/timeseries/asset-metrics"
MAX_PAGE_SIZE = 10_000  # the API's cap


def parse_completion_ms(value: Any) -> int | None:
    """AssetEODCompletionTime -> epoch ms: epoch seconds ('1618288561', '1641081601.5') or ISO 8601."""
    if value is None or value == "":
        return None
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                pass
            else:
                if stamp.tzinfo is None:
                    stamp = stamp.replace(tzinfo=dt.UTC)
                seconds = stamp.timestamp()
    if seconds is not None and math.isfinite(seconds) and seconds > 0:
        return round(seconds * 1000)
    raise MalformedResponse(f"coinmetrics: {COMPLETION} {str(value)[:40]!r} is not a time")


class CoinMetricsProvider:
    """Daily exchange flows from the Coin Metrics community API (keyless, CC BY-NC 4.0)."""

    name = "coinmetrics"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str = "https://community-api.coinmetrics.io",
        min_interval_s: float = 0.6,
        *,
        publication_lag_s: float = 4 * 3600,
        timeout_s: float = 30.0,
        max_pages: int = 10,
        limiter: MinInterval | None = None,
        clock: Clock = now_ms,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.publication_lag_s = publication_lag_s
        self.timeout_s = timeout_s
        self.max_pages = max_pages
        self.limiter = limiter or MinInterval(min_interval_s)
        self.clock = clock
        self.requests = 0

    def __repr__(self) -> str:
        return f"CoinMetricsProvider(base_url={self.base_url!r})"

    async def fetch_days(self, asset: str, days: int) -> list[FlowDay]:
        """The last ``days`` complete UTC days, oldest first."""
        code = check_asset(self.name, asset, COINMETRICS_ASSETS)
        check_days(days)
        url: str = self.base_url + PATH
        params: dict[str, str] | None = {
            "assets": code,
            "metrics": ",".join(METRICS),
            "frequency": "1d",
            # one spare row, in case the newest day is listed before it has ended
            "paging_from": "end",
            "page_size": str(min(days + 1, MAX_PAGE_SIZE)),
        }
        rows: dict[str, FlowDay] = {}
        for _page in range(self.max_pages):
            self.requests += 1
            body = await get_json(
                self.session, self.name, url, params=params, timeout_s=self.timeout_s, limiter=self.limiter
            )
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise MalformedResponse(f"{self.name}: answer has no 'data' list")
            received_ms = self.clock()
            for raw in body["data"]:
                row = self._row(raw, code, asset.strip().upper(), received_ms)
                if row is not None:
                    rows.setdefault(row.day, row)
            next_url = body.get("next_page_url")
            if len(rows) >= days or not next_url:
                break
            if not isinstance(next_url, str) or not next_url.startswith(self.base_url + "/"):
                # never follow a link off the configured host
                raise MalformedResponse(f"{self.name}: next_page_url points outside {self.base_url}")
            url, params = next_url, None  # the link already carries every parameter
        else:
            log.warning("provider=%s asset=%s stopped after %d pages", self.name, asset, self.max_pages)
        return last_days(self.name, list(rows.values()), days)

    def _row(self, raw: Any, code: str, asset: str, received_ms: int) -> FlowDay | None:
        """One data row as a FlowDay; None for a day that has not ended (its values may be unfinished)."""
        name = self.name
        if not isinstance(raw, dict):
            raise MalformedResponse(f"{name}: a data row is a {type(raw).__name__}, not an object")
        if raw.get("asset") != code:
            raise MalformedResponse(f"{name}: row for asset {raw.get('asset')!r}, asked for {code!r}")
        day = parse_day(name, raw.get("time"), "time")
        if not complete(day, received_ms):
            return None
        values: dict[str, float] = {}
        for metric in (INFLOW, OUTFLOW, BALANCE):
            if raw.get(metric) is None:
                raise MalformedResponse(f"{name}: {day} has no {metric}")
            values[metric] = non_negative(name, raw[metric], f"{day} {metric}")
        price = None if raw.get(PRICE) is None else non_negative(name, raw[PRICE], f"{day} {PRICE}")
        completion_ms = parse_completion_ms(raw.get(COMPLETION))
        if completion_ms is None:
            available_ms = estimated_available_ms(day, self.publication_lag_s, received_ms)
        elif completion_ms < day_start_ms(day) + DAY_MS:
            raise MalformedResponse(f"{name}: {day} {COMPLETION} is before the day ended")
        else:
            available_ms = min(completion_ms, received_ms)
        inflow, outflow = values[INFLOW], values[OUTFLOW]
        return FlowDay(
            provider=name,
            asset=asset,
            day=day,
            available_ms=available_ms,
            inflow=inflow,
            outflow=outflow,
            netflow=inflow - outflow,
            balance=values[BALANCE],
            price_usd=price,
        )
