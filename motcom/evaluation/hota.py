"""HOTA (Luiten et al., IJCV 2021) for one sequence, identical to TrackEval 1.3.0 ``hota.py``.

The per-frame loops of TrackEval are replaced by operations over the list of overlapping pairs.
The floating-point sums that feed a comparison or the Hungarian matching are formed in TrackEval's
order (see :mod:`motcom.evaluation.sums`). Frames whose matching is not determined by
:class:`~motcom.evaluation.matching.SmallComponents` are solved by ``linear_sum_assignment`` on
the same full-frame matrix as TrackEval's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from motcom.evaluation.lsap import linear_sum_assignment

from motcom.evaluation.ious import EPS
from motcom.evaluation.matching import SmallComponents, frame_mask, frame_offsets
from motcom.evaluation.preprocess import PreparedSequence
from motcom.evaluation.sums import sequential_or_pairwise_sums

ALPHAS = np.arange(0.05, 0.99, 0.05)
"""The 19 localisation thresholds 0.05, 0.10, ..., 0.95, built as TrackEval builds them."""

ALPHA_LABELS = [int(100 * alpha) for alpha in ALPHAS]
"""Column suffixes of the detailed CSV: 5, 10, ..., 95."""

HOTA_FLOAT_ARRAY_FIELDS = [
    "HOTA",
    "DetA",
    "AssA",
    "DetRe",
    "DetPr",
    "AssRe",
    "AssPr",
    "LocA",
    "OWTA",
]
HOTA_INTEGER_ARRAY_FIELDS = ["HOTA_TP", "HOTA_FN", "HOTA_FP"]
HOTA_FLOAT_FIELDS = ["HOTA(0)", "LocA(0)", "HOTALocA(0)"]


def _empty_result() -> dict[str, Any]:
    res: dict[str, Any] = {
        field: np.zeros(len(ALPHAS))
        for field in HOTA_FLOAT_ARRAY_FIELDS + HOTA_INTEGER_ARRAY_FIELDS
    }
    for field in HOTA_FLOAT_FIELDS:
        res[field] = 0
    return res


def hota_final_fields(res: dict[str, Any]) -> dict[str, Any]:
    """Fill the fields that follow from the TP/FN/FP arrays, AssA and LocA (in place)."""
    tp, fn, fp = res["HOTA_TP"], res["HOTA_FN"], res["HOTA_FP"]
    res["DetRe"] = tp / np.maximum(1, tp + fn)
    res["DetPr"] = tp / np.maximum(1, tp + fp)
    res["DetA"] = tp / np.maximum(1, tp + fn + fp)
    res["HOTA"] = np.sqrt(res["DetA"] * res["AssA"])
    res["OWTA"] = np.sqrt(res["DetRe"] * res["AssA"])
    res["HOTA(0)"] = res["HOTA"][0]
    res["LocA(0)"] = res["LocA"][0]
    res["HOTALocA(0)"] = res["HOTA(0)"] * res["LocA(0)"]
    return res


def _alignment_scores(seq: PreparedSequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the global alignment score matrix and the per-id detection counts.

    Per frame, TrackEval normalises each IoU by ``column sum + row sum - IoU`` of that frame's
    matrix and accumulates the result per (gt id, tracker id), frame after frame.
    """
    gt, tracker = seq.gt, seq.tracker
    pair_gt, pair_tracker, iou = seq.pair_gt, seq.pair_tracker, seq.pair_iou

    tracker_per_frame = tracker.per_frame
    gt_per_frame = gt.per_frame
    row_sums = sequential_or_pairwise_sums(
        pair_gt,
        tracker.position[pair_tracker],
        iou,
        tracker_per_frame[gt.frame],
        np.ones(gt.num_dets, bool),
    )
    column_sums = sequential_or_pairwise_sums(
        pair_tracker,
        gt.position[pair_gt],
        iou,
        gt_per_frame[tracker.frame],
        tracker_per_frame[tracker.frame] == 1,
    )
    denominator = column_sums[pair_tracker] + row_sums[pair_gt] - iou
    valid = denominator > 0 + EPS
    normalised = np.zeros_like(iou)
    normalised[valid] = iou[valid] / denominator[valid]

    num_gt_ids, num_tracker_ids = gt.num_ids, tracker.num_ids
    pair_key = gt.id[pair_gt] * num_tracker_ids + tracker.id[pair_tracker]
    potential = np.bincount(pair_key, weights=normalised, minlength=num_gt_ids * num_tracker_ids)
    potential = potential.reshape(num_gt_ids, num_tracker_ids)
    gt_id_count = np.bincount(gt.id, minlength=num_gt_ids).astype(np.float64)[:, np.newaxis]
    tracker_id_count = np.bincount(tracker.id, minlength=num_tracker_ids).astype(np.float64)
    tracker_id_count = tracker_id_count[np.newaxis, :]
    alignment = potential / (gt_id_count + tracker_id_count - potential)
    return alignment, gt_id_count, tracker_id_count


