"""Evaluation of 3D-ZeF tracks: CLEAR, ID, MOTAL and MTBF on head points, as the 3D-ZeF paper.

The 3D-ZeF evaluation (``modules/evaluation/MOT_evaluation.py`` of ``github.com/mapeAAU/3D-ZeF``
and the MOTChallenge ``ZF3D`` kit) scores head positions with py-motmetrics. The distance of a
ground-truth and a tracker point is their Euclidean distance. Pairs farther apart than the
threshold (0.5 cm in 3D, 20 px in a camera view) cannot match, and the CLEAR and ID metrics
follow py-motmetrics' rules (:mod:`motcom.evaluation.motmetrics`). ``semantics="trackeval"``
scores the same pairs with TrackEval's matching rules instead.

Names of the numbers (per sequence and combined):

* ``MOTA``, ``MOTAL``, ``IDF1``, ``IDP``, ``IDR``, ``Recall``, ``Precision``: percent.
  ``MOTAL`` = 100 (1 - (FN + FP + log10(IDSW + 1)) / GT).
* ``MOTP``: mean distance of the matches, in cm (3D) or px (views); lower is better.
* ``MT``, ``PT``, ``ML``: ground-truth fish tracked in at least 80 %, 20-80 %, under 20 % of
  their frames. ``IDSW``, ``Frag``, ``FP``, ``FN``, ``TP`` (matches including switches), ``GT``
  (ground-truth rows), ``Dets`` (tracker rows), ``GT_IDs``, ``Frames``.
* ``MTBF-std``: mean length in frames of the runs in which a fish is tracked without a miss or
  an ID switch. ``MTBF-mono``: the tracked frames divided by the runs plus the gaps between them.

Rows dropped before matching, as in the 3D-ZeF code: ground-truth rows with a NaN coordinate and
tracker rows with a coordinate that is not positive (the baseline writes -1 for "no position").
The COMBINED row sums the counts of the sequences as py-motmetrics' ``compute_overall`` does.

The MOTChallenge ZF3D kit (``ZF3D/ZF3D_metrics.py``) reports the same counts but a different
MOTP: ``100 (0.5 - D / TP)``, where ``D`` sums the distances of all pairs within the threshold,
matched or not. That MOTP is not computed here.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from harness.errors import EvaluationError
from harness.plugin import EvalOutcome, Evaluator, RunContext
from motcom.evaluation.motmetrics import (
    MATCH,
    MISS,
    SWITCH,
    Events,
    accumulate,
    box_distance_pairs,
    check_semantics,
    check_unique_ids,
    clear_id_metrics,
    combine_metrics,
    distance_pairs,
    finish_metrics,
    mtbf_counts,
)
from zef3d.io import parse_track_rows, read_tracks3d
from zef3d.spec import LEADERBOARD_METRICS

logger = logging.getLogger(__name__)

THRESHOLD_3D = 0.5
"""3D matching threshold of the 3D-ZeF paper and the MOTChallenge ZF3D kit, in centimetres."""
THRESHOLD_2D = 20.0
"""Matching threshold of the 3D-ZeF paper in a camera view, in pixels."""

VIEW_CHOICES = ("3d", "top", "front")
BOX_COLUMNS = ("left", "top", "width", "height")
# NOTE: the 3D-ZeF scripts (modules/MOTMetrics.bat) never run the box tasks, so no official box
# threshold exists; 0.5 is the usual MOT choice.
BOX_THRESHOLD = 0.5
"""Default largest ``1 - IoU`` of a box match (IoU at least 0.5)."""
COMBINED = "COMBINED"
RESULTS_FILE = "zef3d_results.csv"
SUMMARY_FILE = "zef3d_summary.txt"

RECORD_FIELDS: tuple[str, ...] = (
    "MOTA", "MOTP", "IDF1", "IDP", "IDR", "Recall", "Precision", "MT", "PT", "ML", "IDSW",
    "Frag", "FP", "FN", "TP", "MOTAL", "MTBF-std", "MTBF-mono", "GT", "Dets", "GT_IDs", "Frames",
)
"""Numbers of a sequence in run records and the results CSV, in this order."""

_PERCENT = {"MOTA": "mota", "IDF1": "idf1", "IDP": "idp", "IDR": "idr", "Recall": "recall",
            "Precision": "precision", "MOTAL": "motal"}
_COUNTS = {"MT": "mostly_tracked", "PT": "partially_tracked", "ML": "mostly_lost",
           "IDSW": "num_switches", "Frag": "num_fragmentations", "FP": "num_false_positives",
           "FN": "num_misses", "TP": "num_detections", "GT": "num_objects",
           "Dets": "num_predictions", "GT_IDs": "num_unique_objects", "Frames": "num_frames"}


def record_values(res: Mapping[str, Any]) -> dict[str, float]:
    """Return the :data:`RECORD_FIELDS` of a result of :func:`evaluate_points`."""
    out: dict[str, float] = {}
    for field in RECORD_FIELDS:
        if field in _PERCENT:
            out[field] = 100.0 * float(res[_PERCENT[field]])
        elif field in _COUNTS:
            out[field] = int(res[_COUNTS[field]])
        elif field == "MOTP":
            out[field] = float(res["motp"])
        elif field == "MTBF-std":
            out[field] = float(res["mtbf_std"])
        else:
            out[field] = float(res["mtbf_mono"])
    return out


# ---------------------------------------------------------------------------------------------
# Scoring arrays and tables


def _valid_rows(
    frame: np.ndarray, ids: np.ndarray, points: np.ndarray, *, tracker: bool,
    name: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop rows as the 3D-ZeF code does, then sort by frame keeping the row order in a frame."""
    if tracker:
        keep = np.all(points > 0, axis=1)
        dropped = int(keep.size - np.count_nonzero(keep))
        if dropped:
            logger.warning("%s: %d tracker row(s) with a coordinate <= 0 left out, as the 3D-ZeF "
                           "evaluation does", name or "tracks", dropped)
    else:
        keep = ~np.any(np.isnan(points), axis=1)
    frame, ids, points = frame[keep], ids[keep], points[keep]
    order = np.argsort(frame, kind="stable")
    return frame[order], ids[order], points[order]


