"""Run the installed ``trackeval`` 1.3.0 in-process as the reference for the evaluation tests.

Two entry points: :func:`trackeval_on_arrays` builds TrackEval's raw per-frame data from our
arrays and runs its preprocessing and metric classes directly (fast, for property tests);
:func:`trackeval_on_folder` writes a temporary folder in TrackEval's MOTChallenge layout and runs
``trackeval.Evaluator`` end to end, including its own file reader and output writers.
Also a small MOTChallenge text parser for the real-data tests.
"""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from motcom.data import GroundTruth, Tracks

trackeval = __import__("pytest").importorskip("trackeval", reason="trackeval 1.3.0 is the oracle")
from trackeval.datasets.mot_challenge_2d_box import MotChallenge2DBox  # noqa: E402
from trackeval.metrics import CLEAR, HOTA, Count, Identity  # noqa: E402

CLASS_IDS = {
    "pedestrian": 1,
    "person_on_vehicle": 2,
    "car": 3,
    "bicycle": 4,
    "motorbike": 5,
    "non_mot_vehicle": 6,
    "static_person": 7,
    "distractor": 8,
    "occluder": 9,
    "occluder_on_ground": 10,
    "occluder_full": 11,
    "reflection": 12,
    "crowd": 13,
}


def _metrics(threshold: float) -> list[Any]:
    config = {"THRESHOLD": threshold, "PRINT_CONFIG": False}
    return [HOTA(), CLEAR(config), Identity(config), Count()]


def _dataset(benchmark: str | None) -> MotChallenge2DBox:
    """A TrackEval dataset object with only the attributes its preprocessing reads."""
    dataset = MotChallenge2DBox.__new__(MotChallenge2DBox)
    dataset.benchmark = benchmark if benchmark is not None else "MOT17"
    dataset.do_preproc = benchmark is not None
    dataset.class_name_to_class_id = dict(CLASS_IDS)
    dataset.valid_class_numbers = list(CLASS_IDS.values())
    return dataset


def _raw_data(gt: GroundTruth, tracks: Tracks, seq_length: int) -> dict[str, Any]:
    raw: dict[str, Any] = {
        key: [None] * seq_length
        for key in [
            "gt_ids",
            "gt_classes",
            "gt_dets",
            "gt_extras",
            "gt_crowd_ignore_regions",
            "tracker_ids",
            "tracker_classes",
            "tracker_dets",
            "tracker_confidences",
        ]
    }
    for t in range(seq_length):
        rows = np.flatnonzero(gt.frame == t + 1)
        raw["gt_ids"][t] = gt.id[rows].astype(int)
        raw["gt_classes"][t] = gt.cls[rows].astype(int)
        raw["gt_dets"][t] = np.atleast_2d(gt.boxes[rows].astype(float)).reshape(-1, 4)
        raw["gt_extras"][t] = {"zero_marked": gt.flag[rows].astype(int)}
        raw["gt_crowd_ignore_regions"][t] = np.empty((0, 4))
        rows = np.flatnonzero(tracks.frame == t + 1)
        raw["tracker_ids"][t] = tracks.id[rows].astype(int)
        raw["tracker_classes"][t] = np.ones(len(rows), int)
        raw["tracker_dets"][t] = np.atleast_2d(tracks.boxes[rows].astype(float)).reshape(-1, 4)
        raw["tracker_confidences"][t] = tracks.conf[rows].astype(float)
    raw["num_timesteps"] = seq_length
    raw["seq"] = "seq"
    return raw


