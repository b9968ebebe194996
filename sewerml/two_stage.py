"""Combine a binary first stage and a multi-label second stage with the Sewer-ML "replace" rule.

The Sewer-ML benchmark (Haurum & Moeslund, CVPR 2021) runs two stages on every image: a binary
network (Xie et al. 2019) that scores the probability of any defect, and a multi-label network
(TResNet-L) that scores the 17 defect classes. The "replace" rule of the official
``combine_two_stage.py`` (bitbucket.org/aauvap/sewer-ml) merges them. Where the first stage's
defect probability is below 0.5, all 17 class scores become that probability, so no class
reaches the metric threshold of 0.5 and the image counts as Normal. Elsewhere the second
stage's scores stay as they are. All two-stage results of the paper use this rule.

NOTE: The official script cannot run as released. Its argparse option names (such as
``--stage_one_path`` and ``--output_mame``) differ from the keys it reads from the parsed
arguments (such as ``stageOnePath`` and ``outputName``), so it stops with a KeyError. This module
implements the rule as the paper describes it.

NOTE: The official script matches the rows of the two CSV files by position after sorting. Here
they are joined on ``Filename``, and any file name found in only one of the files is an error.

The module does not import torch.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from harness import atomic
from harness.errors import EvaluationError
from sewerml.classes import DEFECT_CODES
from sewerml.plugin import listed_names, read_predictions

__all__ = [
    "BINARY_COLUMN",
    "combine_prediction_csvs",
    "combine_replace",
    "read_binary_predictions",
    "write_binary_predictions",
]

logger = logging.getLogger(__name__)

BINARY_COLUMN = "Defect"
"""Column of the first-stage CSV with the probability that an image shows any defect."""

N_DEFECTS = len(DEFECT_CODES)


def combine_replace(
    binary_scores: Any,
    multilabel_scores: Any,
    threshold: float = 0.5,
) -> np.ndarray:
    """Combine two stages with the "replace" rule of the Sewer-ML benchmark.

    Row i of the result is ``multilabel_scores[i]`` when ``binary_scores[i] >= threshold``.
    Otherwise all 17 entries of row i are ``binary_scores[i]``. With the benchmark's
    ``threshold`` of 0.5, equal to the metric threshold, such a row has no class score of 0.5 or
    more, so the image is predicted Normal.

    NOTE: With ``threshold`` above the metric threshold, a replaced row whose probability lies
    between the two thresholds gets all 17 classes predicted. The paper only uses 0.5.

    Args:
        binary_scores: First-stage defect probabilities in [0, 1], shape (n,) or (n, 1).
        multilabel_scores: Second-stage class probabilities in [0, 1], shape (n, 17), columns
            in ``DEFECT_CODES`` order, rows aligned with ``binary_scores``.
        threshold: First-stage probabilities below this value replace the class scores. A
            value in [0, 1].

    Returns:
        A new float64 array of shape (n, 17).

    Raises:
        EvaluationError: If a shape is wrong, the row counts differ, a score is NaN or outside
            [0, 1], or ``threshold`` is not in [0, 1]. The message names the first invalid row
            (numbered from 0) and, for the class scores, its column.
    """
    _check_threshold(threshold)
    binary = _as_float_array(binary_scores, "binary_scores")
    multilabel = _as_float_array(multilabel_scores, "multilabel_scores")

    if binary.ndim == 2 and binary.shape[1] == 1:
        binary = binary[:, 0]
    if binary.ndim != 1:
        raise EvaluationError(
            f"binary_scores has shape {binary.shape}; expected (n,) or (n, 1), one defect "
            "probability per image"
        )
    if multilabel.ndim != 2 or multilabel.shape[1] != N_DEFECTS:
        raise EvaluationError(
            f"multilabel_scores has shape {multilabel.shape}; expected (n, {N_DEFECTS}), one "
            f"column per class {', '.join(DEFECT_CODES)}"
        )
    if binary.shape[0] != multilabel.shape[0]:
        raise EvaluationError(
            f"binary_scores has {binary.shape[0]} rows but multilabel_scores has "
            f"{multilabel.shape[0]}; expected one row per image in both, in the same order"
        )

    _check_probabilities(binary[:, None], "binary_scores", columns=None)
    _check_probabilities(multilabel, "multilabel_scores", columns=DEFECT_CODES)

    replaced = binary < threshold
    combined = multilabel.copy()
    combined[replaced] = binary[replaced, None]
    logger.debug("replace rule: %d of %d images set to Normal by the first stage",
                 int(replaced.sum()), binary.shape[0])
    return combined


def combine_prediction_csvs(
    binary_csv: str | PathLike[str],
    multilabel_csv: str | PathLike[str],
    output_csv: str | PathLike[str],
    threshold: float = 0.5,
) -> pl.DataFrame:
    """Combine a first-stage CSV and a second-stage CSV into one official prediction CSV.

    The two files are joined on ``Filename``, so their row orders may differ. The output has
    ``Filename`` and the 17 class columns in ``DEFECT_CODES`` order, sorted by ``Filename``,
    which is the format that ``python -m harness eval sewerml`` and the official
    ``calculate_results.py`` read. It is written atomically.

    Args:
        binary_csv: First-stage CSV with ``Filename`` and ``Defect`` (see
            :func:`read_binary_predictions`).
        multilabel_csv: Second-stage CSV with ``Filename`` and the 17 class columns (see
            :func:`sewerml.plugin.read_predictions`).
        output_csv: Path of the combined CSV. Its folder is created if needed.
        threshold: See :func:`combine_replace`.

    Returns:
        The combined table as written: ``Filename`` and the 17 class scores (Float64).

    Raises:
        EvaluationError: If either file is missing or invalid, a file name is repeated, or a
            file name appears in only one of the two files. The message lists such names.
    """
    _check_threshold(threshold)
    binary = read_binary_predictions(binary_csv)
    multilabel = read_predictions(multilabel_csv)

    binary_names = set(binary["Filename"].to_list())
    multilabel_names = set(multilabel["Filename"].to_list())
    only_binary = sorted(binary_names - multilabel_names)
    only_multilabel = sorted(multilabel_names - binary_names)
    if only_binary:
        raise EvaluationError(
            f"{len(only_binary)} image(s) of the first-stage file {binary_csv} have no row in "
            f"the second-stage file {multilabel_csv}: {listed_names(only_binary)}; expected the "
            "same images in both files"
        )
    if only_multilabel:
        raise EvaluationError(
            f"{len(only_multilabel)} image(s) of the second-stage file {multilabel_csv} have no "
            f"row in the first-stage file {binary_csv}: {listed_names(only_multilabel)}; expected "
            "the same images in both files"
        )

    joined = multilabel.join(binary, on="Filename", how="inner").sort("Filename")
    scores = combine_replace(
        joined[BINARY_COLUMN].to_numpy(),
        joined.select(DEFECT_CODES).to_numpy(),
        threshold=threshold,
    )
    score_columns = [pl.Series(code, scores[:, k], dtype=pl.Float64)
                     for k, code in enumerate(DEFECT_CODES)]
    combined = pl.DataFrame([joined["Filename"], *score_columns])

    with atomic.atomic_path(output_csv, suffix=".csv") as tmp:
        combined.write_csv(tmp)
    n_replaced = int((joined[BINARY_COLUMN] < threshold).sum())
    logger.info("wrote %s: %d images, %d predicted Normal by the first stage", output_csv,
                combined.height, n_replaced)
    return combined


def read_binary_predictions(path: str | PathLike[str]) -> pl.DataFrame:
    """Read a first-stage prediction CSV with the columns ``Filename`` and ``Defect``.

    ``Defect`` is the sigmoid probability that the image shows any of the 17 defect classes,
    the binary target of the ``Defect`` column in the Sewer-ML annotation CSVs. Other columns
    are ignored. A UTF-8 byte order mark and CRLF line ends are accepted.

    Returns:
        ``Filename`` (String) and ``Defect`` (Float64), in file order.

    Raises:
        EvaluationError: If the file is missing or unreadable, a column is missing, a file name
            is empty or repeated, or a probability is not a number, NaN or outside [0, 1]. The
            message names the file lines (the header is line 1).
    """
    return read_predictions(path, (BINARY_COLUMN,))


def write_binary_predictions(
    filenames: Sequence[str],
    scores: Any,
    path: str | PathLike[str],
) -> Path:
    """Write first-stage predictions as a CSV with ``Filename`` and ``Defect``, atomically.

    Rows keep the order given. Each probability is written with enough digits to read back the
    same float64.

    Args:
        filenames: Image file names, such as ``00000062.png``, each non-empty and unique.
        scores: Defect probabilities in [0, 1], shape (n,) or (n, 1), aligned with
            ``filenames``.
        path: Output CSV. Its folder is created if needed.

    Returns:
        ``path`` as a Path.

    Raises:
        EvaluationError: If the counts differ, a file name is empty or repeated, or a score is
            NaN or outside [0, 1]. The message names the first such row (numbered from 0).
    """
    names = [str(name).strip() for name in filenames]
    probabilities = _as_float_array(scores, "scores")
    if probabilities.ndim == 2 and probabilities.shape[1] == 1:
        probabilities = probabilities[:, 0]
    if probabilities.ndim != 1 or probabilities.shape[0] != len(names):
        raise EvaluationError(
            f"scores has shape {probabilities.shape} for {len(names)} file names; expected "
            f"({len(names)},), one defect probability per file name"
        )
    for row, name in enumerate(names):
        if not name:
            raise EvaluationError(f"file name in row {row} is empty; expected an image file name")
    seen: dict[str, int] = {}
    for row, name in enumerate(names):
        if name in seen:
            raise EvaluationError(f"file name {name!r} appears in rows {seen[name]} and {row}; "
                                  "expected one row per image")
        seen[name] = row
    _check_probabilities(probabilities[:, None], "scores", columns=None)

    frame = pl.DataFrame({"Filename": names, BINARY_COLUMN: probabilities},
                         schema={"Filename": pl.String, BINARY_COLUMN: pl.Float64})
    path = Path(path)
    with atomic.atomic_path(path, suffix=".csv") as tmp:
        frame.write_csv(tmp)
    return path


def _check_threshold(threshold: float) -> None:
    valid = isinstance(threshold, numbers.Real) and not isinstance(threshold, bool)
    if not valid or not 0.0 <= threshold <= 1.0 or math.isnan(threshold):
        raise EvaluationError(f"threshold is {threshold!r}; expected a number in [0, 1], "
                              "such as the benchmark's 0.5")


def _as_float_array(values: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise EvaluationError(f"{name} is not a numeric array ({err}); expected probabilities "
                              "in [0, 1]") from err


def _check_probabilities(matrix: np.ndarray, name: str, *, columns: Sequence[str] | None) -> None:
    """Raise for the first NaN or out-of-range entry of a 2-D score array, naming its row."""
    invalid = np.isnan(matrix) | (matrix < 0.0) | (matrix > 1.0)
    if not invalid.any():
        return
    row, column = (int(index) for index in np.argwhere(invalid)[0])
    where = f"row {row}" if columns is None else f"row {row}, column {columns[column]}"
    raise EvaluationError(
        f"{name} has {int(invalid.sum())} invalid value(s), the first at {where}: "
        f"{float(matrix[row, column])!r}; expected probabilities in [0, 1] (sigmoid outputs)"
    )
