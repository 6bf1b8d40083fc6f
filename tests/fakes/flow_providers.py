"""FlowProvidersDouble: one local aiohttp server answering Coin Metrics, Glassnode and CryptoQuant in their shapes.

    async with FlowProvidersDouble() as double:
        double.days["BTC"] = [DaySpec("2021-04-12", inflow=1.5, outflow=2.0, balance=100.0, price=60000.0)]
        provider = GlassnodeProvider(session, double.GLASSNODE_KEY, base_url=double.url("glassnode"))

Paths: ``/<provider>/<the provider's real path>``:

* ``/coinmetrics/v4/timeseries/asset-metrics?assets=btc&metrics=..&frequency=1d&paging_from=end&page_size=N``:
  ``{"data": [{"asset", "time", <metric>: "<string>"}], "next_page_url"?}``, rows oldest first, the
  newest ``page_size`` (capped at ``coinmetrics_max_page_size``) first; ``next_page_url`` (absolute,
  with ``next_page_token``; on ``coinmetrics_link_base`` when set) leads to older rows.
  ``AssetEODCompletionTime`` is the DaySpec's ``available_at`` as epoch seconds, null when unset (or
  left out when ``coinmetrics_completion`` is False).
* ``/glassnode/v1/metrics/...`` (the four exchange metrics): ``[{"t": unix_s, "v": number}]`` for days
  with ``s <= t <= u``. Only an ``X-Api-Key`` header with ``GLASSNODE_KEY`` is accepted: anything
  else (no key, wrong key, the key as a query parameter) answers 401.
* ``/cryptoquant/v1/{btc,eth}/exchange-flows/{reserve,inflow,outflow,netflow}``: the status/result
  envelope, rows newest first, at most ``limit``. Only ``Authorization: Bearer CRYPTOQUANT_KEY``
  passes; anything else answers 401.

``double.fault[provider]`` applies to every request of that provider:
``"401"``, ``"403"``, ``"429"`` (with ``Retry-After: 6``), ``"500"``: that status;
``"malformed"``: 200 with truncated JSON; ``"partial"``: the newest day lacks its outflow (the
Coin Metrics row lacks ``FlowOutExNtv``; the Glassnode and CryptoQuant outflow series lack the day);
``"empty"``: a well-formed answer with no rows; ``"non_numeric"``: the newest inflow is ``"n/a"``;
``"nan"``: the newest inflow is NaN; ``"negative"``: the newest inflow is negative;
``"timeout"``: the answer waits ``delay_s`` first.

``double.requests`` logs every request (provider, path, query, auth headers, monotonic time).
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import json
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

__all__ = ["DaySpec", "FlowProvidersDouble", "LoggedRequest"]

PROVIDERS = ("coinmetrics", "glassnode", "cryptoquant")
CM_METRIC = {"FlowInExNtv": "inflow", "FlowOutExNtv": "outflow", "SplyExNtv": "balance", "PriceUSD": "price"}
GN_PATHS = {
    "/v1/metrics/distribution/balance_exchanges": "balance",
    "/v1/metrics/transactions/transfers_volume_to_exchanges_sum": "inflow",
    "/v1/metrics/transactions/transfers_volume_from_exchanges_sum": "outflow",
    "/v1/metrics/transactions/transfers_volume_exchanges_net": "net",
}
CQ_ENDPOINTS = ("reserve", "inflow", "outflow", "netflow")
FAULTS = ("401", "403", "429", "500", "malformed", "partial", "empty", "non_numeric", "nan", "negative", "timeout")


@dataclass
class DaySpec:
    day: str  # "2021-04-12"
    inflow: float
    outflow: float
    balance: float
    price: float | None = None
    available_at: str | None = None  # "2021-04-13T04:36:01Z", served as Coin Metrics' AssetEODCompletionTime
    netflow: float | None = None  # the providers' own netflow; inflow - outflow when None

    @property
    def start_s(self) -> int:
        return calendar.timegm(dt.date.fromisoformat(self.day).timetuple())

    @property
    def net(self) -> float:
        return self.inflow - self.outflow if self.netflow is None else self.netflow


@dataclass
class LoggedRequest:
    provider: str
    path: str
    query: dict[str, str]
    auth: dict[str, str]  # Authorization / X-Api-Key headers as received
    at: float = field(default_factory=time.monotonic)


def _epoch_s(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


class FlowProvidersDouble:
    """Local HTTP server for the three flow providers; see the module docstring."""

    GLASSNODE_KEY = "gn-secret-key-0123456789"
    CRYPTOQUANT_KEY = "cq-secret-key-9876543210"

    def __init__(self) -> None:
        self.days: dict[str, list[DaySpec]] = {}
        self.fault: dict[str, str | None] = dict.fromkeys(PROVIDERS)
        self.requests: list[LoggedRequest] = []
        self.unknown: list[str] = []
        self.delay_s = 2.0
        self.coinmetrics_max_page_size = 10_000
        self.coinmetrics_completion = True
        self.coinmetrics_link_base: str | None = None  # e.g. "https://elsewhere.example": next_page_url's host
        self._runner: web.AppRunner | None = None
        self._base = ""

    # lifecycle -------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/{provider}/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self._base = f"http://{host}:{sock.getsockname()[1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, provider: str) -> str:
        if not self._base:
            raise RuntimeError("FlowProvidersDouble not started")
        return f"{self._base}/{provider}"

    async def __aenter__(self) -> FlowProvidersDouble:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def of(self, provider: str) -> list[LoggedRequest]:
        """The logged requests of one provider."""
        return [r for r in self.requests if r.provider == provider]

    # dispatch --------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        provider = request.match_info["provider"]
        path = "/" + request.match_info["tail"]
        if provider not in PROVIDERS or request.method != "GET":
            self.unknown.append(f"{provider} {request.method} {path}")
            return _json({"error": "not served"}, 404)
        auth = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "x-api-key")}
        self.requests.append(LoggedRequest(provider, path, dict(request.query), auth))
        fault = self.fault.get(provider)
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        if fault == "timeout":
            await asyncio.sleep(self.delay_s)
        handler = {"coinmetrics": self._coinmetrics, "glassnode": self._glassnode, "cryptoquant": self._cryptoquant}[
            provider
        ]
        response = handler(request, path, fault)
        if fault == "malformed" and response.status == 200 and response.text:
            response.text = response.text[: len(response.text) // 2]
        return response

    def _status_fault(self, provider: str, fault: str | None) -> web.Response | None:
        if fault in ("401", "403", "429", "500"):
            status = int(fault)
            headers = {"Retry-After": "6"} if status == 429 else None
            if provider == "coinmetrics":
                body: Any = {"error": {"type": "fault", "message": f"injected HTTP {status}"}}
            elif provider == "cryptoquant":
                body = {"status": {"code": status, "message": f"injected HTTP {status}"}}
            else:
                body = {"message": f"injected HTTP {status}"}
            return _json(body, status, headers)
        return None

    def _specs(self, asset: str, fault: str | None) -> list[tuple[DaySpec, dict[str, Any]]]:
        """Each day with its served values (after data faults), oldest first."""
        specs = sorted(self.days.get(asset.upper(), []), key=lambda s: s.day)
        if fault == "empty":
            return []
        out = [
            (s, {"inflow": s.inflow, "outflow": s.outflow, "balance": s.balance, "price": s.price, "net": s.net})
            for s in specs
        ]
        if out:
            newest = out[-1][1]
            if fault == "partial":
                del newest["outflow"]
            elif fault == "non_numeric":
                newest["inflow"] = "n/a"
            elif fault == "nan":
                newest["inflow"] = float("nan")
            elif fault == "negative":
                newest["inflow"] = -abs(float(newest["inflow"])) - 1.0
        return out

    def _unauthorized(self, provider: str) -> web.Response:
        if provider == "cryptoquant":
            return _json({"status": {"code": 401, "message": "Unauthorized"}}, 401)
        return _json({"message": "unauthorized"}, 401)

    # Coin Metrics -------------------------------------------------------------------------
    def _coinmetrics(self, request: web.Request, path: str, fault: str | None) -> web.Response:
        if (r := self._status_fault("coinmetrics", fault)) is not None:
            return r
        if path != "/v4/timeseries/asset-metrics":
            return _json({"error": {"type": "not_found", "message": "Requested resource was not found."}}, 404)
        q = request.query
        code = q.get("assets", "")
        if code.upper() not in self.days or code != code.lower():
            return _json(
                {
                    "error": {
                        "type": "bad_parameter",
                        "message": f"Bad parameter 'assets'. Value '{code}' is not supported.",
                    }
                },
                400,
            )
        if q.get("frequency") != "1d" or q.get("paging_from") != "end":
            return _json({"error": {"type": "bad_parameter", "message": "expected frequency=1d&paging_from=end"}}, 400)
        metrics = q.get("metrics", "").split(",")
        size = min(int(q.get("page_size", "100")), self.coinmetrics_max_page_size)
        rows = self._specs(code, fault)
        end = int(q.get("next_page_token", str(len(rows))))
        start = max(0, end - size)
        data = []
        for spec, values in rows[start:end]:
            row: dict[str, Any] = {"asset": code, "time": f"{spec.day}T00:00:00.000000000Z"}
            for metric in metrics:
                if metric in CM_METRIC:
                    if CM_METRIC[metric] not in values:
                        continue  # the "partial" fault: the metric is missing from the row
                    v = values[CM_METRIC[metric]]
                    row[metric] = None if v is None else str(v)
                elif metric == "AssetEODCompletionTime" and self.coinmetrics_completion:
                    row[metric] = None if spec.available_at is None else f"{_epoch_s(spec.available_at):.0f}"
            data.append(row)
        body: dict[str, Any] = {"data": data}
        if start > 0:
            query = {k: v for k, v in q.items() if k != "next_page_token"}
            body["next_page_token"] = str(start)
            link = request.url.with_query({**query, "next_page_token": str(start)})
            body["next_page_url"] = (
                str(link) if self.coinmetrics_link_base is None else f"{self.coinmetrics_link_base}{link.path_qs}"
            )
        return _json(body)

    # Glassnode --------------------------------------------------------------------------
    def _glassnode(self, request: web.Request, path: str, fault: str | None) -> web.Response:
        if request.headers.get("X-Api-Key") != self.GLASSNODE_KEY or "api_key" in request.query:
            return self._unauthorized("glassnode")
        if (r := self._status_fault("glassnode", fault)) is not None:
            return r
        name = GN_PATHS.get(path)
        q = request.query
        if name is None:
            return _json({"message": "not found"}, 404)
        if q.get("i") != "24h" or q.get("e") != "aggregated" or q.get("a", "") not in self.days:
            return _json({"message": "bad request: a, i=24h, e=aggregated"}, 400)
        since = int(q.get("s") or 0)
        until = int(q.get("u") or 2**40)
        points = [
            {"t": spec.start_s, "v": values[name]}
            for spec, values in self._specs(q["a"], fault)
            if since <= spec.start_s <= until and name in values
        ]
        return _json(points)

    # CryptoQuant ------------------------------------------------------------------------
    def _cryptoquant(self, request: web.Request, path: str, fault: str | None) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.CRYPTOQUANT_KEY}":
            return self._unauthorized("cryptoquant")
        if (r := self._status_fault("cryptoquant", fault)) is not None:
            return r
        parts = path.strip("/").split("/")  # v1, btc, exchange-flows, inflow
        q = request.query
        if len(parts) != 4 or parts[0] != "v1" or parts[2] != "exchange-flows" or parts[3] not in CQ_ENDPOINTS:
            return _json({"status": {"code": 404, "message": "Not Found"}}, 404)
        code, endpoint = parts[1], parts[3]
        if code.upper() not in self.days or code != code.lower():
            return _json({"status": {"code": 400, "message": f"unsupported asset {code}"}}, 400)
        if q.get("exchange") != "all_exchange" or q.get("window") != "day":
            return _json({"status": {"code": 400, "message": "expected exchange=all_exchange&window=day"}}, 400)
        limit = int(q.get("limit", "100"))
        data = []
        for spec, values in reversed(self._specs(code, fault)):
            row: dict[str, Any] = {"date": spec.day}
            if endpoint == "outflow" and "outflow" not in values:
                continue  # the "partial" fault: the day is missing from this series
            if endpoint == "reserve":
                row["reserve"] = values["balance"]
                if spec.price is not None:
                    row["reserve_usd"] = spec.balance * spec.price
            elif endpoint == "netflow":
                row["netflow_total"] = values["net"]
            else:
                total = values[endpoint]
                row[f"{endpoint}_total"] = total
                if isinstance(total, float) and total == total:
                    row[f"{endpoint}_top10"] = total * 0.25
                    row[f"{endpoint}_mean"] = total / 1000
            data.append(row)
        return _json({"status": {"code": 200, "message": "success"}, "result": {"window": "day", "data": data[:limit]}})
