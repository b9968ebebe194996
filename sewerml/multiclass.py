"""Multi-class metrics of CT-GNN's water-level, pipe-shape and pipe-material tasks (numpy only).

Source: the scoring scripts of the CT-GNN code (Haurum et al., WACV 2022;
``calculate_results.py`` and ``multiclass_metrics.py``), which take the argmax of each task's
class scores and compute the metrics with scikit-learn. Everything here is computed from the
confusion matrix (rows: true class, columns: predicted class):

- per class k: Ng (support, row sum), Np (column sum), Nc (diagonal);
  precision = Nc / Np, recall = Nc / Ng, F1 = 2 Nc / (Np + Ng), each 0 where it divides by 0;
- MP, MR, MF1: the means of the per-class values over the classes with Ng > 0 only, as
  scikit-learn computes them with ``labels=`` restricted to the classes present in the targets;
- mP, mR, mF1: micro averages over all classes. Every image has exactly one true and one
  predicted class, so all three equal the accuracy.

NOTE: scikit-learn's micro precision with ``labels=`` restricted to supported classes would
leave out predictions of unsupported classes, and then differ from the accuracy. It is unknown
whether CT-GNN passes ``labels=`` to its micro scores. Its published results have mP = mR = mF1,
which both choices give when every class has support.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.errors import EvaluationError
from sewerml.tasks import IGNORE_INDEX

__all__ = [
    "IGNORE_INDEX",
    "MulticlassAccumulator",
    "metrics_from_confusion",
    "multiclass_metrics",
]


def multiclass_metrics(
    targets: Any, scores_or_predictions: Any, class_names: Sequence[str]
) -> dict[str, Any]:
    """Compute the CT-GNN multi-class metrics of one task.

    Args:
        targets: Integer class indices [N]; entries equal to ``IGNORE_INDEX`` (-100) are left
            out.
        scores_or_predictions: Class scores [N, C] (probabilities or logits; the prediction is
            the argmax, the first class on ties) or predicted class indices [N].
        class_names: The C class names, in index order.

    Returns:
        The dict of :func:`metrics_from_confusion`.

    Raises:
        EvaluationError: If the shapes do not match, a target or prediction is not a class
            index, a score is NaN, or no row is left to score. The message names the row and
            the value.
    """
    accumulator = MulticlassAccumulator(len(class_names), class_names=class_names)
    accumulator.update(targets, scores_or_predictions)
    return accumulator.compute()


def metrics_from_confusion(confusion: Any, class_names: Sequence[str]) -> dict[str, Any]:
    """Compute the multi-class metrics from a confusion matrix.

    Args:
        confusion: Counts [C, C], rows true class, columns predicted class.
        class_names: The C class names.

    Returns:
        A dict with the floats ``MF1``, ``MP``, ``MR`` (macro over classes with support),
        ``mF1``, ``mP``, ``mR`` (micro, equal to the accuracy) and ``accuracy``. Per class, it
        has the float64 arrays ``precision``, ``recall`` and ``F1`` and the int64 arrays ``Ng``
        (support), ``Np`` and ``Nc``. ``CM`` is the int64 confusion matrix, and
        ``class_names`` lists the names.

    Raises:
        EvaluationError: If the matrix is not C x C, has a negative or fractional count, or
            sums to 0.
    """
    names = list(class_names)
    matrix = np.asarray(confusion)
    if matrix.shape != (len(names), len(names)):
        raise EvaluationError(
            f"confusion matrix has shape {matrix.shape}; expected ({len(names)}, {len(names)}) "
            f"for classes {names}"
        )
    if np.any(matrix < 0) or np.any(matrix != np.round(matrix)):
        raise EvaluationError("confusion matrix has a negative or fractional count; expected "
                              "counts of images")
    matrix = matrix.astype(np.int64)
    total = int(matrix.sum())
    if total == 0:
        raise EvaluationError("no images to score; every target is missing or ignored")

    correct = np.diag(matrix).copy()
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _divide(correct, predicted)
    recall = _divide(correct, support)
    f1 = _divide(2 * correct, predicted + support)

    supported = support > 0
    accuracy = float(correct.sum() / total)
    return {
        "MF1": float(f1[supported].mean()),
        "MP": float(precision[supported].mean()),
        "MR": float(recall[supported].mean()),
        "mF1": accuracy,
        "mP": accuracy,
        "mR": accuracy,
        "accuracy": accuracy,
        "precision": precision,
        "recall": recall,
        "F1": f1,
        "Ng": support,
        "Np": predicted,
        "Nc": correct,
        "CM": matrix,
        "class_names": names,
    }


class MulticlassAccumulator:
    """Accumulate the confusion matrix of one task over batches.

    ``update`` takes the same inputs as :func:`multiclass_metrics`, and ``compute`` returns the
    same dict as one call of that function on all rows.

    Args:
        num_classes: Number of classes C.
        class_names: The C class names; ``"0"``, ``"1"``, ... when None.

    Raises:
        EvaluationError: If ``num_classes`` is below 1 or ``class_names`` has another length.
    """

    def __init__(self, num_classes: int, *, class_names: Sequence[str] | None = None):
        if num_classes < 1:
            raise EvaluationError(f"num_classes is {num_classes!r}; expected at least 1")
        names = [str(k) for k in range(num_classes)] if class_names is None else list(class_names)
        if len(names) != num_classes:
            raise EvaluationError(
                f"got {len(names)} class names for {num_classes} classes; expected one per class"
            )
        self.num_classes = num_classes
        self.class_names = names
        self.reset()

    def reset(self) -> None:
        """Forget every row seen so far."""
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.rows = 0

    def update(self, targets: Any, scores_or_predictions: Any) -> None:
        """Add a batch of rows; row numbers in error messages count from the first update.

        Raises:
            EvaluationError: As for :func:`multiclass_metrics`; the state is unchanged then.
        """
        target_array, prediction_array = _check_inputs(
            targets, scores_or_predictions, self.num_classes, row_offset=self.rows
        )
        kept = target_array != IGNORE_INDEX
        flat = target_array[kept] * self.num_classes + prediction_array[kept]
        counts = np.bincount(flat, minlength=self.num_classes**2)
        self.confusion += counts.reshape(self.num_classes, self.num_classes)
        self.rows += target_array.shape[0]

    def compute(self) -> dict[str, Any]:
        """Return the metrics of all rows so far, as :func:`metrics_from_confusion` does."""
        return metrics_from_confusion(self.confusion, self.class_names)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, numerator / safe, 0.0)


def _check_inputs(
    targets: Any, scores_or_predictions: Any, num_classes: int, *, row_offset: int
) -> tuple[np.ndarray, np.ndarray]:
    raw_targets = np.asarray(targets)
    if raw_targets.ndim != 1:
        raise EvaluationError(f"targets have shape {raw_targets.shape}; expected [N]")
    target_array = _as_indices(raw_targets, "targets", row_offset)
    bad = np.flatnonzero((target_array != IGNORE_INDEX)
                         & ((target_array < 0) | (target_array >= num_classes)))
    if bad.size:
        row = int(bad[0])
        raise EvaluationError(
            f"target in row {row + row_offset} is {int(target_array[row])}; expected a class "
            f"index in 0..{num_classes - 1} or {IGNORE_INDEX} for no label"
        )

    values = np.asarray(scores_or_predictions)
    rows = target_array.shape[0]
    if values.ndim == 2:
        if values.shape != (rows, num_classes):
            raise EvaluationError(
                f"scores have shape {values.shape}; expected ({rows}, {num_classes}), one row "
                "per target and one column per class"
            )
        real = np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)
        if not real:
            raise EvaluationError(f"scores have dtype {values.dtype}; expected real numbers")
        nan = np.argwhere(np.isnan(values))
        if nan.size:
            row, column = (int(i) for i in nan[0])
            raise EvaluationError(
                f"score in row {row + row_offset}, column {column} is NaN; expected a number"
            )
        return target_array, np.argmax(values, axis=1)

    if values.ndim != 1 or values.shape[0] != rows:
        raise EvaluationError(
            f"predictions have shape {values.shape}; expected scores ({rows}, {num_classes}) or "
            f"class indices ({rows},)"
        )
    prediction_array = _as_indices(values, "predictions", row_offset)
    bad = np.flatnonzero((prediction_array < 0) | (prediction_array >= num_classes))
    if bad.size:
        row = int(bad[0])
        raise EvaluationError(
            f"prediction in row {row + row_offset} is {int(prediction_array[row])}; expected a "
            f"class index in 0..{num_classes - 1}"
        )
    return target_array, prediction_array


def _as_indices(array: np.ndarray, name: str, row_offset: int) -> np.ndarray:
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.floating):
        whole = np.isfinite(array) & (array == np.round(array))
        bad = np.flatnonzero(~whole.reshape(-1))
        if bad.size:
            row = int(bad[0])
            value = array.reshape(-1)[row].item()
            raise EvaluationError(
                f"{name} in row {row + row_offset} is {value!r}; expected an integer class index"
            )
        return array.astype(np.int64)
    raise EvaluationError(f"{name} have dtype {array.dtype}; expected integer class indices")