def evaluate_points(
    gt_frame: np.ndarray,
    gt_id: np.ndarray,
    gt_points: np.ndarray,
    tracker_frame: np.ndarray,
    tracker_id: np.ndarray,
    tracker_points: np.ndarray,
    *,
    threshold: float,
    semantics: str = "motmetrics",
    mtbf_extra_events: bool = True,
    boxes: bool = False,
    name: str | None = None,
) -> dict[str, Any]:
    """Score tracker points (or boxes) against ground-truth points of one sequence.

    Args:
        gt_frame: frame number per ground-truth row.
        gt_id: fish id per ground-truth row.
        gt_points: ``(N, D)`` ground-truth head points (cm in 3D, px in a view).
        tracker_frame: frame number per tracker row.
        tracker_id: track id per tracker row.
        tracker_points: ``(M, D)`` tracker head points.
        threshold: largest distance of a match (``> threshold`` cannot match).
        semantics: ``"motmetrics"`` (py-motmetrics 1.4.0, as 3D-ZeF) or ``"trackeval"``.
        mtbf_extra_events: count py-motmetrics 1.4.0's TRANSFER/ASCEND/MIGRATE events as MTBF
            failures (see :func:`motcom.evaluation.motmetrics.clear_id_metrics`).
        boxes: the "points" are boxes ``left, top, width, height`` in pixels, their distance
            is ``1 - IoU`` with the 3D-ZeF "+1" pixel convention, and ``threshold`` is the
            largest such distance (the 3D-ZeF ``cam1_bbox``/``cam2_bbox`` tasks).
        name: sequence name for error messages.

    Returns:
        py-motmetrics' metric names with fractions (see
        :func:`~motcom.evaluation.motmetrics.clear_id_metrics`); :func:`record_values` turns
        them into the record names.

    Raises:
        EvaluationError: an unknown semantics, a threshold that is not a positive number, or an
            id twice in one frame.
    """
    check_semantics(semantics)
    if not (isinstance(threshold, int | float) and math.isfinite(threshold) and threshold > 0):
        raise EvaluationError(f"threshold is {threshold!r}; expected a positive number")
    gt_frame, gt_id, gt_points = _valid_rows(
        np.asarray(gt_frame, np.int64), np.asarray(gt_id, np.int64),
        np.asarray(gt_points, np.float64), tracker=False)
    tracker_frame, tracker_id, tracker_points = _valid_rows(
        np.asarray(tracker_frame, np.int64), np.asarray(tracker_id, np.int64),
        np.asarray(tracker_points, np.float64), tracker=True, name=name)
    where = f"sequence {name}" if name else ""
    check_unique_ids("ground-truth", gt_frame, gt_id, where)
    check_unique_ids("tracker", tracker_frame, tracker_id, where)

    pairing = box_distance_pairs if boxes else distance_pairs
    pair_gt, pair_tracker, distance = pairing(gt_frame, gt_points, tracker_frame,
                                              tracker_points, threshold)
    if semantics == "motmetrics":
        events = accumulate(gt_frame, gt_id, tracker_frame, tracker_id, pair_gt, pair_tracker,
                            distance)
        return clear_id_metrics(gt_id, tracker_id, events, pair_gt, pair_tracker,
                                mtbf_extra_events=mtbf_extra_events)
    return _trackeval_metrics(gt_frame, gt_id, tracker_frame, tracker_id, pair_gt,
                              pair_tracker, distance, threshold)


