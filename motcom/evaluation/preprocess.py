"""Input checks and TrackEval's MOTChallenge preprocessing, on frame-sorted arrays.

The preprocessing follows ``MotChallenge2DBox.get_preprocessed_seq_data`` of TrackEval 1.3.0:

1. IoU between every gt row (any class, any flag) and every tracker box of a frame.
2. For MOT16/MOT17/MOT20: a Hungarian matching on the IoUs of at least 0.5 (minus eps); tracker
   boxes matched to a distractor gt row are removed. Distractors are classes 2, 7, 8 and 12, plus
   class 6 for MOT20.
3. gt rows are kept when their flag, truncated to an integer, is not 0, and (MOT16/17/20 only)
   their class is 1. MOT15 and ``benchmark=None`` keep every row with a non-zero flag, which is
   what TrackEval does for MOT15 and with ``DO_PREPROC=False``.
4. Ids are relabelled to ``0..n-1`` in increasing order of the original id.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

from harness.errors import EvaluationError
from motcom.data import GroundTruth, Tracks
from motcom.evaluation.ious import EPS, Corners, corner_boxes, overlap_ious
from motcom.evaluation.lsap import linear_sum_assignment
from motcom.evaluation.matching import SmallComponents, frame_mask, frame_offsets, stable_order

PREPROCESSED_BENCHMARKS = ("MOT16", "MOT17", "MOT20")
"""Benchmarks for which TrackEval removes tracker boxes on distractors and non-pedestrian gt."""

BENCHMARKS = (*PREPROCESSED_BENCHMARKS, "MOT15", None)

DISTRACTOR_CLASSES = np.array([2, 7, 8, 12])
"""person_on_vehicle, static_person, distractor, reflection (TrackEval ``mot_challenge_2d_box``)."""

MOT20_DISTRACTOR_CLASSES = np.array([2, 6, 7, 8, 12])
"""MOT20 adds class 6, non_mot_vehicle."""

VALID_GT_CLASSES = np.arange(1, 14)
"""The 13 MOTChallenge class ids; other gt classes are an error when preprocessing runs."""

PEDESTRIAN_CLASS = 1
PREPROCESS_THRESHOLD = 0.5
"""IoU a tracker box needs with a distractor to be removed; fixed in TrackEval, not configurable."""


@dataclass(frozen=True)
class SideArrays:
    """The boxes of one side (gt or tracker) after preprocessing, sorted by frame.

    Within a frame the rows keep the order of the input, which is the row and column order of
    TrackEval's per-frame matrices.
    """

    frame: np.ndarray
    """0-based timestep of each box."""
    id: np.ndarray
    """Relabelled id, ``0..num_ids-1``."""
    position: np.ndarray
    """Row (gt) or column (tracker) index of the box within its frame."""
    offsets: np.ndarray
    """``(num_timesteps + 1,)``: the boxes of timestep ``t`` are ``offsets[t]:offsets[t+1]``."""
    num_ids: int

    @property
    def num_dets(self) -> int:
        return int(self.frame.shape[0])

    @property
    def per_frame(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass(frozen=True)
class PreparedSequence:
    """One sequence after preprocessing, with the IoU of every overlapping gt-tracker pair.

    ``pair_gt`` and ``pair_tracker`` index the rows of ``gt`` and ``tracker``. The pairs are
    sorted by frame, then gt row, then tracker column, and all have an IoU above 0. Every pair
    left out has IoU 0 in TrackEval's matrices.
    """

    num_timesteps: int
    gt: SideArrays
    tracker: SideArrays
    pair_gt: np.ndarray
    pair_tracker: np.ndarray
    pair_iou: np.ndarray

    @property
    def pair_frame(self) -> np.ndarray:
        return self.gt.frame[self.pair_gt]


def check_benchmark(benchmark: str | None) -> None:
    """Raise :class:`EvaluationError` unless TrackEval supports ``benchmark`` for MOTChallenge."""
    if benchmark not in BENCHMARKS:
        valid = ", ".join(repr(b) for b in BENCHMARKS)
        raise EvaluationError(f"unknown benchmark {benchmark!r}; expected one of {valid}")


def _where(name: str | None, side: str) -> str:
    return f"sequence {name!r}, {side}" if name else side


def _check_side(
    side: str,
    name: str | None,
    frame: np.ndarray,
    ids: np.ndarray,
    boxes: np.ndarray,
    seq_length: int,
) -> None:
    """Check the frames, ids and boxes of one side; raise :class:`EvaluationError` on a bad row."""
    where = _where(name, side)
    n = frame.shape[0]
    if ids.shape != (n,) or boxes.shape != (n, 4):
        raise EvaluationError(
            f"{where}: arrays of different lengths (frame {frame.shape}, id {ids.shape}, "
            f"boxes {boxes.shape}); expected (n,), (n,) and (n, 4)"
        )
    if n == 0:
        return

    # Each check scans the whole side once and looks for the offending row only on failure.
    if frame.min() < 1 or frame.max() > seq_length:
        bad = np.flatnonzero((frame < 1) | (frame > seq_length))
        i = bad[0]
        raise EvaluationError(
            f"{where}: frame {int(frame[i])} (id {int(ids[i])}) is outside the sequence; "
            f"expected a frame in 1..{seq_length}"
        )
    if ids.min() < 0:
        bad = np.flatnonzero(ids < 0)
        i = bad[0]
        raise EvaluationError(
            f"{where}: frame {int(frame[i])} has negative id {int(ids[i])}; expected an id >= 0"
        )
    if not np.isfinite(boxes).all():
        bad = np.flatnonzero(~np.isfinite(boxes).all(axis=1))
        i = bad[0]
        raise EvaluationError(
            f"{where}: frame {int(frame[i])}, id {int(ids[i])} has a non-finite box "
            f"{boxes[i].tolist()}; expected finite left, top, width, height"
        )
    if boxes[:, 2:].min() < 0:
        bad = np.flatnonzero((boxes[:, 2] < 0) | (boxes[:, 3] < 0))
        i = bad[0]
        raise EvaluationError(
            f"{where}: frame {int(frame[i])}, id {int(ids[i])} has a negative width or height "
            f"{boxes[i, 2:].tolist()}; expected width >= 0 and height >= 0"
        )

    if int(ids.max()) < 2**40 and int(frame.max()) < 2**22:
        key = frame.astype(np.int64) * (int(ids.max()) + 1) + ids
        # Files sorted by frame, then id (tracker output) or by id, then frame (MOTChallenge gt)
        # need no sort: strictly increasing keys are unique.
        if np.all(key[1:] > key[:-1]):
            return
        id_major = ids.astype(np.int64) * (int(frame.max()) + 1) + frame
        if np.all(id_major[1:] > id_major[:-1]):
            return
        order = np.argsort(key)
        bad = np.flatnonzero(key[order][1:] == key[order][:-1])
    else:
        order = np.lexsort((ids, frame))
        same = (frame[order][1:] == frame[order][:-1]) & (ids[order][1:] == ids[order][:-1])
        bad = np.flatnonzero(same)
    if bad.size:
        i = order[bad[0]]
        raise EvaluationError(
            f"{where}: frame {int(frame[i])} has id {int(ids[i])} more than once; "
            "expected ids unique within a frame"
        )


def _check_seq_length(seq_length: int) -> None:
    if isinstance(seq_length, bool) or not isinstance(seq_length, int | np.integer):
        raise EvaluationError(f"seq_length is {seq_length!r}; expected an integer >= 1")
    if seq_length < 1:
        raise EvaluationError(f"seq_length is {seq_length}; expected an integer >= 1")


def check_inputs(gt: GroundTruth, tracks: Tracks, seq_length: int, name: str | None) -> None:
    """Validate both sides of a sequence before evaluation.

    Raises:
        EvaluationError: on a frame outside ``1..seq_length``, a negative or repeated id within a
            frame, a non-finite box, a negative width or height, or a non-finite gt flag.
    """
    _check_seq_length(seq_length)
    _check_side("gt", name, gt.frame, gt.id, gt.boxes, seq_length)
    _check_side("tracker", name, tracks.frame, tracks.id, tracks.boxes, seq_length)
    n = len(gt)
    if gt.flag.shape != (n,) or gt.cls.shape != (n,):
        raise EvaluationError(
            f"{_where(name, 'gt')}: flag {gt.flag.shape} and class {gt.cls.shape} arrays do not "
            f"match the {n} rows; expected shape ({n},)"
        )
    bad = np.flatnonzero(~np.isfinite(gt.flag))
    if bad.size:
        i = bad[0]
        raise EvaluationError(
            f"{_where(name, 'gt')}: frame {int(gt.frame[i])}, id {int(gt.id[i])} has flag "
            f"{gt.flag[i]}; expected a finite number (0 = ignore)"
        )


def _relabel(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Map ids to ``0..n-1`` in increasing id order; return the labels and ``n``."""
    if ids.size == 0:
        return np.zeros(0, np.int64), 0
    largest = int(ids.max())
    if largest > 4 * ids.size + 1_000_000:
        unique_ids = np.unique(ids)
        return np.searchsorted(unique_ids, ids).astype(np.int64), int(unique_ids.shape[0])
    present = np.zeros(largest + 1, bool)
    present[ids] = True
    label_of = np.cumsum(present) - 1
    return label_of[ids].astype(np.int64), int(label_of[-1]) + 1