def trackeval_on_arrays(
    gt: GroundTruth,
    tracks: Tracks,
    seq_length: int,
    *,
    benchmark: str | None = "MOT17",
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Evaluate one sequence with TrackEval's preprocessing and metric classes; flat field dict.

    ``benchmark=None`` runs TrackEval's MOT17 dataset with ``DO_PREPROC=False``.
    """
    dataset = _dataset(benchmark)
    raw = _raw_data(gt, tracks, seq_length)
    raw["similarity_scores"] = [
        dataset._calculate_similarities(g, k)
        for g, k in zip(raw["gt_dets"], raw["tracker_dets"], strict=True)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        data = dataset.get_preprocessed_seq_data(raw, "pedestrian")
        res: dict[str, Any] = {}
        for metric in _metrics(threshold):
            res.update(metric.eval_sequence(data))
    res.pop("Frames", None)
    return res


def trackeval_combine(results: dict[str, dict[str, Any]], threshold: float = 0.5) -> dict[str, Any]:
    """TrackEval's COMBINED row of flat per-sequence results, visited in sorted name order."""
    combined: dict[str, Any] = {}
    for metric in _metrics(threshold):
        fields = set(metric.fields)
        per_seq = {
            name: {k: v for k, v in results[name].items() if k in fields}
            for name in sorted(results)
        }
        combined.update(metric.combine_sequences(per_seq))
    return combined


def write_mot_folder(
    root: Path,
    sequences: dict[str, tuple[GroundTruth, Tracks, int]],
    *,
    benchmark: str = "MOT17",
    tracker: str = "tracker",
) -> None:
    """Write gt, seqinfo, seqmap and tracker files in TrackEval's MOTChallenge layout."""
    gt_root = root / "gt" / f"{benchmark}-train"
    data_root = root / "trackers" / f"{benchmark}-train" / tracker / "data"
    data_root.mkdir(parents=True, exist_ok=True)
    (root / "gt" / "seqmaps").mkdir(parents=True, exist_ok=True)
    seqmap = ["name"] + sorted(sequences)
    (root / "gt" / "seqmaps" / f"{benchmark}-train.txt").write_text("\n".join(seqmap) + "\n")
    for name, (gt, tracks, seq_length) in sequences.items():
        (gt_root / name / "gt").mkdir(parents=True, exist_ok=True)
        (gt_root / name / "seqinfo.ini").write_text(
            f"[Sequence]\nname={name}\nseqLength={seq_length}\n"
        )
        with open(gt_root / name / "gt" / "gt.txt", "w") as f:
            for i in range(len(gt)):
                box = ",".join(repr(float(v)) for v in gt.boxes[i])
                f.write(
                    f"{gt.frame[i]},{gt.id[i]},{box},{float(gt.flag[i])!r},{gt.cls[i]},"
                    f"{float(gt.visibility[i])!r}\n"
                )
        with open(data_root / f"{name}.txt", "w") as f:
            for i in range(len(tracks)):
                box = ",".join(repr(float(v)) for v in tracks.boxes[i])
                f.write(
                    f"{tracks.frame[i]},{tracks.id[i]},{box},{float(tracks.conf[i])!r},-1,-1,-1\n"
                )


def trackeval_on_folder(
    gt_folder: Path,
    trackers_folder: Path,
    *,
    benchmark: str = "MOT17",
    tracker: str = "tracker",
    output: Path | None = None,
    seq_info: dict[str, int] | None = None,
    skip_split_fol: bool = False,
) -> dict[str, dict[str, Any]]:
    """Run ``trackeval.Evaluator`` (single process) on a MOTChallenge folder.

    Args:
        gt_folder: TrackEval's ``GT_FOLDER``.
        trackers_folder: TrackEval's ``TRACKERS_FOLDER``.
        benchmark: TrackEval's ``BENCHMARK``.
        tracker: the tracker folder name.
        output: where TrackEval writes ``<tracker>/pedestrian_{summary.txt,detailed.csv}``;
            ``None`` writes nothing.
        seq_info: sequence -> length, in place of a seqmap file.
        skip_split_fol: TrackEval's ``SKIP_SPLIT_FOL``.

    Returns:
        Sequence name (and ``"COMBINED"``) -> flat field dict of the pedestrian class.
    """
    eval_config = {
        "USE_PARALLEL": False,
        "PRINT_RESULTS": False,
        "PRINT_CONFIG": False,
        "TIME_PROGRESS": False,
        "DISPLAY_LESS_PROGRESS": True,
        "OUTPUT_SUMMARY": output is not None,
        "OUTPUT_DETAILED": output is not None,
        "PLOT_CURVES": False,
        "BREAK_ON_ERROR": True,
    }
    dataset_config = {
        "GT_FOLDER": str(gt_folder),
        "TRACKERS_FOLDER": str(trackers_folder),
        "OUTPUT_FOLDER": str(output) if output is not None else None,
        "TRACKERS_TO_EVAL": [tracker],
        "BENCHMARK": benchmark,
        "SPLIT_TO_EVAL": "train",
        "PRINT_CONFIG": False,
        "SKIP_SPLIT_FOL": skip_split_fol,
    }
    if seq_info is not None:
        dataset_config["SEQ_INFO"] = dict(seq_info)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = trackeval.Evaluator(eval_config)
        dataset = trackeval.datasets.MotChallenge2DBox(dataset_config)
        output_res, _ = evaluator.evaluate([dataset], _metrics(0.5)[:3])
    per_seq = output_res["MotChallenge2DBox"][tracker]
    flat: dict[str, dict[str, Any]] = {}
    for seq, by_class in per_seq.items():
        row: dict[str, Any] = {}
        for metric_res in by_class["pedestrian"].values():
            row.update(metric_res)
        row.pop("Frames", None)
        flat["COMBINED" if seq == "COMBINED_SEQ" else seq] = row
    return flat


def read_mot_text(path: Path, *, is_gt: bool) -> GroundTruth | Tracks:
    """Parse a MOTChallenge gt or tracker text file (comma or whitespace separated, CRLF ok).

    MOT15 gt (10 columns, ``-1`` in the class position) gets class 1 and visibility 1, as the
    project's data model describes for MOT15.
    """
    rows: list[list[float]] = []
    with open(path, newline="") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            parts = [p for p in line.replace(",", " ").split()]
            rows.append([float(p) for p in parts])
    width = max((len(r) for r in rows), default=10)
    table = np.array([r + [-1.0] * (width - len(r)) for r in rows]).reshape(-1, width)
    frame = table[:, 0].astype(np.int64)
    ids = table[:, 1].astype(np.int64)
    boxes = table[:, 2:6].astype(np.float64)
    if not is_gt:
        return Tracks(frame=frame, id=ids, boxes=boxes, conf=table[:, 6].copy())
    mot15 = width == 10 or width < 9
    cls = np.ones(len(table), np.int64) if mot15 else table[:, 7].astype(np.int64)
    visibility = np.ones(len(table)) if mot15 else table[:, 8].copy()
    return GroundTruth(
        frame=frame, id=ids, boxes=boxes, flag=table[:, 6].copy(), cls=cls, visibility=visibility
    )


def read_detailed_csv(path: Path) -> dict[str, dict[str, str]]:
    """Read a TrackEval ``*_detailed.csv`` as sequence -> column -> text."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return {row["seq"]: row for row in reader}
