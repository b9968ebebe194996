"""The official Sewer-ML multi-label metrics: F2_CIW, F1_Normal and the classic multi-label set.

The numbers follow ``metrics.py::evaluation`` of the official Sewer-ML repository
(bitbucket.org/aauvap/sewer-ml) for the paper by Haurum & Moeslund, "Sewer-ML: A Multi-Label
Sewer Defect Classification Dataset and Benchmark", CVPR 2021. The authors' MSHViT repository
(github.com/JoakimHaurum/MSHViT, ``multilabel_metrics.py``) contains the same logic, and a
CT-GNN result JSON written by it is reproduced to 1e-12 from its counts.

Definitions, per column k of the 17 defect classes plus the implicit Normal column:

- ``Ng`` ground-truth positives, ``Np`` predicted positives (score >= threshold), ``Nc`` true
  positives. An image is ground-truth Normal when it has no defect label and predicted Normal
  when no defect score reaches the threshold.
- P_k = Nc / max(Np, 1), so precision is 0 when nothing is predicted. R_k = Nc / Ng, which is NaN
  when the column has no positives.
- F1_k = 2 P R / (P + R) and F2_k = 5 P R / (4 P + R), with NaN (0/0) replaced by 0.
- F2_CIW = sum_k CIW_k F2_k / sum_k CIW_k over the 17 defect classes. A class without positives
  keeps its weight in the denominator with F2 = 0, so F2_CIW on a subset that lacks some classes
  stays below 1 even for perfect predictions.
- F1_Normal = F1 of the Normal column.
- Over all 18 columns: MF1 = mean F1_k; CP = mean P_k; CR = mean R_k; CF1 = 2 CP CR / (CP + CR);
  OP = sum Nc / sum max(Np, 1); OR = sum Nc / sum Ng; OF1 = 2 OP OR / (OP + OR);
  mF1 = 2 sum Nc / (sum max(Np, 1) + sum Ng).
- EMAcc = share of images whose 17 thresholded scores equal their 17 labels.
- mAP = mean over the 17 defect classes of the average precision (AP), with AP 0 for a class
  without positives. Normal has no AP.

As in the official code, CR and CF1 are NaN when a column has no positives, and OF1 is NaN when
there is no true positive at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.errors import EvaluationError
from sewerml.classes import CIW, COLUMNS, DEFECT_CODES

__all__ = [
    "COUNT_METRICS",
    "SCORE_METRICS",
    "MetricAccumulator",
    "average_precision",
    "evaluate",
    "f2_ciw",
    "metrics_from_counts",
]

N_DEFECTS = len(DEFECT_CODES)
N_COLUMNS = len(COLUMNS)

# Scalar metrics that metrics_from_counts returns, and those that need per-image scores.
COUNT_METRICS: tuple[str, ...] = (
    "F2_CIW", "F1_Normal", "MF1", "mF1", "OP", "OR", "OF1", "CP", "CR", "CF1",
)  # fmt: skip
SCORE_METRICS: tuple[str, ...] = ("EMAcc", "mAP")


def evaluate(
    targets: Any,
    scores: Any,
    *,
    weights: Sequence[float] = CIW,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Compute every Sewer-ML metric for one set of images.

    Args:
        targets: Array of shape (n, 17) with 0/1 labels in ``DEFECT_CODES`` order.
        scores: Array of shape (n, 17) with probabilities in [0, 1] (after the sigmoid), rows
            aligned with ``targets``.
        weights: The 17 class-importance weights for F2_CIW; the four-decimal ``CIW`` of the
            paper by default.
        threshold: A class is predicted when its score is >= ``threshold``. The benchmark uses
            0.5.

    Returns:
        A dict with the scalars of ``COUNT_METRICS`` and ``SCORE_METRICS`` as floats, and the
        per-column arrays ``Np``, ``Nc``, ``Ng``, ``precision``, ``recall``, ``F1``, ``F2`` (18
        entries each, Normal last) and ``AP`` (17 entries). ``recall`` is NaN for a column
        without positives, as in the official code.

    Raises:
        EvaluationError: If a shape is not (n, 17), the row counts differ or there are no
            rows. Also if a score is NaN or outside [0, 1], a target is not 0 or 1, or
            ``weights`` or ``threshold`` is invalid. The message names the row and column.
    """
    accumulator = MetricAccumulator(weights=weights, threshold=threshold)
    accumulator.update(targets, scores)
    return accumulator.compute()


