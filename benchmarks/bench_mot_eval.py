"""Time TrackEval 1.3.0 against ``motcom.evaluation`` on a MOT17-train-sized set and on real files.

Usage::

    .venv/bin/python benchmarks/bench_mot_eval.py [--root DIR] [--seed 0] [--scale 1.0]
        [--compare-files]

The synthetic set has TrackEval's folder layout: 7 base sequences with the MOT17 train lengths,
each copied as -DPM, -FRCNN and -SDP with the same gt and a different noisy tracker (misses,
false positives, id switches, boxes on distractors). Each side runs in its own subprocess and
reports its peak resident memory (``ru_maxrss``). Linux carries ``ru_maxrss`` over ``exec``, so
the parent process only writes files and starts the children. The times exclude imports.
TrackEval runs single-process with HOTA, CLEAR and Identity. Ours parses with ``motcom.io``
(a plain numpy reader if that module is missing), parsing each distinct gt content once as the
``eval motchallenge`` command does, and evaluates with ``motcom.evaluation``.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BASES = {  # MOT17 train: sequence -> (frames, mean pedestrians per frame)
    "MOT17-02": (600, 31),
    "MOT17-04": (1050, 45),
    "MOT17-05": (837, 8),
    "MOT17-09": (525, 10),
    "MOT17-10": (654, 20),
    "MOT17-11": (900, 10),
    "MOT17-13": (750, 16),
}
DETECTORS = ("DPM", "FRCNN", "SDP")
OTHER_CLASSES = [2, 7, 8, 12, 9, 10, 11, 3]
"""Non-pedestrian gt classes drawn for about a fifth of the objects (all with flag 0)."""

REAL_MOT17 = Path(__file__).resolve().parents[1].parent / "shared" / "realdata" / "mot" / "MOT17"


def _objects(rng: np.random.Generator, frames: int, density: int, scale: float) -> np.ndarray:
    """Return gt rows ``frame, id, x, y, w, h, flag, class, visibility`` of one base sequence."""
    rows = []
    mean_life = min(frames, 300)
    num_objects = max(1, int(density * frames / mean_life * scale * 1.25))
    for obj_id in range(1, num_objects + 1):
        life = int(rng.integers(mean_life // 3, mean_life * 5 // 3))
        start = int(rng.integers(1, max(2, frames - life // 2)))
        end = min(frames, start + life)
        t = np.arange(start, end + 1)
        height = rng.uniform(60, 320)
        width = height * rng.uniform(0.35, 0.45)
        velocity = rng.normal(0, 1.5, 2)
        x = rng.uniform(0, 1920 - width) + velocity[0] * (t - start) + rng.normal(0, 1, t.size)
        y = rng.uniform(200, 1080 - height) + velocity[1] * 0.2 * (t - start)
        h = height * (1 + 0.002 * (t - start) * rng.normal(0, 0.2))
        cls = 1 if rng.random() < 0.8 else int(rng.choice(OTHER_CLASSES))
        flag = 1 if cls == 1 else 0
        block = np.column_stack(
            [
                t,
                np.full(t.size, obj_id),
                np.round(x, 1),
                np.round(y, 1),
                np.round(width * h / height, 1),
                np.round(h, 1),
                np.full(t.size, flag),
                np.full(t.size, cls),
                np.round(rng.uniform(0, 1, t.size), 3),
            ]
        )
        rows.append(block)
    return np.concatenate(rows)


def _tracker(rng: np.random.Generator, gt: np.ndarray, frames: int) -> np.ndarray:
    """Return tracker rows ``frame, id, x, y, w, h, conf`` following the gt with errors."""
    follow = (gt[:, 7] == 1) | ((gt[:, 7] == 7) & (rng.random(len(gt)) < 0.5))
    detected = follow & (rng.random(len(gt)) < 0.88)
    det = gt[detected]
    noise = rng.normal(0, 0.06, (len(det), 4)) * det[:, [4, 5, 4, 5]]
    boxes = det[:, 2:6] + noise
    boxes[:, 2:] = np.maximum(boxes[:, 2:], 1)

    # Each gt id maps to one tracker id; about a third of the objects switch to a second id once.
    num_ids = int(gt[:, 1].max()) + 1
    switch_frame = np.where(
        rng.random(num_ids) < 0.35, rng.integers(1, frames + 1, num_ids), frames + 1
    )
    gt_id = det[:, 1].astype(np.int64)
    new_ids = gt_id * 10 + (det[:, 0] >= switch_frame[gt_id])
    # False positives come in short tracklets (5-30 frames) of their own ids, about 5 % of boxes.
    fp_rows = []
    budget = int(0.05 * len(det))
    fp_id = 10**7
    while budget > 0:
        length = int(rng.integers(5, 31))
        start = int(rng.integers(1, frames + 1))
        t = np.arange(start, min(frames, start + length - 1) + 1)
        height = rng.uniform(60, 300)
        fp_rows.append(
            np.column_stack(
                [
                    t,
                    np.full(t.size, fp_id),
                    rng.uniform(0, 1800) + rng.normal(0, 2, t.size).cumsum(),
                    np.full(t.size, rng.uniform(200, 900)),
                    np.full(t.size, height * 0.4),
                    np.full(t.size, height),
                    rng.uniform(0, 1, t.size),
                ]
            )
        )
        fp_id += 1
        budget -= t.size
    fp = np.concatenate(fp_rows) if fp_rows else np.zeros((0, 7))
    tracked = np.column_stack([det[:, 0], new_ids, np.round(boxes, 2), rng.uniform(0, 1, len(det))])
    rows = np.concatenate([tracked, fp])
    return rows[np.lexsort((rows[:, 1], rows[:, 0]))]


def generate(root: Path, seed: int, scale: float) -> dict[str, int]:
    """Write the synthetic set under ``root`` in TrackEval's layout; return sequence lengths."""
    rng = np.random.default_rng(seed)
    gt_root = root / "gt" / "MOT17-train"
    tracker_root = root / "trackers" / "MOT17-train" / "synthetic" / "data"
    tracker_root.mkdir(parents=True, exist_ok=True)
    (root / "gt" / "seqmaps").mkdir(parents=True, exist_ok=True)
    lengths = {}
    for base, (frames, density) in BASES.items():
        gt = _objects(rng, frames, density, scale)
        gt = gt[np.lexsort((gt[:, 0], gt[:, 1]))]  # official files are sorted by id, then frame
        gt_text = "".join(
            f"{int(r[0])},{int(r[1])},{r[2]:.1f},{r[3]:.1f},{r[4]:.1f},{r[5]:.1f},"
            f"{int(r[6])},{int(r[7])},{r[8]:.3f}\n"
            for r in gt
        )
        for detector in DETECTORS:
            name = f"{base}-{detector}"
            lengths[name] = frames
            (gt_root / name / "gt").mkdir(parents=True, exist_ok=True)
            (gt_root / name / "gt" / "gt.txt").write_text(gt_text)
            (gt_root / name / "seqinfo.ini").write_text(
                f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={frames}\n"
                "imWidth=1920\nimHeight=1080\nimExt=.jpg\n"
            )
            tracks = _tracker(rng, gt, frames)
            (tracker_root / f"{name}.txt").write_text(
                "".join(
                    f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},"
                    f"{r[6]:.3f},-1,-1,-1\n"
                    for r in tracks
                )
            )
    (root / "gt" / "seqmaps" / "MOT17-train.txt").write_text(
        "name\n" + "\n".join(sorted(lengths)) + "\n"
    )
    return lengths


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_trackeval(gt_folder: Path, trackers_folder: Path, tracker: str, lengths: dict) -> dict:
    """Evaluate with TrackEval in this process; return times, peak memory and COMBINED numbers."""
    import trackeval

    baseline = _peak_rss_mib()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = trackeval.Evaluator(
            {"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False,
             "TIME_PROGRESS": False, "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False,
             "PLOT_CURVES": False, "DISPLAY_LESS_PROGRESS": True}
        )  # fmt: skip
        dataset = trackeval.datasets.MotChallenge2DBox(
            {"GT_FOLDER": str(gt_folder), "TRACKERS_FOLDER": str(trackers_folder),
             "TRACKERS_TO_EVAL": [tracker], "BENCHMARK": "MOT17", "SPLIT_TO_EVAL": "train",
             "PRINT_CONFIG": False, "SEQ_INFO": dict(lengths), "SKIP_SPLIT_FOL": True}
        )  # fmt: skip
        metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
                   trackeval.metrics.Identity({"PRINT_CONFIG": False})]  # fmt: skip
        output, _ = evaluator.evaluate([dataset], metrics)
    elapsed = time.perf_counter() - start
    combined = output["MotChallenge2DBox"][tracker]["COMBINED_SEQ"]["pedestrian"]
    numbers = {
        "HOTA": float(np.mean(combined["HOTA"]["HOTA"])),
        "MOTA": float(combined["CLEAR"]["MOTA"]),
        "IDF1": float(combined["Identity"]["IDF1"]),
    }
    return {"seconds": elapsed, "rss_mib": _peak_rss_mib(), "rss_base_mib": baseline, **numbers}


