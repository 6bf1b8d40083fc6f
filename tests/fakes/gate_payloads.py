"""Gate futures answers for :mod:`tests.fakes.exchanges` (bare JSON lists, no envelope).

``/api/v4/futures/{settle}/contracts`` is both the market list and ccxt's bulk funding source: each row
has ``funding_rate`` per ``funding_interval`` seconds, ``funding_next_apply`` (unix seconds),
``mark_price``, ``index_price`` and ``position_size`` (open interest in contracts). USDT-settled contracts
are ``quanto_multiplier`` coins each (BTC 0.0001, ETH 0.01, SOL 1); the BTC-settled ``BTC_USD`` inverse
contract is 1 USD (``quanto_multiplier`` "0", as the venue sends it). Gate's error body is
``{"label": ..., "message": ...}``. Delivery futures (USDT-settled, ``BTC_USDT_20261225``, ``expire_time`` in
unix seconds): ``/api/v4/delivery/usdt/contracts`` lists them, ``/api/v4/delivery/usdt/tickers`` carries
``mark_price``, ``index_price`` and ``total_size``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tests.fakes.exchange_payloads import Builder, Reply, expiry_ms, num

if TYPE_CHECKING:
    from tests.fakes.exchanges import Future, Perp, VenueState

QUANTO = {"BTC": 0.0001, "ETH": 0.01, "SOL": 1.0}
_STATUS = {"trading": "trading", "settling": "delisting", "pending": "prelaunch"}


def gate_contracts(p: Perp | Future) -> int:
    """Open interest in the venue's contracts."""
    if p.linear:
        return round(p.open_interest_base / QUANTO.get(p.asset, 1.0))
    return round(p.open_interest_base * p.mark)  # 1 USD each


def _contracts(settle: str) -> Builder:
    def build(state: VenueState, q: Mapping[str, Any], now_ms: int) -> Reply:
        rows = []
        for p in state.perps:
            if p.linear != (settle == "usdt"):
                continue
            rows.append(
                {
                    "name": f"{p.asset}_USDT" if p.linear else f"{p.asset}_USD",
                    "type": "direct" if p.linear else "inverse",
                    "quanto_multiplier": num(QUANTO.get(p.asset, 1.0)) if p.linear else "0",
                    "ref_discount_rate": "0",
                    "order_price_deviate": "0.5",
                    "maintenance_rate": "0.005",
                    "mark_type": "index",
                    "last_price": num(p.mark),
                    "mark_price": num(p.mark),
                    "index_price": num(p.index),
                    "funding_rate_indicative": num(p.predicted_rate or p.funding_rate),
                    "mark_price_round": "0.01",
                    "funding_offset": 0,
                    "in_delisting": p.status == "settling",
                    "risk_limit_base": "1000000",
                    "interest_rate": "0.0003",
                    "order_price_round": "0.1",
                    "order_size_min": 1,
                    "ref_rebate_rate": "0.2",
                    "funding_interval": p.interval_h * 3600,
                    "risk_limit_step": "1000000",
                    "leverage_min": "1",
                    "leverage_max": "100",
                    "risk_limit_max": "8000000",
                    "maker_fee_rate": "-0.00025",
                    "taker_fee_rate": "0.00075",
                    "funding_rate": num(p.funding_rate),
                    "order_size_max": 1000000,
                    "funding_next_apply": p.next_funding_ms // 1000,
                    "short_users": 100,
                    "config_change_time": 0,
                    "trade_size": 1000,
                    "position_size": gate_contracts(p),
                    "long_users": 100,
                    "funding_impact_value": "60000",
                    "orders_limit": 50,
                    "trade_id": 1,
                    "orderbook_id": 1,
                    "enable_bonus": True,
                    "enable_credit": True,
                    "create_time": 1569398400,
                    "funding_cap_ratio": "0.75",
                    "status": _STATUS[p.status],
                    "launch_time": 1569398400,
                    "enable_decimal": False,
                }
            )
        return 200, rows

    return build


def _delivery_name(f: Future) -> str:
    return f"{f.asset}_USDT_{f.expiry:%Y%m%d}"


def _delivery_contracts(state: VenueState, q: Mapping[str, Any], now_ms: int) -> Reply:
    rows = []
    for f in state.futures:
        rows.append(
            {
                "name": _delivery_name(f),
                "underlying": f"{f.asset}_USDT",
                "cycle": "QUARTERLY",
                "type": "direct",
                "quanto_multiplier": num(QUANTO.get(f.asset, 1.0)),
                "mark_type": "index",
                "last_price": num(f.mark),
                "mark_price": num(f.mark),
                "index_price": num(f.index),
                "basis_rate": num((f.mark - f.index) / f.index),
                "basis_value": num(f.mark - f.index),
                "basis_impact_value": "100000",
                "settle_price": "0",
                "settle_price_interval": 60,
                "settle_price_duration": 1800,
                "settle_fee_rate": "0.0015",
                "expire_time": expiry_ms(f) // 1000,
                "order_price_round": "0.1",
                "mark_price_round": "0.1",
                "leverage_min": "1",
                "leverage_max": "100",
                "maintenance_rate": "0.005",
                "risk_limit_base": "1000000",
                "risk_limit_step": "1000000",
                "risk_limit_max": "8000000",
                "maker_fee_rate": "-0.00025",
                "taker_fee_rate": "0.00075",
                "ref_discount_rate": "0",
                "ref_rebate_rate": "0.2",
                "order_price_deviate": "0.5",
                "order_size_min": 1,
                "order_size_max": 1000000,
                "orders_limit": 50,
                "orderbook_id": 1,
                "trade_id": 1,
                "trade_size": 100,
                "position_size": gate_contracts(f),
                "config_change_time": 0,
                "in_delisting": f.status == "settling",
            }
        )
    return 200, rows


def _delivery_tickers(state: VenueState, q: Mapping[str, Any], now_ms: int) -> Reply:
    return 200, [
        {
            "contract": _delivery_name(f),
            "last": num(f.last or f.mark),
            "low_24h": num(f.mark),
            "high_24h": num(f.mark),
            "change_percentage": "0",
            "total_size": str(gate_contracts(f)),
            "volume_24h": "1000",
            "volume_24h_base": "10",
            "volume_24h_quote": "1000000",
            "volume_24h_settle": "1000000",
            "mark_price": num(f.mark),
            "funding_rate": "0",
            "funding_rate_indicative": "0",
            "index_price": num(f.index),
            "quanto_base_rate": "",
            "basis_rate": num((f.mark - f.index) / f.index),
            "basis_value": num(f.mark - f.index),
        }
        for f in state.futures
    ]


GATE_ROUTES: dict[str, Builder] = {
    "/api/v4/delivery/usdt/contracts": _delivery_contracts,
    "/api/v4/delivery/usdt/tickers": _delivery_tickers,
    "/api/v4/futures/usdt/contracts": _contracts("usdt"),
    "/api/v4/futures/btc/contracts": _contracts("btc"),
}
