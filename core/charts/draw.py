"""Figure -> PNG with matplotlib's Agg backend, sized and lettered to be read on a phone.

Runs in a worker (a process of the chart pool): no pyplot, no global state, one matplotlib
``Figure`` per call. Importing this module does not import matplotlib; the first draw does.
"""

from __future__ import annotations

import io
from typing import Any

from core.charts.figure import Figure

WIDTH_PX = 1200
HEIGHT_PX = 750
DPI = 120

THEMES: dict[str, dict[str, Any]] = {
    "light": {
        "bg": "#ffffff",
        "fg": "#1f2328",
        "grid": "#d0d7de",
        "muted": "#57606a",
        "up": "#cf222e",
        "down": "#1a7f37",
    },
    "dark": {
        "bg": "#0d1117",
        "fg": "#e6edf3",
        "grid": "#30363d",
        "muted": "#8b949e",
        "up": "#f85149",
        "down": "#3fb950",
    },
}
PALETTE = (
    "#0969da",
    "#bf8700",
    "#8250df",
    "#1a7f37",
    "#cf222e",
    "#57606a",
    "#e16f24",
    "#2da44e",
    "#6639ba",
    "#0550ae",
    "#953800",
    "#116329",
)
_MS_PER_DAY = 86_400_000


def render_png(fig: Figure, theme: str = "light") -> bytes:
    """The chart as PNG bytes (WIDTH_PX × HEIGHT_PX)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    t = THEMES.get(theme, THEMES["light"])
    f = MplFigure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor=t["bg"])
    FigureCanvasAgg(f)
    ax = f.add_axes((0.105, 0.27, 0.79 if fig.y2_label else 0.87, 0.64))
    ax2 = ax.twinx() if fig.y2_label else None
    for a in (ax, ax2):
        if a is None:
            continue
        a.set_facecolor(t["bg"])
        a.tick_params(colors=t["fg"], labelsize=12)
        for spine in a.spines.values():
            spine.set_color(t["grid"])
    ax.grid(True, color=t["grid"], linewidth=0.6)
    time_axis = fig.x_kind == "time"
    colour = 0
    for s in fig.series:
        target = ax2 if s.axis == "right" and ax2 is not None else ax
        xs = [x / _MS_PER_DAY for x in s.xs] if time_axis else list(s.xs)
        if s.style == "bars":
            pos, neg = (t["down"], t["up"]) if s.rising_good else (t["up"], t["down"])
            colours = [pos if y >= 0 else neg for y in s.ys]
            width = (s.width / _MS_PER_DAY if time_axis else s.width) if s.width else (0.8 if time_axis else 1.0)
            target.bar(xs, s.ys, width=width, color=colours, label=s.label, alpha=0.85)
            continue
        c = PALETTE[colour % len(PALETTE)]
        colour += 1
        if s.style == "points":
            target.plot(xs, s.ys, marker="o", markersize=7, linewidth=1.6, color=c, label=s.label)
        else:
            target.plot(xs, s.ys, linewidth=1.8, color=c, label=s.label)
    for lv in fig.levels:
        ax.axhline(lv.value, color=t["muted"], linestyle="--", linewidth=1.4, label=lv.label)
    for i, mk in enumerate(fig.marks):
        x = mk.value / _MS_PER_DAY if time_axis else mk.value
        ax.axvline(x, color=PALETTE[(i + 4) % len(PALETTE)], linestyle=":", linewidth=2.0, label=mk.label)
    if time_axis:
        locator = mdates.AutoDateLocator(minticks=3, maxticks=7)  # type: ignore[no-untyped-call]  # untyped in mpl
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]  # same
    if fig.x_label:
        ax.set_xlabel(fig.x_label, color=t["fg"], fontsize=12)
    ax.set_ylabel(fig.y_label, color=t["fg"], fontsize=13)
    if ax2 is not None:
        ax2.set_ylabel(fig.y2_label, color=t["fg"], fontsize=13)
    ax.set_title(fig.title, color=t["fg"], fontsize=17, loc="left", pad=12)
    if not fig.points:
        ax.text(
            0.5, 0.5, fig.empty_note, transform=ax.transAxes, ha="center", va="center", color=t["muted"], fontsize=16
        )
    handles, labels = ax.get_legend_handles_labels()
    if ax2 is not None:
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if handles:
        leg = f.legend(
            handles,
            labels,
            loc="lower center",
            ncol=min(4, len(labels)),
            fontsize=11,
            frameon=False,
            bbox_to_anchor=(0.5, 0.03),
        )
        for text in leg.get_texts():
            text.set_color(t["fg"])
    f.text(0.01, 0.008, fig.footer + (" · times UTC" if time_axis else ""), color=t["muted"], fontsize=9.5)
    buf = io.BytesIO()
    f.savefig(buf, format="png", facecolor=t["bg"])
    return buf.getvalue()
