"""The cross-task class graph of CT-GNN, built a priori from training labels (numpy only).

Source: Haurum, Madadi, Escalera & Moeslund, "Multi-Task Classification of Sewer Pipe Defects
and Properties using a Cross-Task Graph Neural Network Decoder", WACV 2022, and the adjacency
script of its code (``create_adjacency_matrix.py``, ``graph_normalization.py``).

Every class of every task is one node, in task order and class order within a task, e.g. the 17
defect codes, then the 4 water-level bins. The graph is built in steps:

1. ``cooccurrence``: C[i, j] = number of images labelled with both class i and class j; the
   diagonal contains the per-class counts.
2. ``conditional_probability``: P[i, j] = P(class i | class j) = C[i, j] / C[j, j].
3. ``binarize``: A[i, j] = 1 where P[i, j] >= 1 / (number of classes in the task of row i).
4. Optional ML-GCN reweighting (Chen et al., "Multi-Label Image Recognition with Graph
   Convolutional Networks", CVPR 2019) and a row-sum normalisation.

The CT-GNN training command uses the binary graph with symmetric normalisation.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from harness.atomic import write_text
from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError
from sewerml.tasks import IGNORE_INDEX

__all__ = [
    "GRAPHS",
    "IGNORE_INDEX",
    "NORMALIZATIONS",
    "binarize",
    "build_adjacency",
    "conditional_probability",
    "cooccurrence",
    "load_adjacency_csv",
    "ml_gcn_reweight",
    "node_names",
    "normalize",
    "save_adjacency_csv",
]

logger = logging.getLogger(__name__)

# "binary": the thresholded conditional probabilities. "conditional": the conditional
# probabilities kept only on the edges of the binary graph; with reweight=0.2 added, this is
# CT-GNN's "reweightedCond" graph.
# "full": every node connected to every node, so a GAT learns the graph from attention alone.
GRAPHS: tuple[str, ...] = ("binary", "conditional", "full")
NORMALIZATIONS: tuple[str, ...] = ("symmetric", "in_degree", "none")


def cooccurrence(labels: Mapping[str, np.ndarray], task_classes: Mapping[str, int]) -> np.ndarray:
    """Count how often every pair of classes is labelled on the same image.

    Args:
        labels: Labels per task for the same N images. A 2-D array [N, n_classes] of 0/1 is a
            multi-label task (the defect task); a 1-D integer array [N] contains class indices of a
            multi-class task, with ``IGNORE_INDEX`` (-100) for an image without that label,
            which then adds nothing to that task's rows and columns.
        task_classes: Number of classes per task; its order is the node order.

    Returns:
        int64 array [C_total, C_total] with C = Y^T Y, where Y stacks the one-hot label matrices
        of the tasks side by side. The diagonal contains the number of images per class.

    Raises:
        FieldHarnessError: If a task of ``task_classes`` has no labels or the tasks differ in
            their number of images.
        DataFormatError: If a label array has the wrong shape or a value that is not a valid
            class; the message names the task, the row and the value.
    """
    blocks = [_one_hot(task, labels, n_classes) for task, n_classes in task_classes.items()]
    if not blocks:
        raise FieldHarnessError("task_classes is empty; expected at least one task")

    rows = {block.shape[0] for block in blocks}
    if len(rows) > 1:
        counts = {task: block.shape[0] for task, block in zip(task_classes, blocks, strict=True)}
        raise FieldHarnessError(
            f"the tasks have different numbers of images: {counts}; expected one row per image "
            "in every task"
        )

    # Integer matrix products do not use BLAS and take seconds per million images; float64
    # products of 0/1 entries are exact (every partial sum is an integer below 2**53).
    stacked = np.concatenate(blocks, axis=1).astype(np.float64)
    return np.rint(stacked.T @ stacked).astype(np.int64)


def conditional_probability(cooc: np.ndarray) -> np.ndarray:
    """Divide each column of a co-occurrence matrix by its class count: P(row class | column class).

    Args:
        cooc: Square co-occurrence matrix from :func:`cooccurrence`.

    Returns:
        float64 array of the same shape with P[i, j] = C[i, j] / C[j, j]. A column whose class
        has no images is all zeros.

    Raises:
        FieldHarnessError: If ``cooc`` is not square.
    """
    matrix = _square(cooc, "cooc")
    counts = np.diag(matrix)
    safe = np.where(counts > 0, counts, 1.0)
    return np.where(counts[None, :] > 0, matrix / safe[None, :], 0.0)


def binarize(cond: np.ndarray, task_sizes: Sequence[int]) -> np.ndarray:
    """Threshold conditional probabilities at 1 / (number of classes in the row's task).

    The comparison is ``>=`` (an edge where P equals the threshold), as in CT-GNN's adjacency
    script, which sets values below the threshold to 0 and the rest to 1.

    Args:
        cond: Conditional probabilities from :func:`conditional_probability`.
        task_sizes: Number of classes per task in node order; they must sum to the matrix size.

    Returns:
        float64 array of 0 and 1. The diagonal is 1 for every class with at least one image.

    Raises:
        FieldHarnessError: If ``task_sizes`` does not add up to the matrix size.
    """
    matrix = _square(cond, "cond")
    thresholds = _row_thresholds(task_sizes, matrix.shape[0])
    return (matrix >= thresholds[:, None]).astype(np.float64)


def ml_gcn_reweight(adjacency: np.ndarray, neighbour_weight: float = 0.2) -> np.ndarray:
    """Apply ML-GCN's reweighting: neighbours share ``neighbour_weight``, the node keeps the rest.

    Each row's off-diagonal entries are scaled to sum to p = ``neighbour_weight`` and the diagonal
    is set to 1 - p. A row without any neighbour gets diagonal 1, as in CT-GNN's script.

    Args:
        adjacency: Non-negative square matrix; its diagonal is ignored.
        neighbour_weight: p in [0, 1]; ML-GCN and CT-GNN use 0.2.

    Returns:
        float64 array whose rows each sum to 1.

    Raises:
        FieldHarnessError: If ``neighbour_weight`` is outside [0, 1] or the matrix is not square.
    """
    if not 0.0 <= neighbour_weight <= 1.0:
        raise FieldHarnessError(f"neighbour_weight is {neighbour_weight!r}; expected p in [0, 1]")
    matrix = _square(adjacency, "adjacency").copy()
    np.fill_diagonal(matrix, 0.0)

    row_sums = matrix.sum(axis=1, keepdims=True)
    has_neighbours = row_sums[:, 0] > 0
    scaled = neighbour_weight * matrix / np.where(row_sums > 0, row_sums, 1.0)
    np.fill_diagonal(scaled, np.where(has_neighbours, 1.0 - neighbour_weight, 1.0))
    return scaled


def normalize(adjacency: np.ndarray, normalization: str | None = "symmetric") -> np.ndarray:
    """Normalise an adjacency matrix by its row sums (the in-degrees, since H' = A H).

    ``"symmetric"`` gives D^-1/2 A D^-1/2 and ``"in_degree"`` gives D^-1 A, with D the diagonal
    matrix of row sums, as in CT-GNN's ``graph_normalization.py``. ``"none"`` or None returns
    a copy.

    Args:
        adjacency: Non-negative square matrix.
        normalization: One of ``NORMALIZATIONS`` or None.

    Returns:
        float64 array. A node whose row sums to 0 keeps all-zero entries (CT-GNN's script would
        divide by zero there).

    Raises:
        UnknownNameError: If ``normalization`` is not one of ``NORMALIZATIONS``.
    """
    matrix = _square(adjacency, "adjacency")
    if normalization is None or normalization == "none":
        return matrix.copy()
    if normalization not in NORMALIZATIONS:
        raise UnknownNameError("normalization", normalization, NORMALIZATIONS)

    # NOTE: the degree is the row sum (edges into node i, since row i receives from column j).
    # CT-GNN's own normalisation code was not available to check which degree it uses on this
    # non-symmetric graph; ML-GCN's gen_adj takes the sums of the other orientation.
    degree = matrix.sum(axis=1)
    if normalization == "in_degree":
        inverse = np.where(degree > 0, 1.0 / np.where(degree > 0, degree, 1.0), 0.0)
        return inverse[:, None] * matrix

    inverse_root = np.where(degree > 0, 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)), 0.0)
    return inverse_root[:, None] * matrix * inverse_root[None, :]


def build_adjacency(
    labels: Mapping[str, np.ndarray],
    task_classes: Mapping[str, int],
    *,
    graph: str = "binary",
    reweight: float | None = None,
    normalization: str | None = "symmetric",
) -> np.ndarray:
    """Build the CT-GNN cross-task graph from training labels.

    Args:
        labels: Labels per task, as for :func:`cooccurrence` (the dataset's ``targets`` dict).
            Ignored for ``graph="full"`` apart from its checks.
        task_classes: Number of classes per task, in node order.
        graph: One of ``GRAPHS``.
        reweight: The ML-GCN neighbour weight p (0.2 in ML-GCN and CT-GNN), or None for no
            reweighting. It is applied before the normalisation.
        normalization: ``"symmetric"``, ``"in_degree"``, ``"none"`` or None.

    Returns:
        float32 array [C_total, C_total]; entry [i, j] > 0 means node i receives from node j.

    Raises:
        UnknownNameError: If ``graph`` or ``normalization`` is unknown.
        FieldHarnessError, DataFormatError: As for :func:`cooccurrence`.
    """
    if graph not in GRAPHS:
        raise UnknownNameError("graph", graph, GRAPHS)
    if normalization is not None and normalization not in NORMALIZATIONS:
        raise UnknownNameError("normalization", normalization, NORMALIZATIONS)

    counts = cooccurrence(labels, task_classes)
    if graph == "full":
        matrix = np.ones(counts.shape, dtype=np.float64)
    else:
        cond = conditional_probability(counts)
        matrix = binarize(cond, list(task_classes.values()))
        if graph == "conditional":
            matrix = cond * matrix

    if reweight is not None:
        matrix = ml_gcn_reweight(matrix, reweight)
    matrix = normalize(matrix, normalization)

    logger.debug("built a %s graph with %d nodes and %d edges (reweight %s, normalization %s)",
                 graph, matrix.shape[0], int(np.count_nonzero(matrix)), reweight, normalization)
    return matrix.astype(np.float32)


def node_names(task_classes_with_names: Mapping[str, Sequence[str]]) -> list[str]:
    """Name the graph nodes ``task:class`` in node order, e.g. ``defect:RB``, ``water:0%<5%``."""
    return [f"{task}:{name}" for task, names in task_classes_with_names.items() for name in names]


def save_adjacency_csv(
    matrix: np.ndarray, names: Sequence[str], path: str | os.PathLike[str]
) -> None:
    """Write a square matrix as CSV with the node names as header row and first column.

    Values are written with ``repr`` so that :func:`load_adjacency_csv` reads back the same
    float64 numbers. The file is written atomically.

    Raises:
        FieldHarnessError: If ``matrix`` is not square or ``names`` does not have one name per
            node.
    """
    array = _square(matrix, "matrix")
    if len(names) != array.shape[0]:
        raise FieldHarnessError(
            f"got {len(names)} names for a {array.shape[0]}x{array.shape[0]} matrix; expected "
            "one name per node"
        )

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["", *names])
    for name, row in zip(names, array, strict=True):
        writer.writerow([name, *(repr(float(value)) for value in row)])
    write_text(path, buffer.getvalue())


def load_adjacency_csv(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
    """Read a matrix written by :func:`save_adjacency_csv`.

    Returns:
        The float64 matrix and the node names.

    Raises:
        DataFormatError: If the file is empty, a row has the wrong number of fields or the wrong
            name, or a value is not a finite number; the message names the line and field.
    """
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise DataFormatError("the file is empty", path=path, expected="a header row of names")

    names = rows[0][1:]
    if len(rows) - 1 != len(names):
        raise DataFormatError(
            f"the file has {len(rows) - 1} data rows for {len(names)} names",
            path=path, expected="one row per name in the header",
        )

    matrix = np.zeros((len(names), len(names)), dtype=np.float64)
    for index, row in enumerate(rows[1:]):
        line = index + 2
        if len(row) != len(names) + 1:
            raise DataFormatError(f"the row has {len(row)} fields", path=path, line=line,
                                  expected=f"{len(names) + 1} (the name and one value per node)")
        if row[0] != names[index]:
            raise DataFormatError("the row name differs from the header", path=path, line=line,
                                  field="name", value=row[0], expected=repr(names[index]))
        for column, text in enumerate(row[1:]):
            matrix[index, column] = _parse_value(text, path, line, names[column])
    return matrix, names


def _parse_value(text: str, path: str | os.PathLike[str], line: int, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataFormatError("invalid matrix entry", path=path, line=line, field=field,
                              value=text, expected="a finite number")
    return value


def _one_hot(task: str, labels: Mapping[str, np.ndarray], n_classes: int) -> np.ndarray:
    if task not in labels:
        raise FieldHarnessError(
            f"no labels for task {task!r}; labels has tasks {sorted(labels)}"
        )
    array = np.asarray(labels[task])

    if array.ndim == 2:
        if array.shape[1] != n_classes:
            raise DataFormatError(
                f"labels of task {task!r} have {array.shape[1]} columns", field=task,
                expected=f"{n_classes} columns, one per class",
            )
        bad = np.argwhere((array != 0) & (array != 1))
        if bad.size:
            row, column = (int(i) for i in bad[0])
            raise DataFormatError(
                f"labels of task {task!r} in row {row}, column {column} are not 0 or 1",
                field=task, value=array[row, column].item(), expected="0 or 1",
            )
        return array.astype(np.int64)

    if array.ndim != 1:
        raise DataFormatError(
            f"labels of task {task!r} have shape {array.shape}", field=task,
            expected="[N] class indices or [N, n_classes] of 0/1",
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise DataFormatError(f"labels of task {task!r} have dtype {array.dtype}", field=task,
                              expected="integer class indices")
    valid = (array == IGNORE_INDEX) | ((array >= 0) & (array < n_classes))
    bad_rows = np.flatnonzero(~valid)
    if bad_rows.size:
        row = int(bad_rows[0])
        raise DataFormatError(
            f"label of task {task!r} in row {row} is not a class index", field=task,
            value=int(array[row]), expected=f"0..{n_classes - 1} or {IGNORE_INDEX} (no label)",
        )

    one_hot = np.zeros((array.shape[0], n_classes), dtype=np.int64)
    labelled = np.flatnonzero(array != IGNORE_INDEX)
    one_hot[labelled, array[labelled]] = 1
    return one_hot


def _square(matrix: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise FieldHarnessError(f"{name} has shape {array.shape}; expected a square matrix")
    return array


def _row_thresholds(task_sizes: Sequence[int], size: int) -> np.ndarray:
    sizes = [int(n) for n in task_sizes]
    if sum(sizes) != size or any(n < 1 for n in sizes):
        raise FieldHarnessError(
            f"task_sizes {sizes} do not add up to the matrix size {size}; expected one positive "
            "class count per task in node order"
        )
    return np.concatenate([np.full(n, 1.0 / n) for n in sizes])
