"""The COMBINED row: TrackEval 1.3.0's ``combine_sequences`` of HOTA, CLEAR, Identity and Count.

Counts and ``MOTP_sum`` are summed. ``AssA``, ``AssRe``, ``AssPr`` and ``LocA`` are averaged with
the per-alpha ``HOTA_TP`` as weights (``LocA`` with a ``max(1e-10, ...)`` guard), so a sequence
without true positives adds nothing to them. Sequences are visited in sorted name order, the
order of TrackEval's serial run, so the floating-point sums agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from motcom.evaluation.clear import CLEAR_SUMMED_FIELDS, clear_final_fields
from motcom.evaluation.fields import COUNT_FIELDS
from motcom.evaluation.hota import HOTA_INTEGER_ARRAY_FIELDS, hota_final_fields
from motcom.evaluation.identity import IDENTITY_INTEGER_FIELDS, identity_final_fields

COMBINED = "COMBINED"
"""Row name of the combination in results and output files."""


def combine_sequences(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Combine per-sequence results into TrackEval's COMBINED row.

    Args:
        results: sequence name -> result of :func:`~motcom.evaluation.evaluate_sequence`. A
            ``"COMBINED"`` entry, if present, is left out.

    Returns:
        A result dict with the same fields as a sequence result.
    """
    rows = [results[name] for name in sorted(results) if name != COMBINED]
    res: dict[str, Any] = {}

    for field in HOTA_INTEGER_ARRAY_FIELDS:
        res[field] = sum(row[field] for row in rows)
    for field in ["AssRe", "AssPr", "AssA"]:
        weighted = sum(row[field] * row["HOTA_TP"] for row in rows)
        res[field] = weighted / np.maximum(1.0, res["HOTA_TP"])
    loc_weighted = sum(row["LocA"] * row["HOTA_TP"] for row in rows)
    res["LocA"] = np.maximum(1e-10, loc_weighted) / np.maximum(1e-10, res["HOTA_TP"])
    hota_final_fields(res)

    for field in CLEAR_SUMMED_FIELDS:
        res[field] = sum(row[field] for row in rows)
    clear_final_fields(res)

    for field in IDENTITY_INTEGER_FIELDS:
        res[field] = sum(row[field] for row in rows)
    identity_final_fields(res)

    for field in COUNT_FIELDS:
        res[field] = sum(row[field] for row in rows)
    return res
