"""MOTCOM's ground-truth complexity metrics: OCOM (occlusion) and MCOM (motion).

MOTCOM (Pedersen, Haurum, Dendorfer and Moeslund, ECCV 2022, arXiv 2207.10031) rates how hard a
MOT sequence is from its ground truth alone. OCOM, MCOM and VCOM (visual similarity, in
:mod:`motcom.vcom`) each lie in [0, 1], higher meaning harder, and MOTCOM is their mean. The
values here equal the released reference implementation (GitHub ``JoakimHaurum/MOTCOM``,
``trackeval/metrics/ocom.py``, ``mcom.py`` and ``trackeval/datasets/mot_challenge_motcom.py``,
commit ``1c2afb6``) on the same ground truth, except where a function documents a deliberate
difference.

Everything is vectorised numpy and imports no torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from harness.errors import DataFormatError, UnknownNameError
from motcom.data import GroundTruth, SequenceInfo

__all__ = [
    "ALPHAS",
    "MCOM_ORDERS",
    "OCCLUSION_MODES",
    "MotcomGroundTruth",
    "SequenceComplexity",
    "compute_complexity",
    "mcom",
    "mcom_displacement",
    "motcom_ground_truth",
    "ocom",
]

PEDESTRIAN = 1
"""The class id that MOTCOM scores (MOTChallenge's ``pedestrian``)."""

ALPHAS = np.arange(0.01, 1.0 + 0.01, 0.01)
"""The 100 values of α in MCOM's ``x / (x + α)``, built as the reference builds them."""

OCCLUSION_MODES = ("visibility", "boxes")
MCOM_ORDERS = ("reference", "intended")

_MAX_PAIRS_PER_CHUNK = 1_000_000
"""Box pairs handled at once by the box-overlap OCOM, which bounds its memory use."""


@dataclass(frozen=True)
class MotcomGroundTruth:
    """Pedestrian boxes of one sequence, prepared as the MOTCOM reference prepares them.

    Rows are sorted by frame; rows of one frame keep their order in ``gt.txt``. Every box lies
    inside the image: ``0 <= left``, ``left + width <= image_width - 1`` and the same for the
    top and height, with ``width > 0`` and ``height > 0``.
    """

    name: str
    """Sequence name, e.g. ``MOT17-02``."""
    frame: np.ndarray
    """int64, 1-based frame numbers."""
    id: np.ndarray
    """int64 track ids as in ``gt.txt``."""
    boxes: np.ndarray
    """float64, shape (n, 4): left, top, width, height in pixels, 0-based (``gt.txt`` - 1 on
    left and top) and clipped to the image."""
    visibility: np.ndarray
    """float64 visibility in [0, 1] from ``gt.txt`` (1.0 for files without that column)."""
    image_width: int
    image_height: int
    seq_length: int

    def __len__(self) -> int:
        return int(self.frame.shape[0])


@dataclass(frozen=True)
class SequenceComplexity:
    """OCOM, MCOM, VCOM and MOTCOM of one sequence.

    ``vcom`` and ``motcom`` are None where VCOM was not computed (no frames or no weights).
    """

    sequence: str
    ocom: float
    mcom: float
    vcom: float | None = None
    boxes: int = 0
    tracks: int = 0
    settings: dict[str, object] = field(default_factory=dict)
    """Settings of OCOM and MCOM: ``occlusion``, ``y_rule`` and ``mcom_order``."""

    @property
    def motcom(self) -> float | None:
        """Mean of OCOM, MCOM and VCOM, or None without VCOM."""
        if self.vcom is None:
            return None
        return (self.ocom + self.mcom + self.vcom) / 3.0

    @property
    def ocom_mcom_mean(self) -> float:
        """Mean of OCOM and MCOM, the stand-in for MOTCOM where VCOM is missing."""
        return (self.ocom + self.mcom) / 2.0

    def with_vcom(self, vcom: float | None) -> SequenceComplexity:
        """Return a copy with ``vcom`` set."""
        return SequenceComplexity(self.sequence, self.ocom, self.mcom, vcom, self.boxes,
                                  self.tracks, dict(self.settings))


# ---------------------------------------------------------------------------------------------
# Ground truth


def motcom_ground_truth(
    gt: GroundTruth,
    info: SequenceInfo,
    *,
    source: str | os.PathLike[str] | None = None,
) -> MotcomGroundTruth:
    """Select and clip the boxes MOTCOM scores, exactly as the reference dataset class does.

    Kept are rows with class 1, a flag that is not 0 (after truncation to an integer) and above
    0 (the reference reads the seventh column both as the flag and as a confidence), and a
    positive width and height. Boxes move to 0-based pixels (1 is subtracted from left and top).
    Boxes entirely outside the image are dropped, the others are clipped to it, and boxes left
    without area are dropped. Clipping follows the reference: a box whose right edge reaches
    ``image_width`` (``left + width >= image_width``) gets ``width = image_width - left - 1``,
    and the same holds for the bottom edge.

    Args:
        gt: The sequence's ground truth, as :func:`motcom.io.read_ground_truth` returns it.
        info: Its ``seqinfo.ini``; ``imWidth`` and ``imHeight`` are required.
        source: The ``seqinfo.ini`` file, named in error messages.

    Raises:
        harness.errors.DataFormatError: ``imWidth`` or ``imHeight`` is missing.
    """
    for key, value in (("imWidth", info.im_width), ("imHeight", info.im_height)):
        if value is None:
            raise DataFormatError(
                f"seqinfo.ini of sequence {info.name} has no {key}, which MOTCOM needs to clip "
                "boxes to the image",
                path=source,
                field=key,
                expected=f"a line '{key}=<image size in pixels>' in [Sequence]",
            )
    width, height = int(info.im_width), int(info.im_height)

    boxes = np.array(gt.boxes, dtype=np.float64, copy=True).reshape(-1, 4)
    boxes[:, 0] -= 1
    boxes[:, 1] -= 1
    flag = np.asarray(gt.flag, dtype=np.float64)
    keep = ((np.trunc(flag) != 0) & (flag > 0) & (np.asarray(gt.cls) == PEDESTRIAN)
            & (boxes[:, 2] > 0) & (boxes[:, 3] > 0))

    left, top, box_width, box_height = boxes.T  # views: the clipping below writes into boxes
    outside = ((left < 0) & (left + box_width < 0)) | ((top < 0) & (top + box_height < 0))
    outside |= (left >= width) | (top >= height)
    keep &= ~outside

    # The reference clips left, then top, then right, then bottom, each step working on the
    # values the previous one wrote. The same order and arithmetic give identical floats.
    past_left = left < 0
    box_width[past_left] = (box_width + left)[past_left]
    left[past_left] = 0.0
    past_top = top < 0
    box_height[past_top] = (box_height + top)[past_top]
    top[past_top] = 0.0
    past_right = left + box_width >= width
    box_width[past_right] = (width - left - 1)[past_right]
    past_bottom = top + box_height >= height
    box_height[past_bottom] = (height - top - 1)[past_bottom]
    keep &= (box_width > 0) & (box_height > 0)

    frame = np.asarray(gt.frame, dtype=np.int64)[keep]
    order = np.argsort(frame, kind="stable")
    return MotcomGroundTruth(
        name=info.name,
        frame=frame[order],
        id=np.asarray(gt.id, dtype=np.int64)[keep][order],
        boxes=boxes[keep][order],
        visibility=np.asarray(gt.visibility, dtype=np.float64)[keep][order],
        image_width=width,
        image_height=height,
        seq_length=int(info.seq_length),
    )


def _track_order(gt: MotcomGroundTruth) -> tuple[np.ndarray, np.ndarray]:
    """Return the row order that groups rows by track (each track by frame) and the track
    index (0..tracks-1, in id order) of every row in that order."""
    order = np.lexsort((gt.frame, gt.id))
    _, track = np.unique(gt.id[order], return_inverse=True)
    return order, track.reshape(-1)


# ---------------------------------------------------------------------------------------------
# OCOM


def ocom(
    gt: MotcomGroundTruth,
    *,
    mode: Literal["visibility", "boxes"] = "visibility",
    y_rule: bool = True,
) -> float:
    """Return OCOM: the mean over tracks of each track's mean occlusion.

    With ``mode="visibility"`` (the reference's default) a box's occlusion is 1 - visibility,
    averaged over all boxes of its track.

    With ``mode="boxes"`` (the reference's ``BBOX_BASED_OCC``, for data without visibility) a
    box's occlusion is the fraction of its pixels covered by the union of its intersections with
    the other boxes of the frame, on the reference's integer pixel grid. Only frames with two
    or more boxes count, and tracks without such a frame are left out of the mean.

    ``y_rule`` (the reference's ``Y_COORD_OCC``) applies in box mode only: box A then counts
    box B as covering it only when B's bottom edge (top + height) lies strictly above A's
    truncated bottom edge in the image. This is the direction the reference code implements,
    although its comment describes the opposite (a box lower in the image, nearer the camera,
    covering one further up).

    NOTE: without ``y_rule`` the reference also counts each box as covering itself, so its
    box-mode OCOM is 1.0 for every sequence with a frame of two or more boxes. Here a box never
    covers itself, which gives the intended value.

    Returns:
        OCOM in [0, 1]; 0.0 when no track has a box that counts, as in the reference.

    Raises:
        harness.errors.UnknownNameError: ``mode`` is not ``"visibility"`` or ``"boxes"``.
    """
    if mode not in OCCLUSION_MODES:
        raise UnknownNameError("OCOM occlusion mode", mode, OCCLUSION_MODES)
    if mode == "visibility":
        occlusion = 1.0 - gt.visibility
        rows = np.arange(len(gt))
    else:
        occlusion, rows = _box_occlusion(gt, y_rule=y_rule)
    if rows.size == 0:
        return 0.0

    _, track = np.unique(gt.id[rows], return_inverse=True)
    track = track.reshape(-1)
    sums = np.bincount(track, weights=occlusion)
    counts = np.bincount(track)
    return float(np.mean(sums / counts))


def _box_occlusion(gt: MotcomGroundTruth, *, y_rule: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return the covered fraction of every box in a frame with two or more boxes, and the
    rows of those boxes."""
    counts = np.bincount(gt.frame)
    in_crowd = counts[gt.frame] >= 2
    rows = np.flatnonzero(in_crowd)
    if rows.size == 0:
        return np.zeros(0), rows

    # Frame boundaries among the selected rows (gt is sorted by frame).
    frames = gt.frame[rows]
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
    sizes = np.diff(np.r_[starts, rows.size])

    covered = np.zeros(rows.size)
    chunk_start = 0
    pairs_per_frame = sizes.astype(np.int64) ** 2
    while chunk_start < starts.size:
        cumulative = np.cumsum(pairs_per_frame[chunk_start:])
        chunk_end = chunk_start + max(1, int(np.searchsorted(cumulative, _MAX_PAIRS_PER_CHUNK)))
        first, second = _pairs_in_frames(starts[chunk_start:chunk_end],
                                         sizes[chunk_start:chunk_end])
        covered += _covered_area(gt.boxes[rows], first, second, rows.size,
                                 gt.image_width, gt.image_height, y_rule)
        chunk_start = chunk_end

    truncated = np.trunc(gt.boxes[rows])
    pixels = (truncated[:, 3] + 1) * (truncated[:, 2] + 1)
    return covered / pixels, rows


def _pairs_in_frames(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return every ordered pair (i, j), i != j, of positions within the same frame."""
    repeat = np.repeat(sizes, sizes * sizes)
    base = np.repeat(starts, sizes * sizes)
    offsets = np.concatenate([np.arange(n * n) for n in sizes]) if sizes.size else np.zeros(0)
    first = base + offsets // repeat
    second = base + offsets % repeat
    distinct = first != second
    return first[distinct].astype(np.int64), second[distinct].astype(np.int64)


def _covered_area(boxes: np.ndarray, first: np.ndarray, second: np.ndarray, n: int,
                  image_width: int, image_height: int, y_rule: bool) -> np.ndarray:
    """Return, per box, the pixel area of the union of its intersections with its partners.

    The pixel rectangles follow the reference: box A is truncated to integers (rows ``top`` to
    ``top + height`` inclusive), while partner B enters as floats, with the intersection's
    edges truncated afterwards.
    """
    a = np.trunc(boxes[first])
    b = boxes[second]
    a_bottom = a[:, 1] + a[:, 3]
    a_right = a[:, 0] + a[:, 2]
    top = np.trunc(np.maximum(a[:, 1], b[:, 1]))
    bottom = np.trunc(np.minimum(a_bottom, b[:, 1] + b[:, 3]))
    left = np.trunc(np.maximum(a[:, 0], b[:, 0]))
    right = np.trunc(np.minimum(a_right, b[:, 0] + b[:, 2]))

    counts = (bottom - top + 1 > 0) & (right - left + 1 > 0)
    if y_rule:
        counts &= a_bottom != bottom
    owner = first[counts]
    # Half-open pixel rectangles, clipped to the image as numpy slicing of the reference's
    # image-sized mask clips them.
    rects = np.stack([top[counts], np.minimum(bottom[counts] + 1, image_height),
                      left[counts], np.minimum(right[counts] + 1, image_width)], axis=1)
    return _union_areas(owner, rects, n)


def _union_areas(owner: np.ndarray, rects: np.ndarray, n: int) -> np.ndarray:
    """Return the area of the union of each owner's rectangles (``top, bottom, left, right``,
    half-open), for owners 0..n-1.

    Owners are grouped by their number of rectangles, padded to a power of two with copies of
    their first rectangle, and each group's union is measured on its compressed grid at once.
    """
    areas = np.zeros(n)
    if owner.size == 0:
        return areas
    order = np.argsort(owner, kind="stable")
    owner, rects = owner[order], rects[order]
    owners, starts, per_owner = np.unique(owner, return_index=True, return_counts=True)

    single = per_owner == 1
    r = rects[starts[single]]
    areas[owners[single]] = (r[:, 1] - r[:, 0]) * (r[:, 3] - r[:, 2])

    padded = 2 ** np.ceil(np.log2(np.maximum(per_owner, 1))).astype(np.int64)
    for size in np.unique(padded[~single]):
        group = np.flatnonzero((padded == size) & ~single)
        # Cell tests need group * (2 * size)^2 * size booleans; bound that to about 32 MB.
        step = max(1, (1 << 25) // int(4 * size ** 3))
        for chunk in range(0, group.size, step):
            members = group[chunk:chunk + step]
            index = np.arange(size)[None, :]
            picks = np.where(index < per_owner[members, None], starts[members, None] + index,
                             starts[members, None])
            areas[owners[members]] = _grid_union_area(rects[picks])
    return areas


def _grid_union_area(rects: np.ndarray) -> np.ndarray:
    """Return the union area of each row's rectangles; ``rects`` has shape (owners, m, 4)."""
    ys = np.sort(np.concatenate([rects[:, :, 0], rects[:, :, 1]], axis=1), axis=1)
    xs = np.sort(np.concatenate([rects[:, :, 2], rects[:, :, 3]], axis=1), axis=1)
    y0, y1 = ys[:, :-1], ys[:, 1:]
    x0, x1 = xs[:, :-1], xs[:, 1:]
    rows_in = ((rects[:, None, :, 0] <= y0[:, :, None])
               & (y1[:, :, None] <= rects[:, None, :, 1]))  # (owners, cells_y, m)
    cols_in = ((rects[:, None, :, 2] <= x0[:, :, None])
               & (x1[:, :, None] <= rects[:, None, :, 3]))  # (owners, cells_x, m)
    covered = np.einsum("oym,oxm->oyx", rows_in.astype(np.float32),
                        cols_in.astype(np.float32)) > 0
    cell_area = (y1 - y0)[:, :, None] * (x1 - x0)[:, None, :]
    return np.sum(np.where(covered, cell_area, 0.0), axis=(1, 2))


# ---------------------------------------------------------------------------------------------
# MCOM


def mcom_displacement(
    gt: MotcomGroundTruth, *, order: Literal["reference", "intended"] = "reference"
) -> float:
    """Return MCOM's x: the mean over all boxes of the constant-velocity prediction error
    divided by the square root of the box area.

    Per track, in frame order, the displacement between consecutive boxes' centres is predicted
    to equal the previous displacement (one-frame look-back, zero for the first). The error is
    the Euclidean norm of actual minus predicted displacement, and the first box's error is 0.
    Frame gaps inside a track are ignored, as in the reference.

    ``order="reference"`` reproduces the reference's ordering quirk. It reads each track's
    centres and areas starting from the second box and repeats the last box, so the first box
    is skipped and every error is divided by the area of the box after it. ``"intended"`` uses
    every box in place.

    Raises:
        harness.errors.UnknownNameError: ``order`` is not ``"reference"`` or ``"intended"``.
    """
    if order not in MCOM_ORDERS:
        raise UnknownNameError("MCOM order", order, MCOM_ORDERS)
    if len(gt) == 0:
        return float("nan")

    rows, track = _track_order(gt)
    boxes = gt.boxes[rows]
    first = np.r_[True, track[1:] != track[:-1]]
    if order == "reference":
        last = np.r_[track[1:] != track[:-1], True]
        shifted = np.arange(len(rows)) + np.where(last, 0, 1)
        boxes = boxes[shifted]

    centres = boxes[:, :2] + boxes[:, 2:] / 2
    area = boxes[:, 2] * boxes[:, 3]
    displacement = np.zeros_like(centres)
    displacement[1:] = centres[:-1] - centres[1:]
    displacement[first] = 0.0
    predicted = np.zeros_like(centres)
    predicted[1:] = displacement[:-1]
    predicted[first] = 0.0
    error = np.linalg.norm(displacement - predicted, axis=1)
    return float(np.mean(error / np.sqrt(area)))


def mcom(gt: MotcomGroundTruth, *, order: Literal["reference", "intended"] = "reference") -> float:
    """Return MCOM: the mean over α in :data:`ALPHAS` of ``x / (x + α)``, with x from
    :func:`mcom_displacement`.

    Returns:
        MCOM in [0, 1); 0.0 when nothing moves, NaN for a sequence without boxes.
    """
    x = mcom_displacement(gt, order=order)
    if np.isnan(x):
        return x
    # The reference's form 1 / (1 + α / x), which gives 0 for x = 0.
    with np.errstate(divide="ignore"):
        return float(np.mean(1.0 / (1.0 + ALPHAS / np.float64(x))))


# ---------------------------------------------------------------------------------------------
# One sequence


def compute_complexity(
    gt: MotcomGroundTruth,
    *,
    occlusion: Literal["visibility", "boxes"] = "visibility",
    y_rule: bool = True,
    mcom_order: Literal["reference", "intended"] = "reference",
    vcom: float | None = None,
) -> SequenceComplexity:
    """Compute OCOM and MCOM of one sequence, with VCOM when it is given.

    Args:
        gt: The prepared boxes (:func:`motcom_ground_truth`).
        occlusion: OCOM mode, see :func:`ocom`.
        y_rule: The bottom-edge rule of box-mode OCOM.
        mcom_order: Box order of MCOM, see :func:`mcom_displacement`.
        vcom: VCOM from :func:`motcom.vcom.compute_vcom`, or None.
    """
    return SequenceComplexity(
        sequence=gt.name,
        ocom=ocom(gt, mode=occlusion, y_rule=y_rule),
        mcom=mcom(gt, order=mcom_order),
        vcom=vcom,
        boxes=len(gt),
        tracks=int(np.unique(gt.id).size),
        settings={"occlusion": occlusion, "y_rule": bool(y_rule) if occlusion == "boxes"
                  else None, "mcom_order": mcom_order},
    )