def _match_frames(
    seq: PreparedSequence, alignment: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the matched gt boxes, tracker boxes and IoUs of every frame, in frame and row order.

    Only matches with a positive IoU are returned: the others never pass a threshold alpha >= 0.05.
    """
    gt, tracker = seq.gt, seq.tracker
    pair_gt, pair_tracker, iou = seq.pair_gt, seq.pair_tracker, seq.pair_iou
    if pair_gt.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)

    score = alignment[gt.id[pair_gt], tracker.id[pair_tracker]] * iou
    pair_frame = gt.frame[pair_gt]
    edge = score > 0
    components = SmallComponents(
        pair_frame[edge], pair_gt[edge], pair_tracker[edge], gt.num_dets, tracker.num_dets
    )
    chosen = np.zeros(pair_gt.shape[0], bool)
    chosen[edge], unresolved_frames = components.solve(score[edge])
    # A zero score on a positive IoU leaves a tie in TrackEval's matrix, so its frame is solved.
    unresolved_frames = np.union1d(unresolved_frames, pair_frame[~edge])
    take = chosen & ~frame_mask(unresolved_frames, seq.num_timesteps)[pair_frame]
    matched_gt = [pair_gt[take]]
    matched_tracker = [pair_tracker[take]]
    matched_iou = [iou[take]]

    pair_offsets = frame_offsets(pair_frame, seq.num_timesteps).tolist()
    rows_all = gt.position[pair_gt]
    cols_all = tracker.position[pair_tracker]
    gt_per_frame, tracker_per_frame = gt.per_frame.tolist(), tracker.per_frame.tolist()
    gt_offsets, tracker_offsets = gt.offsets.tolist(), tracker.offsets.tolist()
    solved_gt, solved_tracker = [], []
    for t in unresolved_frames.tolist():
        lo, hi = pair_offsets[t], pair_offsets[t + 1]
        score_matrix = np.zeros((gt_per_frame[t], tracker_per_frame[t]))
        score_matrix[rows_all[lo:hi], cols_all[lo:hi]] = score[lo:hi]
        match_rows, match_cols = linear_sum_assignment(score_matrix, maximize=True)
        solved_gt.append(match_rows + gt_offsets[t])
        solved_tracker.append(match_cols + tracker_offsets[t])

    if solved_gt:
        # The solver also pairs boxes without overlap; only pairs with a positive IoU are kept.
        solved_gt_all = np.concatenate(solved_gt)
        solved_tracker_all = np.concatenate(solved_tracker)
        num_tracker = tracker.num_dets
        pair_key = pair_gt * num_tracker + pair_tracker
        query = solved_gt_all * num_tracker + solved_tracker_all
        found = np.minimum(np.searchsorted(pair_key, query), pair_key.shape[0] - 1)
        hit = pair_key[found] == query
        matched_gt.append(solved_gt_all[hit])
        matched_tracker.append(solved_tracker_all[hit])
        matched_iou.append(iou[found[hit]])

    all_gt = np.concatenate(matched_gt)
    order = np.argsort(all_gt)
    return all_gt[order], np.concatenate(matched_tracker)[order], np.concatenate(matched_iou)[order]


def hota_sequence(seq: PreparedSequence) -> dict[str, Any]:
    """Compute TrackEval's HOTA fields of one preprocessed sequence.

    Returns:
        ``HOTA``, ``DetA``, ``AssA``, ``DetRe``, ``DetPr``, ``AssRe``, ``AssPr``, ``LocA``, ``OWTA``
        and ``HOTA_TP/FN/FP`` as ``(19,)`` float arrays over alpha, and ``HOTA(0)``, ``LocA(0)``,
        ``HOTALocA(0)``. A sequence without tracker boxes or without gt boxes gets TrackEval's
        early result: zeros, ``LocA`` 1 and the counts of the non-empty side.
    """
    res = _empty_result()
    num_gt_dets, num_tracker_dets = seq.gt.num_dets, seq.tracker.num_dets
    if num_tracker_dets == 0:
        res["HOTA_FN"] = num_gt_dets * np.ones(len(ALPHAS))
        res["LocA"] = np.ones(len(ALPHAS))
        res["LocA(0)"] = 1.0
        return res
    if num_gt_dets == 0:
        res["HOTA_FP"] = num_tracker_dets * np.ones(len(ALPHAS))
        res["LocA"] = np.ones(len(ALPHAS))
        res["LocA(0)"] = 1.0
        return res

    alignment, gt_id_count, tracker_id_count = _alignment_scores(seq)
    matched_gt, matched_tracker, matched_iou = _match_frames(seq, alignment)
    matched_frame = seq.gt.frame[matched_gt]
    matched_key = seq.gt.id[matched_gt] * seq.tracker.num_ids + seq.tracker.id[matched_tracker]
    num_cells = seq.gt.num_ids * seq.tracker.num_ids

    loc_sum = np.zeros(len(ALPHAS))
    id_count_sum = gt_id_count + tracker_id_count
    previous_matches = -1
    for a, alpha in enumerate(ALPHAS):
        passed = matched_iou >= alpha - EPS
        num_matches = int(passed.sum())
        res["HOTA_TP"][a] = num_matches
        res["HOTA_FN"][a] = num_gt_dets - num_matches
        res["HOTA_FP"][a] = num_tracker_dets - num_matches
        if num_matches == previous_matches:
            # The passing matches shrink with alpha, so an equal count means the same matches.
            for field in ("AssA", "AssRe", "AssPr"):
                res[field][a] = res[field][a - 1]
            loc_sum[a] = loc_sum[a - 1]
            continue
        previous_matches = num_matches

        # TrackEval adds one sum per frame (matches in row order), frame after frame.
        per_frame = np.bincount(
            matched_frame[passed], weights=matched_iou[passed], minlength=seq.num_timesteps
        )
        loc_sum[a] = np.cumsum(per_frame)[-1]

        matches_count = np.bincount(matched_key[passed], minlength=num_cells).astype(np.float64)
        matches_count = matches_count.reshape(seq.gt.num_ids, seq.tracker.num_ids)
        tp = res["HOTA_TP"][a]
        ass_a = matches_count / np.maximum(1, id_count_sum - matches_count)
        res["AssA"][a] = np.sum(matches_count * ass_a) / np.maximum(1, tp)
        ass_re = matches_count / np.maximum(1, gt_id_count)
        res["AssRe"][a] = np.sum(matches_count * ass_re) / np.maximum(1, tp)
        ass_pr = matches_count / np.maximum(1, tracker_id_count)
        res["AssPr"][a] = np.sum(matches_count * ass_pr) / np.maximum(1, tp)

    res["LocA"] = np.maximum(1e-10, loc_sum) / np.maximum(1e-10, res["HOTA_TP"])
    return hota_final_fields(res)
