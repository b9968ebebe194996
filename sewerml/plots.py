"""Plots of Sewer-ML results: per-class F2 bars and confusion-matrix heat maps, saved as PNG.

The figures are built with matplotlib's object API (``matplotlib.figure.Figure``) and rendered
by the Agg backend, so they need no display and leave pyplot's global figure list and backend
untouched. Each PNG is written to a temporary file in the target folder and renamed into
place. The module does not import torch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import EvaluationError
from harness.plotting import new_figure, save_png
from sewerml.classes import COLUMNS, DEFECT_CODES

__all__ = ["plot_confusion_matrix", "plot_per_class_f2"]

logger = logging.getLogger(__name__)

N_DEFECTS = len(DEFECT_CODES)
DEFECT_COLOR = "tab:blue"
NORMAL_COLOR = "tab:gray"
CIW_LINE_COLOR = "tab:red"


def plot_per_class_f2(
    results: Mapping[str, Any],
    path: str | PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Draw the per-class F2 of the 17 defect classes as bars, with F2_CIW as a line.

    A hatched grey bar after the 17 classes shows F1_Normal, the F1 of the implicit Normal
    class, which the benchmark reports next to F2_CIW. Each bar is labelled with its value.

    Args:
        results: The dict returned by :func:`sewerml.metrics.evaluate` or
            :func:`sewerml.metrics.metrics_from_counts`. The plot reads ``F2`` (18 values in
            [0, 1], Normal last; the 17 defect classes are plotted), ``F2_CIW`` and
            ``F1_Normal``.
        path: Output PNG file. Its folder is created if needed.
        title: First title line. The second line always gives F2_CIW and F1_Normal in percent.

    Returns:
        ``path`` as a Path.

    Raises:
        EvaluationError: If a key is missing or ``F2`` does not have 18 finite values.
    """
    missing = [key for key in ("F2", "F2_CIW", "F1_Normal") if key not in results]
    if missing:
        raise EvaluationError(
            f"results is missing the key(s) {', '.join(missing)}; expected the dict returned by "
            "sewerml.metrics.evaluate"
        )
    f2 = np.asarray(results["F2"], dtype=np.float64)
    if f2.shape != (len(COLUMNS),) or not np.all(np.isfinite(f2)):
        raise EvaluationError(
            f"results['F2'] is {f2.tolist()}; expected {len(COLUMNS)} finite values, one per "
            f"column {', '.join(COLUMNS)}"
        )
    f2_percent = f2[:N_DEFECTS] * 100.0
    f2_ciw = float(results["F2_CIW"]) * 100.0
    f1_normal = float(results["F1_Normal"]) * 100.0

    figure = new_figure(10.0, 4.8)
    axes = figure.add_subplot()
    positions = np.arange(N_DEFECTS + 1)
    defect_bars = axes.bar(positions[:N_DEFECTS], f2_percent, color=DEFECT_COLOR,
                           label="F2 per class")
    normal_bar = axes.bar(positions[N_DEFECTS], f1_normal, color=NORMAL_COLOR, hatch="//",
                          edgecolor="black", label="F1_Normal")
    axes.bar_label(defect_bars, fmt="%.1f", fontsize=7, padding=1)
    axes.bar_label(normal_bar, fmt="%.1f", fontsize=7, padding=1)
    axes.axhline(f2_ciw, color=CIW_LINE_COLOR, linestyle="--", linewidth=1.2,
                 label=f"F2_CIW = {f2_ciw:.2f} %")

    axes.set_xticks(positions, [*DEFECT_CODES, "Normal\n(F1)"])
    axes.set_xlim(-0.6, N_DEFECTS + 0.6)
    axes.set_ylim(0.0, 105.0)
    axes.set_ylabel("score (%)")
    axes.set_xlabel("class")
    axes.legend(loc="upper right", fontsize=8)
    headline = f"F2_CIW = {f2_ciw:.2f} %, F1_Normal = {f1_normal:.2f} %"
    axes.set_title(headline if title is None else f"{title}\n{headline}")
    return save_png(figure, path)


def plot_confusion_matrix(
    matrix: Any,
    class_names: Sequence[str],
    path: str | PathLike[str],
    *,
    title: str | None = None,
    normalize: bool = True,
) -> Path:
    """Draw a confusion matrix as a heat map, true classes on rows and predictions on columns.

    Every cell shows its count. With ``normalize`` the colour is the row-normalised percentage
    (the share of the true class predicted as each class), which the cell also shows below its
    count. A row without images gets 0 %. Without ``normalize`` the colour is the count.

    Args:
        matrix: Square array of non-negative counts, shape (k, k); ``matrix[i, j]`` counts
            images of true class i predicted as class j.
        class_names: The k class names, in row order.
        path: Output PNG file. Its folder is created if needed.
        title: Figure title. No title by default.
        normalize: Colour by row-normalised percentages (True) or by counts (False).

    Returns:
        ``path`` as a Path.

    Raises:
        EvaluationError: If ``matrix`` is not square or not numeric, has a negative or
            non-finite entry, or its size differs from the number of ``class_names``.
    """
    try:
        counts = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise EvaluationError(f"confusion matrix is not numeric ({err}); expected a square "
                              "array of counts") from err
    names = [str(name) for name in class_names]
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise EvaluationError(f"confusion matrix has shape {counts.shape}; expected a square "
                              "array (k, k) with k >= 1")
    if counts.shape[0] != len(names):
        raise EvaluationError(
            f"confusion matrix has {counts.shape[0]} rows but {len(names)} class names were "
            "given; expected one name per row"
        )
    invalid = ~np.isfinite(counts) | (counts < 0)
    if invalid.any():
        row, column = (int(index) for index in np.argwhere(invalid)[0])
        raise EvaluationError(
            f"confusion matrix entry [{row}, {column}] (true {names[row]}, predicted "
            f"{names[column]}) is {float(counts[row, column])!r}; expected a finite count >= 0"
        )

    row_totals = counts.sum(axis=1, keepdims=True)
    percent = np.divide(counts * 100.0, row_totals, out=np.zeros_like(counts),
                        where=row_totals > 0)
    colour_values = percent if normalize else counts

    k = len(names)
    side = max(4.0, 0.6 * k + 2.0)
    figure = new_figure(side + 1.0, side)
    axes = figure.add_subplot()
    vmax = 100.0 if normalize else max(float(counts.max()), 1.0)
    image = axes.imshow(colour_values, cmap="Blues", vmin=0.0, vmax=vmax)
    figure.colorbar(image, ax=axes, label="share of true class (%)" if normalize else "images")

    font_size = 9 if k <= 8 else 6
    for i in range(k):
        for j in range(k):
            text = _format_count(counts[i, j])
            if normalize:
                text += f"\n{percent[i, j]:.1f} %"
            dark = colour_values[i, j] > 0.5 * vmax
            axes.text(j, i, text, ha="center", va="center", fontsize=font_size,
                      color="white" if dark else "black")

    if k > 6:
        axes.set_xticks(np.arange(k), names, rotation=45, ha="right")
    else:
        axes.set_xticks(np.arange(k), names)
    axes.set_yticks(np.arange(k), names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if title is not None:
        axes.set_title(title)
    return save_png(figure, path)


def _format_count(value: float) -> str:
    """Format a count as an integer when it is whole, else with two decimals."""
    return f"{int(value):d}" if float(value).is_integer() else f"{value:.2f}"
