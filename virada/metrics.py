"""The VIRADA rain-detection metrics, per frame (or clip) and per minute.

The definitions follow the official evaluation scripts of the VIRADA paper (``Analysis/metrics.py``,
``evaluateBossu.py`` and ``evaluate3DCNN.py`` in the authors' ``aau-virada`` repository, commit
``51bd90a``):

* A per-frame prediction is the detector's binary output (any non-zero value counts as rain).
* A per-minute score is the mean of the frame (or clip) predictions whose frame falls in that
  minute. It is compared to each threshold with ``score >= threshold``.
* The thresholds are ``numpy.linspace(0, 1, 101)`` exactly as the official scripts build them.
* Precision, recall, TPR, TNR, PPV and NPV with a zero denominator are 1. An F-score with
  P + R = 0 is 0. MCC with a zero denominator is 0. F1 of the no-rain class is the F1 of NPV and
  TNR.
* AUROC and AUPR are ``sklearn.metrics.auc`` (the trapezoid rule) over the 101 sweep points of
  (FPR, TPR) and (recall, precision). The curves are not closed with the (0, 0) or (0, 1)
  corner points.
* Counts over several videos are summed before the rates are computed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from harness.errors import EvaluationError

__all__ = [
    "DECISION_THRESHOLD",
    "SWEEP_COLUMNS",
    "THRESHOLDS",
    "area_under_curves",
    "confusion_counts",
    "confusion_sweep",
    "evaluate_detections",
    "headline",
    "metrics_from_counts",
    "per_minute_scores",
    "plot_curves",
    "sweep_from_counts",
]

logger = logging.getLogger(__name__)

THRESHOLDS = np.linspace(0.0, 1.0, 101)
"""The 101 per-minute thresholds 0.00, 0.01, …, 1.00.

NOTE: these are the values of ``numpy.linspace(0, 1, 101)``, as in the official scripts, not
``round(i / 100, 2)``. Ten of them (0.35, 0.41, 0.47, 0.57, 0.69, 0.70, 0.82, 0.83, 0.94, 0.95)
are one or two ULP above the rounded decimal, which decides ``>=`` for a minute mean such as
630 / 1800 = 0.35.
"""

DECISION_THRESHOLD = 0.5
"""Per-minute threshold of the headline numbers (a minute is rainy when at least half of its
frames detect rain)."""

SWEEP_COLUMNS = (
    "threshold",
    "TP",
    "TN",
    "FP",
    "FN",
    "accuracy",
    "precision",
    "recall",
    "f1_rain",
    "f1_norain",
    "TPR",
    "TNR",
    "FPR",
    "FNR",
    "PPV",
    "NPV",
    "informedness",
    "markedness",
    "mcc",
)
"""Columns of :func:`confusion_sweep`, one row per threshold."""


def confusion_counts(predictions: np.ndarray, labels: np.ndarray) -> tuple[int, int, int, int]:
    """Count TP, TN, FP and FN of binary ``predictions`` against binary ``labels``.

    Non-zero values of either array count as rain (the official scripts cast both to bool).
    """
    predicted = np.asarray(predictions).astype(bool)
    actual = np.asarray(labels).astype(bool)
    _check_same_length(predicted, actual, "predictions", "labels")
    tp = int(np.count_nonzero(predicted & actual))
    tn = int(np.count_nonzero(~predicted & ~actual))
    fp = int(np.count_nonzero(predicted & ~actual))
    fn = int(np.count_nonzero(~predicted & actual))
    return tp, tn, fp, fn


def metrics_from_counts(tp: Any, tn: Any, fp: Any, fn: Any) -> dict[str, np.ndarray]:
    """Compute every rate of the official scripts from confusion counts (scalars or arrays).

    Returns:
        Arrays (0-d for scalar input) keyed like :data:`SWEEP_COLUMNS` without ``threshold``.

    Raises:
        EvaluationError: When a count is negative or all four counts are zero somewhere, because
            accuracy is then undefined (the official script divides by zero there).
    """
    tp, tn, fp, fn = (np.asarray(value, dtype=np.float64) for value in (tp, tn, fp, fn))
    if any(np.any(value < 0) for value in (tp, tn, fp, fn)):
        raise EvaluationError("confusion counts must be non-negative")
    total = tp + tn + fp + fn
    if np.any(total == 0):
        raise EvaluationError("cannot compute metrics of zero samples (TP + TN + FP + FN = 0)")

    accuracy = (tp + tn) / total
    tpr = _ratio_or_one(tp, tp + fn)
    tnr = _ratio_or_one(tn, tn + fp)
    ppv = _ratio_or_one(tp, tp + fp)
    npv = _ratio_or_one(tn, tn + fn)

    # The MCC denominator is a product of four counts, which can exceed 2**53 for long videos,
    # so it is computed in floating point as the official numpy code does.
    numerator = tp * tn - fp * fn
    denominator = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    mcc = numerator / np.sqrt(np.where(denominator == 0, 1.0, denominator))

    return {
        "TP": tp,
        "TN": tn,
        "FP": fp,
        "FN": fn,
        "accuracy": accuracy,
        "precision": ppv,
        "recall": tpr,
        "f1_rain": _f1(ppv, tpr),
        "f1_norain": _f1(npv, tnr),
        "TPR": tpr,
        "TNR": tnr,
        "FPR": 1.0 - tnr,
        "FNR": 1.0 - tpr,
        "PPV": ppv,
        "NPV": npv,
        "informedness": tpr + tnr - 1.0,
        "markedness": ppv + npv - 1.0,
        "mcc": mcc,
    }


def _ratio_or_one(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 1.0)


def _f1(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    total = precision + recall
    safe = np.where(total == 0, 1.0, total)
    return np.where(total == 0, 0.0, 2.0 * precision * recall / safe)


def _check_same_length(first: np.ndarray, second: np.ndarray, name1: str, name2: str) -> None:
    if first.ndim != 1 or second.ndim != 1:
        raise EvaluationError(
            f"{name1} and {name2} must be 1-D arrays, got shapes {first.shape} and {second.shape}"
        )
    if first.shape != second.shape:
        raise EvaluationError(
            f"{name1} and {name2} differ in length: {first.size} against {second.size}"
        )


def _sweep_counts(
    scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Count TP, TN, FP, FN for ``scores >= t`` at every threshold t, by sorting once."""
    positive_scores = np.sort(scores[labels])
    negative_scores = np.sort(scores[~labels])
    # searchsorted(..., "left") counts the scores strictly below t, so the rest are >= t.
    tp = positive_scores.size - np.searchsorted(positive_scores, thresholds, side="left")
    fp = negative_scores.size - np.searchsorted(negative_scores, thresholds, side="left")
    fn = positive_scores.size - tp
    tn = negative_scores.size - fp
    return tp, tn, fp, fn


