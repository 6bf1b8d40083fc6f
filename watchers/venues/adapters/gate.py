"""Gate: the futures contract list per settle currency is the bulk snapshot (funding, mark, index, size);
the USDT delivery tickers carry the quarterlies' marks and index."""

from __future__ import annotations

from typing import Any, ClassVar

from watchers.venues.adapters.base import BULK, Adapter, Serving
from watchers.venues.common import BASIS, FUNDING, OI, Snapshot, integer, mapping, num

SETTLES = ("usdt", "btc")


class Gate(Adapter):
    """``fetch_funding_rates(params={"settle": ...})`` reads /futures/{settle}/contracts: ``funding_rate``
    per ``funding_interval`` seconds, ``funding_next_apply`` (s), ``mark_price``, ``index_price`` and
    ``position_size`` (open interest in contracts of ``quanto_multiplier`` coins on USDT, 1 USD on BTC).
    ``fetch_tickers(params={"type": "future", "settle": "usdt"})`` reads /delivery/usdt/tickers for the
    USDT-settled delivery futures' ``mark_price`` and ``index_price`` (their open interest is not counted)."""

    venue = "gate"
    label = "Gate"
    serves: ClassVar[dict[str, Serving]] = {
        FUNDING: Serving(BULK, "futures contracts per settle currency"),
        BASIS: Serving(BULK, "delivery tickers (USDT)"),
        OI: Serving(BULK, "futures contracts position_size"),
    }
    units = "position_size in contracts: USDT-settled x quanto_multiplier coins, BTC-settled 1 USD each"
    ccxt_options: ClassVar[dict[str, Any]] = {
        "fetchMarkets": {
            "types": ["swap", "future"],
            "swap": {"settlementCurrencies": list(SETTLES)},
            "future": {"settlementCurrencies": ["usdt"]},
        }
    }
    skip_currencies = True
    live_status = frozenset({"trading", ""})

    async def poll(self, snap: Snapshot) -> None:
        c = self.c

        async def contracts() -> None:
            for settle in SETTLES:
                rates = mapping(
                    await c.call(c.exchange.fetch_funding_rates, None, {"settle": settle}), f"{settle} contracts"
                )
                for symbol, fr in rates.items():
                    m = c.market(symbol)
                    if m is None or not m.get("swap") or not isinstance(fr, dict):
                        continue
                    info = fr.get("info") or {}
                    mark = num(fr.get("markPrice"))
                    nxt = integer(info.get("funding_next_apply"))
                    c.perp(
                        m,
                        rate=fr.get("fundingRate"),
                        interval_s=integer(info.get("funding_interval")),
                        next_ms=nxt * 1000 if nxt else None,
                        predicted=info.get("funding_rate_indicative"),
                        mark=mark,
                        index=fr.get("indexPrice"),
                        ts=None,
                        snap=snap,
                    )
                    size, per = num(info.get("position_size")), num(m.get("contractSize"))
                    amount = size * per if size is not None and per else None
                    if m.get("inverse"):
                        c.oi(m, coins=None, usd=amount, mark=mark, ts=None, snap=snap)
                    else:
                        c.oi(m, coins=amount, usd=None, mark=mark, ts=None, snap=snap)

        async def delivery() -> None:
            found = mapping(
                await c.call(c.exchange.fetch_tickers, None, {"type": "future", "settle": "usdt"}), "delivery tickers"
            )
            for symbol, t in found.items():
                m = c.market(symbol)
                if m is None or m.get("swap") or not isinstance(t, dict):
                    continue
                c.future(m, t.get("markPrice"), t.get("indexPrice"), t.get("timestamp"), snap)

        await c.part(snap, (FUNDING, OI), contracts)
        await c.part(snap, (BASIS,), delivery)
