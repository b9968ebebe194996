"""Complexity of 3D-ZeF sequences per camera view: the paper's occlusion measures and MOTCOM.

The occlusion measures follow ``modules/dataset_processing/analyzeAnnotations.py`` of the 3D-ZeF
code (``github.com/mapeAAU/3D-ZeF``, commit ``e4f0d4a``), per view:

* ``occlusion_count``: occlusion runs, summed over fish. A run is a maximal stretch of a fish's
  rows with occlusion flag 1. As in ``getOcclusions``, a run that lasts until the fish's last row
  is not counted, because that loop stops one row early and closes a run only at a following 0.
* ``mean_occlusion_length``: mean length in frames (end - start + 1) of all runs pooled over the
  fish. The official code stores this pooled mean under the key ``OL-macro`` and the mean of
  per-fish means under ``OL-micro``: the two labels are swapped, and its report prints the pooled
  value.
* ``mean_frames_between_occlusions``: per fish, the gaps between consecutive runs, plus the gap
  from the sequence's first frame to the first run and from the last run to the sequence's last
  frame where these are not empty; the mean over fish of the per-fish means (``FBO-macro``, which
  is what the report prints and here the label is right).
* ``occlusion_box_overlap``: in every frame, the union of the pairwise intersections of the
  boxes of the occluded fish is formed on the pixel grid (inclusive corners, coordinates
  truncated to integers). Each occluded fish's covered fraction of its box is averaged over the
  frames of each run, then over the runs of the fish, then over the fish.

Deliberate differences, each where the official code fails: a fish without runs in a view is
left out of the means (``analyzeOcclusions`` raises IndexError on it), frames with fewer than two
occluded fish are left out of the overlap (the official code skips them too but then files the
following frames under the wrong run), and boxes are not clipped to a 2704 x 1520 image.

MOTCOM per view goes through :mod:`motcom.complexity` on the view's boxes as a MOTChallenge
table: OCOM in box-overlap mode (the flags of 3D-ZeF are not visibilities) and MCOM, and VCOM on
the view's frames when ResNet-18 weights are given; ``motcom`` is then the mean of the three.
``motcom_ocom_mcom``, the mean of OCOM and MCOM, needs no frames or weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from harness.errors import DataFormatError, UnknownNameError
from motcom.motcom_run import VcomOptions, VcomRunner
from zef3d.io import frame_paths

VIEWS = ("top", "front")

COMPLEXITY_COLUMNS: tuple[str, ...] = (
    "sequence", "view", "fish", "frames", "occlusion_count", "mean_occlusion_length",
    "mean_frames_between_occlusions", "occlusion_box_overlap", "ocom", "mcom",
    "motcom_ocom_mcom", "vcom", "motcom",
)
"""Columns of the table of :func:`complexity_table`, one row per sequence and view."""


def occlusion_runs(frame: np.ndarray, occlusion: np.ndarray) -> list[tuple[int, int]]:
    """Return the ``(start frame, end frame)`` of one fish's occlusion runs, as ``getOcclusions``.

    Args:
        frame: the fish's frame numbers in row order.
        occlusion: its 0/1 occlusion flags.
    """
    runs = []
    start = -1
    flags = occlusion.tolist()
    frames = frame.tolist()
    for k in range(len(frames) - 1):
        if flags[k] == 0:
            continue
        if start == -1:
            start = frames[k]
        if flags[k + 1] == 0:
            runs.append((start, frames[k]))
            start = -1
    return runs


def _gaps(runs: list[tuple[int, int]], first_frame: int, last_frame: int) -> list[int]:
    gaps = [runs[k + 1][0] - runs[k][1] - 1 for k in range(len(runs) - 1)]
    if runs[-1][1] < last_frame:
        gaps.append(last_frame - runs[-1][1])
    if runs[0][0] > first_frame:
        gaps.append(runs[0][0] - first_frame)
    return gaps


def _covered_fractions(corners: np.ndarray) -> np.ndarray:
    """Return the fraction of each box covered by the union of the pairwise intersections.

    ``corners`` contains integer ``(x0, y0, x1, y1)`` rows with inclusive pixel corners.
    """
    x_origin, y_origin = corners[:, 0].min(), corners[:, 1].min()
    local = corners - np.array([x_origin, y_origin, x_origin, y_origin])
    mask = np.zeros((local[:, 3].max() + 1, local[:, 2].max() + 1), bool)
    n = local.shape[0]
    for i in range(n):
        for j in range(i + 1, n):
            x0, y0 = max(local[i, 0], local[j, 0]), max(local[i, 1], local[j, 1])
            x1, y1 = min(local[i, 2], local[j, 2]), min(local[i, 3], local[j, 3])
            if x1 >= x0 and y1 >= y0:
                mask[y0:y1 + 1, x0:x1 + 1] = True
    fractions = np.empty(n)
    for i in range(n):
        x0, y0, x1, y1 = local[i]
        area = (x1 - x0 + 1) * (y1 - y0 + 1)
        fractions[i] = mask[y0:y1 + 1, x0:x1 + 1].sum() / area if area > 0 else 0.0
    return fractions


def occlusion_measures(
    frame: np.ndarray,
    fish_id: np.ndarray,
    occlusion: np.ndarray,
    boxes: np.ndarray,
) -> dict[str, float]:
    """Compute the 3D-ZeF occlusion measures of one view of one sequence.

    Args:
        frame: frame number per ground-truth row.
        fish_id: fish id per row.
        occlusion: the view's occlusion flag (0 or 1) per row.
        boxes: ``(N, 4)`` boxes ``left, top, width, height`` in pixels.

    Returns:
        ``occlusion_count``, ``mean_occlusion_length``, ``mean_frames_between_occlusions`` and
        ``occlusion_box_overlap`` (see the module docstring); the means are NaN without runs.
    """
    frame = np.asarray(frame, np.int64)
    fish_id = np.asarray(fish_id, np.int64)
    occlusion = np.asarray(occlusion, np.int64)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if frame.size == 0:
        return {"occlusion_count": 0, "mean_occlusion_length": math.nan,
                "mean_frames_between_occlusions": math.nan, "occlusion_box_overlap": math.nan}
    first_frame, last_frame = int(frame.min()), int(frame.max())

    runs_of: dict[int, list[tuple[int, int]]] = {}
    for fish in dict.fromkeys(fish_id.tolist()):
        rows = np.flatnonzero(fish_id == fish)
        rows = rows[np.argsort(frame[rows], kind="stable")]
        runs = occlusion_runs(frame[rows], occlusion[rows])
        if runs:
            runs_of[fish] = runs

    lengths = [end - start + 1 for runs in runs_of.values() for start, end in runs]
    gap_means = []
    for runs in runs_of.values():
        gaps = _gaps(runs, first_frame, last_frame)
        gap_means.append(float(np.mean(gaps)) if gaps else math.nan)

    # Overlap: per frame with at least two occluded fish, each occluded box's covered fraction.
    corners = np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2],
                               boxes[:, 1] + boxes[:, 3]]).astype(np.int64)
    occluded = np.flatnonzero(occlusion == 1)
    fractions_of: dict[tuple[int, int], list[float]] = {}
    for t in np.unique(frame[occluded]).tolist():
        rows = occluded[frame[occluded] == t]
        if np.unique(fish_id[rows]).shape[0] < 2:
            continue
        for row, fraction in zip(rows.tolist(), _covered_fractions(corners[rows]).tolist(),
                                 strict=True):
            fish = int(fish_id[row])
            for index, (start, end) in enumerate(runs_of.get(fish, [])):
                if start <= t <= end:
                    fractions_of.setdefault((fish, index), []).append(fraction)
    per_fish = []
    for fish, runs in runs_of.items():
        run_means = [float(np.mean(fractions_of[(fish, index)])) for index in range(len(runs))
                     if (fish, index) in fractions_of]
        if run_means:
            per_fish.append(float(np.mean(run_means)))

    return {
        "occlusion_count": len(lengths),
        "mean_occlusion_length": float(np.mean(lengths)) if lengths else math.nan,
        "mean_frames_between_occlusions": float(np.nanmean(gap_means))
        if any(not math.isnan(g) for g in gap_means) else math.nan,
        "occlusion_box_overlap": float(np.mean(per_fish)) if per_fish else math.nan,
    }


def view_complexity(
    gt: pl.DataFrame,
    view: str,
    *,
    sequence: str,
    image_width: int,
    image_height: int,
    seq_length: int,
    vcom: Callable[..., float | None] | None = None,
    frame_paths: Mapping[int, Path] | None = None,
) -> dict[str, float | int | str]:
    """Return the row of :data:`COMPLEXITY_COLUMNS` of one sequence and view.

    Args:
        gt: ground truth with the columns of :data:`zef3d.io.GT_COLUMNS`
            (:func:`zef3d.io.read_gt`).
        view: ``"top"`` or ``"front"``.
        sequence: sequence name.
        image_width: width of the view's frames in pixels.
        image_height: height of the view's frames in pixels.
        seq_length: number of frames of the sequence.
        vcom: a :class:`motcom.motcom_run.VcomRunner`, which computes VCOM from the view's
            boxes and frames; without it, ``vcom`` and ``motcom`` are NaN.
        frame_paths: the view's frame image of each frame number, for ``vcom``.

    Raises:
        UnknownNameError: ``view`` is not top or front.
        DataFormatError: ``gt`` lacks a column of the view.
    """
    from motcom.complexity import compute_complexity, motcom_ground_truth
    from motcom.data import GroundTruth, SequenceInfo

    if view not in VIEWS:
        raise UnknownNameError("view", view, VIEWS)
    names = ["frame", "id", f"{view}_left", f"{view}_top", f"{view}_width", f"{view}_height",
             f"{view}_occlusion"]
    missing = [name for name in names if name not in gt.columns]
    if missing:
        raise DataFormatError(f"ground truth of {sequence} has no column {missing[0]!r}",
                              field=missing[0], expected=", ".join(names))
    table = gt.select(names).drop_nulls()
    frame = table["frame"].to_numpy().astype(np.int64)
    ids = table["id"].to_numpy().astype(np.int64)
    boxes = table.select(names[2:6]).to_numpy().astype(np.float64)
    occlusion = table[f"{view}_occlusion"].to_numpy().astype(np.int64)

    row: dict[str, float | int | str] = {
        "sequence": sequence, "view": view, "fish": int(np.unique(ids).shape[0]),
        "frames": int(np.unique(frame).shape[0]),
    }
    row.update(occlusion_measures(frame, ids, occlusion, boxes))

    boxes_gt = GroundTruth(frame=frame, id=ids, boxes=boxes, flag=np.ones(frame.shape[0]),
                           cls=np.ones(frame.shape[0], np.int64),
                           visibility=1.0 - occlusion.astype(np.float64))
    info = SequenceInfo(name=f"{sequence}-{view}", seq_length=int(seq_length),
                        im_width=int(image_width), im_height=int(image_height))
    prepared = motcom_ground_truth(boxes_gt, info)
    value = vcom(prepared, frame_paths) if vcom is not None else None
    result = compute_complexity(prepared, occlusion="boxes", vcom=value)
    row["ocom"] = float(result.ocom)
    row["mcom"] = float(result.mcom)
    row["motcom_ocom_mcom"] = float(result.ocom_mcom_mean)
    row["vcom"] = math.nan if result.vcom is None else float(result.vcom)
    row["motcom"] = math.nan if result.motcom is None else float(result.motcom)
    return row


def complexity_table(
    sequences: Sequence[tuple[str, pl.DataFrame, dict[str, tuple[int, int]], int]],
) -> pl.DataFrame:
    """Compute the complexity of each sequence in both views.

    Args:
        sequences: per sequence ``(name, gt table, {view: (image width, image height)},
            seq_length)``.

    Returns:
        One row per sequence and view with :data:`COMPLEXITY_COLUMNS`.
    """
    rows = []
    for name, gt, sizes, seq_length in sequences:
        for view in VIEWS:
            width, height = sizes[view]
            rows.append(view_complexity(gt, view, sequence=name, image_width=width,
                                        image_height=height, seq_length=seq_length))
    return _table(rows)


def _table(rows: list[dict]) -> pl.DataFrame:
    schema = {column: (pl.Utf8 if column in ("sequence", "view") else
                       pl.Int64 if column in ("fish", "frames", "occlusion_count")
                       else pl.Float64) for column in COMPLEXITY_COLUMNS}
    return pl.DataFrame([[row[column] for column in COMPLEXITY_COLUMNS] for row in rows],
                        schema=schema, orient="row")


def complexity_of_prepared(
    sequences: Sequence[str] | None = None,
    *,
    split: str = "train",
    version: str | None = None,
    data_dir: Path | None = None,
    vcom: VcomOptions | None = None,
) -> pl.DataFrame:
    """Compute :func:`complexity_table` from the prepared ``top``, ``front`` and ``sequences``.

    Args:
        sequences: sequences to include (default: every sequence with ground truth).
        split: prepared split.
        version: prepared version (default: the dataset's default).
        data_dir: data home (default: ``FIELDHARNESS_HOME``).
        vcom: VCOM settings (:class:`motcom.motcom_run.VcomOptions`: weights, device, cache);
            VCOM of each view is computed on its frames when given, and MOTCOM is then the mean
            of OCOM, MCOM and VCOM. Without it, ``vcom`` and ``motcom`` are NaN.

    Raises:
        harness.errors.NotPreparedError: zef3d is not prepared.
        harness.errors.UnknownNameError: a requested sequence is not in the split.
    """
    from harness.storage import read_prepared_table

    info = pl.from_arrow(read_prepared_table("zef3d", "sequences", split, version=version,
                                             data_dir=data_dir))
    info = info.filter(pl.col("has_gt"))
    known = info["sequence"].to_list()
    selected = list(sequences) if sequences is not None else known
    for name in selected:
        if name not in known:
            raise UnknownNameError("sequence", name, known)
    views = {view: pl.from_arrow(read_prepared_table("zef3d", view, split, version=version,
                                                     data_dir=data_dir)) for view in VIEWS}
    runner = VcomRunner(vcom) if vcom is not None else None
    rows = []
    for row in info.filter(pl.col("sequence").is_in(selected)).sort("sequence").iter_rows(
            named=True):
        name = row["sequence"]
        for view, table in views.items():
            frames = None
            if runner is not None and row[f"{view}_dir"] is not None:
                paths = frame_paths(Path(row[f"{view}_dir"]).parent, view,
                                    seq_length=row["seq_length"])
                frames = {number: path for number, path in enumerate(paths, start=1)}
            # The prepared view tables keep gt.txt's row order; visibility 0 marks occlusion.
            gt = (table.filter(pl.col("sequence") == name)
                  .select(["frame", "id", "left", "top", "width", "height", "visibility"])
                  .with_columns((1 - pl.col("visibility")).round(0).cast(pl.Int8)
                                .alias("occlusion"))
                  .drop("visibility")
                  .rename({column: f"{view}_{column}" for column in
                           ("left", "top", "width", "height", "occlusion")}))
            rows.append(view_complexity(gt, view, sequence=name,
                                        image_width=row[f"{view}_width"],
                                        image_height=row[f"{view}_height"],
                                        seq_length=row["seq_length"], vcom=runner,
                                        frame_paths=frames))
    return _table(rows)


def write_complexity(table: pl.DataFrame, path: Path) -> Path:
    """Write the complexity table as CSV (atomically) and return ``path``."""
    from harness.atomic import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        table.write_csv(temporary)
    return path
