"""Figures for result plots, built with matplotlib's object API and written atomically as PNG.

Plots are drawn on a ``matplotlib.figure.Figure`` with an Agg canvas, so nothing depends on
pyplot's global state or on a display.
"""

from __future__ import annotations

import logging
from os import PathLike
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness import atomic

__all__ = ["DPI", "new_figure", "save_png"]

logger = logging.getLogger(__name__)

DPI = 150
"""Resolution of the PNG files, in dots per inch."""


def new_figure(width: float, height: float) -> Figure:
    """Return an empty figure of ``width`` × ``height`` inches with constrained layout."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Figure, path: str | PathLike[str], *, dpi: int = DPI) -> Path:
    """Render ``figure`` as PNG to ``path`` atomically, release its memory and return the path."""
    path = Path(path)
    with atomic.atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    figure.clear()
    logger.info("wrote plot %s", path)
    return path