def metrics_from_counts(
    np_: Any,
    nc: Any,
    ng: Any,
    *,
    weights: Sequence[float] = CIW,
) -> dict[str, Any]:
    """Compute every metric that depends only on the per-column counts.

    Args:
        np_: Predicted positives per column, 18 entries (17 defect classes, then Normal).
        nc: True positives per column, 18 entries.
        ng: Ground-truth positives per column, 18 entries.
        weights: The 17 class-importance weights for F2_CIW.

    Returns:
        A dict with the scalars of ``COUNT_METRICS`` and the arrays ``Np``, ``Nc``, ``Ng``,
        ``precision``, ``recall``, ``F1`` and ``F2`` (18 entries each). ``Np`` contains the
        counts as given, as float64. The official code writes 1 where a column has no
        predicted positive.

    Raises:
        EvaluationError: If a count array does not have 18 entries, a count is negative or not a
            whole number, ``Nc`` exceeds ``Np`` or ``Ng``, or ``weights`` is invalid.
    """
    weight_array = _check_weights(weights)
    predicted = _check_counts(np_, "Np")
    correct = _check_counts(nc, "Nc")
    positives = _check_counts(ng, "Ng")
    for name, bound in (("Np", predicted), ("Ng", positives)):
        above = np.flatnonzero(correct > bound)
        if above.size:
            k = int(above[0])
            raise EvaluationError(
                f"Nc of column {k} ({COLUMNS[k]}) is {int(correct[k])}, more than its {name} "
                f"{int(bound[k])}; true positives cannot exceed {name}"
            )

    # The official code replaces Np = 0 by 1 before any division, so P = 0 for such a column.
    predicted_or_one = np.where(predicted == 0, 1.0, predicted)

    with np.errstate(divide="ignore", invalid="ignore"):
        precision = correct / predicted_or_one
        recall = correct / positives
        f1 = _zero_nan(2 * precision * recall / (precision + recall))
        f2 = _zero_nan(5 * precision * recall / (4 * precision + recall))

        total_correct = correct.sum()
        op = total_correct / predicted_or_one.sum()
        or_ = total_correct / positives.sum()
        of1 = 2 * op * or_ / (op + or_)
        mf1_micro = 2 * total_correct / (predicted_or_one.sum() + positives.sum())

        cp = precision.mean()
        cr = recall.mean()
        cf1 = 2 * cp * cr / (cp + cr)

    # NOTE: the official code does not replace NaN in F2 of the Normal column, which is NaN when
    # no image is Normal or none of them is predicted Normal. Here it is 0, like every other column.
    return {
        "F2_CIW": f2_ciw(f2[:N_DEFECTS], weights=weight_array),
        "F1_Normal": float(f1[-1]),
        "MF1": float(f1.mean()),
        "mF1": float(mf1_micro),
        "OP": float(op),
        "OR": float(or_),
        "OF1": float(of1),
        "CP": float(cp),
        "CR": float(cr),
        "CF1": float(cf1),
        "Np": predicted,
        "Nc": correct,
        "Ng": positives,
        "precision": precision,
        "recall": recall,
        "F1": f1,
        "F2": f2,
    }


def f2_ciw(f2: Any, *, weights: Sequence[float] = CIW) -> float:
    """Weight 17 per-class F2 values by class importance: sum_k CIW_k F2_k / sum_k CIW_k.

    Every class keeps its weight, including a class without positives (whose F2 is 0). The
    result has the unit of ``f2``, so per-class F2 in percent gives F2_CIW in percent.

    Args:
        f2: Per-class F2 of the 17 defect classes in ``DEFECT_CODES`` order, without Normal.
        weights: The 17 class-importance weights.

    Returns:
        F2_CIW.

    Raises:
        EvaluationError: If ``f2`` does not have 17 finite entries or ``weights`` is invalid.
    """
    weight_array = _check_weights(weights)
    f2_array = np.asarray(f2, dtype=np.float64)
    if f2_array.shape != (N_DEFECTS,) or not np.all(np.isfinite(f2_array)):
        raise EvaluationError(
            f"f2 is {f2_array.tolist()}; expected {N_DEFECTS} finite values, one per class "
            f"{', '.join(DEFECT_CODES)}"
        )
    return float(np.sum(f2_array * weight_array) / np.sum(weight_array))