def _numpy_reader():
    def read(path: Path, is_gt: bool, data: bytes | None = None, seq_length: int | None = None):
        from motcom.data import GroundTruth, Tracks

        table = np.loadtxt(io.BytesIO(data) if data is not None else path, delimiter=",",
                           ndmin=2)
        if not is_gt:
            return Tracks(table[:, 0].astype(np.int64), table[:, 1].astype(np.int64),
                          table[:, 2:6].copy(), table[:, 6].copy())  # fmt: skip
        return GroundTruth(table[:, 0].astype(np.int64), table[:, 1].astype(np.int64),
                           table[:, 2:6].copy(), table[:, 6].copy(), table[:, 7].astype(np.int64),
                           table[:, 8].copy())  # fmt: skip

    return read


def _gt_reader(read) -> tuple:
    """Wrap ``read`` so that each distinct gt content is parsed once, as ``eval motchallenge`` does.

    MOT17's DPM, FRCNN and SDP folders hold byte-identical ``gt.txt`` files. The file is still
    read and hashed for every sequence, so the time covers what the command does.
    """
    parsed: dict[tuple[bytes, int], object] = {}

    def read_gt(path: Path, seq_length: int):
        data = path.read_bytes()
        key = (hashlib.blake2b(data, digest_size=16).digest(), seq_length)
        if key not in parsed:
            parsed[key] = read(path, True, data, seq_length)
        return parsed[key]

    return read_gt


