"""HOTA (Luiten et al., IJCV 2021) for one sequence, identical to TrackEval 1.3.0 ``hota.py``.

The per-frame loops of TrackEval are replaced by operations over the list of overlapping pairs.
Every floating-point sum is formed in TrackEval's order (see :mod:`motcom.evaluation.sums`), so
the results are bit-identical. A frame's matching is taken without a solver where
:func:`~motcom.evaluation.matching.certify_unique_matching` proves it unique. The other frames
are solved by ``linear_sum_assignment`` on the same full-frame matrix as TrackEval's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from motcom.evaluation.ious import EPS
from motcom.evaluation.lsap import linear_sum_assignment
from motcom.evaluation.matching import certify_unique_matching, frame_mask, frame_offsets
from motcom.evaluation.preprocess import PreparedSequence
from motcom.evaluation.sums import sequential_or_pairwise_sums, sparse_pairwise_sums

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
    """Return the matching score (global alignment times IoU) of each pair and the id counts.

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
    normalised = np.divide(iou, denominator, out=np.zeros_like(iou), where=denominator > 0 + EPS)

    num_gt_ids, num_tracker_ids = gt.num_ids, tracker.num_ids
    pair_key = gt.id[pair_gt] * num_tracker_ids + tracker.id[pair_tracker]
    potential = np.bincount(pair_key, weights=normalised, minlength=num_gt_ids * num_tracker_ids)
    potential = potential.reshape(num_gt_ids, num_tracker_ids)
    gt_id_count = np.bincount(gt.id, minlength=num_gt_ids).astype(np.float64)[:, np.newaxis]
    tracker_id_count = np.bincount(tracker.id, minlength=num_tracker_ids).astype(np.float64)
    tracker_id_count = tracker_id_count[np.newaxis, :]
    alignment = potential / (gt_id_count + tracker_id_count - potential)
    score = alignment.reshape(-1)[pair_key] * iou
    return score, gt_id_count, tracker_id_count


