"""The themes bar chart: PNG bytes for a Content-ID inline part (SMTP-9).

matplotlib's object API on the Agg canvas, selected explicitly: no pyplot, so no display,
no global figure state and nothing shared between threads. The PNG carries no creation time or
software version, so the same figures always give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

WIDTH_PX, HEIGHT_PX, DPI = 600, 300, 100
BAR_COLOUR = "#1f5f99"
TEXT_COLOUR = "#1a1a1a"
MAX_LABEL_CHARS = 34


def theme_chart(bars: Sequence[tuple[str, int]]) -> bytes:
    """A horizontal bar chart of (theme name, count), top to bottom as given, as PNG bytes."""
    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = [_label(name) for name, _ in bars]
    values = [count for _, count in bars]
    positions = list(range(len(bars)))
    axes.barh(positions, values, color=BAR_COLOUR, height=0.65)
    axes.set_yticks(positions, labels, fontsize=9, color=TEXT_COLOUR)
    axes.invert_yaxis()  # the first theme on top, as in the table beside it
    axes.tick_params(axis="y", length=0)
    axes.tick_params(axis="x", labelsize=8, colors="#595959")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlim(0, max([*values, 1]) * 1.15)
    for position, value in zip(positions, values, strict=True):
        axes.text(value, position, f" {value}", va="center", fontsize=8, color=TEXT_COLOUR)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.grid(axis="x", color="#e6e6e6", linewidth=0.8)
    axes.set_axisbelow(True)
    figure.subplots_adjust(left=0.42, right=0.97, top=0.96, bottom=0.1)
    out = io.BytesIO()
    # No "Software" or creation-time text chunks: identical figures give identical bytes.
    figure.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()


def _label(name: str) -> str:
    return name if len(name) <= MAX_LABEL_CHARS else name[: MAX_LABEL_CHARS - 1].rstrip() + "…"
