"""Replay: recorded CSVs through the live evaluation path on a simulated clock."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.replay_cli import run_replay
from bot.settings import RedisSettings, Settings
from core.keys import Keys

ROOT = Path(__file__).resolve().parents[2]
APRIL = ROOT.parent / "shared" / "replay" / "april-2021"


def ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def small_dataset(folder: Path) -> None:
    """Two venues' 8h funding over 3 days, three flow days (one published late), an hourly price."""
    funding = [
        ("2024-01-01T00:00:00Z", "binance", 0.0003),
        ("2024-01-01T00:00:00Z", "okx", 0.0009),
        ("2024-01-01T08:00:00Z", "binance", 0.0006),  # crosses 0.05%: fires
        ("2024-01-01T08:00:00Z", "okx", 0.0001),
        ("2024-01-01T16:00:00Z", "binance", 0.00045),  # below 0.05% but inside the 0.01% band: still fired
        ("2024-01-02T00:00:00Z", "binance", 0.0007),  # no second alert: never re-armed
        ("2024-01-02T08:00:00Z", "binance", 0.00035),  # below 0.04%: re-arms
        ("2024-01-02T16:00:00Z", "binance", 0.00051),  # fires again
        ("2024-01-03T00:00:00Z", "binance", 0.00042),  # inside the band: still in alert at the end
    ]
    write(
        folder / "funding_8h.csv",
        ["ts_utc", "venue", "symbol", "rate_per_8h"],
        [[t, v, "BTC/USDT:USDT", r] for t, v, r in funding],
    )
    write(
        folder / "exchange_flows_1d.csv",
        ["date", "available_at_utc", "inflow_btc", "outflow_btc", "netflow_btc", "exchange_balance_btc", "price_usd"],
        [
            ["2024-01-01", "2024-01-02T04:00:00Z", 10_000, 9_000, 1_000, 2e6, 42_000],
            ["2024-01-02", "2024-01-03T06:30:00Z", 15_000, 9_500, 5_500, 2e6, 43_000],  # published late
            ["2024-01-03", "2024-01-04T03:00:00Z", 12_000, 8_000, 4_000, 2e6, 43_500],
        ],
    )
    write(
        folder / "spot_btcusdt_1h.csv",
        ["ts_utc", "open", "high", "low", "close", "volume_btc"],
        [[iso(ms("2024-01-01T00:00:00Z") + h * 3_600_000), 1, 1, 1, 42_000 + 10 * h, 1] for h in range(96)],
    )


RULES = 'rules = [\n  "funding btc above 0.05% venue binance",\n  "flows btc netflow above 3000",\n]\n'


def args(
    data: Path, rules: Path, start: str, end: str, redis_url: str | None, chart: Path | None = None
) -> argparse.Namespace:
    return argparse.Namespace(data=data, start=start, end=end, rules=rules, chart=chart, redis_url=redis_url)


@pytest.fixture
def settings(keys: Keys) -> Settings:
    return Settings(redis=RedisSettings(key_prefix=keys.prefix))


async def test_small_dataset_exact_times(
    tmp_path: Path, redis_url: str, redis: Redis, keys: Keys, settings: Settings
) -> None:
    small_dataset(tmp_path)
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    out: list[str] = []
    result = await run_replay(args(tmp_path, rules, "2024-01-01", "2024-01-03", redis_url), settings, out)
    fired = [(iso(e.ts_ms), e.rule_id) for e in result.events]
    # funding: fires at 08:00 (0.06% > 0.05%); 16:00 (0.045%) stays inside the 0.01% re-arm band, so 01-02
    # 00:00 is no new alert; 01-02 08:00 (0.035% < 0.04%) re-arms; 01-02 16:00 fires again.
    # flows: day 01-02 (net 5,500) exists only from its publication, 01-03 06:30; 01-01 is below 3,000;
    # day 01-03 is published on 01-04, outside the window.
    assert fired == [("2024-01-01T08:00:00Z", "r1"), ("2024-01-02T16:00:00Z", "r1"), ("2024-01-03T06:30:00Z", "r2")]
    assert out[0].startswith(
        "2024-01-01T08:00:00Z  r1 funding btc above 0.05% venue binance  value +0.0600%/8h  threshold +0.0500%/8h"
    )
    assert "value +5,500/day  threshold +3,000/day  coinmetrics 2024-01-02" in out[2]
    # in alert from the first firing until the re-arm, then from the second firing to the end of the window
    assert result.periods["r1"] == [
        (ms("2024-01-01T08:00:00Z"), ms("2024-01-02T08:00:00Z")),
        (ms("2024-01-02T16:00:00Z"), ms("2024-01-04T00:00:00Z")),
    ]
    # the scratch prefix is gone
    assert [k async for k in redis.scan_iter(match=f"{keys.prefix}:*")] == []


async def test_flow_day_not_seen_before_publication(tmp_path: Path, redis_url: str, settings: Settings) -> None:
    small_dataset(tmp_path)
    rules = tmp_path / "rules.toml"
    rules.write_text('rules = ["flows btc netflow above 3000"]\n')
    out: list[str] = []
    # up to the end of 01-02: day 01-02 (published 01-03 06:30) is not known yet
    assert (await run_replay(args(tmp_path, rules, "2024-01-01", "2024-01-02", redis_url), settings, out)).events == []
    result = await run_replay(args(tmp_path, rules, "2024-01-01", "2024-01-04", redis_url), settings, out)
    assert [(iso(e.ts_ms), e.extra["day"]) for e in result.events] == [
        ("2024-01-03T06:30:00Z", "2024-01-02"),
        ("2024-01-04T03:00:00Z", "2024-01-03"),
    ]


