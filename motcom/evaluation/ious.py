"""Box IoU between the boxes of the same frame, computed only for pairs that can overlap.

TrackEval 1.3.0 computes a dense IoU matrix per frame (``_BaseDataset._calculate_box_ious``).
Here the pairs that can intersect are found first with a sweep over the left edges. Their IoU is
computed with the same floating-point operations in the same order, so every value is
bit-identical to TrackEval's and comparisons at exactly 0.5 agree. Pairs left out have IoU 0 in
TrackEval too.
"""

from __future__ import annotations

import numpy as np

from motcom.evaluation.matching import sorted_unique

EPS = float(np.finfo("float").eps)
"""Machine epsilon of float64, the tolerance TrackEval adds to or subtracts from its thresholds."""


def corner_boxes(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Convert ``left, top, width, height`` boxes to contiguous ``x0, y0, x1, y1`` columns.

    ``x1 = x0 + width`` and ``y1 = y0 + height``, rounded as TrackEval rounds them.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    x0 = np.ascontiguousarray(boxes[:, 0])
    y0 = np.ascontiguousarray(boxes[:, 1])
    return x0, y0, x0 + boxes[:, 2], y0 + boxes[:, 3]


Corners = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _box_areas(corners: Corners) -> np.ndarray:
    x0, y0, x1, y1 = corners
    return (x1 - x0) * (y1 - y0)


def _candidate_pairs(
    frame_a: np.ndarray, corners_a: Corners, frame_b: np.ndarray, corners_b: Corners
) -> tuple[np.ndarray, np.ndarray]:
    """Find the index pairs of boxes in the same frame whose x-extents may overlap.

    The result is a superset of the pairs with a positive intersection. It comes from a sweep
    over the sorted left edges of ``b``, with a window widened by the widest ``b`` box of the
    frame and by a margin larger than the rounding of the sort key.
    """
    x0_a, _, x1_a, _ = corners_a
    x0_b, _, x1_b, _ = corners_b
    x_min = min(x0_a.min(), x0_b.min())
    x_max = max(x1_a.max(), x1_b.max())
    span = (x_max - x_min) * 2.0 + 1.0
    frame_max = max(int(frame_a.max()), int(frame_b.max())) + 1
    margin = 16 * EPS * (frame_max * span + abs(x_min)) + 1e-9

    key_b = frame_b * span + (x0_b - x_min)
    # numpy's stable sort of floats (timsort) gains from the frame order the keys already have.
    order_b = np.argsort(key_b, kind="stable")
    sorted_key_b = key_b[order_b]

    widest_b = np.zeros(frame_max, np.float64)
    width_b = x1_b - x0_b
    if np.all(frame_b[1:] >= frame_b[:-1]):
        starts = np.flatnonzero(np.r_[True, frame_b[1:] != frame_b[:-1]])
        widest_b[frame_b[starts]] = np.maximum.reduceat(width_b, starts)
    else:
        np.maximum.at(widest_b, frame_b, width_b)
    base_a = frame_a * span - x_min
    low = np.searchsorted(sorted_key_b, base_a + x0_a - widest_b[frame_a] - margin, side="left")
    high = np.searchsorted(sorted_key_b, base_a + x1_a + margin, side="right")
    counts = np.maximum(high - low, 0)

    index_a = np.repeat(np.arange(frame_a.shape[0]), counts)
    starts = np.repeat(low - np.cumsum(counts) + counts, counts)
    index_b = order_b[starts + np.arange(index_a.shape[0])]
    if margin < 0.25:
        # The keys of two frames are at least ``span - 2 * (x_max - x_min) = 1`` apart, so a
        # window this narrow never reaches another frame.
        return index_a, index_b
    same_frame = frame_a[index_a] == frame_b[index_b]
    return index_a[same_frame], index_b[same_frame]


BLOCK_ROWS = 4096
"""About how many ``a`` boxes :func:`overlap_ious` pairs at once (whole frames go into a block).

Small blocks keep the candidate arrays in the CPU cache. On the synthetic MOT17 set of
``benchmarks/bench_mot_eval.py`` (2-core AMD EPYC VM) blocks of 4096 made the preprocessing
about 6 % faster than one block per sequence; 1024 was slower again.
"""


def overlap_ious(
    frame_a: np.ndarray, corners_a: Corners, frame_b: np.ndarray, corners_b: Corners
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return every same-frame pair ``(i, j)`` with a positive IoU, and that IoU.

    The IoU is computed as TrackEval's ``_calculate_box_ious`` computes the matrix entry: the
    intersection is zeroed where a box area or the union is at most eps, and a union of at most
    eps is replaced by 1.

    Args:
        frame_a: ``(n,)`` integer frame of each ``a`` box, in increasing order.
        corners_a: ``x0, y0, x1, y1`` columns of the ``a`` boxes (from :func:`corner_boxes`).
        frame_b: ``(m,)`` integer frame of each ``b`` box, in increasing order.
        corners_b: ``x0, y0, x1, y1`` columns of the ``b`` boxes.

    Returns:
        Index arrays into ``a`` and ``b`` and the IoUs, sorted by ``a`` index, then ``b`` index.
    """
    if frame_a.shape[0] == 0 or frame_b.shape[0] == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)

    # Blocks of whole frames: a block's a boxes meet only the b boxes of the same frames.
    block_starts = np.searchsorted(frame_a, frame_a[:: BLOCK_ROWS], side="left")
    a_bounds = np.r_[sorted_unique(block_starts), frame_a.shape[0]]
    b_bounds = np.searchsorted(frame_b, frame_a[a_bounds[:-1]], side="left").tolist()
    b_bounds.append(frame_b.shape[0])
    a_bounds = a_bounds.tolist()
    parts = []
    for block in range(len(a_bounds) - 1):
        a_lo, a_hi = a_bounds[block], a_bounds[block + 1]
        b_lo, b_hi = b_bounds[block], b_bounds[block + 1]
        if b_hi == b_lo:
            continue
        index_a, index_b, iou = _block_ious(
            frame_a[a_lo:a_hi],
            tuple(column[a_lo:a_hi] for column in corners_a),
            frame_b[b_lo:b_hi],
            tuple(column[b_lo:b_hi] for column in corners_b),
        )
        parts.append((index_a + a_lo, index_b + b_lo, iou))
    if not parts:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


def _block_ious(
    frame_a: np.ndarray, corners_a: Corners, frame_b: np.ndarray, corners_b: Corners
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair the boxes of one block of frames; see :func:`overlap_ious`."""
    index_a, index_b = _candidate_pairs(frame_a, corners_a, frame_b, corners_b)

    x0_a, y0_a, x1_a, y1_a = corners_a
    x0_b, y0_b, x1_b, y1_b = corners_b
    width = np.minimum(x1_a[index_a], x1_b[index_b]) - np.maximum(x0_a[index_a], x0_b[index_b])
    height = np.minimum(y1_a[index_a], y1_b[index_b]) - np.maximum(y0_a[index_a], y0_b[index_b])
    # About half the candidates overlap on the synthetic MOT17 set of bench_mot_eval.py. For such
    # a mask, selecting by positions is faster than three selections by the mask.
    overlapping = np.flatnonzero((width > 0) & (height > 0))
    index_a, index_b = index_a[overlapping], index_b[overlapping]
    intersection = width[overlapping] * height[overlapping]

    area_a = _box_areas(corners_a)[index_a]
    area_b = _box_areas(corners_b)[index_b]
    union = area_a + area_b - intersection
    intersection[area_a <= 0 + EPS] = 0
    intersection[area_b <= 0 + EPS] = 0
    small_union = union <= 0 + EPS
    intersection[small_union] = 0
    union[small_union] = 1
    iou = intersection / union

    positive = iou > 0
    index_a, index_b, iou = index_a[positive], index_b[positive], iou[positive]
    order = np.argsort(index_a * frame_b.shape[0] + index_b, kind="stable")
    return index_a[order], index_b[order], iou[order]