def _trackeval_metrics(
    gt_frame: np.ndarray,
    gt_id: np.ndarray,
    tracker_frame: np.ndarray,
    tracker_id: np.ndarray,
    pair_gt: np.ndarray,
    pair_tracker: np.ndarray,
    distance: np.ndarray,
    threshold: float,
) -> dict[str, Any]:
    """Score the pairs with TrackEval's CLEAR and Identity, reported under py-motmetrics' names.

    A pair's similarity is ``1 - distance / (2 threshold)``, so the pairs within the threshold
    are exactly those with a similarity of at least 0.5, and a larger similarity means a smaller
    distance. MT, PT and ML follow TrackEval (MT above 0.8); MTBF is computed from TrackEval's
    matches with the 3D-ZeF rule.
    """
    from motcom.evaluation.clear import clear_matches, clear_sequence
    from motcom.evaluation.identity import identity_sequence

    seq = _prepared_points(gt_frame, gt_id, tracker_frame, tracker_id, pair_gt, pair_tracker,
                           1.0 - distance / (2.0 * threshold))
    clear = clear_sequence(seq, 0.5)
    identity = identity_sequence(seq, 0.5)
    matched_gt, matched_tracker, similarity = clear_matches(seq, 0.5)

    # Back to input rows: the prepared sides keep the input order (already frame sorted).
    event = np.full(gt_frame.shape[0], MISS, np.int8)
    event[matched_gt] = MATCH
    by_gt = np.lexsort((gt_frame[matched_gt], gt_id[matched_gt]))
    ids = gt_id[matched_gt][by_gt]
    hyps = tracker_id[matched_tracker][by_gt]
    switched = np.zeros(by_gt.shape[0], bool)
    switched[1:] = (ids[1:] == ids[:-1]) & (hyps[1:] != hyps[:-1])
    event[matched_gt[by_gt][switched]] = SWITCH
    ssum, slen, nslen = mtbf_counts(gt_id, event, None)

    num_objects, num_predictions = int(gt_frame.shape[0]), int(tracker_frame.shape[0])
    res: dict[str, Any] = {
        "num_frames": int(np.union1d(gt_frame, tracker_frame).shape[0]),
        "num_switches": int(clear["IDSW"]),
        "num_detections": int(clear["CLR_TP"]),
        "num_misses": int(clear["CLR_FN"]),
        "num_false_positives": int(clear["CLR_FP"]),
        "num_objects": num_objects,
        "num_predictions": num_predictions,
        "num_unique_objects": int(np.unique(gt_id).shape[0]),
        "num_ascend": 0, "num_transfer": 0, "num_migrate": 0,
        "mostly_tracked": int(clear["MT"]),
        "partially_tracked": int(clear["PT"]),
        "mostly_lost": int(clear["ML"]),
        "num_fragmentations": int(clear["Frag"]),
        "idtp": int(identity["IDTP"]),
        "idfn": int(identity["IDFN"]),
        "idfp": int(identity["IDFP"]),
        "mtbf_ssum": ssum, "mtbf_slen": slen, "mtbf_nslen": nslen,
    }
    res["num_matches"] = res["num_detections"] - res["num_switches"]
    res["motp_sum"] = float(np.sum(2.0 * threshold * (1.0 - similarity)))
    return finish_metrics(res)


