"""CLEAR and ID metrics with the matching rules of py-motmetrics 1.4.0, on frame-sorted arrays.

py-motmetrics (``motmetrics.mot.MOTAccumulator.update``) and TrackEval both match frame by frame,
but they differ in how a frame's matching continues the matches of earlier frames:

* py-motmetrics first keeps every pair whose hypothesis is the one last paired with the object,
  at any earlier frame (``MOTAccumulator.m``), if the pair's distance is finite in this frame.
  The remaining pairs are matched by a Hungarian solution that minimises the total distance.
  TrackEval instead adds a bonus to the pairs matched in the previous frame that had boxes on
  both sides, and solves one Hungarian problem per frame.
* A Hungarian match is an ID switch when the object was paired with another hypothesis before.
* ``mostly_tracked`` needs a tracked ratio of at least 0.8 (TrackEval: above 0.8).
* A fragmentation is a change from tracked to missed between the first and the last frame in
  which the object is tracked. Frames without the object do not count.
* MOTP is the mean distance of the matches (TrackEval: the mean IoU).

This module reproduces the accumulator's events (MATCH, SWITCH, MISS, FP and the extra ASCEND,
TRANSFER and MIGRATE events of 1.4.0) and ``motmetrics.metrics`` on top of them. The Hungarian
step calls scipy's ``linear_sum_assignment`` on the same full-frame matrix that py-motmetrics
builds with its ``scipy`` solver (non-edges replaced by ``add_expensive_edges``' large constant),
so ties are broken the same way. A frame whose free edges share no object and no hypothesis
skips the solver, because its optimum is then unique.

py-motmetrics 1.1.3, which the 3D-ZeF code's ``motmetrics-env.yml`` pins, gives the same
metrics on every golden case of ``benchmarks/motmetrics_golden.py``. It only lacks the extra
events, and that changes 3D-ZeF's MTBF (``mtbf_extra_events`` of :func:`clear_id_metrics`).

NOTE: that environment has scipy 1.3.1, whose ``linear_sum_assignment`` is an older algorithm
than the one of scipy 1.4 and later used here. Where two assignments of a frame have exactly the
same total distance, it may pick the other one.

Distances are supplied as candidate pairs: a pair that is not listed has py-motmetrics' NaN
distance ("cannot match"). :func:`distance_pairs` builds them for point data (Euclidean distance,
NaN above the threshold, as the 3D-ZeF evaluation code does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import EvaluationError
from motcom.evaluation.identity import max_weight_matching
from motcom.evaluation.lsap import linear_sum_assignment

SEMANTICS = ("trackeval", "motmetrics")
"""Matching rules of the CLEAR and ID metrics: TrackEval 1.3.0 or py-motmetrics 1.4.0."""

MATCH, SWITCH, MISS = 0, 1, 2
"""Main event of a ground-truth row (py-motmetrics event types)."""

ASCEND, TRANSFER, MIGRATE = 1, 2, 4
"""Bits of the extra events py-motmetrics 1.4.0 records before a MATCH or SWITCH event."""

MOSTLY_TRACKED_RATIO = 0.8
MOSTLY_LOST_RATIO = 0.2


def check_semantics(semantics: str) -> None:
    """Raise :class:`EvaluationError` unless ``semantics`` is one of :data:`SEMANTICS`."""
    if semantics not in SEMANTICS:
        raise EvaluationError(
            f"unknown semantics {semantics!r}; expected one of {', '.join(SEMANTICS)}"
        )


@dataclass(frozen=True)
class Events:
    """The accumulator's events of one sequence, one main event per ground-truth row.

    Ground-truth and tracker rows are those passed to :func:`accumulate`, sorted by frame.
    """

    gt_event: np.ndarray
    """``MATCH``, ``SWITCH`` or ``MISS`` per ground-truth row."""
    gt_extra: np.ndarray
    """Bit set of ``ASCEND``, ``TRANSFER`` and ``MIGRATE`` recorded before the main event."""
    gt_match: np.ndarray
    """Tracker row matched to each ground-truth row, -1 for a miss."""
    gt_distance: np.ndarray
    """Distance of the match, NaN for a miss."""
    num_false_positives: int
    num_frames: int
    """Frames with at least one ground-truth or tracker row (py-motmetrics' ``num_frames``)."""


def _frame_ranges(frames: np.ndarray, keys: np.ndarray) -> tuple[list[int], list[int]]:
    start = np.searchsorted(keys, frames, side="left")
    stop = np.searchsorted(keys, frames, side="right")
    return start.tolist(), stop.tolist()


def _check_sorted(name: str, frame: np.ndarray) -> None:
    if frame.size > 1 and np.any(frame[1:] < frame[:-1]):
        raise EvaluationError(f"{name} rows are not sorted by frame; sort them (stable) first")


def check_unique_ids(side: str, frame: np.ndarray, ids: np.ndarray, where: str = "") -> None:
    """Raise :class:`EvaluationError` when an id occurs twice in one frame.

    py-motmetrics cannot tell two rows of one id apart, and the 3D-ZeF and MOTChallenge
    evaluation scripts reject such files as well.
    """
    if frame.size < 2:
        return
    order = np.lexsort((ids, frame))
    same = (frame[order][1:] == frame[order][:-1]) & (ids[order][1:] == ids[order][:-1])
    if same.any():
        first = order[1:][np.flatnonzero(same)[0]]
        prefix = f"{where}: " if where else ""
        raise EvaluationError(
            f"{prefix}{side} id {int(ids[first])} occurs more than once in frame "
            f"{int(frame[first])}; each id may have one row per frame"
        )


def _add_expensive_edges(costs: np.ndarray) -> np.ndarray:
    """Replace NaN costs as ``motmetrics.lap.add_expensive_edges`` (1.4.0) does."""
    valid = np.isfinite(costs)
    if valid.all():
        return costs.copy()
    if not valid.any():
        return np.zeros_like(costs)
    r = min(costs.shape)
    c = np.abs(costs[valid]).max() + 1
    return np.where(valid, costs, 2 * r * c + 1)


def _hungarian(
    free: list[tuple[int, int, float]], g0: int, g1: int, t0: int, t1: int
) -> list[tuple[int, int, float]]:
    """Solve the frame's remaining edges as py-motmetrics' scipy solver does; rows ascending."""
    rows = [edge[0] for edge in free]
    cols = [edge[1] for edge in free]
    if len(set(rows)) == len(rows) and len(set(cols)) == len(cols):
        # Every free edge is its own component: the minimum-cost assignment takes them all.
        return sorted(free)
    costs = np.full((g1 - g0, t1 - t0), np.nan)
    for r, c, d in free:
        costs[r - g0, c - t0] = d
    rids, cids = linear_sum_assignment(_add_expensive_edges(costs))
    chosen = []
    for i, j in zip(rids.tolist(), cids.tolist(), strict=True):
        d = costs[i, j]
        if math.isfinite(d):
            chosen.append((i + g0, j + t0, float(d)))
    return chosen


def accumulate(
    gt_frame: np.ndarray,
    gt_id: np.ndarray,
    tracker_frame: np.ndarray,
    tracker_id: np.ndarray,
    pair_gt: np.ndarray,
    pair_tracker: np.ndarray,
    pair_distance: np.ndarray,
    *,
    max_switch_time: float = math.inf,
) -> Events:
    """Run py-motmetrics 1.4.0's ``MOTAccumulator.update`` over all frames of a sequence.

    Args:
        gt_frame: frame number of each ground-truth row, sorted ascending. Rows of a frame keep
            their order, which is the row order of py-motmetrics' distance matrix.
        gt_id: object id of each ground-truth row.
        tracker_frame: frame number of each tracker row, sorted ascending.
        tracker_id: hypothesis id of each tracker row.
        pair_gt: ground-truth row of each candidate pair (both rows in the same frame).
        pair_tracker: tracker row of each candidate pair.
        pair_distance: finite distance of each candidate pair; pairs not listed cannot match.
        max_switch_time: py-motmetrics' ``max_switch_time`` in frame numbers: a re-pairing later
            than this after the object's previous occurrence is a MATCH, not a SWITCH.

    Returns:
        The events, with the frames processed in ascending order.

    .. note::
        The 3D-ZeF code passes the frames in the iteration order of a Python ``set`` of their
        numbers. That order is ascending for the contiguous frame numbers of 3D-ZeF20, but can
        differ for sparse, large frame numbers.

    Raises:
        EvaluationError: rows not sorted by frame, an id twice in a frame, or a pair whose two
            rows lie in different frames.
    """
    _check_sorted("ground-truth", gt_frame)
    _check_sorted("tracker", tracker_frame)
    check_unique_ids("ground-truth", gt_frame, gt_id)
    check_unique_ids("tracker", tracker_frame, tracker_id)
    if pair_gt.size and np.any(gt_frame[pair_gt] != tracker_frame[pair_tracker]):
        raise EvaluationError("a candidate pair joins rows of different frames")

    num_gt = gt_frame.shape[0]
    gt_event = np.full(num_gt, MISS, np.int8)
    gt_extra = np.zeros(num_gt, np.int8)
    gt_match = np.full(num_gt, -1, np.int64)
    gt_distance = np.full(num_gt, np.nan)

    frames = np.union1d(gt_frame, tracker_frame)
    g_start, g_stop = _frame_ranges(frames, gt_frame)
    t_start, t_stop = _frame_ranges(frames, tracker_frame)
    order = np.lexsort((pair_tracker, pair_gt))
    pair_gt, pair_tracker = pair_gt[order], pair_tracker[order]
    pair_distance = pair_distance[order]
    e_start, e_stop = _frame_ranges(frames, gt_frame[pair_gt])
    pair_gt_list, pair_tracker_list = pair_gt.tolist(), pair_tracker.tolist()
    pair_distance_list = pair_distance.tolist()
    gids, tids = gt_id.tolist(), tracker_id.tolist()

    last_pair: dict[int, int] = {}  # object -> hypothesis last paired (MOTAccumulator.m)
    last_object: dict[int, int] = {}  # hypothesis -> object of its last Hungarian match (res_m)
    seen_hypotheses: set[int] = set()  # hypHistory
    matched_objects: set[int] = set()  # last_match
    last_occurrence: dict[int, int] = {}
    matched_tracker = np.zeros(tracker_frame.shape[0], bool)

    for k, frame in enumerate(frames.tolist()):
        g0, g1, t0, t1 = g_start[k], g_stop[k], t_start[k], t_stop[k]
        e0, e1 = e_start[k], e_stop[k]
        if g1 > g0 and t1 > t0 and e1 > e0:
            distance = {(pair_gt_list[e], pair_tracker_list[e]): pair_distance_list[e]
                        for e in range(e0, e1)}
            column_of = {tids[c]: c for c in range(t0, t1)}
            used_rows: set[int] = set()
            used_cols: set[int] = set()

            # 1. Keep each object's previous pairing where it is still possible.
            for r in range(g0, g1):
                o = gids[r]
                h = last_pair.get(o)
                if h is None:
                    continue
                c = column_of.get(h)
                if c is None or c in used_cols or (r, c) not in distance:
                    continue
                used_rows.add(r)
                used_cols.add(c)
                gt_event[r] = MATCH
                gt_match[r] = c
                gt_distance[r] = distance[(r, c)]
                seen_hypotheses.add(h)
                matched_objects.add(o)

            # 2. Minimum-distance assignment of the rest.
            free = [(r, c, d) for (r, c), d in distance.items()
                    if r not in used_rows and c not in used_cols]
            for r, c, d in _hungarian(free, g0, g1, t0, t1) if free else ():
                o, h = gids[r], tids[c]
                previous = last_pair.get(o)
                is_switch = (previous is not None and previous != h
                             and abs(frame - last_occurrence[o]) <= max_switch_time)
                extra = 0
                if is_switch and h not in seen_hypotheses:
                    extra |= ASCEND
                if h in last_object and last_object[h] != o:
                    extra |= TRANSFER
                    if o not in matched_objects:
                        extra |= MIGRATE
                seen_hypotheses.add(h)
                matched_objects.add(o)
                gt_event[r] = SWITCH if is_switch else MATCH
                gt_extra[r] = extra
                gt_match[r] = c
                gt_distance[r] = d
                last_pair[o] = h
                last_object[h] = o
        for r in range(g0, g1):
            last_occurrence[gids[r]] = frame

    matched = gt_match[gt_match >= 0]
    matched_tracker[matched] = True
    return Events(
        gt_event=gt_event,
        gt_extra=gt_extra,
        gt_match=gt_match,
        gt_distance=gt_distance,
        num_false_positives=int(tracker_frame.shape[0] - matched.shape[0]),
        num_frames=int(frames.shape[0]),
    )


def _quiet_divide(a: float, b: float) -> float:
    """Divide as ``numpy.true_divide`` does in ``motmetrics.math_util.quiet_divide``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.true_divide(np.float64(a), np.float64(b)))


def _by_object(gt_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the rows ordered by object (then frame) and a mask of rows that start an object."""
    order = np.argsort(gt_id, kind="stable")
    ids = gt_id[order]
    starts = np.ones(ids.shape[0], bool)
    starts[1:] = ids[1:] != ids[:-1]
    return order, starts


def _fragmentations(gt_id: np.ndarray, events: np.ndarray) -> int:
    """Count changes from tracked to missed inside each object's tracked span."""
    order, starts = _by_object(gt_id)
    missed = events[order] == MISS
    run_id = np.cumsum(starts) - 1
    tracked_positions = np.flatnonzero(~missed)
    last_tracked = np.full(run_id[-1] + 1 if run_id.size else 0, -1)
    np.maximum.at(last_tracked, run_id[tracked_positions], tracked_positions)
    position = np.arange(missed.shape[0])
    enters_miss = missed & ~starts
    enters_miss[1:] &= ~missed[:-1]
    return int(np.sum(enters_miss & (position < last_tracked[run_id])))


def mtbf_counts(
    gt_id: np.ndarray, events: np.ndarray, extra: np.ndarray | None
) -> tuple[int, int, int]:
    """Count the runs that the 3D-ZeF code's ``MTBF`` function finds in the events table.

    Per object, in event order, a MATCH extends the current run and a SWITCH starts a new run.
    Any other event ends the run and starts a gap: a MISS, and with py-motmetrics 1.4.0 also
    ASCEND, TRANSFER and MIGRATE, which that function does not tell apart from a MISS.

    Args:
        gt_id: object id per ground-truth row, rows in frame order.
        events: main event per row.
        extra: extra-event bits per row (:attr:`Events.gt_extra`), or ``None`` for the events of
            py-motmetrics 1.1.3, which has no extra events.

    Returns:
        ``(ssum, slen, nslen)``: frames in runs (MATCH and SWITCH events), number of runs, and
        number of gaps (maximal stretches of other events).
    """
    if gt_id.size == 0:
        return 0, 0, 0
    order, starts = _by_object(gt_id)
    main = events[order]
    has_gap_before = (extra[order] != 0) if extra is not None else np.zeros(main.shape[0], bool)
    tracked = main != MISS

    # Token stream per row: an optional gap token, then the main token.
    previous_is_gap = np.zeros(main.shape[0], bool)
    previous_is_gap[1:] = ~tracked[:-1]
    previous_is_gap &= ~starts
    has_gap_token = has_gap_before | ~tracked
    ssum = int(np.sum(tracked))
    run_start = tracked & ((main == SWITCH) | starts | previous_is_gap | has_gap_before)
    slen = int(np.sum(run_start))
    # A gap stretch starts at a gap token not preceded by another gap token of the same object.
    nslen = int(np.sum(has_gap_token & ~previous_is_gap))
    return ssum, slen, nslen


def clear_id_metrics(
    gt_id: np.ndarray,
    tracker_id: np.ndarray,
    events: Events,
    pair_gt: np.ndarray,
    pair_tracker: np.ndarray,
    *,
    mtbf_extra_events: bool = True,
) -> dict[str, Any]:
    """Compute ``motmetrics.metrics`` (1.4.0) and the 3D-ZeF extras of one sequence.

    Args:
        gt_id: object id per ground-truth row (rows as for :func:`accumulate`).
        tracker_id: hypothesis id per tracker row.
        events: the result of :func:`accumulate`.
        pair_gt: ground-truth row of every candidate pair (finite distance), for IDF1.
        pair_tracker: tracker row of every candidate pair.
        mtbf_extra_events: count py-motmetrics 1.4.0's ASCEND, TRANSFER and MIGRATE events as
            failures in MTBF, as the 3D-ZeF ``MTBF`` function does when it runs on 1.4.0. False
            gives its values under py-motmetrics 1.1.3, which has no such events.

    Returns:
        py-motmetrics' metric names (``num_matches``, ``num_switches``, ``mota``, ``motp``,
        ``idf1``, ...), ratios as fractions and NaN where py-motmetrics divides 0 by 0, plus
        ``motp_sum`` (total match distance), ``motal``, ``mtbf_ssum``, ``mtbf_slen``,
        ``mtbf_nslen``, ``mtbf_std`` and ``mtbf_mono``.
    """
    event = events.gt_event
    res: dict[str, Any] = {
        "num_frames": events.num_frames,
        "num_matches": int(np.sum(event == MATCH)),
        "num_switches": int(np.sum(event == SWITCH)),
        "num_misses": int(np.sum(event == MISS)),
        "num_false_positives": events.num_false_positives,
        "num_objects": int(gt_id.shape[0]),
        "num_predictions": int(tracker_id.shape[0]),
        "num_unique_objects": int(np.unique(gt_id).shape[0]),
        "num_ascend": int(np.sum((events.gt_extra & ASCEND) != 0)),
        "num_transfer": int(np.sum((events.gt_extra & TRANSFER) != 0)),
        "num_migrate": int(np.sum((events.gt_extra & MIGRATE) != 0)),
    }
    res["num_detections"] = res["num_matches"] + res["num_switches"]
    tracked_rows = event != MISS
    res["motp_sum"] = float(np.sum(events.gt_distance[tracked_rows]))

    # Tracked ratio per object: MATCH and SWITCH events over all its events.
    if gt_id.size:
        unique_ids, inverse = np.unique(gt_id, return_inverse=True)
        total = np.bincount(inverse, minlength=unique_ids.shape[0]).astype(np.float64)
        tracked = np.bincount(inverse[tracked_rows], minlength=unique_ids.shape[0])
        ratio = tracked / total
    else:
        ratio = np.zeros(0)
    res["mostly_tracked"] = int(np.sum(ratio >= MOSTLY_TRACKED_RATIO))
    res["partially_tracked"] = int(np.sum((ratio >= MOSTLY_LOST_RATIO)
                                          & (ratio < MOSTLY_TRACKED_RATIO)))
    res["mostly_lost"] = int(np.sum(ratio < MOSTLY_LOST_RATIO))
    res["num_fragmentations"] = _fragmentations(gt_id, event) if gt_id.size else 0

    # ID measures: the most frames a one-to-one object-hypothesis assignment can share.
    if pair_gt.size:
        gt_ids, gt_index = np.unique(gt_id[pair_gt], return_inverse=True)
        tr_ids, tr_index = np.unique(tracker_id[pair_tracker], return_inverse=True)
        cells, counts = np.unique(gt_index * tr_ids.shape[0] + tr_index, return_counts=True)
        idtp = max_weight_matching(cells // tr_ids.shape[0], cells % tr_ids.shape[0], counts,
                                   gt_ids.shape[0], tr_ids.shape[0])
    else:
        idtp = 0
    res["idtp"] = idtp
    res["idfn"] = res["num_objects"] - idtp
    res["idfp"] = res["num_predictions"] - idtp

    ssum, slen, nslen = mtbf_counts(gt_id, event, events.gt_extra if mtbf_extra_events else None)
    res["mtbf_ssum"], res["mtbf_slen"], res["mtbf_nslen"] = ssum, slen, nslen
    return finish_metrics(res)


def finish_metrics(res: dict[str, Any]) -> dict[str, Any]:
    """Fill the ratios from the counts (in place), as ``motmetrics.metrics`` 1.4.0 does.

    ``motp`` is computed from ``motp_sum`` here; :func:`combine_metrics` uses py-motmetrics'
    weighted form for the OVERALL row instead.
    """
    detections, objects = res["num_detections"], res["num_objects"]
    fp, misses, switches = res["num_false_positives"], res["num_misses"], res["num_switches"]
    if "motp" not in res:
        res["motp"] = _quiet_divide(res["motp_sum"], detections)
    res["mota"] = 1.0 - _quiet_divide(misses + switches + fp, objects)
    res["precision"] = _quiet_divide(detections, fp + detections)
    res["recall"] = _quiet_divide(detections, objects)
    idtp = res["idtp"]
    res["idp"] = _quiet_divide(idtp, idtp + res["idfp"])
    res["idr"] = _quiet_divide(idtp, idtp + res["idfn"])
    res["idf1"] = _quiet_divide(2 * idtp, objects + res["num_predictions"])
    # 3D-ZeF (modules/evaluation/MOT_evaluation.py): MOTAL damps switches with log10(IDSW + 1);
    # MTBF is 0 when there is no run.
    res["motal"] = 1.0 - _quiet_divide(misses + fp + math.log10(switches + 1), objects)
    slen, nslen = res["mtbf_slen"], res["mtbf_nslen"]
    res["mtbf_std"] = res["mtbf_ssum"] / slen if slen else 0.0
    res["mtbf_mono"] = res["mtbf_ssum"] / (slen + nslen) if slen else 0.0
    return res


SUMMED_FIELDS = (
    "num_frames", "num_matches", "num_switches", "num_misses", "num_false_positives",
    "num_objects", "num_predictions", "num_unique_objects", "num_ascend", "num_transfer",
    "num_migrate", "num_detections", "motp_sum", "mostly_tracked", "partially_tracked",
    "mostly_lost", "num_fragmentations", "idtp", "idfn", "idfp", "mtbf_ssum", "mtbf_slen",
    "mtbf_nslen",
)
"""Counts that the OVERALL row sums over sequences."""


def combine_metrics(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine per-sequence results as ``MetricsHost.compute_overall`` (1.4.0) does.

    Counts are summed and the ratios recomputed from the sums. ``motp`` is the sum of
    ``motp * num_detections`` over sequences divided by the summed detections, py-motmetrics'
    ``motp_m``, so a sequence without detections (``motp`` NaN) makes it NaN as in
    py-motmetrics. The MTBF run counts are summed before dividing.
    """
    res: dict[str, Any] = {field: sum(row[field] for row in results) for field in SUMMED_FIELDS}
    weighted = 0.0
    for row in results:
        weighted += row["motp"] * row["num_detections"]
    res["motp"] = _quiet_divide(weighted, res["num_detections"])
    return finish_metrics(res)


# ---------------------------------------------------------------------------------------------
# Candidate pairs of point data and of boxes


def frame_pairs(gt_frame: np.ndarray, tracker_frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return every (ground-truth row, tracker row) pair of the same frame.

    Both inputs are sorted by frame. The pairs come sorted by ground-truth row, then tracker row.
    """
    frames, gt_counts = np.unique(gt_frame, return_counts=True)
    tr_index = np.searchsorted(tracker_frame, frames, side="left")
    tr_counts = np.searchsorted(tracker_frame, frames, side="right") - tr_index
    per_gt_row = np.repeat(tr_counts, gt_counts)
    total = int(per_gt_row.sum())
    if total == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty
    pair_gt = np.repeat(np.arange(gt_frame.shape[0]), per_gt_row)
    row_tracker_start = np.repeat(tr_index, gt_counts)
    first_pair = np.cumsum(per_gt_row) - per_gt_row
    offset = np.arange(total) - np.repeat(first_pair, per_gt_row)
    pair_tracker = np.repeat(row_tracker_start, per_gt_row) + offset
    return pair_gt, pair_tracker


def box_distance_pairs(
    gt_frame: np.ndarray,
    gt_boxes: np.ndarray,
    tracker_frame: np.ndarray,
    tracker_boxes: np.ndarray,
    max_distance: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the same-frame box pairs whose distance ``1 - IoU`` is at most ``max_distance``.

    The IoU is that of the 3D-ZeF ``IoU`` function: boxes ``left, top, width, height`` span the
    pixels ``left .. left + width`` (both ends included, hence the "+1" in each side length).

    Returns:
        ``(pair_gt, pair_tracker, distance)``, sorted by frame, ground-truth row, tracker row.
    """
    pair_gt, pair_tracker = frame_pairs(gt_frame, tracker_frame)
    a, b = gt_boxes[pair_gt], tracker_boxes[pair_tracker]
    a_right, a_bottom = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    b_right, b_bottom = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    inter_w = np.maximum(0.0, np.minimum(a_right, b_right) - np.maximum(a[:, 0], b[:, 0]) + 1)
    inter_h = np.maximum(0.0, np.minimum(a_bottom, b_bottom) - np.maximum(a[:, 1], b[:, 1]) + 1)
    intersection = inter_w * inter_h
    area_a = (a_right - a[:, 0] + 1) * (a_bottom - a[:, 1] + 1)
    area_b = (b_right - b[:, 0] + 1) * (b_bottom - b[:, 1] + 1)
    distance = 1 - intersection / (area_a + area_b - intersection)
    keep = distance <= max_distance
    return pair_gt[keep], pair_tracker[keep], distance[keep]


def distance_pairs(
    gt_frame: np.ndarray,
    gt_points: np.ndarray,
    tracker_frame: np.ndarray,
    tracker_points: np.ndarray,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the pairs of same-frame points whose Euclidean distance is at most ``threshold``.

    The 3D-ZeF evaluation code sets distances ``> threshold`` to NaN, so a distance equal to the
    threshold still matches.

    Args:
        gt_frame: frame per ground-truth row, sorted ascending.
        gt_points: ``(N, D)`` ground-truth points.
        tracker_frame: frame per tracker row, sorted ascending.
        tracker_points: ``(M, D)`` tracker points.
        threshold: largest distance of a pair, in the points' unit.

    Returns:
        ``(pair_gt, pair_tracker, distance)``, sorted by frame, ground-truth row, tracker row.
    """
    pair_gt, pair_tracker = frame_pairs(gt_frame, tracker_frame)
    diff = gt_points[pair_gt] - tracker_points[pair_tracker]
    squared = diff[:, 0] * diff[:, 0]
    for axis in range(1, diff.shape[1]):
        squared = squared + diff[:, axis] * diff[:, axis]
    distance = np.sqrt(squared)
    keep = distance <= threshold
    return pair_gt[keep], pair_tracker[keep], distance[keep]


# ---------------------------------------------------------------------------------------------
# Boxes of a MOTChallenge sequence


def clear_identity_prepared(seq: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Compute CLEAR and Identity fields of a preprocessed MOT sequence with py-motmetrics' rules.

    The distance of a pair is ``1 - IoU`` and pairs with ``1 - IoU > 1 - threshold`` cannot
    match, as with ``motmetrics.distances.iou_matrix(..., max_iou=1 - threshold)``. The result
    has TrackEval's field names so that the summary files and the COMBINED row work unchanged:
    ``CLR_TP`` counts matches and switches, ``MOTP`` stays the mean IoU of the matches, and
    ``MT``, ``PT``, ``ML`` and ``Frag`` follow py-motmetrics.

    Args:
        seq: a :class:`~motcom.evaluation.preprocess.PreparedSequence`.
        threshold: IoU a match needs.

    .. note::
        py-motmetrics computes the IoU with its own formula, so a pair whose IoU lies within a
        few ulps of the threshold can be decided differently there.
    """
    from motcom.evaluation.clear import clear_final_fields
    from motcom.evaluation.identity import identity_final_fields

    distance = 1.0 - seq.pair_iou
    edge = distance <= 1.0 - threshold
    pair_gt, pair_tracker = seq.pair_gt[edge], seq.pair_tracker[edge]
    events = accumulate(seq.gt.frame, seq.gt.id, seq.tracker.frame, seq.tracker.id, pair_gt,
                        pair_tracker, distance[edge])
    mm = clear_id_metrics(seq.gt.id, seq.tracker.id, events, pair_gt, pair_tracker)
    tracked = events.gt_event != MISS
    res: dict[str, Any] = {
        "CLR_TP": mm["num_detections"],
        "CLR_FN": mm["num_misses"],
        "CLR_FP": mm["num_false_positives"],
        "IDSW": mm["num_switches"],
        "MT": mm["mostly_tracked"],
        "PT": mm["partially_tracked"],
        "ML": mm["mostly_lost"],
        "Frag": float(mm["num_fragmentations"]),
        "MOTP_sum": float(np.sum(1.0 - events.gt_distance[tracked])),
        "CLR_Frames": seq.num_timesteps,
        "IDTP": mm["idtp"],
        "IDFN": mm["idfn"],
        "IDFP": mm["idfp"],
    }
    clear_final_fields(res)
    return identity_final_fields(res)
