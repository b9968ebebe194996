"""CLEAR MOT metrics (Bernardin and Stiefelhagen 2008) as TrackEval 1.3.0 computes them.

TrackEval's rules, reproduced here:

* A frame takes part in the matching only when it has gt boxes and tracker boxes ("active"
  frame). The continuation bonus (+1000 on the score of a pair whose tracker id was matched to the
  same gt id) looks at the previous active frame only.
* An ID switch is counted against the tracker id last matched to the gt id at any earlier time.
* Frag counts a gt id's returns to being tracked, measured between active frames, so a frame
  without tracker boxes does not end a tracked run.
* MT needs a tracked ratio strictly above 0.8, PT a ratio of at least 0.2.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from motcom.evaluation.ious import EPS
from motcom.evaluation.lsap import linear_sum_assignment
from motcom.evaluation.matching import SmallComponents, frame_mask, frame_offsets, stable_order
from motcom.evaluation.preprocess import PreparedSequence

CLEAR_MAIN_FLOAT_FIELDS = ["MOTA", "MOTP", "MODA", "CLR_Re", "CLR_Pr", "MTR", "PTR", "MLR", "sMOTA"]
CLEAR_EXTRA_FLOAT_FIELDS = ["CLR_F1", "FP_per_frame", "MOTAL", "MOTP_sum"]
CLEAR_MAIN_INTEGER_FIELDS = ["CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MT", "PT", "ML", "Frag"]
CLEAR_EXTRA_INTEGER_FIELDS = ["CLR_Frames"]
CLEAR_FLOAT_FIELDS = CLEAR_MAIN_FLOAT_FIELDS + CLEAR_EXTRA_FLOAT_FIELDS
CLEAR_INTEGER_FIELDS = CLEAR_MAIN_INTEGER_FIELDS + CLEAR_EXTRA_INTEGER_FIELDS
CLEAR_SUMMED_FIELDS = CLEAR_INTEGER_FIELDS + ["MOTP_sum"]

CONTINUATION_BONUS = 1000
MAX_ROUNDS = 4
"""Rounds of the whole-sequence matching before the rest is finished frame by frame."""
MT_RATIO = 0.8
ML_RATIO = 0.2


def clear_final_fields(res: dict[str, Any]) -> dict[str, Any]:
    """Fill the ratio fields from the counts and ``MOTP_sum`` (in place), as TrackEval does."""
    num_gt_ids = res["MT"] + res["ML"] + res["PT"]
    tp, fn, fp, idsw = res["CLR_TP"], res["CLR_FN"], res["CLR_FP"], res["IDSW"]
    res["MTR"] = res["MT"] / np.maximum(1.0, num_gt_ids)
    res["MLR"] = res["ML"] / np.maximum(1.0, num_gt_ids)
    res["PTR"] = res["PT"] / np.maximum(1.0, num_gt_ids)
    res["CLR_Re"] = tp / np.maximum(1.0, tp + fn)
    res["CLR_Pr"] = tp / np.maximum(1.0, tp + fp)
    res["MODA"] = (tp - fp) / np.maximum(1.0, tp + fn)
    res["MOTA"] = (tp - fp - idsw) / np.maximum(1.0, tp + fn)
    res["MOTP"] = res["MOTP_sum"] / np.maximum(1.0, tp)
    res["sMOTA"] = (res["MOTP_sum"] - fp - idsw) / np.maximum(1.0, tp + fn)
    res["CLR_F1"] = tp / np.maximum(1.0, tp + 0.5 * fn + 0.5 * fp)
    res["FP_per_frame"] = fp / np.maximum(1.0, res["CLR_Frames"])
    safe_log_idsw = np.log10(idsw) if idsw > 0 else idsw
    res["MOTAL"] = (tp - fp - safe_log_idsw) / np.maximum(1.0, tp + fn)
    return res


def _match_frames(
    seq: PreparedSequence, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the CLEAR matches (gt box, tracker box, IoU) of all frames, in frame and row order.

    A frame's scores depend on the matches of the previous active frame (continuation bonus).
    An isolated edge (the only edge at IoU >= threshold of its gt box and of its tracker box) is
    matched whatever the bonus. The other edges are matched for all frames together, round after
    round, each round with the bonus that the matches of the round before give. A round without
    changes is TrackEval's sequential result: after round ``i`` the first ``i`` active frames are
    final, and a stable round reproduces every frame from its predecessor. After ``MAX_ROUNDS``
    rounds the frames whose bonus still changes are solved one by one in frame order. Frames
    whose components have no unique optimum, or a component of more than
    ``MAX_ENUMERATED_EDGES`` edges, are solved on TrackEval's full-frame matrix.
    """
    gt, tracker = seq.gt, seq.tracker
    edge = seq.pair_iou >= threshold - EPS
    edge_gt, edge_tracker, edge_iou = seq.pair_gt[edge], seq.pair_tracker[edge], seq.pair_iou[edge]
    if edge_gt.size == 0:
        return edge_gt, edge_tracker, edge_iou
    edge_frame = gt.frame[edge_gt]
    num_edges = edge_gt.shape[0]
    degree_gt = np.bincount(edge_gt, minlength=gt.num_dets)
    degree_tracker = np.bincount(edge_tracker, minlength=tracker.num_dets)
    matched = (degree_gt[edge_gt] == 1) & (degree_tracker[edge_tracker] == 1)
    conflict = np.flatnonzero(~matched)
    if conflict.size == 0:
        return edge_gt, edge_tracker, edge_iou

    previous_edge = _previous_frame_edges(seq, edge_gt, edge_tracker)
    has_previous = previous_edge >= 0
    next_edge = np.full(num_edges, -1, np.int64)
    next_edge[previous_edge[has_previous]] = np.flatnonzero(has_previous)
    bonus = has_previous & matched[np.maximum(previous_edge, 0)]
    conflict_index = np.full(num_edges, -1, np.int64)
    conflict_index[conflict] = np.arange(conflict.shape[0])
    components = SmallComponents(
        edge_frame[conflict],
        edge_gt[conflict],
        edge_tracker[conflict],
        gt.num_dets,
        tracker.num_dets,
    )
    solver = _FrameSolver(seq, edge_frame, edge_gt, edge_tracker, edge_iou)

    changed_bonus = None
    followers = np.zeros(0, np.int64)
    for _ in range(MAX_ROUNDS):
        weight = CONTINUATION_BONUS * bonus[conflict] + edge_iou[conflict]
        chosen, unresolved = components.solve(weight, changed_bonus)
        solver.solve_stale(unresolved, bonus)
        by_solver = frame_mask(unresolved, seq.num_timesteps)[edge_frame[conflict]]
        chosen[by_solver] = solver.choice[conflict[by_solver]]

        flipped = conflict[chosen != matched[conflict]]
        matched[conflict] = chosen
        followers = next_edge[flipped]
        followers = followers[followers >= 0]
        if followers.size == 0:
            return edge_gt[matched], edge_tracker[matched], edge_iou[matched]
        bonus[followers] = matched[previous_edge[followers]]
        solver.mark_stale(edge_frame[followers])
        changed_bonus = np.zeros(conflict.shape[0], bool)
        follower_index = conflict_index[followers]
        changed_bonus[follower_index[follower_index >= 0]] = True

    # Slow convergence comes from long chains of bonus-dependent frames. The frames whose bonus
    # changed in the last round are solved again in frame order, each with the bonus from its
    # final predecessor. A match that changes queues the frame of the edge that follows it.
    pending = sorted(set(edge_frame[followers].tolist()))
    heapq.heapify(pending)
    queued = set(pending)
    while pending:
        t = heapq.heappop(pending)
        queued.discard(t)
        lo, hi = solver.edge_offsets[t], solver.edge_offsets[t + 1]
        frame_matched = solver.solve_frame(t, bonus)
        flipped = lo + np.flatnonzero(frame_matched != matched[lo:hi])
        matched[lo:hi] = frame_matched
        followers = next_edge[flipped]
        followers = followers[followers >= 0]
        bonus[followers] = matched[previous_edge[followers]]
        for follower_frame in set(edge_frame[followers].tolist()) - queued:
            heapq.heappush(pending, follower_frame)
            queued.add(follower_frame)
    return edge_gt[matched], edge_tracker[matched], edge_iou[matched]