def _prepared_points(
    gt_frame: np.ndarray,
    gt_id: np.ndarray,
    tracker_frame: np.ndarray,
    tracker_id: np.ndarray,
    pair_gt: np.ndarray,
    pair_tracker: np.ndarray,
    similarity: np.ndarray,
):
    """Build TrackEval's preprocessed sequence of point data from frame-sorted rows and pairs."""
    from motcom.evaluation.matching import frame_offsets
    from motcom.evaluation.preprocess import PreparedSequence, SideArrays

    first = int(min(gt_frame.min(initial=1), tracker_frame.min(initial=1)))
    if first < 1:
        raise EvaluationError(f"frame {first} is not a positive frame number")
    num_timesteps = int(max(gt_frame.max(initial=1), tracker_frame.max(initial=1)))

    def side(frame: np.ndarray, ids: np.ndarray) -> SideArrays:
        timestep = frame - 1
        offsets = frame_offsets(timestep, num_timesteps)
        unique_ids, relabelled = np.unique(ids, return_inverse=True)
        position = np.arange(frame.shape[0]) - offsets[timestep] if frame.size else timestep
        return SideArrays(frame=timestep, id=relabelled.astype(np.int64),
                          position=position.astype(np.int64), offsets=offsets,
                          num_ids=int(unique_ids.shape[0]))

    return PreparedSequence(num_timesteps=num_timesteps, gt=side(gt_frame, gt_id),
                            tracker=side(tracker_frame, tracker_id), pair_gt=pair_gt,
                            pair_tracker=pair_tracker, pair_iou=similarity)


def _columns(df: pl.DataFrame, names: tuple[str, ...], table: str) -> None:
    missing = [column for column in names if column not in df.columns]
    if missing:
        raise EvaluationError(f"{table} table has no column {missing[0]!r}; expected columns "
                              f"{', '.join(names)}")


def _evaluate_tables(gt: pl.DataFrame, tracks: pl.DataFrame, coordinates: tuple[str, ...],
                     threshold: float, semantics: str, name: str | None) -> dict[str, Any]:
    _columns(gt, ("frame", "id", *coordinates), "ground-truth")
    _columns(tracks, ("frame", "id", *coordinates), "tracks")
    return evaluate_points(
        gt["frame"].to_numpy(), gt["id"].to_numpy(),
        gt.select(coordinates).to_numpy().astype(np.float64),
        tracks["frame"].to_numpy(), tracks["id"].to_numpy(),
        tracks.select(coordinates).to_numpy().astype(np.float64),
        threshold=threshold, semantics=semantics, boxes=coordinates == BOX_COLUMNS, name=name)


def evaluate_tracks3d(
    gt: pl.DataFrame,
    tracks: pl.DataFrame,
    *,
    threshold: float = THRESHOLD_3D,
    semantics: str = "motmetrics",
    name: str | None = None,
) -> dict[str, float]:
    """Score 3D tracks of one sequence; return the :data:`RECORD_FIELDS`.

    Args:
        gt: columns ``frame, id, x, y, z`` (cm), e.g. :func:`zef3d.io.read_gt`.
        tracks: columns ``frame, id, x, y, z``, e.g. :func:`zef3d.io.read_tracks3d`.
        threshold: largest matching distance in cm (3D-ZeF: 0.5).
        semantics: ``"motmetrics"`` or ``"trackeval"``.
        name: sequence name for error messages.
    """
    return record_values(_evaluate_tables(gt, tracks, ("x", "y", "z"), threshold, semantics,
                                          name))