def average_precision(scores: Any, targets: Any) -> float:
    """Compute the ranking average precision of one class.

    The images are ranked by descending score and AP is the mean, over the positives, of the
    precision at each positive's rank, as in the official code. A class without positives gets 0.

    Tied scores: the official code breaks ties by the order of numpy's unstable ``argsort``, so
    its AP then depends on the row order and the sort algorithm. Here all images with the same
    score count as retrieved together, so every positive in a tied group gets the precision at
    the end of the group. This is independent of row order, equals the official value when no
    scores tie, and equals ``sklearn.metrics.average_precision_score`` whenever the class has a
    positive.

    Args:
        scores: Scores of one class, shape (n,).
        targets: 0/1 labels of the same images, shape (n,).

    Returns:
        The AP in [0, 1].
    """
    score_column = np.asarray(scores, dtype=np.float64)
    target_column = np.asarray(targets).astype(bool)
    n_positive = int(target_column.sum())
    if n_positive == 0:
        return 0.0

    order = np.argsort(-score_column, kind="stable")
    sorted_scores = score_column[order]
    true_positives = np.cumsum(target_column[order])

    # The last index of every group of equal scores, and the positives found up to it.
    group_end = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
    found = true_positives[group_end]
    positives_in_group = np.diff(found, prepend=0)
    precision_at_end = found / (group_end + 1)
    return float(np.sum(positives_in_group * precision_at_end) / n_positive)


class MetricAccumulator:
    """Accumulate Sewer-ML metrics over batches, as for a validation loop.

    ``update`` adds the counts of each batch and keeps a copy of its scores and targets, which AP
    needs. ``compute`` returns the same numbers as :func:`evaluate` on all rows at once.
    Validation messages number rows from 0 across all batches passed since the last ``reset``.

    Args:
        weights: The 17 class-importance weights for F2_CIW.
        threshold: A class is predicted when its score is >= ``threshold``, in (0, 1].

    Raises:
        EvaluationError: If ``weights`` or ``threshold`` is invalid.
    """

    def __init__(self, *, weights: Sequence[float] = CIW, threshold: float = 0.5):
        self.weights = _check_weights(weights)
        self.threshold = _check_threshold(threshold)
        self.reset()

    def reset(self) -> None:
        """Forget every batch passed so far."""
        self.n_rows = 0
        self._np = np.zeros(N_COLUMNS, dtype=np.int64)
        self._nc = np.zeros(N_COLUMNS, dtype=np.int64)
        self._ng = np.zeros(N_COLUMNS, dtype=np.int64)
        self._exact_matches = 0
        self._scores: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []

    def update(self, targets: Any, scores: Any) -> None:
        """Add one batch.

        Args:
            targets: Array of shape (n, 17) with 0/1 labels in ``DEFECT_CODES`` order.
            scores: Array of shape (n, 17) with probabilities in [0, 1].

        Raises:
            EvaluationError: If the batch is invalid (see :func:`evaluate`). The accumulated
                state then stays unchanged.
        """
        target_matrix, score_matrix = _check_inputs(targets, scores, row_offset=self.n_rows)
        predicted = score_matrix >= self.threshold

        # Column 18: ground-truth Normal has no label, predicted Normal has no class predicted.
        target_columns = np.column_stack([target_matrix, ~target_matrix.any(axis=1)])
        predicted_columns = np.column_stack([predicted, ~predicted.any(axis=1)])

        self._np += predicted_columns.sum(axis=0)
        self._nc += (target_columns & predicted_columns).sum(axis=0)
        self._ng += target_columns.sum(axis=0)
        self._exact_matches += int(np.all(predicted == target_matrix, axis=1).sum())
        self._scores.append(score_matrix)
        self._targets.append(target_matrix)
        self.n_rows += score_matrix.shape[0]

    def compute(self) -> dict[str, Any]:
        """Compute every metric over all batches passed so far.

        Returns:
            The dict described in :func:`evaluate`.

        Raises:
            EvaluationError: If no rows have been passed.
        """
        if self.n_rows == 0:
            raise EvaluationError("no images to evaluate; pass at least one row of targets")

        results = metrics_from_counts(self._np, self._nc, self._ng, weights=self.weights)

        # NOTE: the official code computes EMAcc at 0.5 whatever threshold it is given; here
        # EMAcc uses the same threshold as the counts.
        results["EMAcc"] = self._exact_matches / self.n_rows

        scores = np.concatenate(self._scores)
        targets = np.concatenate(self._targets)
        ap = np.array([average_precision(scores[:, k], targets[:, k]) for k in range(N_DEFECTS)])
        results["AP"] = ap
        results["mAP"] = float(ap.mean())
        return results