def clear_matches(
    seq: PreparedSequence, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return TrackEval's CLEAR matches as ``(gt row, tracker row, IoU)`` arrays, frame ordered.

    Other metrics built on TrackEval's matching (the MTBF of 3D-ZeF) read the matches from here.
    """
    if seq.gt.num_dets == 0 or seq.tracker.num_dets == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    return _match_frames(seq, threshold)


class _FrameSolver:
    """Solves single frames of the CLEAR matching on TrackEval's full-frame score matrix."""

    def __init__(
        self,
        seq: PreparedSequence,
        edge_frame: np.ndarray,
        edge_gt: np.ndarray,
        edge_tracker: np.ndarray,
        edge_iou: np.ndarray,
    ):
        self.edge_offsets = frame_offsets(edge_frame, seq.num_timesteps).tolist()
        self.edge_row = seq.gt.position[edge_gt]
        self.edge_col = seq.tracker.position[edge_tracker]
        self.edge_iou = edge_iou
        self.frame_shapes = list(
            zip(seq.gt.per_frame.tolist(), seq.tracker.per_frame.tolist(), strict=True)
        )
        # The solver's match of each edge, valid in the frames whose ``current`` flag is set,
        # that is, the frames solved since their bonus last changed.
        self.choice = np.zeros(edge_frame.shape[0], bool)
        self.current = np.zeros(seq.num_timesteps, bool)

    def solve_frame(self, t: int, bonus: np.ndarray) -> np.ndarray:
        """Solve frame ``t`` with the given bonus; return a mask over the frame's edges."""
        lo, hi = self.edge_offsets[t], self.edge_offsets[t + 1]
        weight = CONTINUATION_BONUS * bonus[lo:hi] + self.edge_iou[lo:hi]
        self.choice[lo:hi] = _solve_frame(
            weight, self.edge_row[lo:hi], self.edge_col[lo:hi], self.frame_shapes[t]
        )
        self.current[t] = True
        return self.choice[lo:hi]

    def solve_stale(self, frames: np.ndarray, bonus: np.ndarray) -> None:
        """Solve the given frames that were not solved since their bonus last changed."""
        for t in frames[~self.current[frames]].tolist():
            self.solve_frame(t, bonus)

    def mark_stale(self, frames: np.ndarray) -> None:
        """Mark frames whose bonus changed, so that their solver result is out of date."""
        self.current[frames] = False


def _previous_frame_edges(
    seq: PreparedSequence, edge_gt: np.ndarray, edge_tracker: np.ndarray
) -> np.ndarray:
    """Return, per edge, the edge of the same (gt id, tracker id) in the previous active frame.

    -1 where there is none. The previous active frame is the last earlier frame with both gt
    and tracker boxes, the frame whose matches give TrackEval's continuation bonus.
    """
    gt, tracker = seq.gt, seq.tracker
    active = np.flatnonzero((gt.per_frame > 0) & (tracker.per_frame > 0))
    active_index = np.full(seq.num_timesteps, -1, np.int64)
    active_index[active] = np.arange(active.shape[0])
    num_cells = gt.num_ids * tracker.num_ids
    cell = gt.id[edge_gt] * tracker.num_ids + tracker.id[edge_tracker]
    step_key = active_index[gt.frame[edge_gt]] * num_cells + cell
    # Edges come in frame order, and mostly in cell order within a frame.
    order = np.argsort(step_key, kind="stable")
    sorted_keys = step_key[order]
    query = step_key - num_cells
    position = np.minimum(np.searchsorted(sorted_keys, query), sorted_keys.shape[0] - 1)
    return np.where(sorted_keys[position] == query, order[position], -1)


def _solve_frame(
    weight: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Solve one frame on TrackEval's full score matrix; return a mask over the frame's edges."""
    score_matrix = np.zeros(shape)
    score_matrix[rows, cols] = weight
    edge_index = np.full(shape, -1, np.int64)
    edge_index[rows, cols] = np.arange(rows.shape[0])
    match_rows, match_cols = linear_sum_assignment(score_matrix, maximize=True)
    matched = score_matrix[match_rows, match_cols] > 0 + EPS
    mask = np.zeros(rows.shape[0], bool)
    mask[edge_index[match_rows[matched], match_cols[matched]]] = True
    return mask


def clear_sequence(seq: PreparedSequence, threshold: float = 0.5) -> dict[str, Any]:
    """Compute TrackEval's CLEAR fields of one preprocessed sequence.

    Args:
        seq: the preprocessed sequence.
        threshold: IoU a match needs (TrackEval's ``THRESHOLD``, compared with eps subtracted).

    Returns:
        The CLEAR fields. Without tracker boxes or without gt boxes the result is TrackEval's
        early one, whose unset fields stay integer 0 and whose ``CLR_Frames`` is 0.
    """
    res: dict[str, Any] = {field: 0 for field in CLEAR_FLOAT_FIELDS + CLEAR_INTEGER_FIELDS}
    num_gt_dets, num_tracker_dets = seq.gt.num_dets, seq.tracker.num_dets
    if num_tracker_dets == 0:
        res["CLR_FN"] = num_gt_dets
        res["ML"] = seq.gt.num_ids
        res["MLR"] = 1.0
        return res
    if num_gt_dets == 0:
        res["CLR_FP"] = num_tracker_dets
        res["MLR"] = 1.0
        return res

    gt, tracker = seq.gt, seq.tracker
    matched_gt, matched_tracker, matched_iou = _match_frames(seq, threshold)
    num_matches = int(matched_gt.shape[0])
    matched_frame = gt.frame[matched_gt]
    matched_gt_id = gt.id[matched_gt]
    matched_tracker_id = tracker.id[matched_tracker]

    # ID switches: compare with the previous match of the same gt id, at any earlier frame.
    # The matches come in frame order, so a stable sort by gt id orders them by id, then frame.
    by_gt = stable_order(matched_gt_id, gt.num_ids)
    same_gt = matched_gt_id[by_gt][1:] == matched_gt_id[by_gt][:-1]
    switched = same_gt & (matched_tracker_id[by_gt][1:] != matched_tracker_id[by_gt][:-1])
    res["IDSW"] = int(switched.sum())

    # Frag: a gt id starts a tracked run when it was not matched in the previous active frame.
    active = np.flatnonzero((gt.per_frame > 0) & (tracker.per_frame > 0))
    active_index = np.full(seq.num_timesteps, -1, np.int64)
    active_index[active] = np.arange(active.shape[0])
    run_step = active_index[matched_frame][by_gt]
    continues_run = same_gt & (run_step[1:] == run_step[:-1] + 1)
    continued_gt_id = matched_gt_id[by_gt][1:][continues_run]
    run_starts = np.bincount(matched_gt_id, minlength=gt.num_ids) - np.bincount(
        continued_gt_id, minlength=gt.num_ids
    )
    # TrackEval counts runs in a float array, so Frag is a float (written as e.g. "156.0").
    run_starts = run_starts.astype(np.float64)
    res["Frag"] = float(np.sum(np.subtract(run_starts[run_starts > 0], 1)))

    gt_id_count = np.bincount(gt.id, minlength=gt.num_ids).astype(np.float64)
    gt_matched_count = np.bincount(matched_gt_id, minlength=gt.num_ids).astype(np.float64)
    tracked_ratio = gt_matched_count[gt_id_count > 0] / gt_id_count[gt_id_count > 0]
    res["MT"] = int(np.sum(np.greater(tracked_ratio, MT_RATIO)))
    res["PT"] = int(np.sum(np.greater_equal(tracked_ratio, ML_RATIO))) - res["MT"]
    res["ML"] = gt.num_ids - res["MT"] - res["PT"]

    res["CLR_TP"] = num_matches
    res["CLR_FN"] = num_gt_dets - num_matches
    res["CLR_FP"] = num_tracker_dets - num_matches
    if num_matches > 0:
        # TrackEval adds one sum per frame (matches in row order), frame after frame.
        per_frame = np.bincount(matched_frame, weights=matched_iou, minlength=seq.num_timesteps)
        res["MOTP_sum"] = float(np.cumsum(per_frame)[-1])
    res["CLR_Frames"] = seq.num_timesteps
    return clear_final_fields(res)