def evaluate_sequences3d(
    gt: Mapping[str, pl.DataFrame],
    tracks: Mapping[str, pl.DataFrame],
    *,
    threshold: float = THRESHOLD_3D,
    semantics: str = "motmetrics",
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Score the 3D tracks of several sequences, as ``eval zef3d`` does.

    Args:
        gt: sequence name -> ground truth with columns ``frame, id, x, y, z``.
        tracks: sequence name -> tracks with the same columns; every name must be in ``gt``.
        threshold: largest matching distance in cm.
        semantics: ``"motmetrics"`` or ``"trackeval"``.

    Returns:
        The :data:`COMBINED` numbers (py-motmetrics' OVERALL row) and the numbers per sequence.
    """
    raw = {name: _evaluate_tables(gt[name], tracks[name], ("x", "y", "z"), threshold, semantics,
                                  name)
           for name in sorted(tracks)}
    return (record_values(combine_metrics(list(raw.values()))),
            {name: record_values(res) for name, res in raw.items()})


def evaluate_tracks2d(
    gt: pl.DataFrame,
    tracks: pl.DataFrame,
    *,
    threshold: float = THRESHOLD_2D,
    semantics: str = "motmetrics",
    name: str | None = None,
) -> dict[str, float]:
    """Score the head points of one camera view; return the :data:`RECORD_FIELDS`.

    Args:
        gt: columns ``frame, id, x, y`` in pixels (a view's ``top_x, top_y`` or
            ``front_x, front_y`` renamed to ``x, y``).
        tracks: columns ``frame, id, x, y`` in pixels.
        threshold: largest matching distance in pixels (3D-ZeF: 20).
        semantics: ``"motmetrics"`` or ``"trackeval"``.
        name: sequence name for error messages.
    """
    return record_values(_evaluate_tables(gt, tracks, ("x", "y"), threshold, semantics, name))


def evaluate_boxes2d(
    gt: pl.DataFrame,
    tracks: pl.DataFrame,
    *,
    threshold: float = BOX_THRESHOLD,
    semantics: str = "motmetrics",
    name: str | None = None,
) -> dict[str, float]:
    """Score the boxes of one camera view; return the :data:`RECORD_FIELDS`.

    MOTP is then the mean ``1 - IoU`` of the matches.

    Args:
        gt: columns ``frame, id, left, top, width, height`` in pixels, e.g. the prepared
            ``top`` or ``front`` table.
        tracks: the same columns.
        threshold: largest ``1 - IoU`` of a match.
        semantics: ``"motmetrics"`` or ``"trackeval"``.
        name: sequence name for error messages.
    """
    return record_values(_evaluate_tables(gt, tracks, BOX_COLUMNS, threshold, semantics, name))


# ---------------------------------------------------------------------------------------------
# Files


def read_tracks2d(path: Path) -> pl.DataFrame:
    """Read a view's tracks file, ``frame, id, x, y`` per line (pixels); later columns ignored.

    Separators as in submission files (comma, semicolon or whitespace). Rows with a NaN
    coordinate are kept and dropped by the evaluation's filter.

    Raises:
        DataFormatError: a line with fewer than four fields, a value that is not a number, or a
            frame or id that is not a positive integer (file, line, field and value).
    """
    return _read_rows(Path(path), ("frame", "id", "x", "y"))


def read_boxes2d(path: Path) -> pl.DataFrame:
    """Read a view's box tracks, ``frame, id, left, top, width, height`` per line (pixels).

    Raises:
        DataFormatError: as :func:`read_tracks2d`, with six fields needed.
    """
    return _read_rows(Path(path), ("frame", "id", *BOX_COLUMNS))


def _read_rows(path: Path, names: tuple[str, ...]) -> pl.DataFrame:
    parsed = parse_track_rows(path.read_text(encoding="utf-8-sig"), path, names)
    widest = max((len(fields) for _, fields, _ in parsed), default=0)
    if names == ("frame", "id", "x", "y") and widest >= 5:
        # Scoring 3D positions in cm as pixels gives numbers without meaning, and no error.
        logger.warning("%s has %d columns; a view's tracks are frame, id, x, y in pixels and the "
                       "later columns are ignored. A 3D submission (frame, id, x, y, z in cm) "
                       "is scored with --view 3d", path, widest)
    rows = [(int(values[0]), int(values[1]), *values[2:]) for _, _, values in parsed]
    schema = {name: pl.Int64 if name in ("frame", "id") else pl.Float64 for name in names}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _format(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return "nan" if math.isnan(value) else repr(round(value, 6))


def write_results(rows: Mapping[str, Mapping[str, float]], csv_path: Path, summary_path: Path,
                  title: str) -> None:
    """Write the per-sequence CSV and a fixed-width summary table (both atomically)."""
    from harness.atomic import write_text

    header = ["sequence", *RECORD_FIELDS]
    lines = [",".join(header)]
    for name, values in rows.items():
        lines.append(",".join([name, *(_format(values[field]) for field in RECORD_FIELDS)]))
    write_text(csv_path, "\n".join(lines) + "\n")

    shown = ("MOTA", "MOTAL", "MOTP", "IDF1", "Recall", "Precision", "MT", "PT", "ML", "IDSW",
             "Frag", "FP", "FN", "MTBF-std", "MTBF-mono")
    width = max(len(name) for name in [*rows, "sequence"]) + 2
    table = [title, "", "sequence".ljust(width) + "".join(f"{f:>11}" for f in shown)]
    for name, values in rows.items():
        cells = []
        for field in shown:
            value = values[field]
            cells.append(f"{value:>11d}" if isinstance(value, int) else f"{value:>11.3f}")
        table.append(name.ljust(width) + "".join(cells))
    write_text(summary_path, "\n".join(table) + "\n")


# ---------------------------------------------------------------------------------------------
# The eval command


_VIEW_COLUMNS = {"3d": ("x", "y", "z"), "top": ("top_x", "top_y"), "front": ("front_x", "front_y")}


class Zef3DEvaluator(Evaluator):
    """``eval zef3d``: score tracks against the prepared 3D-ZeF20 ground truth."""

    name: ClassVar[str] = "zef3d"
    description: ClassVar[str] = (
        "score 3D-ZeF20 tracks (frame, id, x, y, z per line) with the 3D-ZeF paper's metrics: "
        "py-motmetrics CLEAR/ID on head points within 0.5 cm, plus MOTAL and MTBF"
    )
    leaderboard_metrics: ClassVar[tuple[str, ...]] = LEADERBOARD_METRICS

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--tracks", type=Path, required=True, metavar="FILE-or-DIR",
                            help="a tracks file named after its sequence (ZebraFish-01.txt), "
                                 "or a folder with one such file per sequence")
        parser.add_argument("--split", default="train", choices=["train"],
                            help="split to evaluate (default: train; test has no public "
                                 "ground truth)")
        parser.add_argument("--view", default="3d", choices=VIEW_CHOICES,
                            help="3d: x, y, z in cm (default); top or front: the view's head "
                                 "point in pixels, tracks files with frame, id, x, y")
        parser.add_argument("--boxes", action="store_true",
                            help="with --view top or front: score boxes (tracks files with "
                                 "frame, id, left, top, width, height) by 1 - IoU instead of "
                                 "head points")
        parser.add_argument("--threshold", type=float, default=None, metavar="DIST",
                            help="largest matching distance: cm for 3d (default 0.5), pixels "
                                 "for a view's head points (default 20), 1 - IoU for --boxes "
                                 "(default 0.5)")
        parser.add_argument("--semantics", default="motmetrics", choices=["motmetrics",
                                                                          "trackeval"],
                            help="matching rules of the CLEAR and ID metrics: py-motmetrics "
                                 "1.4.0, the tool of the 3D-ZeF evaluation (default), or "
                                 "TrackEval 1.3.0")
        parser.add_argument("--sequences", nargs="+", default=None, metavar="SEQ",
                            help="evaluate only these sequences (default: every train sequence "
                                 "when --tracks is a folder)")
        parser.add_argument("--complexity", action="store_true",
                            help="also write the per-view complexity of the evaluated "
                                 "sequences (zef3d_complexity.csv)")
        parser.add_argument("--vcom-weights", default=None, metavar="PATH",
                            help="with --complexity: ImageNet ResNet-18 weights file "
                                 "(torchvision's resnet18-f37072fd.pth) for VCOM of the views, "
                                 "or random:SEED for a seeded random network; without it VCOM "
                                 "and MOTCOM stay empty")
        parser.add_argument("--method", default=None, metavar="NAME",
                            help="name of the tracker in the run record (default: the tracks "
                                 "folder's or file's name)")
        parser.add_argument("--version", default=None, dest="dataset_version",
                            metavar="VERSION", help="prepared dataset version (default: the "
                                                    "dataset's default version)")

    def method_name(self, args: argparse.Namespace) -> str:
        """Return ``--method``, else the tracks folder's name (a file's own folder for a file).

        A single file is named after its sequence, which does not identify the tracker.
        """
        if getattr(args, "method", None):
            return args.method
        path = Path(args.tracks).expanduser().resolve()
        return path.name if path.is_dir() else path.parent.name

    def evaluate(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome:
        """Score ``args.tracks`` and write the results CSV and summary into ``ctx.output_dir``.

        Raises:
            harness.errors.NotPreparedError: zef3d is not prepared.
            harness.errors.EvaluationError: a missing or unexpected tracks file, an unknown
                sequence, or an invalid threshold.
            harness.errors.DataFormatError: a tracks file breaks the format.
        """
        from harness.storage import read_manifest, read_prepared_table

        view = args.view
        boxes = getattr(args, "boxes", False)
        if boxes and view == "3d":
            raise EvaluationError("--boxes needs --view top or --view front")
        threshold = args.threshold
        if threshold is None:
            threshold = (BOX_THRESHOLD if boxes else THRESHOLD_3D if view == "3d"
                         else THRESHOLD_2D)
        if not (math.isfinite(threshold) and threshold > 0):
            raise EvaluationError(f"--threshold is {threshold!r}; expected a positive number")
        if boxes and threshold >= 1:
            # 1 - IoU is at most 1, so a threshold of 1 would match boxes that do not overlap.
            raise EvaluationError(f"--threshold is {threshold!r} with --boxes; expected a largest "
                                  "1 - IoU below 1, e.g. 0.5")
        manifest = read_manifest("zef3d", version=args.dataset_version, data_dir=ctx.data_dir)
        view_columns = BOX_COLUMNS if boxes else _VIEW_COLUMNS[view]
        columns = ["sequence", "frame", "id", *view_columns]
        points = pl.from_arrow(read_prepared_table("zef3d", view if boxes else "points",
                                                   args.split, version=manifest.version,
                                                   data_dir=ctx.data_dir, columns=columns))
        known = sorted(points["sequence"].unique().to_list())
        files = _tracks_files(Path(args.tracks).expanduser(), known, args.sequences)
        lengths = dict(pl.from_arrow(read_prepared_table(
            "zef3d", "sequences", args.split, version=manifest.version, data_dir=ctx.data_dir,
            columns=["sequence", "seq_length"])).iter_rows())

        if boxes:
            reader, coordinates = read_boxes2d, BOX_COLUMNS
        elif view == "3d":
            reader, coordinates = read_tracks3d, ("x", "y", "z")
        else:
            reader, coordinates = read_tracks2d, ("x", "y")
        raw: dict[str, dict[str, Any]] = {}
        from tqdm import tqdm

        for name, path in tqdm(sorted(files.items()), desc="evaluating", unit="sequence",
                               disable=len(files) < 2):
            tracks = reader(path)
            if tracks.height == 0:
                logger.warning("tracks file %s has no rows: sequence %s is scored as if the "
                               "tracker found nothing", path, name)
            late = int((tracks["frame"] > lengths.get(name, math.inf)).sum())
            if late:
                logger.warning("tracks file %s has %d row(s) after the last frame %d of %s; "
                               "they count as false positives", path, late, lengths[name], name)
            gt = (points.filter(pl.col("sequence") == name)
                  .select(["frame", "id", *view_columns])
                  .rename(dict(zip(view_columns, coordinates, strict=True))))
            try:
                raw[name] = _evaluate_tables(gt, tracks, coordinates, threshold,
                                             args.semantics, name)
            except EvaluationError as error:
                raise EvaluationError(f"{path}: {error}") from None
        combined = combine_metrics(list(raw.values()))

        output_dir = Path(ctx.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        per_item = {name: record_values(res) for name, res in raw.items()}
        rows = {**per_item, COMBINED: record_values(combined)}
        if boxes:
            unit = "1 - IoU"
        else:
            unit = "cm" if view == "3d" else "px"
        title = (f"3D-ZeF20 {args.split}, view {view}{' boxes' if boxes else ''}, threshold "
                 f"{threshold:g} {unit}, {args.semantics} semantics (MOTP in {unit})")
        write_results(rows, output_dir / RESULTS_FILE, output_dir / SUMMARY_FILE, title)
        written = [output_dir / RESULTS_FILE, output_dir / SUMMARY_FILE]
        if getattr(args, "complexity", False):
            from zef3d.complexity import complexity_of_prepared, write_complexity

            vcom = None
            if getattr(args, "vcom_weights", None):
                from motcom.motcom_run import VcomOptions

                vcom = VcomOptions(weights=args.vcom_weights,
                                   cache_dir=output_dir / "vcom_cache")
            table = complexity_of_prepared(sorted(raw), split=args.split,
                                           version=manifest.version, data_dir=ctx.data_dir,
                                           vcom=vcom)
            written.append(write_complexity(table, output_dir / "zef3d_complexity.csv"))
        return EvalOutcome(
            dataset="zef3d",
            method=self.method_name(args),
            metrics=rows[COMBINED],
            version=manifest.version,
            split=args.split,
            per_item=per_item,
            data_kind=manifest.data_kind,
            files=written,
            config={"view": view, "boxes": boxes, "threshold": threshold,
                    "semantics": args.semantics, "sequences": sorted(raw)},
        )


def _tracks_files(path: Path, known: list[str], requested: list[str] | None) -> dict[str, Path]:
    """Map each sequence to score to its tracks file.

    Raises:
        EvaluationError: the path does not exist, a requested sequence is unknown or has no
            file, or a folder contains a file not named after a sequence of the split.
    """
    if requested:
        unknown = [name for name in requested if name not in known]
        if unknown:
            hint = ""
            if re.fullmatch(r"ZebraFish-0[5-8]", unknown[0]):
                hint = " (ZebraFish-05 to -08 are test sequences, whose ground truth is not public)"
            raise EvaluationError(f"sequence {unknown[0]!r} in --sequences has no ground truth "
                                  f"here{hint}; expected one of: {', '.join(known)}")
    if path.is_file():
        name = path.stem
        if name not in known:
            raise EvaluationError(
                f"tracks file {path} is not named after a sequence with ground truth; "
                f"expected one of: {', '.join(name + '.txt' for name in known)}")
        if requested and requested != [name]:
            raise EvaluationError(f"--sequences {' '.join(requested)} does not match the tracks "
                                  f"file {path}; pass a folder to score several sequences")
        return {name: path}
    if not path.is_dir():
        raise EvaluationError(f"tracks file or folder not found: {path}")

    found = {item.stem: item for item in sorted(path.glob("*.txt")) if item.is_file()}
    selected = list(dict.fromkeys(requested)) if requested else known
    for name in selected:
        if name not in found:
            hint = "" if requested else "; pass --sequences to score only the sequences you have"
            raise EvaluationError(f"tracks file for sequence {name} not found: expected "
                                  f"{path / (name + '.txt')}{hint}")
    others = sorted(name for name in found if name not in selected)
    if others and not requested:
        test_sequences = [name for name in others if re.fullmatch(r"ZebraFish-\d+", name)]
        strangers = [name for name in others if name not in test_sequences]
        if strangers:
            raise EvaluationError(
                f"tracks file(s) not named after a sequence: "
                f"{', '.join(found[n].name for n in strangers)} in {path}; expected "
                f"ZebraFish-NN.txt. Rename or remove them, or pass --sequences")
        logger.warning("ignoring tracks files of sequences without ground truth in this split: "
                       "%s", ", ".join(found[n].name for n in test_sequences))
    return {name: found[name] for name in selected}


__all__ = [
    "COMBINED",
    "RECORD_FIELDS",
    "THRESHOLD_2D",
    "THRESHOLD_3D",
    "Events",
    "Zef3DEvaluator",
    "evaluate_boxes2d",
    "evaluate_points",
    "evaluate_tracks2d",
    "evaluate_sequences3d",
    "evaluate_tracks3d",
    "read_boxes2d",
    "read_tracks2d",
    "record_values",
    "write_results",
]