def _positions(frame_sorted: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return np.arange(frame_sorted.shape[0]) - offsets[frame_sorted]


def _in_classes(classes: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """Return ``np.isin(classes, selected)``, by table lookup for integer classes."""
    if classes.dtype.kind not in "iu" or classes.size == 0:
        return np.isin(classes, selected)
    low, high = int(classes.min()), int(classes.max())
    if high - low > 1_000_000:
        return np.isin(classes, selected)
    table = np.zeros(high - low + 1, bool)
    inside = selected[(selected >= low) & (selected <= high)]
    table[inside - low] = True
    return table[classes - low]


def _distractor_matched_trackers(
    benchmark: str,
    frame_gt: np.ndarray,
    cls_gt: np.ndarray,
    gt_offsets: np.ndarray,
    tracker_offsets: np.ndarray,
    pair_gt: np.ndarray,
    pair_tracker: np.ndarray,
    pair_iou: np.ndarray,
    name: str | None,
) -> np.ndarray:
    """Return a mask over the (frame-sorted) tracker boxes that TrackEval removes as distractors.

    ``pair_*`` hold the overlapping pairs over all gt rows, sorted by frame, gt row, tracker
    column. Edges (IoU >= 0.5 - eps) in components with a unique optimum take that optimum (see
    :class:`SmallComponents`). A frame where a distractor edge has no such component is matched
    with the Hungarian algorithm on TrackEval's full-frame matrix, which keeps its tie-breaking.
    """
    num_tracker = int(tracker_offsets[-1])
    remove = np.zeros(num_tracker, bool)
    gt_per_frame = np.diff(gt_offsets)
    tracker_per_frame = np.diff(tracker_offsets)

    both = (gt_per_frame > 0) & (tracker_per_frame > 0)
    invalid = ~_in_classes(cls_gt, VALID_GT_CLASSES) & both[frame_gt]
    if invalid.any():
        i = np.flatnonzero(invalid)[0]
        raise EvaluationError(
            f"{_where(name, 'gt')}: frame {int(frame_gt[i]) + 1} has class {int(cls_gt[i])}; "
            f"expected a MOTChallenge class in 1..13 when {benchmark} preprocessing runs"
        )

    distractors = MOT20_DISTRACTOR_CLASSES if benchmark == "MOT20" else DISTRACTOR_CLASSES
    # About a third of the pairs are edges on the synthetic MOT17 set of bench_mot_eval.py. For
    # such a mask, selecting by positions is faster than selecting by the mask.
    edge = np.flatnonzero(pair_iou >= PREPROCESS_THRESHOLD - EPS)
    edge_gt = pair_gt[edge]
    edge_tracker = pair_tracker[edge]
    edge_iou = pair_iou[edge]
    if edge_gt.size == 0:
        return remove
    edge_frame = frame_gt[edge_gt]
    on_distractor = _in_classes(cls_gt[edge_gt], distractors)
    if not on_distractor.any():
        return remove

    degree_gt = np.bincount(edge_gt, minlength=len(frame_gt))
    degree_tracker = np.bincount(edge_tracker, minlength=num_tracker)
    isolated = (degree_gt[edge_gt] == 1) & (degree_tracker[edge_tracker] == 1)
    if np.all(isolated[on_distractor]):
        remove[edge_tracker[on_distractor]] = True
        return remove
    # An isolated edge is in every maximum matching; only the others form larger components.
    shared = np.flatnonzero(~isolated)
    components = SmallComponents(
        edge_frame[shared], edge_gt[shared], edge_tracker[shared], len(frame_gt), num_tracker
    )
    chosen = isolated.copy()
    chosen[shared], unresolved = components.solve(edge_iou[shared])
    frames_to_solve = np.intersect1d(unresolved, edge_frame[on_distractor])
    simple = on_distractor & chosen & ~frame_mask(frames_to_solve, len(gt_offsets) - 1)[edge_frame]
    remove[edge_tracker[simple]] = True

    edge_offsets = frame_offsets(edge_frame, len(gt_offsets) - 1)
    for t in frames_to_solve:
        lo, hi = edge_offsets[t], edge_offsets[t + 1]
        rows = edge_gt[lo:hi] - gt_offsets[t]
        cols = edge_tracker[lo:hi] - tracker_offsets[t]
        scores = np.zeros((gt_per_frame[t], tracker_per_frame[t]))
        scores[rows, cols] = edge_iou[lo:hi]
        match_rows, match_cols = linear_sum_assignment(scores, maximize=True)
        matched = scores[match_rows, match_cols] > 0 + EPS
        match_rows = match_rows[matched]
        match_cols = match_cols[matched]
        is_distractor = np.isin(cls_gt[gt_offsets[t] + match_rows], distractors)
        remove[tracker_offsets[t] + match_cols[is_distractor]] = True
    return remove


def prepare_sequence(
    gt: GroundTruth,
    tracks: Tracks,
    seq_length: int,
    *,
    benchmark: str | None,
    name: str | None = None,
) -> PreparedSequence:
    """Validate, preprocess and pair one sequence as TrackEval does before its metrics run.

    Raises:
        EvaluationError: on invalid input (see :func:`check_inputs`), an unknown benchmark, or a
            gt class outside 1..13 in a frame with tracker boxes when preprocessing runs.
    """
    check_benchmark(benchmark)
    prepared_gt = _cached_ground_truth(gt, seq_length, benchmark)
    if prepared_gt is None:
        check_inputs(gt, tracks, seq_length, name)
        prepared_gt = _prepare_ground_truth(gt, seq_length, benchmark)
        _store_ground_truth(gt, seq_length, benchmark, prepared_gt)
    else:
        # The cached gt passed its checks for this seq_length, so only the tracker needs them.
        _check_seq_length(seq_length)
        _check_side("tracker", name, tracks.frame, tracks.id, tracks.boxes, seq_length)
    frame_gt = prepared_gt.frame
    corners_gt = prepared_gt.corners
    cls_gt = prepared_gt.cls
    gt_offsets = prepared_gt.offsets
    keep_gt = prepared_gt.keep

    tracker_order = stable_order(tracks.frame, seq_length + 1)
    frame_tracker = tracks.frame[tracker_order].astype(np.int64) - 1
    corners_tracker = corner_boxes(tracks.boxes[tracker_order])
    tracker_offsets = frame_offsets(frame_tracker, seq_length)

    pair_gt, pair_tracker, pair_iou = overlap_ious(
        frame_gt, corners_gt, frame_tracker, corners_tracker
    )

    if benchmark in PREPROCESSED_BENCHMARKS:
        remove = _distractor_matched_trackers(
            benchmark,
            frame_gt,
            cls_gt,
            gt_offsets,
            tracker_offsets,
            pair_gt,
            pair_tracker,
            pair_iou,
            name,
        )
        keep_tracker = ~remove
    else:
        keep_tracker = np.ones(len(frame_tracker), bool)

    gt_side, gt_new_index = prepared_gt.side, prepared_gt.new_index
    tracker_side, tracker_new_index = _side(
        frame_tracker, tracks.id[tracker_order], keep_tracker, seq_length
    )
    kept_pair = keep_gt[pair_gt] & keep_tracker[pair_tracker]
    return PreparedSequence(
        num_timesteps=seq_length,
        gt=gt_side,
        tracker=tracker_side,
        pair_gt=gt_new_index[pair_gt[kept_pair]],
        pair_tracker=tracker_new_index[pair_tracker[kept_pair]],
        pair_iou=pair_iou[kept_pair],
    )


def _side(
    frame_sorted: np.ndarray, ids_sorted: np.ndarray, keep: np.ndarray, seq_length: int
) -> tuple[SideArrays, np.ndarray]:
    """Keep the selected rows of one frame-sorted side and relabel their ids."""
    frame = frame_sorted[keep]
    labels, num_ids = _relabel(ids_sorted[keep])
    offsets = frame_offsets(frame, seq_length)
    new_index = np.full(keep.shape[0], -1, np.int64)
    new_index[keep] = np.arange(frame.shape[0])
    side = SideArrays(
        frame=frame,
        id=labels,
        position=_positions(frame, offsets),
        offsets=offsets,
        num_ids=num_ids,
    )
    return side, new_index


@dataclass(frozen=True)
class _PreparedGroundTruth:
    """The tracker-independent part of :func:`prepare_sequence` for one gt and benchmark.

    All rows are sorted by frame (stable). ``side`` and ``new_index`` contain the kept rows.
    """

    frame: np.ndarray
    corners: Corners
    cls: np.ndarray
    offsets: np.ndarray
    keep: np.ndarray
    side: SideArrays
    new_index: np.ndarray


def _prepare_ground_truth(
    gt: GroundTruth, seq_length: int, benchmark: str | None
) -> _PreparedGroundTruth:
    gt_order = stable_order(gt.frame, seq_length + 1)
    frame = gt.frame[gt_order].astype(np.int64) - 1
    cls = gt.cls[gt_order]
    keep = np.trunc(gt.flag[gt_order]) != 0
    if benchmark in PREPROCESSED_BENCHMARKS:
        keep &= cls == PEDESTRIAN_CLASS
    side, new_index = _side(frame, gt.id[gt_order], keep, seq_length)
    prepared = _PreparedGroundTruth(
        frame=frame,
        corners=corner_boxes(gt.boxes[gt_order]),
        cls=cls,
        offsets=frame_offsets(frame, seq_length),
        keep=keep,
        side=side,
        new_index=new_index,
    )
    # The entry may serve later calls, so nothing downstream may write into it.
    for array in (frame, *prepared.corners, cls, prepared.offsets, keep, new_index,
                  side.frame, side.id, side.position, side.offsets):  # fmt: skip
        array.setflags(write=False)
    return prepared


GT_CACHE_SIZE = 4
"""Ground truths whose tracker-independent preprocessing is kept for reuse.

MOT17's DPM, FRCNN and SDP copies of a sequence share one gt, and the ``eval motchallenge``
command evaluates them one after another with the same :class:`GroundTruth` object.
"""

_GT_CACHE: list[tuple[weakref.ref, int, str | None, _PreparedGroundTruth]] = []
"""Most recently used entries first: (reference to the gt, seq_length, benchmark, result)."""

_GT_CACHE_LOCK = threading.Lock()


def _is_immutable(array: np.ndarray) -> bool:
    """Return whether ``array`` and every array it views are read-only, over owned or bytes memory.

    A read-only view of a writeable array still changes when its base is written.
    """
    while isinstance(array, np.ndarray):
        if array.flags.writeable:
            return False
        array = array.base
    return array is None or isinstance(array, bytes)


def _cacheable(gt: GroundTruth) -> bool:
    """Return whether ``gt``'s arrays cannot change in place, so a cached result stays valid.

    The readers of :mod:`motcom.io` return read-only arrays. Ground truths built from writeable
    arrays are prepared again on every call.
    """
    return all(_is_immutable(array) for array in (gt.frame, gt.id, gt.boxes, gt.flag, gt.cls))


def _cached_ground_truth(
    gt: GroundTruth, seq_length: int, benchmark: str | None
) -> _PreparedGroundTruth | None:
    with _GT_CACHE_LOCK:
        for position, (reference, length, entry_benchmark, prepared) in enumerate(_GT_CACHE):
            same_length = type(seq_length) is int and length == seq_length
            if reference() is gt and same_length and entry_benchmark == benchmark:
                _GT_CACHE.insert(0, _GT_CACHE.pop(position))
                return prepared
    return None


def _store_ground_truth(
    gt: GroundTruth, seq_length: int, benchmark: str | None, prepared: _PreparedGroundTruth
) -> None:
    if not _cacheable(gt) or type(seq_length) is not int:
        return
    with _GT_CACHE_LOCK:
        # Entries of collected ground truths can never match again, so they go first.
        _GT_CACHE[:] = [entry for entry in _GT_CACHE if entry[0]() is not None]
        _GT_CACHE.insert(0, (weakref.ref(gt), seq_length, benchmark, prepared))
        del _GT_CACHE[GT_CACHE_SIZE:]