def _validate_scores(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    score_array = np.asarray(scores, dtype=np.float64)
    label_array = np.asarray(labels).astype(bool)
    _check_same_length(score_array, label_array, "scores", "labels")
    if score_array.size == 0:
        raise EvaluationError("no scores to evaluate: the score array is empty")
    if not np.all(np.isfinite(score_array)):
        bad = int(np.flatnonzero(~np.isfinite(score_array))[0])
        raise EvaluationError(
            f"score {bad} is {score_array[bad]}; scores must be finite numbers in [0, 1]"
        )
    return score_array, label_array


def confusion_sweep(
    scores: Any, labels: Any, thresholds: Sequence[float] | np.ndarray = THRESHOLDS
) -> pl.DataFrame:
    """Tabulate the confusion counts and rates of ``scores >= threshold`` for every threshold.

    Args:
        scores: Per-item scores (per-minute means, or per-frame detections), shape (N,).
        labels: Per-item binary labels (non-zero is rain), shape (N,).
        thresholds: Thresholds in any order; the rows keep that order.

    Returns:
        One row per threshold with the columns :data:`SWEEP_COLUMNS` (counts as Int64).

    Raises:
        EvaluationError: On empty, non-finite or mismatched input.
    """
    score_array, label_array = _validate_scores(scores, labels)
    threshold_array = np.asarray(thresholds, dtype=np.float64)
    if threshold_array.ndim != 1 or threshold_array.size == 0:
        raise EvaluationError("thresholds must be a non-empty 1-D sequence of numbers")

    tp, tn, fp, fn = _sweep_counts(score_array, label_array, threshold_array)
    rates = metrics_from_counts(tp, tn, fp, fn)
    columns: dict[str, Any] = {"threshold": threshold_array}
    for name in SWEEP_COLUMNS[1:]:
        columns[name] = rates[name]
    frame = pl.DataFrame(columns)
    return frame.with_columns(pl.col("TP", "TN", "FP", "FN").cast(pl.Int64))


def sweep_from_counts(
    counts: np.ndarray, thresholds: Sequence[float] | np.ndarray = THRESHOLDS
) -> pl.DataFrame:
    """Build a sweep table from summed counts, shape (len(thresholds), 4) as TP, TN, FP, FN.

    This is how the official scripts combine videos: the counts of each video are added per
    threshold and the rates are computed once from the sums.
    """
    count_array = np.asarray(counts)
    threshold_array = np.asarray(thresholds, dtype=np.float64)
    if count_array.shape != (threshold_array.size, 4):
        raise EvaluationError(
            f"counts must have shape ({threshold_array.size}, 4), got {count_array.shape}"
        )
    rates = metrics_from_counts(*count_array.T)
    columns: dict[str, Any] = {"threshold": threshold_array}
    for name in SWEEP_COLUMNS[1:]:
        columns[name] = rates[name]
    frame = pl.DataFrame(columns)
    return frame.with_columns(pl.col("TP", "TN", "FP", "FN").cast(pl.Int64))


def area_under_curves(sweep: pl.DataFrame) -> dict[str, float]:
    """Compute AUROC and AUPR over the sweep points, as ``sklearn.metrics.auc`` does officially.

    The x values (FPR, recall) must be monotonic over the rows, which holds for a sweep of
    ``>=`` thresholds in increasing (or decreasing) order.

    Raises:
        EvaluationError: When FPR or recall is not monotonic over the rows.
    """
    from sklearn.metrics import auc

    result = {}
    for name, x_column, y_column in (("AUROC", "FPR", "TPR"), ("AUPR", "recall", "precision")):
        x = sweep[x_column].to_numpy()
        y = sweep[y_column].to_numpy()
        if x.size < 2:
            raise EvaluationError(f"{name} needs at least 2 sweep points, got {x.size}")
        try:
            result[name] = float(auc(x, y))
        except ValueError as error:
            raise EvaluationError(
                f"cannot compute {name}: {x_column} is not monotonic over the sweep rows; "
                "sort the thresholds"
            ) from error
    return result


def per_minute_scores(frame_scores: Any, minute_index: Any) -> tuple[np.ndarray, np.ndarray]:
    """Average the frame (or clip) scores of each minute.

    Args:
        frame_scores: Score or binary detection per frame or clip, shape (N,).
        minute_index: Integer minute id per frame or clip, shape (N,). Ids must be unique across
            videos when several are combined (e.g. an offset per video).

    Returns:
        The sorted minute ids present and the mean score of each.
    """
    scores = np.asarray(frame_scores, dtype=np.float64)
    minutes = np.asarray(minute_index)
    _check_same_length(scores, minutes, "frame_scores", "minute_index")
    if not np.issubdtype(minutes.dtype, np.integer):
        raise EvaluationError(f"minute_index must hold integers, got dtype {minutes.dtype}")
    minute_ids, inverse = np.unique(minutes, return_inverse=True)
    sums = np.bincount(inverse, weights=scores, minlength=minute_ids.size)
    counts = np.bincount(inverse, minlength=minute_ids.size)
    return minute_ids, sums / counts


def headline(sweep_row: Mapping[str, Any]) -> dict[str, float]:
    """Return the headline numbers of one sweep row: F1 (both classes), MCC, accuracy, counts."""
    return {
        "f1_rain": float(sweep_row["f1_rain"]),
        "f1_norain": float(sweep_row["f1_norain"]),
        "mcc": float(sweep_row["mcc"]),
        "accuracy": float(sweep_row["accuracy"]),
        "precision": float(sweep_row["precision"]),
        "recall": float(sweep_row["recall"]),
        "TP": float(sweep_row["TP"]),
        "TN": float(sweep_row["TN"]),
        "FP": float(sweep_row["FP"]),
        "FN": float(sweep_row["FN"]),
    }


def evaluate_detections(
    frame_scores: Any,
    frame_labels: Any,
    minute_index: Any,
    minute_labels: Any,
    *,
    thresholds: Sequence[float] | np.ndarray = THRESHOLDS,
    decision_threshold: float = DECISION_THRESHOLD,
) -> dict[str, Any]:
    """Score detections per frame (or clip) and per minute, as the official scripts do.

    Args:
        frame_scores: The detector's output per frame or clip, shape (N,). Per frame, any
            non-zero value is a rain detection; per minute, the values are averaged.
        frame_labels: Binary label per frame or clip (the label of its minute), shape (N,).
        minute_index: Minute id per frame or clip, shape (N,), indexing ``minute_labels``.
        minute_labels: Label per minute id, so ``minute_labels[m]`` is the label of minute m.
        thresholds: Per-minute thresholds of the sweep.
        decision_threshold: Per-minute threshold of the headline numbers; it must be one of
            ``thresholds`` (compared with a tolerance of 1e-9).

    Returns:
        A dict with these keys:

        * ``per_frame``: every rate of the binary detections.
        * ``per_frame_sweep``: a sweep of the raw scores, which the official scripts do not
          output.
        * ``per_minute``: headline numbers at ``decision_threshold``, plus AUROC and AUPR.
        * ``per_minute_sweep``: the official 101-threshold table.
        * ``minute_ids``, ``minute_scores``, ``minute_truth``: the minutes present, their mean
          scores and their binary labels.

    Raises:
        EvaluationError: On mismatched lengths, minute ids outside ``minute_labels``, or a
            decision threshold that is not in the sweep.
    """
    scores, labels = _validate_scores(frame_scores, frame_labels)
    minutes = np.asarray(minute_index)
    truth_per_minute = np.asarray(minute_labels)
    _check_same_length(scores, minutes, "frame_scores", "minute_index")
    if truth_per_minute.ndim != 1:
        raise EvaluationError(f"minute_labels must be 1-D, got shape {truth_per_minute.shape}")
    if minutes.size and (minutes.min() < 0 or minutes.max() >= truth_per_minute.size):
        raise EvaluationError(
            f"minute_index runs from {minutes.min()} to {minutes.max()}, but minute_labels has "
            f"{truth_per_minute.size} entries (valid ids: 0 to {truth_per_minute.size - 1})"
        )

    threshold_array = np.asarray(thresholds, dtype=np.float64)
    matches = np.flatnonzero(np.abs(threshold_array - decision_threshold) <= 1e-9)
    if matches.size == 0:
        raise EvaluationError(
            f"decision threshold {decision_threshold} is not one of the sweep thresholds"
        )

    frame_counts = confusion_counts(scores != 0, labels)
    frame_rates = metrics_from_counts(*frame_counts)
    per_frame = {name: float(frame_rates[name]) for name in SWEEP_COLUMNS[1:]}
    per_frame_sweep = confusion_sweep(scores, labels, threshold_array)

    minute_ids, minute_scores = per_minute_scores(scores, minutes)
    minute_truth = truth_per_minute[minute_ids].astype(bool)
    per_minute_sweep = confusion_sweep(minute_scores, minute_truth, threshold_array)
    per_minute = headline(per_minute_sweep.row(int(matches[0]), named=True))
    per_minute.update(area_under_curves(per_minute_sweep))

    return {
        "per_frame": per_frame,
        "per_frame_sweep": per_frame_sweep,
        "per_minute": per_minute,
        "per_minute_sweep": per_minute_sweep,
        "minute_ids": minute_ids,
        "minute_scores": minute_scores,
        "minute_truth": minute_truth,
    }


def plot_curves(sweep: pl.DataFrame, path: str | PathLike[str], *, title: str = "") -> Path:
    """Draw the ROC curve, the precision-recall curve and the metrics against the threshold.

    The three panels go into one PNG at ``path`` (written atomically).
    """
    from harness.plotting import new_figure, save_png

    figure = new_figure(15, 4.5)
    roc_axes, pr_axes, metric_axes = figure.subplots(1, 3)
    areas = area_under_curves(sweep)

    roc_axes.plot(sweep["FPR"].to_numpy(), sweep["TPR"].to_numpy(), marker=".")
    roc_axes.set(
        xlabel="FPR",
        ylabel="TPR",
        title=f"ROC (AUROC {areas['AUROC']:.3f})",
        xlim=(-0.05, 1.05),
        ylim=(-0.05, 1.05),
    )
    pr_axes.plot(sweep["recall"].to_numpy(), sweep["precision"].to_numpy(), marker=".")
    pr_axes.set(
        xlabel="Recall",
        ylabel="Precision",
        title=f"Precision-recall (AUPR {areas['AUPR']:.3f})",
        xlim=(-0.05, 1.05),
        ylim=(-0.05, 1.05),
    )
    thresholds = sweep["threshold"].to_numpy()
    for column, label in (
        ("f1_rain", "F1 (rain)"),
        ("f1_norain", "F1 (no rain)"),
        ("mcc", "MCC"),
        ("accuracy", "Accuracy"),
        ("informedness", "Informedness"),
        ("markedness", "Markedness"),
    ):
        metric_axes.plot(thresholds, sweep[column].to_numpy(), label=label)
    metric_axes.set(xlabel="Threshold", ylabel="Value", ylim=(-1.05, 1.05), title="Metrics")
    metric_axes.legend(loc="lower left", fontsize="small")
    for axes in (roc_axes, pr_axes, metric_axes):
        axes.grid(True)
    if title:
        figure.suptitle(title)
    return save_png(figure, path)
