"""OKX: bulk funding, mark and open interest per instrument type; index from the index tickers."""

from __future__ import annotations

from typing import Any, ClassVar

from watchers.venues.adapters.base import BULK, Adapter, Serving
from watchers.venues.common import BASIS, FUNDING, OI, Snapshot, interval_s, mapping, num


class Okx(Adapter):
    """``fetch_funding_rates()``, ``fetch_mark_prices`` for SWAP and FUTURES, the index tickers for USD
    and USDT quotes (the okx ticker carries neither mark nor index), and ``fetch_open_interests``
    for SWAP and FUTURES."""

    venue = "okx"
    label = "OKX"
    serves: ClassVar[dict[str, Serving]] = {
        FUNDING: Serving(BULK, "funding-rate instId=ANY"),
        BASIS: Serving(BULK, "mark-price FUTURES with index-tickers"),
        OI: Serving(BULK, "open-interest per instType"),
    }
    units = "oi in contracts; oiCcy coins and oiUsd USD are read as they are"
    ccxt_options: ClassVar[dict[str, Any]] = {"fetchMarkets": {"types": ["swap", "future"]}}

    async def poll(self, snap: Snapshot) -> None:
        c = self.c
        ex = c.exchange
        marks: dict[str, Any] = {}
        index: dict[str, float] = {}

        def idx(m: dict[str, Any]) -> float | None:
            quote = "USD" if m.get("inverse") else m.get("settle", "USDT")
            return index.get(f"{m['base']}-{quote}") or index.get(f"{m['base']}-USD")

        async def mark_and_index() -> None:
            for inst_type in ("SWAP", "FUTURES"):
                marks.update(await c.call(ex.fetch_mark_prices, None, {"instType": inst_type}) or {})
            for quote in ("USD", "USDT"):
                raw = await c.call(ex.publicGetMarketIndexTickers, {"quoteCcy": quote})
                for row in raw.get("data", []) if isinstance(raw, dict) else []:
                    px = num(row.get("idxPx"))
                    if px is not None:
                        index[str(row.get("instId"))] = px
            for symbol, mk in marks.items():
                m = c.market(symbol)
                if m is None or m.get("swap") or not isinstance(mk, dict):
                    continue
                c.future(m, mk.get("markPrice"), idx(m), mk.get("timestamp"), snap)

        async def funding() -> None:
            rates = mapping(await c.call(ex.fetch_funding_rates), "funding rates")
            for symbol, fr in rates.items():
                m = c.market(symbol)
                if m is None or not m.get("swap") or not isinstance(fr, dict):
                    continue
                mk = marks.get(symbol) or {}
                c.perp(
                    m,
                    rate=fr.get("fundingRate"),
                    interval_s=interval_s(fr.get("interval")),
                    next_ms=fr.get("fundingTimestamp"),
                    predicted=fr.get("nextFundingRate"),
                    mark=mk.get("markPrice") if isinstance(mk, dict) else None,
                    index=idx(m),
                    ts=fr.get("timestamp") or (mk.get("timestamp") if isinstance(mk, dict) else None),
                    snap=snap,
                )

        async def open_interest() -> None:
            for inst_type in ("SWAP", "FUTURES"):
                found = await c.call(ex.fetch_open_interests, None, {"instType": inst_type})
                for symbol, oi in (found or {}).items() if isinstance(found, dict) else ():
                    m = c.market(symbol)
                    if m is None or not isinstance(oi, dict):
                        continue
                    info = oi.get("info") or {}
                    mk = marks.get(symbol)
                    c.oi(
                        m,
                        coins=num(info.get("oiCcy")),
                        usd=num(info.get("oiUsd")),
                        mark=num(mk.get("markPrice")) if isinstance(mk, dict) else None,
                        ts=oi.get("timestamp"),
                        snap=snap,
                    )

        await c.part(snap, (BASIS,), mark_and_index)
        await c.part(snap, (FUNDING,), funding)
        await c.part(snap, (OI,), open_interest)
