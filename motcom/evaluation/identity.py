"""Identity metrics (IDF1, IDR, IDP; Ristani et al. 2016) as TrackEval 1.3.0 computes them.

TrackEval solves one Hungarian problem on a ``(G+T) x (G+T)`` cost matrix of FN and FP counts,
with dummy rows and columns for unmatched ids. Its optimal cost is ``sum(gt dets) + sum(tracker
dets) - 2 M``, where ``M`` is the largest total number of frames (IoU >= threshold, no eps) that a
one-to-one assignment of gt ids to tracker ids can share, and ``IDFN`` and ``IDFP`` follow from
``M`` alone. So any exact maximum-weight matching gives TrackEval's integers. Here it is solved per
connected component of the id graph, which is much smaller than the full matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from motcom.evaluation.lsap import linear_sum_assignment
from motcom.evaluation.matching import connected_labels
from motcom.evaluation.preprocess import PreparedSequence

IDENTITY_FLOAT_FIELDS = ["IDF1", "IDR", "IDP"]
IDENTITY_INTEGER_FIELDS = ["IDTP", "IDFN", "IDFP"]


def identity_final_fields(res: dict[str, Any]) -> dict[str, Any]:
    """Fill ``IDR``, ``IDP`` and ``IDF1`` from the counts (in place), as TrackEval does."""
    idtp, idfn, idfp = res["IDTP"], res["IDFN"], res["IDFP"]
    res["IDR"] = idtp / np.maximum(1.0, idtp + idfn)
    res["IDP"] = idtp / np.maximum(1.0, idtp + idfp)
    res["IDF1"] = idtp / np.maximum(1.0, idtp + 0.5 * idfp + 0.5 * idfn)
    return res


def max_weight_matching(
    rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, num_rows: int, num_cols: int
) -> int:
    """Return the total weight of a maximum-weight one-to-one matching of a sparse bipartite graph.

    Args:
        rows: row node of each edge (unique ``(row, col)`` pairs).
        cols: column node of each edge.
        weights: positive integer weight of each edge.
        num_rows: number of row nodes.
        num_cols: number of column nodes.
    """
    if rows.size == 0:
        return 0
    labels = connected_labels(rows, num_rows + cols, num_rows + num_cols)
    edge_label = labels[rows]
    edges_per_label = np.bincount(edge_label)
    single = edges_per_label[edge_label] == 1
    total = int(weights[single].sum())

    shared = np.flatnonzero(~single)
    order = shared[np.argsort(edge_label[shared], kind="stable")]
    bounds = np.flatnonzero(np.diff(edge_label[order])) + 1
    for group in np.split(order, bounds):
        if group.size == 0:
            continue
        row_nodes, local_rows = np.unique(rows[group], return_inverse=True)
        col_nodes, local_cols = np.unique(cols[group], return_inverse=True)
        matrix = np.zeros((row_nodes.shape[0], col_nodes.shape[0]))
        matrix[local_rows, local_cols] = weights[group]
        match_rows, match_cols = linear_sum_assignment(matrix, maximize=True)
        total += int(matrix[match_rows, match_cols].sum())
    return total


def identity_sequence(seq: PreparedSequence, threshold: float = 0.5) -> dict[str, Any]:
    """Compute TrackEval's Identity fields of one preprocessed sequence.

    Args:
        seq: the preprocessed sequence.
        threshold: IoU a frame needs to count for a gt id / tracker id pair (``>=``, no eps).
    """
    res: dict[str, Any] = {field: 0 for field in IDENTITY_FLOAT_FIELDS + IDENTITY_INTEGER_FIELDS}
    num_gt_dets, num_tracker_dets = seq.gt.num_dets, seq.tracker.num_dets
    if num_tracker_dets == 0:
        res["IDFN"] = num_gt_dets
        return res
    if num_gt_dets == 0:
        res["IDFP"] = num_tracker_dets
        return res

    passed = np.greater_equal(seq.pair_iou, threshold)
    num_tracker_ids = seq.tracker.num_ids
    keys = (
        seq.gt.id[seq.pair_gt[passed]] * num_tracker_ids + seq.tracker.id[seq.pair_tracker[passed]]
    )
    num_cells = seq.gt.num_ids * num_tracker_ids
    if num_cells <= 8 * keys.shape[0] + 1_000_000:
        counts = np.bincount(keys, minlength=num_cells)
        cells = np.flatnonzero(counts)
        counts = counts[cells]
    else:
        cells, counts = np.unique(keys, return_counts=True)
    shared_frames = max_weight_matching(
        cells // num_tracker_ids,
        cells % num_tracker_ids,
        counts,
        seq.gt.num_ids,
        num_tracker_ids,
    )
    res["IDFN"] = num_gt_dets - shared_frames
    res["IDFP"] = num_tracker_dets - shared_frames
    res["IDTP"] = num_gt_dets - res["IDFN"]
    return identity_final_fields(res)
