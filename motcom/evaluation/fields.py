"""Field names of the results, their TrackEval types and the summary scale.

The lists follow the metric classes of TrackEval 1.3.0 (``float_fields``, ``integer_fields``,
``float_array_fields``, ``integer_array_fields``, ``summary_fields``) and the fixed summary order
of ``trackeval.utils.write_summary_results``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from motcom.evaluation.clear import (
    CLEAR_FLOAT_FIELDS,
    CLEAR_INTEGER_FIELDS,
    CLEAR_MAIN_FLOAT_FIELDS,
    CLEAR_MAIN_INTEGER_FIELDS,
)
from motcom.evaluation.hota import (
    ALPHA_LABELS,
    HOTA_FLOAT_ARRAY_FIELDS,
    HOTA_FLOAT_FIELDS,
    HOTA_INTEGER_ARRAY_FIELDS,
)
from motcom.evaluation.identity import IDENTITY_FLOAT_FIELDS, IDENTITY_INTEGER_FIELDS

COUNT_FIELDS = ["Dets", "GT_Dets", "IDs", "GT_IDs"]

METRIC_FIELDS: dict[str, tuple[str, ...]] = {
    "HOTA": tuple(HOTA_FLOAT_ARRAY_FIELDS + HOTA_INTEGER_ARRAY_FIELDS + HOTA_FLOAT_FIELDS),
    "CLEAR": tuple(CLEAR_FLOAT_FIELDS + CLEAR_INTEGER_FIELDS),
    "Identity": tuple(IDENTITY_FLOAT_FIELDS + IDENTITY_INTEGER_FIELDS),
    "Count": tuple(COUNT_FIELDS),
}
"""Every field of an :func:`~motcom.evaluation.evaluate_sequence` result, per metric family."""

ARRAY_FIELDS = frozenset(HOTA_FLOAT_ARRAY_FIELDS + HOTA_INTEGER_ARRAY_FIELDS)
"""Fields holding a ``(19,)`` array over the HOTA alpha thresholds."""

SUMMARY_FIELDS: tuple[str, ...] = (
    *HOTA_FLOAT_ARRAY_FIELDS,
    *HOTA_FLOAT_FIELDS,
    *CLEAR_MAIN_FLOAT_FIELDS[:-1],
    *CLEAR_MAIN_INTEGER_FIELDS,
    CLEAR_MAIN_FLOAT_FIELDS[-1],
    *IDENTITY_FLOAT_FIELDS,
    *IDENTITY_INTEGER_FIELDS,
    *COUNT_FIELDS,
)
"""Columns of TrackEval's ``pedestrian_summary.txt``, in its order (``sMOTA`` after ``Frag``)."""

SUMMARY_INTEGER_FIELDS = frozenset(
    CLEAR_MAIN_INTEGER_FIELDS + IDENTITY_INTEGER_FIELDS + COUNT_FIELDS
)
"""Summary columns written as integers; the others are ratios shown x100."""


def _detailed_columns() -> list[str]:
    columns = list(HOTA_FLOAT_FIELDS)
    for field in HOTA_FLOAT_ARRAY_FIELDS + HOTA_INTEGER_ARRAY_FIELDS:
        columns += [f"{field}___{label}" for label in ALPHA_LABELS]
        columns.append(f"{field}___AUC")
    columns += CLEAR_FLOAT_FIELDS + CLEAR_INTEGER_FIELDS
    columns += IDENTITY_FLOAT_FIELDS + IDENTITY_INTEGER_FIELDS
    columns += COUNT_FIELDS
    return columns


DETAILED_COLUMNS: tuple[str, ...] = tuple(_detailed_columns())
"""The 275 value columns of TrackEval's ``pedestrian_detailed.csv`` (after ``seq``)."""


def detailed_values(res: Mapping[str, Any]) -> list[Any]:
    """Return one row of the detailed CSV: scalars as stored, arrays per alpha and their mean."""
    values: list[Any] = [res[field] for field in HOTA_FLOAT_FIELDS]
    for field in HOTA_FLOAT_ARRAY_FIELDS + HOTA_INTEGER_ARRAY_FIELDS:
        values += list(res[field])
        values.append(np.mean(res[field]))
    for field in CLEAR_FLOAT_FIELDS + CLEAR_INTEGER_FIELDS:
        values.append(res[field])
    for field in IDENTITY_FLOAT_FIELDS + IDENTITY_INTEGER_FIELDS + COUNT_FIELDS:
        values.append(res[field])
    return values


def headline(res: Mapping[str, Any]) -> dict[str, float]:
    """Return the summary numbers of one result on TrackEval's summary scale.

    Ratios are multiplied by 100 (HOTA arrays averaged over alpha first); counts are ints. The
    values are not rounded; :func:`motcom.trackeval_output.write_summary` rounds them to five
    significant digits as TrackEval does.
    """
    out: dict[str, float] = {}
    for field in SUMMARY_FIELDS:
        value = res[field]
        if field in SUMMARY_INTEGER_FIELDS:
            out[field] = int(value)
        elif field in ARRAY_FIELDS:
            out[field] = float(100 * np.mean(value))
        else:
            out[field] = float(100 * float(value))
    return out
