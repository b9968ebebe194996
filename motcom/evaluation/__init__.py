"""TrackEval-exact MOTChallenge evaluation: HOTA, CLEAR, Identity and Count.

Every number equals what TrackEval 1.3.0 (``trackeval`` on PyPI) computes for the same input,
including its preprocessing, eps handling and Hungarian tie-breaking, but the work is done on
frame-sorted arrays instead of per-frame Python loops.

Example:
    >>> res = evaluate_sequence(gt, tracks, seq_length=600, benchmark="MOT17")  # doctest: +SKIP
    >>> headline(res)["HOTA"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

from harness.errors import EvaluationError
from motcom.data import GroundTruth, Tracks
from motcom.evaluation.clear import clear_sequence
from motcom.evaluation.combine import COMBINED, combine_sequences
from motcom.evaluation.fields import (
    DETAILED_COLUMNS,
    METRIC_FIELDS,
    SUMMARY_FIELDS,
    detailed_values,
    headline,
)
from motcom.evaluation.hota import ALPHAS, hota_sequence
from motcom.evaluation.identity import identity_sequence
from motcom.evaluation.motmetrics import SEMANTICS, check_semantics, clear_identity_prepared
from motcom.evaluation.preprocess import BENCHMARKS, PreparedSequence, prepare_sequence

__all__ = [
    "ALPHAS",
    "BENCHMARKS",
    "COMBINED",
    "DETAILED_COLUMNS",
    "METRIC_FIELDS",
    "SUMMARY_FIELDS",
    "PreparedSequence",
    "SEMANTICS",
    "combine_sequences",
    "detailed_values",
    "evaluate_prepared",
    "evaluate_sequence",
    "headline",
    "prepare_sequence",
]

logger = logging.getLogger(__name__)

MIN_THRESHOLD = 1e-6
"""Smallest CLEAR/Identity IoU threshold accepted; below eps TrackEval would match IoU-0 pairs."""


def evaluate_prepared(
    seq: PreparedSequence, *, threshold: float = 0.5, semantics: str = "trackeval"
) -> dict[str, Any]:
    """Run HOTA, CLEAR, Identity and Count on a sequence from :func:`prepare_sequence`.

    ``semantics="motmetrics"`` computes CLEAR and Identity with py-motmetrics 1.4.0's matching
    rules (:func:`motcom.evaluation.motmetrics.clear_identity_prepared`); HOTA is TrackEval's.
    """
    check_semantics(semantics)
    res: dict[str, Any] = {}
    res.update(hota_sequence(seq))
    if semantics == "motmetrics":
        res.update(clear_identity_prepared(seq, threshold))
    else:
        res.update(clear_sequence(seq, threshold))
        res.update(identity_sequence(seq, threshold))
    res["Dets"] = seq.tracker.num_dets
    res["GT_Dets"] = seq.gt.num_dets
    res["IDs"] = seq.tracker.num_ids
    res["GT_IDs"] = seq.gt.num_ids
    return res


def evaluate_sequence(
    gt: GroundTruth,
    tracks: Tracks,
    seq_length: int,
    *,
    benchmark: str | None = "MOT17",
    threshold: float = 0.5,
    name: str | None = None,
    semantics: str = "trackeval",
) -> dict[str, Any]:
    """Evaluate one tracker output against the ground truth of one sequence, as TrackEval does.

    Args:
        gt: ground-truth rows of the sequence (any order; rows of a frame keep their order).
        tracks: tracker boxes of the sequence.
        seq_length: number of frames (``seqLength`` of ``seqinfo.ini``); frames are 1-based.
        benchmark: TrackEval's ``BENCHMARK``. ``"MOT16"`` and ``"MOT17"`` remove tracker boxes
            matched to distractors (classes 2, 7, 8, 12) and keep gt rows of class 1.
            ``"MOT20"`` also treats class 6 as a distractor. ``"MOT15"`` and ``None``
            (TrackEval's ``DO_PREPROC=False``) only drop gt rows whose flag truncates to 0.
        threshold: IoU a CLEAR or Identity match needs (TrackEval's ``THRESHOLD``); the
            distractor matching always uses 0.5 and HOTA its 19 alphas.
        name: sequence name, used in error messages only.
        semantics: ``"trackeval"`` (default) or ``"motmetrics"``: CLEAR and Identity with the
            matching rules of py-motmetrics 1.4.0 (a pair continues from the object's last
            pairing at any earlier frame; MT at a tracked ratio of at least 0.8), the other
            fields unchanged. See :mod:`motcom.evaluation.motmetrics`.

    Returns:
        TrackEval's fields (see ``METRIC_FIELDS``) with TrackEval's value types: ``(19,)`` float
        arrays for the HOTA alpha fields, ints for counts (``Frag`` is a float as in TrackEval),
        floats for ratios. A side without boxes gives TrackEval's early results, e.g. ``LocA``
        1 and ``CLR_Frames`` 0 for an empty tracker output.

    Raises:
        EvaluationError: on invalid input: a frame outside ``1..seq_length``, a repeated id
            within a frame, a non-finite box, a negative width or height or a negative id. Also
            on an unknown benchmark or a threshold outside ``[1e-6, 1]``, and on a gt class
            outside 1..13 in a frame with tracker boxes when preprocessing runs.

    .. note::
        Deliberate differences from TrackEval: negative ids are rejected, because TrackEval
        relabels ids through an array indexed by the id, so ``-1`` silently becomes the largest
        id. Thresholds below 1e-6 are rejected, because at or below eps TrackEval would count
        pairs with IoU 0 as matches.
    """
    check_semantics(semantics)
    if not MIN_THRESHOLD <= threshold <= 1:
        raise EvaluationError(f"threshold is {threshold!r}; expected a number in [1e-6, 1]")
    seq = prepare_sequence(gt, tracks, seq_length, benchmark=benchmark, name=name)
    logger.debug(
        "sequence %s: %d gt and %d tracker boxes after preprocessing, %d overlapping pairs",
        name,
        seq.gt.num_dets,
        seq.tracker.num_dets,
        seq.pair_iou.shape[0],
    )
    return evaluate_prepared(seq, threshold=threshold, semantics=semantics)
