"""Write TrackEval's result files: ``pedestrian_summary.txt`` and ``pedestrian_detailed.csv``.

The layout follows ``trackeval.utils.write_summary_results`` / ``write_detailed_results`` and the
metric classes' ``summary_results`` / ``detailed_results`` of TrackEval 1.3.0:

* summary: two space-separated lines (``\\r\\n`` ends, as Python's ``csv`` writes them), the
  field names in TrackEval's fixed order and the COMBINED values, ratios x100 formatted with
  ``{:1.5g}`` and counts as integers;
* detailed: one CSV row per sequence in sorted name order, then ``COMBINED``. Values are written
  with ``str()`` at full precision on the 0-1 scale. Integer counts appear as ``5`` and float
  counts (``Frag``, ``HOTA_TP___*``) as ``5.0``, as TrackEval writes them.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.atomic import write_text
from harness.errors import EvaluationError
from motcom.evaluation.combine import COMBINED
from motcom.evaluation.fields import (
    ARRAY_FIELDS,
    DETAILED_COLUMNS,
    SUMMARY_FIELDS,
    SUMMARY_INTEGER_FIELDS,
    detailed_values,
)


def _combined_row(results: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    if COMBINED not in results:
        raise EvaluationError(
            f"results have no {COMBINED!r} entry; add combine_sequences(results) under that key"
        )
    return results[COMBINED]


def summary_values(res: Mapping[str, Any]) -> list[str]:
    """Format one result as the value line of TrackEval's summary file."""
    values = []
    for field in SUMMARY_FIELDS:
        value = res[field]
        if field in SUMMARY_INTEGER_FIELDS:
            values.append(f"{int(value):d}")
        elif field in ARRAY_FIELDS:
            values.append(f"{100 * np.mean(value):1.5g}")
        else:
            values.append(f"{100 * float(value):1.5g}")
    return values


def format_summary(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Return the text of ``pedestrian_summary.txt`` for results that include ``"COMBINED"``."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=" ")
    writer.writerow(SUMMARY_FIELDS)
    writer.writerow(summary_values(_combined_row(results)))
    return buffer.getvalue()


def format_detailed(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Return the text of ``pedestrian_detailed.csv`` for results that include ``"COMBINED"``."""
    combined = _combined_row(results)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["seq", *DETAILED_COLUMNS])
    for name in sorted(results):
        if name != COMBINED:
            writer.writerow([name, *detailed_values(results[name])])
    writer.writerow([COMBINED, *detailed_values(combined)])
    return buffer.getvalue()


def write_summary(
    results_with_combined: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str]
) -> None:
    """Write TrackEval's ``pedestrian_summary.txt`` (the COMBINED row) atomically to ``path``.

    Raises:
        EvaluationError: if ``results_with_combined`` has no ``"COMBINED"`` entry.
    """
    write_text(path, format_summary(results_with_combined))


def write_detailed(
    results_with_combined: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str]
) -> None:
    """Write TrackEval's ``pedestrian_detailed.csv`` (every sequence, then COMBINED) to ``path``.

    Raises:
        EvaluationError: if ``results_with_combined`` has no ``"COMBINED"`` entry.
    """
    write_text(path, format_detailed(results_with_combined))
