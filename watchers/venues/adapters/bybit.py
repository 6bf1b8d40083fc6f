"""Bybit: ``fetch_tickers`` per category (linear, inverse) carries funding with the interval in force,
mark, index and open interest in one call."""

from __future__ import annotations

from typing import Any, ClassVar

from watchers.venues.adapters.base import BULK, Adapter, Serving
from watchers.venues.common import BASIS, FUNDING, OI, PARTS, Snapshot, mapping, num


def funding_interval_s(ticker_info: dict[str, Any], m: dict[str, Any]) -> int | None:
    """The interval in force: the ticker's ``fundingIntervalHour`` (polled or streamed), else the market
    list's ``fundingInterval`` in minutes (as of its last load)."""
    hours = num(ticker_info.get("fundingIntervalHour"))
    minutes = num((m.get("info") or {}).get("fundingInterval"))
    return int(hours * 3600) if hours else int(minutes * 60) if minutes else None


class Bybit(Adapter):
    venue = "bybit"
    label = "Bybit"
    serves: ClassVar[dict[str, Serving]] = {
        FUNDING: Serving(BULK, "tickers per category, interval from fundingIntervalHour"),
        BASIS: Serving(BULK, "tickers per category"),
        OI: Serving(BULK, "tickers per category"),
    }
    units = "openInterest: linear coins, inverse USD (1 USD contracts)"
    ccxt_options: ClassVar[dict[str, Any]] = {"fetchMarkets": {"types": ["linear", "inverse"]}}

    async def poll(self, snap: Snapshot) -> None:
        c = self.c

        async def tickers() -> None:
            for category in ("linear", "inverse"):
                found = mapping(
                    await c.call(c.exchange.fetch_tickers, None, {"category": category}), f"{category} tickers"
                )
                for symbol, t in found.items():
                    m = c.market(symbol)
                    if m is None or not isinstance(t, dict):
                        continue
                    info = t.get("info") or {}
                    mark = t.get("markPrice") or info.get("markPrice")
                    index = t.get("indexPrice") or info.get("indexPrice")
                    if m.get("swap"):
                        # the ticker carries the interval in force now; the market list only as of its last load
                        c.perp(
                            m,
                            rate=info.get("fundingRate"),
                            interval_s=funding_interval_s(info, m),
                            next_ms=info.get("nextFundingTime"),
                            predicted=None,
                            mark=mark,
                            index=index,
                            ts=t.get("timestamp"),
                            snap=snap,
                        )
                    else:
                        c.future(m, mark, index, t.get("timestamp"), snap)
                    oi = num(info.get("openInterest"))
                    if m.get("inverse"):  # inverse contracts are 1 USD each
                        c.oi(m, coins=None, usd=oi, mark=num(mark), ts=t.get("timestamp"), snap=snap)
                    else:
                        c.oi(
                            m,
                            coins=oi,
                            usd=num(info.get("openInterestValue")),
                            mark=num(mark),
                            ts=t.get("timestamp"),
                            snap=snap,
                        )

        await c.part(snap, PARTS, tickers)
