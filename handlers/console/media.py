"""Console side of images: a chart is written to a file and its path printed."""

from __future__ import annotations

import time
from pathlib import Path

from core.reply import Image


def save_image(image: Image, directory: str | Path) -> Path:
    """Write the PNG under ``directory`` (created if needed) with a time stamp; returns its path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{time.strftime('%Y%m%d-%H%M%S')}-{image.filename}"
    path.write_bytes(image.data)
    return path.resolve()


def image_line(image: Image, directory: str | Path) -> str:
    return f"{image.caption}: {save_image(image, directory)}"
