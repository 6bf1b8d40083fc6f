"""Historical data in CSV files, as replay batches: the formats ``python -m bot replay --data DIR`` reads.

One file per kind, UTC times, a header row, any row order. Recognised by name in the folder:

- ``funding*.csv``: ``ts_utc, venue, symbol, rate_per_8h`` (settled funding, a fraction per 8h, e.g.
  0.0005 = 0.05%); optional ``available_at_utc`` when the rate became known later than ``ts_utc``.
  ``symbol`` is the ccxt unified symbol (``BTC/USDT:USDT``); the asset is its base.
- ``*flows*.csv``: ``date, available_at_utc, inflow_<asset>, outflow_<asset>, netflow_<asset>,
  exchange_balance_<asset>[, price_usd][, provider]`` (coins per day; a day exists only from
  ``available_at_utc``, its publication time; ``provider`` defaults to ``coinmetrics``).
- ``spot*.csv``: ``ts_utc, ..., close``: the price line of ``--chart`` (not evaluated).

Rows that fail the metric's own sanity check are skipped and counted, as a watcher would drop them.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.history.replay import Batch
from core.metrics.registry import Registry
from core.models import EIGHT_HOURS_S, FlowDay, FundingSample
from core.reply import UserError

_FLOW_COLUMN = re.compile(r"^inflow_([a-z0-9]+)$")


def parse_utc_ms(text: str) -> int:
    """'2021-04-10T08:00:00Z' or '2021-04-10' (midnight) -> epoch ms."""
    t = text.strip()
    d = (
        dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
        if "T" in t or " " in t
        else dt.datetime.fromisoformat(t + "T00:00:00+00:00")
    )
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return int(d.timestamp() * 1000)


def iso_utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class Dataset:
    """Batches to replay, the price series for a chart, and what was read."""

    batches: list[Batch] = field(default_factory=list)
    prices: list[tuple[int, float]] = field(default_factory=list)  # (ts_ms, close)
    sources: dict[str, set[str]] = field(default_factory=dict)  # metric -> venues or providers seen
    files: list[str] = field(default_factory=list)
    skipped: int = 0  # rows failing a sanity check


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            yield n, {(k or "").strip(): (v or "").strip() for k, v in row.items()}


def _need(path: Path, row: dict[str, str], line: int, *cols: str) -> None:
    missing = [c for c in cols if not row.get(c)]
    if missing:
        raise UserError(f"{path.name} line {line}: missing {', '.join(missing)} (expected columns: {', '.join(cols)})")


def _num(path: Path, line: int, col: str, text: str) -> float | None:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{path.name} line {line}: {col} '{text[:20]}' is not a number") from None


def _time(path: Path, line: int, col: str, text: str) -> int:
    try:
        return parse_utc_ms(text)
    except ValueError:
        raise UserError(
            f"{path.name} line {line}: {col} '{text[:30]}' is not a UTC time such as 2021-04-10T08:00:00Z"
        ) from None


def _funding(path: Path, registry: Registry, start_ms: int, end_ms: int, out: Dataset) -> None:
    metric = registry.get("funding")
    grouped: dict[tuple[int, str], list[FundingSample]] = {}
    for line, row in _rows(path):
        _need(path, row, line, "ts_utc", "venue", "symbol", "rate_per_8h")
        ts = _time(path, line, "ts_utc", row["ts_utc"])
        at = _time(path, line, "available_at_utc", row["available_at_utc"]) if row.get("available_at_utc") else ts
        if not start_ms <= at < end_ms:
            continue
        symbol, venue = row["symbol"], row["venue"].lower()
        settle = symbol.partition(":")[2].partition("-")[0] or symbol.partition("/")[2]
        asset = symbol.partition("/")[0].upper()
        rate = _num(path, line, "rate_per_8h", row["rate_per_8h"])
        if rate is None:
            out.skipped += 1
            continue
        s = FundingSample(
            venue=venue,
            symbol=symbol,
            asset=asset,
            settle=settle,
            inverse=settle == asset,
            rate_per_interval=rate,
            interval_s=EIGHT_HOURS_S,
            next_funding_ms=None,
            predicted_rate=None,
            mark_usd=None,
            index_usd=None,
            ts_ms=ts,
        )
        if metric.problem(s) is not None:
            out.skipped += 1
            continue
        grouped.setdefault((at, venue), []).append(s)
        out.sources.setdefault("funding", set()).add(venue)
    out.batches += [Batch(at, "funding", venue, tuple(ss)) for (at, venue), ss in grouped.items()]


def _flows(path: Path, registry: Registry, start_ms: int, end_ms: int, out: Dataset) -> None:
    metric = registry.get("flows")
    for line, row in _rows(path):
        asset = next((m.group(1) for c in row if (m := _FLOW_COLUMN.match(c.lower()))), None)
        if asset is None:
            raise UserError(
                f"{path.name}: no inflow_<asset> column (expected date, available_at_utc, inflow_btc, "
                "outflow_btc, netflow_btc, exchange_balance_btc[, price_usd][, provider])"
            )
        _need(path, row, line, "date", "available_at_utc")
        at = _time(path, line, "available_at_utc", row["available_at_utc"])
        if not start_ms <= at < end_ms:
            continue
        inflow = _num(path, line, f"inflow_{asset}", row.get(f"inflow_{asset}", ""))
        outflow = _num(path, line, f"outflow_{asset}", row.get(f"outflow_{asset}", ""))
        net = _num(path, line, f"netflow_{asset}", row.get(f"netflow_{asset}", ""))
        if net is None and inflow is not None and outflow is not None:
            net = inflow - outflow
        provider = (row.get("provider") or "coinmetrics").lower()
        day = FlowDay(
            provider=provider,
            asset=asset.upper(),
            day=row["date"],
            available_ms=at,
            inflow=inflow,
            outflow=outflow,
            netflow=net,
            balance=_num(path, line, f"exchange_balance_{asset}", row.get(f"exchange_balance_{asset}", "")),
            price_usd=_num(path, line, "price_usd", row.get("price_usd", "")),
        )
        if metric.problem(day) is not None:
            out.skipped += 1
            continue
        out.batches.append(Batch(at, "flows", provider, (day,)))
        out.sources.setdefault("flows", set()).add(provider)


def _spot(path: Path, start_ms: int, end_ms: int, out: Dataset) -> None:
    for line, row in _rows(path):
        _need(path, row, line, "ts_utc", "close")
        ts = _time(path, line, "ts_utc", row["ts_utc"])
        close = _num(path, line, "close", row["close"])
        if close is not None and start_ms <= ts < end_ms:
            out.prices.append((ts, close))
    out.prices.sort()


def load_dir(folder: Path, registry: Registry, start_ms: int, end_ms: int) -> Dataset:
    """Every recognised CSV in ``folder``, keeping what became visible in [start_ms, end_ms)."""
    if not folder.is_dir():
        raise UserError(f"--data {folder}: not a folder")
    out = Dataset()
    for path in sorted(folder.glob("*.csv")):
        name = path.name.lower()
        if name.startswith("funding") and "funding" in registry:
            _funding(path, registry, start_ms, end_ms, out)
        elif "flows" in name and "flows" in registry:
            _flows(path, registry, start_ms, end_ms, out)
        elif name.startswith("spot"):
            _spot(path, start_ms, end_ms, out)
        else:
            continue
        out.files.append(path.name)
    if not out.batches:
        raise UserError(
            f"--data {folder}: no funding*.csv or *flows*.csv rows between the dates (see README, "
            "Replay, for the formats)"
        )
    return out
