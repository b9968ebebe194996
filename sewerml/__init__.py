"""Sewer-ML (Haurum & Moeslund, CVPR 2021): class codes, weights and the official metrics.

Example:
    >>> from sewerml import evaluate
    >>> results = evaluate(targets, scores)  # doctest: +SKIP
    >>> results["F2_CIW"], results["F1_Normal"]  # doctest: +SKIP
"""

from __future__ import annotations

from sewerml.classes import CIW, CIW_POINTS, COLUMNS, DEFECT_CODES, DEFECT_DESCRIPTIONS, NORMAL
from sewerml.metrics import (
    COUNT_METRICS,
    SCORE_METRICS,
    MetricAccumulator,
    average_precision,
    evaluate,
    f2_ciw,
    metrics_from_counts,
)

__all__ = [
    "CIW",
    "CIW_POINTS",
    "COLUMNS",
    "COUNT_METRICS",
    "DEFECT_CODES",
    "DEFECT_DESCRIPTIONS",
    "NORMAL",
    "SCORE_METRICS",
    "MetricAccumulator",
    "average_precision",
    "evaluate",
    "f2_ciw",
    "metrics_from_counts",
]