def _match_frames(
    seq: PreparedSequence, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the matched gt boxes, tracker boxes and IoUs of every frame, in frame and row order.

    ``score`` is the matching score (alignment times IoU) of each overlapping pair. Only matches
    with a positive IoU are returned: the others never pass a threshold alpha >= 0.05.
    """
    gt, tracker = seq.gt, seq.tracker
    pair_gt, pair_tracker, iou = seq.pair_gt, seq.pair_tracker, seq.pair_iou
    if pair_gt.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)

    pair_frame = gt.frame[pair_gt]
    edge = score > 0
    all_edges = bool(edge.all())
    edge_index = slice(None) if all_edges else np.flatnonzero(edge)
    chosen = np.zeros(pair_gt.shape[0], bool)
    chosen[edge_index], unresolved_frames = certify_unique_matching(
        pair_frame[edge_index],
        pair_gt[edge_index],
        pair_tracker[edge_index],
        score[edge_index],
        gt.num_dets,
        tracker.num_dets,
        seq.num_timesteps,
    )
    unresolved = frame_mask(unresolved_frames, seq.num_timesteps)
    if not all_edges:
        # A zero score on a positive IoU leaves a tie in TrackEval's matrix, so its frame is
        # solved.
        unresolved[pair_frame[~edge]] = True
    chosen &= ~unresolved[pair_frame]
    _solve_frames(seq, score, pair_frame, np.flatnonzero(unresolved), chosen)
    return pair_gt[chosen], pair_tracker[chosen], iou[chosen]


SOLVER_BUFFER_CELLS = 1 << 20
"""Matrix cells filled at once for the solver (16 MiB with the cell-to-pair map)."""


def _solve_frames(
    seq: PreparedSequence,
    score: np.ndarray,
    pair_frame: np.ndarray,
    frames: np.ndarray,
    chosen: np.ndarray,
) -> None:
    """Solve the given frames on TrackEval's full-frame matrices; mark their matches in ``chosen``.

    The matrices of a batch of frames are filled at once in one flat buffer, and the solver then
    runs on one view per frame. The solver also pairs boxes that do not overlap; those are not in
    the pair list and are left out.
    """
    if frames.size == 0:
        return
    size = seq.gt.per_frame[frames] * seq.tracker.per_frame[frames]
    # Batches of about SOLVER_BUFFER_CELLS cells; a larger frame forms a batch of its own.
    batch = np.cumsum(size) // SOLVER_BUFFER_CELLS
    bounds = np.flatnonzero(np.r_[True, batch[1:] != batch[:-1], True])
    pair_offsets = frame_offsets(pair_frame, seq.num_timesteps)
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        batch_frames = frames[lo:hi]
        first, last = pair_offsets[batch_frames[0]], pair_offsets[batch_frames[-1] + 1]
        selected = first + np.flatnonzero(
            frame_mask(batch_frames, seq.num_timesteps)[pair_frame[first:last]]
        )
        _solve_batch(seq, score, pair_frame, batch_frames, selected, chosen)


def _solve_batch(
    seq: PreparedSequence,
    score: np.ndarray,
    pair_frame: np.ndarray,
    frames: np.ndarray,
    selected: np.ndarray,
    chosen: np.ndarray,
) -> None:
    """Solve a batch of frames whose pairs are ``selected``; see :func:`_solve_frames`."""
    gt, tracker = seq.gt, seq.tracker
    rows_per_frame = gt.per_frame[frames]
    cols_per_frame = tracker.per_frame[frames]
    size = rows_per_frame * cols_per_frame
    matrix_start = np.zeros(seq.num_timesteps, np.int64)
    matrix_start[frames] = np.cumsum(size) - size
    columns = np.zeros(seq.num_timesteps, np.int64)
    columns[frames] = cols_per_frame

    frame_of_pair = pair_frame[selected]
    cell = (
        matrix_start[frame_of_pair]
        + gt.position[seq.pair_gt[selected]] * columns[frame_of_pair]
        + tracker.position[seq.pair_tracker[selected]]
    )
    matrices = np.zeros(int(size.sum()))
    matrices[cell] = score[selected]
    pair_of_cell = np.full(matrices.shape[0], -1, np.int64)
    pair_of_cell[cell] = selected

    matched = []
    starts = matrix_start[frames].tolist()
    for start, num_rows, num_cols in zip(
        starts, rows_per_frame.tolist(), cols_per_frame.tolist(), strict=True
    ):
        score_matrix = matrices[start : start + num_rows * num_cols].reshape(num_rows, num_cols)
        match_rows, match_cols = linear_sum_assignment(score_matrix, maximize=True)
        matched.append(pair_of_cell[start + match_rows * num_cols + match_cols])
    matched_pairs = np.concatenate(matched)
    chosen[matched_pairs[matched_pairs >= 0]] = True


def _association_sums(
    seq: PreparedSequence,
    matched_gt: np.ndarray,
    matched_tracker: np.ndarray,
    passed_alphas: np.ndarray,
    gt_id_count: np.ndarray,
    tracker_id_count: np.ndarray,
) -> np.ndarray:
    """Return the ``(3, 19)`` sums over the id x id matrices behind AssA, AssRe and AssPr.

    TrackEval sums each dense ``num_gt_ids x num_tracker_ids`` matrix with ``np.sum``. Only the
    id pairs with matches are non-zero, so the sums are formed over those cells with numpy's
    pairwise order (:func:`~motcom.evaluation.sums.sparse_pairwise_sums`), for all alphas at once.
    """
    num_alphas = len(ALPHAS)
    num_tracker_ids = seq.tracker.num_ids
    matched_key = seq.gt.id[matched_gt] * num_tracker_ids + seq.tracker.id[matched_tracker]
    num_cells = seq.gt.num_ids * num_tracker_ids
    if num_cells <= 8 * matched_key.shape[0] + 1_000_000:
        has_match = np.zeros(num_cells, bool)
        has_match[matched_key] = True
        cells = np.flatnonzero(has_match)
        cell_of_match = (np.cumsum(has_match) - 1)[matched_key]
    else:
        cells, cell_of_match = np.unique(matched_key, return_inverse=True)
    levels = num_alphas + 1
    per_level = np.bincount(
        cell_of_match * levels + passed_alphas, minlength=cells.shape[0] * levels
    ).reshape(cells.shape[0], levels)
    # Matches of a cell that pass alpha number a: those passing more than a alphas.
    matches_count = np.cumsum(per_level[:, ::-1], axis=1)[:, ::-1][:, 1:].astype(np.float64)

    gt_count = gt_id_count[cells // num_tracker_ids]
    tracker_count = tracker_id_count[0, cells % num_tracker_ids][:, np.newaxis]
    ass_a = matches_count / np.maximum(1, gt_count + tracker_count - matches_count)
    ass_re = matches_count / np.maximum(1, gt_count)
    ass_pr = matches_count / np.maximum(1, tracker_count)
    values = np.concatenate(
        [matches_count * ass_a, matches_count * ass_re, matches_count * ass_pr], axis=1
    )
    sums = sparse_pairwise_sums(
        np.zeros(cells.shape[0], np.int64), cells, values, np.array([num_cells]), 1
    )
    return sums.reshape(3, num_alphas)


def _localisation_sums(
    seq: PreparedSequence, matched_gt: np.ndarray, matched_iou: np.ndarray,
    passed_alphas: np.ndarray,
) -> np.ndarray:
    """Return the ``(19,)`` sums of matched IoUs per alpha, added as TrackEval adds them.

    TrackEval adds one sum per frame (matches in row order, left to right), frame after frame.
    """
    matched_frame = seq.gt.frame[matched_gt]
    loc_sum = np.zeros(len(ALPHAS))
    for a in range(len(ALPHAS)):
        if a > 0 and not np.any(passed_alphas == a):
            # No match drops out at this alpha, so the matches and their sum are the same.
            loc_sum[a] = loc_sum[a - 1]
            continue
        passed = passed_alphas > a
        per_frame = np.bincount(
            matched_frame[passed], weights=matched_iou[passed], minlength=seq.num_timesteps
        )
        loc_sum[a] = np.cumsum(per_frame)[-1]
    return loc_sum


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

    score, gt_id_count, tracker_id_count = _alignment_scores(seq)
    matched_gt, matched_tracker, matched_iou = _match_frames(seq, score)

    # Number of alphas each match passes: alpha passes when IoU >= alpha - eps.
    passed_alphas = np.searchsorted(ALPHAS - EPS, matched_iou, side="right")
    passed_count = np.bincount(passed_alphas, minlength=len(ALPHAS) + 1)
    num_matches = np.cumsum(passed_count[::-1])[::-1][1:]
    res["HOTA_TP"] = num_matches.astype(np.float64)
    res["HOTA_FN"] = num_gt_dets - res["HOTA_TP"]
    res["HOTA_FP"] = num_tracker_dets - res["HOTA_TP"]

    ass_sums = _association_sums(
        seq, matched_gt, matched_tracker, passed_alphas, gt_id_count, tracker_id_count
    )
    tp = np.maximum(1, res["HOTA_TP"])
    res["AssA"] = ass_sums[0] / tp
    res["AssRe"] = ass_sums[1] / tp
    res["AssPr"] = ass_sums[2] / tp
    loc_sum = _localisation_sums(seq, matched_gt, matched_iou, passed_alphas)

    res["LocA"] = np.maximum(1e-10, loc_sum) / np.maximum(1e-10, res["HOTA_TP"])
    return hota_final_fields(res)