def _zero_nan(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), 0.0, values)


def _check_threshold(threshold: float) -> float:
    value = float(threshold)
    if not 0.0 < value <= 1.0:
        raise EvaluationError(f"threshold is {threshold!r}; expected a number in (0, 1]")
    return value


def _check_weights(weights: Sequence[float]) -> np.ndarray:
    array = np.asarray(weights, dtype=np.float64)
    if array.shape != (N_DEFECTS,):
        raise EvaluationError(
            f"weights has shape {array.shape}; expected {N_DEFECTS} class-importance weights, "
            f"one per class {', '.join(DEFECT_CODES)}"
        )
    if not np.all(np.isfinite(array)) or np.any(array < 0) or array.sum() <= 0:
        raise EvaluationError(
            f"weights are {array.tolist()}; expected finite non-negative numbers with a "
            "positive sum"
        )
    return array


def _check_counts(counts: Any, name: str) -> np.ndarray:
    array = np.asarray(counts, dtype=np.float64)
    if array.shape != (N_COLUMNS,):
        raise EvaluationError(
            f"{name} has shape {array.shape}; expected {N_COLUMNS} counts, one per column "
            f"{', '.join(COLUMNS)}"
        )
    invalid = np.flatnonzero(~np.isfinite(array) | (array < 0) | (array != np.round(array)))
    if invalid.size:
        k = int(invalid[0])
        raise EvaluationError(
            f"{name} of column {k} ({COLUMNS[k]}) is {array[k].item()!r}; "
            "expected a whole number >= 0"
        )
    return array


def _check_inputs(targets: Any, scores: Any, *, row_offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate one batch and return it as a boolean target and a float64 score matrix."""
    target_array = np.asarray(targets)
    score_array = np.asarray(scores)
    for name, array in (("targets", target_array), ("scores", score_array)):
        if array.ndim != 2 or array.shape[1] != N_DEFECTS:
            raise EvaluationError(
                f"{name} has shape {array.shape}; expected (n, {N_DEFECTS}) with the columns "
                f"{', '.join(DEFECT_CODES)}"
            )
        if array.dtype.kind not in "biuf":
            raise EvaluationError(f"{name} has dtype {array.dtype}; expected real numbers")
    if target_array.shape[0] != score_array.shape[0]:
        raise EvaluationError(
            f"targets has {target_array.shape[0]} rows but scores has {score_array.shape[0]}; "
            "expected one score row per image"
        )
    if target_array.shape[0] == 0:
        raise EvaluationError("targets and scores have no rows; expected at least one image")

    score_matrix = score_array.astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad_scores = ~((score_matrix >= 0.0) & (score_matrix <= 1.0))
    if bad_scores.any():
        row, column = (int(i) for i in np.argwhere(bad_scores)[0])
        raise EvaluationError(
            f"scores row {row + row_offset}, column {column} ({DEFECT_CODES[column]}) is "
            f"{score_matrix[row, column].item()!r}; expected a probability in [0, 1]"
        )

    target_values = target_array.astype(np.float64)
    bad_targets = ~((target_values == 0.0) | (target_values == 1.0))
    if bad_targets.any():
        row, column = (int(i) for i in np.argwhere(bad_targets)[0])
        raise EvaluationError(
            f"targets row {row + row_offset}, column {column} ({DEFECT_CODES[column]}) is "
            f"{target_array[row, column].item()!r}; expected 0 or 1"
        )

    return target_values == 1.0, score_matrix
