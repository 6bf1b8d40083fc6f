"""KuCoin Futures: active contracts (marks, index), the funding list and the open-interest list, all bulk."""

from __future__ import annotations

from typing import Any, ClassVar

from watchers.venues.adapters.base import BULK, Adapter, Serving
from watchers.venues.common import BASIS, FUNDING, OI, Snapshot, integer, mapping, num


class KucoinFutures(Adapter):
    """``fetch_tickers()`` reads /api/v1/contracts/active (``markPrice``, ``indexPrice`` of perpetuals and
    quarterlies); ``fetch_funding_rates()`` the funding list (rate for the coming settlement, its
    ``currentGranularity`` in ms and ``fundingTime``); ``fetch_open_interests()`` the open-interest list
    (lots of ``multiplier`` coins on linear contracts, of 1 USD on inverse ones)."""

    venue = "kucoinfutures"
    label = "KuCoin Futures"
    serves: ClassVar[dict[str, Serving]] = {
        FUNDING: Serving(BULK, "funding-rate list"),
        BASIS: Serving(BULK, "contracts/active marks of the quarterlies"),
        OI: Serving(BULK, "open-interest list"),
    }
    units = "openInterest in lots: linear x multiplier coins, inverse x |multiplier| USD"
    ccxt_options: ClassVar[dict[str, Any]] = {"fetchMarkets": {"types": ["swap", "future"], "fetchTickersFees": False}}
    skip_currencies = True
    live_status = frozenset({"Open"})

    async def poll(self, snap: Snapshot) -> None:
        c = self.c
        ex = c.exchange
        marks: dict[str, dict[str, Any]] = {}

        async def tickers() -> None:
            found = mapping(await c.call(ex.fetch_tickers), "active contracts")
            for symbol, t in found.items():
                m = c.market(symbol)
                if m is None or not isinstance(t, dict):
                    continue
                info = t.get("info") or {}
                marks[symbol] = info
                if not m.get("swap"):
                    c.future(m, info.get("markPrice"), info.get("indexPrice"), t.get("timestamp"), snap)

        async def funding() -> None:
            rates = mapping(await c.call(ex.fetch_funding_rates), "funding rates")
            for symbol, fr in rates.items():
                m = c.market(symbol)
                if m is None or not m.get("swap") or not isinstance(fr, dict):
                    continue
                info, mk = fr.get("info") or {}, marks.get(symbol) or {}
                granularity = integer(info.get("currentGranularity"))
                c.perp(
                    m,
                    rate=fr.get("fundingRate"),
                    interval_s=granularity // 1000 if granularity else None,
                    next_ms=fr.get("fundingTimestamp"),
                    predicted=None,
                    mark=mk.get("markPrice"),
                    index=mk.get("indexPrice"),
                    ts=None,
                    snap=snap,
                )

        async def open_interest() -> None:
            found = mapping(await c.call(ex.fetch_open_interests), "open interest")
            for symbol, oi in found.items():
                m = c.market(symbol)
                if m is None or not isinstance(oi, dict):
                    continue
                lots, per = num(oi.get("openInterestAmount")), num(m.get("contractSize"))
                amount = lots * abs(per) if lots is not None and per else None
                mark = num((marks.get(symbol) or {}).get("markPrice"))
                if m.get("inverse"):
                    c.oi(m, coins=None, usd=amount, mark=mark, ts=oi.get("timestamp"), snap=snap)
                else:
                    c.oi(m, coins=amount, usd=None, mark=mark, ts=oi.get("timestamp"), snap=snap)

        await c.part(snap, (BASIS,), tickers)
        await c.part(snap, (FUNDING,), funding)
        await c.part(snap, (OI,), open_interest)