def run_ours(gt_folder: Path, trackers_folder: Path, tracker: str, lengths: dict) -> dict:
    """Parse and evaluate with this project in this process; same report as TrackEval's."""
    from motcom.evaluation import combine_sequences, evaluate_sequence

    try:
        from motcom.io import ground_truth_from_bytes, read_tracks

        def read(path: Path, is_gt: bool, data: bytes | None = None, seq_length: int | None = None):
            if is_gt:
                return ground_truth_from_bytes(data, source=path, seq_length=seq_length)
            return read_tracks(path, seq_length=seq_length)

        reader = "motcom.io"
    except ImportError:
        read = _numpy_reader()
        reader = "numpy.loadtxt"

    baseline = _peak_rss_mib()
    start = time.perf_counter()
    parse_seconds = 0.0
    read_gt = _gt_reader(read)
    results = {}
    for name, length in sorted(lengths.items()):
        parse_start = time.perf_counter()
        gt = read_gt(gt_folder / name / "gt" / "gt.txt", length)
        tracks = read(trackers_folder / tracker / "data" / f"{name}.txt", False, None, length)
        parse_seconds += time.perf_counter() - parse_start
        results[name] = evaluate_sequence(gt, tracks, length, benchmark="MOT17", name=name)
    combined = combine_sequences(results)
    elapsed = time.perf_counter() - start
    return {
        "seconds": elapsed,
        "parse_seconds": parse_seconds,
        "eval_seconds": elapsed - parse_seconds,
        "reader": reader,
        "rss_mib": _peak_rss_mib(),
        "rss_base_mib": baseline,
        "HOTA": float(np.mean(combined["HOTA"])),
        "MOTA": float(combined["MOTA"]),
        "IDF1": float(combined["IDF1"]),
    }


