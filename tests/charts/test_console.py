"""The console writes a chart to a file and prints its path; an alert with its chart too."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from PIL import Image as PILImage

from core.charts.command import ChartCommands
from core.commands import CommandCore, CoreSettings
from core.reply import Reply
from core.store import MarketStore
from handlers.console.push import ConsoleSender
from handlers.console.repl import Console
from tests.charts.conftest import NOW_MS, VENUES
from tests.charts.test_chart_delivery import history


async def test_console_chart_is_a_file(tmp_path: Path, charts: ChartCommands, store: MarketStore) -> None:
    await history(charts, store)
    core = CommandCore(
        store,
        CoreSettings(venues=VENUES, sources=charts.sources),
        charts.registry,
        clock_ms=lambda: NOW_MS,
        charts=charts,
    )
    reader = asyncio.StreamReader()
    reader.feed_data(b"/chart funding btc 1d\n/chart\n")
    reader.feed_eof()
    out: list[str] = []
    await Console(core, reader, out.append, files_dir=str(tmp_path)).run(asyncio.Event())
    text = "".join(out)
    m = re.search(r"BTC funding · last 1d: (\S+\.png)", text)
    assert m is not None, text
    assert m.group(1).startswith(str(tmp_path))
    with PILImage.open(m.group(1)) as img:
        assert img.size == (1200, 750)
    assert "Usage: /chart <metric> <asset> [window]" in text

    sender = ConsoleSender(out.append, str(tmp_path))
    image = await charts.alert_image("funding", "BTC")
    assert image is not None
    await sender.send(0, Reply(title="BTC funding above +0.05%/8h", image=image))
    assert re.search(r"BTC funding above \+0\.05%/8h\n.*BTC funding · last 7d: \S+\.png", out[-1], re.S)