def test_cli_prints_lines_and_draws_chart(tmp_path: Path) -> None:
    """The command itself, with its throwaway embedded Redis."""
    small_dataset(tmp_path)
    (tmp_path / "rules.toml").write_text(RULES)
    chart = tmp_path / "out.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "replay",
            "--data",
            str(tmp_path),
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-03",
            "--rules",
            str(tmp_path / "rules.toml"),
            "--chart",
            str(chart),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert [line.split("  ")[0] for line in proc.stdout.splitlines()] == [
        "2024-01-01T08:00:00Z",
        "2024-01-02T16:00:00Z",
        "2024-01-03T06:30:00Z",
    ]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_input_one_line(tmp_path: Path) -> None:
    small_dataset(tmp_path)
    (tmp_path / "rules.toml").write_text('rules = ["funding btc above 0.05 venue binance"]\n')
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "replay",
            "--data",
            str(tmp_path),
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-03",
            "--rules",
            str(tmp_path / "rules.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "rule 1" in proc.stderr and "needs a % sign" in proc.stderr


def _expected_funding(rows: list[dict[str, str]], threshold: float, band: float, cooldown_ms: int) -> list[int]:
    """The above-rule semantics, stated: armed at the start; fires when a value is strictly above the threshold
    (and the cooldown since the last alert has passed); then waits, and re-arms only when a value is strictly
    below threshold - band."""
    armed, last, out = True, None, []
    for r in sorted(rows, key=lambda r: r["ts_utc"]):
        v, t = float(r["rate_per_8h"]), ms(r["ts_utc"])
        if armed and v > threshold:
            armed = False
            if last is None or t - last >= cooldown_ms:
                out.append(t)
                last = t
        elif not armed and v < threshold - band:
            armed = True
    return out


@pytest.mark.replay
async def test_april_2021(redis_url: str, settings: Settings, tmp_path: Path) -> None:
    if not APRIL.is_dir():
        pytest.skip(f"replay data not found at {APRIL} (the shared replay folder sits beside the repository)")
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    out: list[str] = []
    result = await run_replay(args(APRIL, rules, "2021-04-01", "2021-04-30", redis_url), settings, out)
    start, end = ms("2021-04-01T00:00:00Z"), ms("2021-05-01T00:00:00Z")
    with (APRIL / "funding_8h.csv").open(newline="") as f:
        binance = [r for r in csv.DictReader(f) if r["venue"] == "binance" and start <= ms(r["ts_utc"]) < end]
    band = settings.metrics["funding"]["hysteresis"]
    expected_funding = _expected_funding(binance, 0.0005, band, settings.alerts.default_cooldown_s * 1000)
    assert ms("2021-04-10T08:00:00Z") in expected_funding
    assert [e.ts_ms for e in result.events if e.rule_id == "r1"] == expected_funding

    with (APRIL / "exchange_flows_1d.csv").open(newline="") as f:
        days = list(csv.DictReader(f))
    expected_flows = [
        (ms(d["available_at_utc"]), d["date"])
        for d in days
        if float(d["netflow_btc"]) > 3000 and start <= ms(d["available_at_utc"]) < end
    ]
    fired_flows = [(e.ts_ms, e.extra["day"]) for e in result.events if e.rule_id == "r2"]
    assert fired_flows == expected_flows
    assert len({day for _, day in fired_flows}) == len(fired_flows)  # each day once
    published = {d["date"]: ms(d["available_at_utc"]) for d in days}
    assert all(t >= published[day] for t, day in fired_flows)  # never before its publication
    crash = ms("2021-04-18T00:00:00Z")
    assert [day for t, day in fired_flows if t < crash] == ["2021-04-12", "2021-04-13"]


@pytest.mark.replay
async def test_april_2021_combined_funding_and_netflow_warns_five_days_before_the_crash(
    redis_url: str, settings: Settings, tmp_path: Path
) -> None:
    if not APRIL.is_dir():
        pytest.skip(f"replay data not found at {APRIL} (the shared replay folder sits beside the repository)")
    rules = tmp_path / "rules.toml"
    rules.write_text('rules = ["all(funding btc above 0.05% venue binance; flows btc netflow above 3000)"]\n')
    out: list[str] = []
    result = await run_replay(args(APRIL, rules, "2021-04-01", "2021-04-30", redis_url), settings, out)
    with (APRIL / "funding_8h.csv").open(newline="") as f:
        binance = sorted(
            (ms(r["ts_utc"]), float(r["rate_per_8h"])) for r in csv.DictReader(f) if r["venue"] == "binance"
        )
    with (APRIL / "exchange_flows_1d.csv").open(newline="") as f:
        days = sorted((ms(d["available_at_utc"]), float(d["netflow_btc"])) for d in csv.DictReader(f))

    def holds(t: int) -> bool:
        """Both conditions at time t: the last settled binance rate, and the newest published day."""
        rate = [v for ts, v in binance if ts <= t]
        net = [v for ts, v in days if ts <= t]
        return bool(rate and net) and rate[-1] > 0.0005 and net[-1] > 3000

    moments = sorted({t for t, _ in binance} | {t for t, _ in days})  # the only times either value changes
    first = next(t for t in moments if ms("2021-04-01T00:00:00Z") <= t and holds(t))
    assert iso(first).startswith("2021-04-13")  # five days before the crash of 2021-04-18
    assert result.events and result.events[0].ts_ms == first and result.events[0].rule_id == "r1"
    assert "2/2 conditions hold" in out[0]
