"""/flows: on-chain exchange flows per provider, from Redis."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Awaitable, Callable, Sequence

from core.models import FlowDay
from core.parsing import parse_asset
from core.reply import Reply, Table, UserError
from core.store import FLOWS, MarketStore

_DAYS = re.compile(r"^(\d{1,3})d$")


def _coins(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:+,.0f}" if signed else f"{x:,.0f}"


def _usd(coins: float | None, price: float | None) -> str:
    if coins is None or not price:
        return ""
    v = coins * price
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{'-' if v < 0 else ''}${abs(v) / div:,.2f}{unit}"
    return f"{'-' if v < 0 else ''}${abs(v):,.0f}"


def _pct(now: float | None, then: float | None) -> str:
    if now is None or not then:
        return "—"
    return f"{(now - then) / then * 100:+.2f}%"


def _net_sum(rows: Sequence[FlowDay], n: int) -> float | None:
    last = rows[-n:]
    if len(last) < n or any(r.netflow is None for r in last):
        return None
    return sum(r.netflow for r in last if r.netflow is not None)


def _back(by_day: dict[str, FlowDay], day: str, n: int) -> FlowDay | None:
    return by_day.get((dt.date.fromisoformat(day) - dt.timedelta(days=n)).isoformat())


async def flows_reply(store: MarketStore, providers: Sequence[str], args: list[str],
                      index_usd: Callable[[str], Awaitable[float | None]] | None = None) -> Reply:
    """/flows <asset> [Nd]: the latest complete day, 7d/30d net, balance and its changes, per provider."""
    if len(args) == 2:
        m = _DAYS.match(args[1].lower())
        if not m or not 1 <= int(m.group(1)) <= 90:
            raise UserError(f"'{args[1][:20]}' is not a period: use 1d to 90d, e.g. /flows btc 14d")
        series_days = int(m.group(1))
        args = args[:1]
    else:
        series_days = 0
    asset = parse_asset(args, "flows")
    data = await store.read_flows(asset, providers)
    if not data:
        known = await store.known_assets(FLOWS)
        have = ", ".join(sorted(a.lower() for a in known)) or "none yet (see /status)"
        raise UserError(f"No exchange-flow data for {asset}. Watched: {have}. Example: /flows btc")
    blocks: list[str | Table] = []
    for provider, rows in data.items():
        last = rows[-1]
        fallback = None if last.price_usd or index_usd is None else await index_usd(asset)
        price = last.price_usd or fallback
        by_day = {r.day: r for r in rows}
        published = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(last.available_ms / 1000))
        note = "" if last.price_usd else (" · USD at the current index" if fallback else "")
        if series_days:
            tail = rows[-series_days:]
            blocks.append(Table(
                header=("day", "inflow", "outflow", "net", "balance"),
                rows=tuple((r.day[5:], _coins(r.inflow), _coins(r.outflow), _coins(r.netflow, True), _coins(r.balance))
                           for r in tail),
                align="lrrrr", caption=f"{provider} · {asset} per day · last published {published}"))
            continue

        rows_out = [
            ("inflow", _coins(last.inflow), _usd(last.inflow, price)),
            ("outflow", _coins(last.outflow), _usd(last.outflow, price)),
            ("net", _coins(last.netflow, True), _usd(last.netflow, price)),
            ("7d net", _coins(_net_sum(rows, 7), True), _usd(_net_sum(rows, 7), price)),
            ("30d net", _coins(_net_sum(rows, 30), True), _usd(_net_sum(rows, 30), price)),
            ("balance", _coins(last.balance), _usd(last.balance, price)),
        ]
        b1, b7 = _back(by_day, last.day, 1), _back(by_day, last.day, 7)
        blocks.append(Table(header=("", asset, "USD"), rows=tuple(rows_out), align="lrr",
                            caption=f"{provider} · day {last.day} · published {published}{note}"))
        blocks.append(f"Balance change: 1d {_pct(last.balance, b1.balance if b1 else None)} · "
                      f"7d {_pct(last.balance, b7.balance if b7 else None)}")
    title = f"{asset} exchange flows" + (f" · last {series_days} days" if series_days else "")
    footer = "Coins moved onto (+) or off (−) exchanges per day; providers cover different exchanges, so " \
             "their levels differ. Coin Metrics data: CC BY-NC 4.0."
    return Reply(title=title, blocks=tuple(blocks), footer=footer)
