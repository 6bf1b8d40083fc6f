"""The chart pool and cache, and the chat's thresholds drawn as lines."""

from __future__ import annotations

import asyncio
import io
import os
import sys

import pytest
from PIL import Image as PILImage

from core.charts.command import ChartCommands
from core.charts.figure import Figure, LevelLine, Series
from core.charts.service import ChartService, ChartSettings
from core.reply import UserError
from tests.builders import rule_from

FIG = Figure(title="t", y_label="y, %", series=(Series("a", (0.0, 86_400_000.0), (1.0, 2.0)),), footer="f", caption="c")


def figure() -> Figure:  # module level: picklable into a worker process
    return FIG


async def test_process_pool_draws_a_png() -> None:
    svc = ChartService(ChartSettings(workers=1, pool="process"))
    try:
        svc.start()
        data = await svc.png("k", figure)
        assert data is not None and PILImage.open(io.BytesIO(data)).size == (1200, 750)
    finally:
        await svc.close()


def crash(fig: Figure, theme: str) -> bytes:  # a worker that dies while drawing
    import os

    os._exit(1)


ORPHAN = """
import asyncio, os, sys
from core.charts.service import ChartService, ChartSettings
from tests.charts.test_service import figure

async def main():
    svc = ChartService(ChartSettings(workers=2, pool="process"))
    await svc.png("k", figure)
    print(" ".join(str(p) for p in svc._executor._processes), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_workers_exit_when_the_bot_is_killed() -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", ORPHAN, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    pids = [int(p) for p in (await asyncio.wait_for(proc.stdout.readline(), 30)).split()]
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    proc.kill()  # SIGKILL: the pool cannot be shut down
    await asyncio.wait_for(proc.wait(), 10)  # returns only once every holder of its stdout is gone
    for _ in range(50):
        if not any(_alive(p) for p in pids):
            break
        await asyncio.sleep(0.1)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting to be reaped is gone too
        return f.read().split()[2] != "Z"


async def test_a_broken_pool_is_replaced() -> None:
    svc = ChartService(ChartSettings(workers=1, pool="process"), render=crash)
    try:
        with pytest.raises(UserError, match="failed"):
            await svc.png("k", figure)
        svc.render = ChartService().render  # the default renderer again, in a new pool
        data = await svc.png("k", figure)
        assert data is not None and data.startswith(b"\x89PNG")
    finally:
        await svc.close()


async def test_cache_in_flight_sharing_and_the_bound() -> None:
    gate = asyncio.Event()
    calls: list[str] = []

    def slow_render(fig: Figure, theme: str) -> bytes:
        calls.append(theme)
        asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(5)
        return b"png:" + theme.encode()

    loop = asyncio.get_running_loop()
    now = [0.0]
    svc = ChartService(
        ChartSettings(workers=2, pool="thread", cache_s=60, max_pending=2), render=slow_render, clock=lambda: now[0]
    )
    try:
        first = asyncio.create_task(svc.png("a", figure))
        same = asyncio.create_task(svc.png("a", figure))  # the same chart asked again meanwhile: one drawing
        other = asyncio.create_task(svc.png("b", figure, "dark"))
        await asyncio.sleep(0.05)
        with pytest.raises(UserError, match="busy"):  # two drawing already: the third is refused at once
            await svc.png("c", figure)
        gate.set()
        assert await first == await same == b"png:light" and await other == b"png:dark"
        assert len(calls) == 2
        assert await svc.png("a", figure) == b"png:light" and len(calls) == 2  # cached
        now[0] = 61.0
        assert await svc.png("a", figure) == b"png:light" and len(calls) == 3  # expired: drawn again
    finally:
        await svc.close()


async def test_the_chats_thresholds_become_lines(charts: ChartCommands) -> None:
    store = charts.alert_store
    assert store is not None
    own = rule_from("funding btc above 0.05%", rule_id="r1", scope="chat", target="tg:42")
    glob = rule_from("funding btc below -0.03%", rule_id="r2")
    other_topic = rule_from("funding eth above 0.05%", rule_id="r3")
    change = rule_from("funding btc change 0.03% 8h", rule_id="r4")
    for r in (own, glob, other_topic, change):
        await store.save_rule(r, who="t", action="set", now_ms=0)
    chart, req = charts.parse(["funding", "btc", "7d"])
    assert await charts.levels(chart, req, "tg:42") == [LevelLine("r1 above +0.0500%/8h", 0.05)]
    await store.subscribe("tg:42", ["funding:BTC"])  # now the global rule on the topic applies too
    lines = await charts.levels(chart, req, "tg:42")
    assert [(lv.label, lv.value) for lv in lines] == [("r1 above +0.0500%/8h", 0.05), ("r2 below -0.0300%/8h", -0.03)]
    chart, req = charts.parse(["funding", "btc", "7d", "ann"])
    assert [lv.value for lv in await charts.levels(chart, req, "tg:42")] == pytest.approx(
        [0.05 * 3 * 365, -0.03 * 3 * 365]
    )
