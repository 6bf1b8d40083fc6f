"""Deribit: the book summary per currency (kind=future) carries funding, marks, index and open interest."""

from __future__ import annotations

from typing import ClassVar

from core.models import EIGHT_HOURS_S
from watchers.venues.adapters.base import BULK, Adapter, Serving
from watchers.venues.common import BASIS, FUNDING, OI, PARTS, Snapshot, mapping, num


class Deribit(Adapter):
    """Perpetual ``funding_8h`` (the accrual over the last 8h, not a prediction), futures' mark with
    ``estimated_delivery_price`` as the index, and ``open_interest``."""

    venue = "deribit"
    label = "Deribit"
    serves: ClassVar[dict[str, Serving]] = {
        FUNDING: Serving(BULK, "book summary per currency, 8h accrual"),
        BASIS: Serving(BULK, "book summary per currency"),
        OI: Serving(BULK, "book summary per currency"),
    }
    units = "open_interest: inverse USD, USDC linear coins"

    async def poll(self, snap: Snapshot) -> None:
        c = self.c

        async def book() -> None:
            codes = sorted({i.settle for i in c.derivatives().values() if i.settle})
            for code in codes:
                found = mapping(
                    await c.call(c.exchange.fetch_tickers, None, {"code": code, "kind": "future"}),
                    f"{code} book summary",
                )
                for symbol, t in found.items():
                    m = c.market(symbol)
                    if m is None or not isinstance(t, dict):
                        continue
                    info = t.get("info") or {}
                    index = info.get("estimated_delivery_price") or info.get("index_price")
                    mark = num(info.get("mark_price"))
                    if m.get("swap"):
                        c.perp(
                            m,
                            rate=info.get("funding_8h"),
                            interval_s=EIGHT_HOURS_S,
                            next_ms=None,
                            predicted=None,
                            mark=mark,
                            index=index,
                            ts=t.get("timestamp"),
                            snap=snap,
                        )
                    else:
                        c.future(m, mark, index, t.get("timestamp"), snap)
                    oi = num(info.get("open_interest"))
                    if m.get("inverse"):  # inverse: USD; USDC linear: coins
                        c.oi(m, coins=None, usd=oi, mark=mark, ts=t.get("timestamp"), snap=snap)
                    else:
                        c.oi(m, coins=oi, usd=None, mark=mark, ts=t.get("timestamp"), snap=snap)

        await c.part(snap, PARTS, book)
