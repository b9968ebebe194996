"""Class and task weights for the Sewer-ML and CT-GNN training losses (numpy only).

The functions return numpy arrays; training code converts them to tensors. They take the
per-class counts that :func:`class_counts` computes from a dataset's ``targets`` arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.errors import FieldHarnessError, UnknownNameError
from sewerml.classes import CIW, DEFECT_CODES
from sewerml.tasks import IGNORE_INDEX

__all__ = [
    "CTGNN_TASK_RATIOS",
    "IGNORE_INDEX",
    "class_counts",
    "effective_number_weights",
    "pos_ciw_weights",
    "positive_weights",
    "task_weights",
]

logger = logging.getLogger(__name__)

# CT-GNN's fixed task weights, defect : water : shape : material = 27 : 1 : 1 : 1, from the
# training command of the CT-GNN README (Haurum et al., WACV 2022).
CTGNN_TASK_RATIOS: dict[str, float] = {"defect": 27.0, "water": 1.0, "shape": 1.0, "material": 1.0}


def class_counts(targets: Any, num_classes: int) -> np.ndarray:
    """Count the images per class.

    Args:
        targets: A multi-hot array [N, num_classes] of 0/1 (the defect task), or class indices
            [N] with ``IGNORE_INDEX`` for an image without a label, which is not counted.
        num_classes: Number of classes of the task.

    Returns:
        int64 array [num_classes].

    Raises:
        FieldHarnessError: If the shape does not fit ``num_classes`` or a class index is out of
            range; the message names the row and value.
    """
    array = np.asarray(targets)
    if array.ndim == 2:
        if array.shape[1] != num_classes:
            raise FieldHarnessError(
                f"targets have {array.shape[1]} columns; expected {num_classes}, one per class"
            )
        return (array != 0).sum(axis=0).astype(np.int64)
    if array.ndim != 1:
        raise FieldHarnessError(
            f"targets have shape {array.shape}; expected [N] class indices or [N, {num_classes}]"
        )

    valid = (array == IGNORE_INDEX) | ((array >= 0) & (array < num_classes))
    bad = np.flatnonzero(~valid)
    if bad.size:
        row = int(bad[0])
        raise FieldHarnessError(
            f"target in row {row} is {array[row].item()!r}; expected a class index in "
            f"0..{num_classes - 1} or {IGNORE_INDEX} for no label"
        )
    kept = array[array != IGNORE_INDEX].astype(np.int64)
    return np.bincount(kept, minlength=num_classes).astype(np.int64)


def positive_weights(positives: Any, total: int) -> np.ndarray:
    """Compute the Sewer-ML BCE ``pos_weight`` (N - N_c) / N_c of every class.

    Source: Sewer-ML paper (Haurum & Moeslund, CVPR 2021), Section 4.2, computed on the
    training split.

    Args:
        positives: Positive count N_c per class.
        total: Number of images N.

    Returns:
        float64 array. A class without positives gets weight 0 and a logged warning; its
        positive term never occurs in training, so the value has no effect there. CT-GNN's
        ``class_weight.py`` uses the same rule.

    Raises:
        FieldHarnessError: If a count is negative or above ``total``.
    """
    counts = np.asarray(positives, dtype=np.float64)
    if total < 1 or np.any(counts < 0) or np.any(counts > total):
        raise FieldHarnessError(
            f"positive counts {counts.tolist()} with total {total}; expected counts in "
            f"0..total and total >= 1"
        )
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        logger.warning("classes %s have no positives; their pos_weight is set to 0",
                       empty.tolist())
    safe = np.where(counts > 0, counts, 1.0)
    return np.where(counts > 0, (total - counts) / safe, 0.0)


def pos_ciw_weights(weights: Sequence[float] = CIW) -> np.ndarray:
    """Rescale the class-importance weights to sum to the class count (CT-GNN's "PosCIW").

    Returns:
        float64 array [17] in ``DEFECT_CODES`` order: CIW_k * 17 / sum(CIW).
    """
    array = np.asarray(weights, dtype=np.float64)
    if array.shape != (len(DEFECT_CODES),) or np.any(array <= 0):
        raise FieldHarnessError(
            f"weights are {array.tolist()}; expected {len(DEFECT_CODES)} positive numbers"
        )
    return array * array.size / array.sum()


def effective_number_weights(counts: Any, beta: float = 0.9999) -> np.ndarray:
    """Compute class weights from the effective number of samples (Cui et al., CVPR 2019).

    w_c = (1 - beta) / (1 - beta^n_c), renormalised so that the weights sum to the number of
    classes. CT-GNN uses beta = 0.9999 for the water, shape and material tasks.

    Args:
        counts: Number of images n_c per class.
        beta: In [0, 1).

    Returns:
        float64 array. A class with n_c = 0 gets weight 0 (as in CT-GNN's ``class_weight.py``)
        and the other weights are scaled so that all still sum to the number of classes.

    Raises:
        FieldHarnessError: If ``beta`` is outside [0, 1), a count is negative, or every count
            is 0.
    """
    if not 0.0 <= beta < 1.0:
        raise FieldHarnessError(f"beta is {beta!r}; expected a number in [0, 1)")
    array = np.asarray(counts, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or np.any(array < 0) or not np.any(array > 0):
        raise FieldHarnessError(
            f"counts are {array.tolist()}; expected counts >= 0 per class with at least one > 0"
        )

    present = array > 0
    effective = 1.0 - np.power(beta, np.where(present, array, 1.0))
    raw = np.where(present, (1.0 - beta) / effective, 0.0)
    return raw * array.size / raw.sum()


def task_weights(
    tasks: Sequence[str], ratios: Mapping[str, float] = CTGNN_TASK_RATIOS
) -> dict[str, float]:
    """Rescale fixed task ratios to sum to the number of tasks.

    With the four CT-GNN tasks and ratios 27 : 1 : 1 : 1 this gives defect 3.6 and 2/15
    (0.1333...) for each other task.

    Raises:
        UnknownNameError: If a task has no ratio.
        FieldHarnessError: If ``tasks`` is empty or a ratio is not positive.
    """
    if not tasks:
        raise FieldHarnessError("tasks is empty; expected at least one task name")
    for task in tasks:
        if task not in ratios:
            raise UnknownNameError("task", task, ratios)
        if not ratios[task] > 0:
            raise FieldHarnessError(f"ratio of task {task!r} is {ratios[task]!r}; expected > 0")
    total = sum(float(ratios[task]) for task in tasks)
    return {task: float(ratios[task]) * len(tasks) / total for task in tasks}