def _subprocess(side: str, gt_folder: Path, trackers_folder: Path, tracker: str, lengths: dict):
    spec = json.dumps([side, str(gt_folder), str(trackers_folder), tracker, lengths])
    out = subprocess.run(
        [sys.executable, __file__, "--child", spec], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child(spec: str) -> None:
    side, gt_folder, trackers_folder, tracker, lengths = json.loads(spec)
    if side == "compare":
        report = {"same": compare_files(Path(gt_folder), Path(trackers_folder), tracker, lengths)}
    else:
        runner = run_trackeval if side == "trackeval" else run_ours
        report = runner(Path(gt_folder), Path(trackers_folder), tracker, lengths)
    sys.stdout.write(json.dumps(report) + "\n")


def compare_files(gt_folder: Path, trackers_folder: Path, tracker: str, lengths: dict) -> bool:
    """Return whether both tools write byte-identical detailed and summary files (untimed)."""
    import trackeval

    from motcom.evaluation import combine_sequences, evaluate_sequence
    from motcom.io import read_ground_truth, read_tracks
    from motcom.trackeval_output import format_detailed, format_summary

    with tempfile.TemporaryDirectory() as output, contextlib.redirect_stdout(io.StringIO()):
        evaluator = trackeval.Evaluator(
            {"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False,
             "TIME_PROGRESS": False, "PLOT_CURVES": False, "DISPLAY_LESS_PROGRESS": True}
        )  # fmt: skip
        dataset = trackeval.datasets.MotChallenge2DBox(
            {"GT_FOLDER": str(gt_folder), "TRACKERS_FOLDER": str(trackers_folder),
             "OUTPUT_FOLDER": output, "TRACKERS_TO_EVAL": [tracker], "BENCHMARK": "MOT17",
             "SPLIT_TO_EVAL": "train", "PRINT_CONFIG": False, "SEQ_INFO": dict(lengths),
             "SKIP_SPLIT_FOL": True}
        )  # fmt: skip
        metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
                   trackeval.metrics.Identity({"PRINT_CONFIG": False})]  # fmt: skip
        evaluator.evaluate([dataset], metrics)
        with open(Path(output) / tracker / "pedestrian_detailed.csv", newline="") as f:
            detailed = f.read()
        with open(Path(output) / tracker / "pedestrian_summary.txt", newline="") as f:
            summary = f.read()

    results = {
        name: evaluate_sequence(
            read_ground_truth(gt_folder / name / "gt" / "gt.txt"),
            read_tracks(trackers_folder / tracker / "data" / f"{name}.txt"),
            length,
        )
        for name, length in lengths.items()
    }
    results["COMBINED"] = combine_sequences(results)
    return format_detailed(results) == detailed and format_summary(results) == summary


def _table_rows(label: str, reference: dict, ours: dict, boxes: int) -> list[str]:
    ratio = reference["seconds"] / ours["seconds"]
    eval_ratio = reference["seconds"] / ours["eval_seconds"]
    same = all(abs(reference[k] - ours[k]) < 1e-9 for k in ("HOTA", "MOTA", "IDF1"))
    return [
        f"| {label} | {boxes:,} | {reference['seconds']:.2f} | {ours['seconds']:.3f} "
        f"({ours['parse_seconds']:.3f} parse + {ours['eval_seconds']:.3f} eval) | "
        f"{ratio:.1f}x ({eval_ratio:.1f}x vs eval only) | "
        f"{reference['rss_mib']:.0f} / {ours['rss_mib']:.0f} | "
        f"{reference['rss_base_mib']:.0f} / {ours['rss_base_mib']:.0f} | {ours['reader']} | "
        f"{'yes' if same else 'NO'} |"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="folder for the synthetic set (default: temp)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic set")
    parser.add_argument("--scale", type=float, default=1.0, help="object density factor")
    parser.add_argument(
        "--compare-files",
        action="store_true",
        help="also check, untimed, that both tools write byte-identical result files",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return

    notes: list[str] = []
    lines = [
        "| set | gt boxes | TrackEval 1.3.0 (s) | ours (s) | speed-up | peak RSS MiB "
        "(TrackEval / ours) | RSS after imports | our reader | same HOTA, MOTA, IDF1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp)
        lengths = generate(root, args.seed, args.scale)
        gt_folder = root / "gt" / "MOT17-train"
        trackers_folder = root / "trackers" / "MOT17-train"
        boxes = sum(sum(1 for _ in open(gt_folder / name / "gt" / "gt.txt")) for name in lengths)
        reference = _subprocess("trackeval", gt_folder, trackers_folder, "synthetic", lengths)
        ours = _subprocess("ours", gt_folder, trackers_folder, "synthetic", lengths)
        lines += _table_rows(
            f"synthetic MOT17 train (21 seq, seed {args.seed})", reference, ours, boxes
        )
        if args.compare_files:
            same = _subprocess("compare", gt_folder, trackers_folder, "synthetic", lengths)["same"]
            notes.append(f"\nSynthetic set, result files byte-identical: {'yes' if same else 'NO'}")

    if REAL_MOT17.is_dir():
        gt_folder = REAL_MOT17 / "gt" / "MOT17-train"
        lengths = {"MOT17-02-SDP": 600, "MOT17-05-SDP": 837, "MOT17-09-SDP": 525}
        boxes = sum(sum(1 for _ in open(gt_folder / n / "gt" / "gt.txt")) for n in lengths)
        reference = _subprocess(
            "trackeval", gt_folder, REAL_MOT17 / "trackers", "realtracker", lengths
        )
        ours = _subprocess("ours", gt_folder, REAL_MOT17 / "trackers", "realtracker", lengths)
        lines += _table_rows("real MOT17 02/05/09-SDP", reference, ours, boxes)
    print("\n".join(lines + notes))  # the benchmark's own output


if __name__ == "__main__":
    main()
