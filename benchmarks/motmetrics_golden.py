"""Golden values of py-motmetrics 1.4.0 on generated point-tracking cases, as 3D-ZeF evaluates.

Rerun (py-motmetrics 1.4.0 needs numpy < 2, so it gets its own virtualenv)::

    python3 -m venv /tmp/mm14
    /tmp/mm14/bin/pip install "motmetrics==1.4.0" "numpy<2" "pandas<2" scipy
    /tmp/mm14/bin/python benchmarks/motmetrics_golden.py

from the repository root; it writes ``tests/data/zef3d_motmetrics_golden.json`` (``--output``
to change). Then add the MTBF counts of py-motmetrics 1.1.3, the version that the 3D-ZeF
code's ``motmetrics-env.yml`` pins, whose events lack 1.4.0's TRANSFER, ASCEND and MIGRATE::

    python3 -m venv /tmp/mm113env
    /tmp/mm113env/bin/pip install "motmetrics==1.1.3" "numpy<2" "pandas<2" scipy
    /tmp/mm113env/bin/python benchmarks/motmetrics_golden.py --add-113

1.1.3 predates Python 3.10, so the script restores ``collections.Iterable`` and
``inspect.getargspec`` for it before the import.

py-motmetrics takes the first solver it finds among lapsolver, lap, scipy, munkres and
ortools. The 3D-ZeF setup has only scipy, so the environment must not contain lap or
lapsolver, and the script exits unless scipy is the solver in use.

The generator functions need only numpy, so ``tests/test_zef3d_eval.py`` imports this file and
rebuilds the inputs from the stored seeds and parameters. The JSON stores a SHA-256 of each
case's inputs, so a change of the generator (or of numpy's random streams) fails loudly
instead of comparing different data.

Each case is scored as ``modules/evaluation/MOT_evaluation.py`` of the 3D-ZeF code does.
Ground-truth rows with a missing coordinate and tracker rows with a coordinate ``<= 0`` are
dropped. Each frame of the union of ground-truth and tracker frames is passed to
``MOTAccumulator.update`` with the distance matrix, set to NaN above the threshold: Euclidean
distances for points, ``1 - IoU`` (3D-ZeF's ``IoUDistance``) for the box cases.
MOTAL and MTBF are computed from the accumulator's ``mot_events`` with the 3D-ZeF formulas.
Groups of cases are also combined with ``compute_many(..., generate_overall=True)``.

``--timing FRAMES FISH`` instead times py-motmetrics on one generated sequence and prints the
metrics and the seconds as JSON (used by ``benchmarks/bench_zef3d_eval.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

THRESHOLD_3D = 0.5
"""3D-ZeF's 3D matching threshold, in centimetres."""
THRESHOLD_2D = 20.0
"""3D-ZeF's 2D matching threshold, in pixels."""
BOX_THRESHOLD = 0.5
"""Largest ``1 - IoU`` of a box match in the golden box cases."""

CASES: list[dict] = [
    {"name": "walk3d", "seed": 1, "dims": 3, "frames": 120, "fish": 3},
    {"name": "crowded3d", "seed": 2, "dims": 3, "frames": 150, "fish": 8, "step": 0.5},
    {"name": "swaps3d", "seed": 3, "dims": 3, "frames": 200, "fish": 5, "swap_rate": 0.03},
    {"name": "fragments3d", "seed": 4, "dims": 3, "frames": 200, "fish": 4, "frag_rate": 0.04,
     "miss_rate": 0.15},
    {"name": "late3d", "seed": 5, "dims": 3, "frames": 160, "fish": 6, "late": 0.6,
     "empty_frames": 0.1},
    {"name": "noisy3d", "seed": 6, "dims": 3, "frames": 150, "fish": 5, "noise": 0.6,
     "fp_rate": 0.3},
    {"name": "ties3d", "seed": 7, "dims": 3, "frames": 150, "fish": 6, "quantum": 0.25,
     "step": 0.4},
    {"name": "invalid3d", "seed": 8, "dims": 3, "frames": 120, "fish": 4, "invalid_rate": 0.1},
    {"name": "crossing3d", "seed": 9, "dims": 3, "frames": 200, "fish": 2, "cross": True},
    {"name": "walk2d", "seed": 11, "dims": 2, "frames": 150, "fish": 4},
    {"name": "crowded2d", "seed": 12, "dims": 2, "frames": 150, "fish": 8, "step": 0.5,
     "swap_rate": 0.02, "frag_rate": 0.02},
    {"name": "ties2d", "seed": 13, "dims": 2, "frames": 150, "fish": 6, "quantum": 8.0,
     "fp_rate": 0.2},
    {"name": "empty_tracker", "seed": 14, "dims": 3, "frames": 30, "fish": 2, "miss_rate": 1.0,
     "fp_rate": 0.0},
    {"name": "no_gt", "seed": 15, "dims": 3, "frames": 30, "fish": 0, "fp_rate": 1.0},
    {"name": "tangle3d", "seed": 21, "dims": 3, "frames": 250, "fish": 10, "spread": 0.12,
     "step": 0.6, "noise": 0.45, "miss_rate": 0.1, "fp_rate": 0.6, "swap_rate": 0.05,
     "frag_rate": 0.01},
    {"name": "tangle2d", "seed": 22, "dims": 2, "frames": 250, "fish": 8, "spread": 0.15,
     "step": 0.7, "noise": 0.5, "miss_rate": 0.15, "fp_rate": 0.4, "swap_rate": 0.04,
     "frag_rate": 0.01, "late": 0.5},
    {"name": "tangle_ties3d", "seed": 23, "dims": 3, "frames": 200, "fish": 8, "spread": 0.1,
     "step": 0.5, "noise": 0.4, "quantum": 0.2, "fp_rate": 0.5, "swap_rate": 0.03},
    {"name": "boxes2d", "seed": 31, "dims": 2, "frames": 200, "fish": 6, "boxes": True,
     "spread": 0.3, "swap_rate": 0.03, "frag_rate": 0.01, "fp_rate": 0.3},
    {"name": "boxes_tangle2d", "seed": 32, "dims": 2, "frames": 200, "fish": 8, "boxes": True,
     "spread": 0.12, "step": 0.6, "noise": 0.4, "miss_rate": 0.1, "fp_rate": 0.5,
     "swap_rate": 0.04, "invalid_rate": 0.05},
]
"""Generator parameters of the golden cases (defaults in :func:`generate_case`)."""

GROUPS = {"train3d": ["walk3d", "swaps3d", "fragments3d", "late3d", "tangle3d"],
          "mixed3d": ["crowded3d", "noisy3d", "ties3d", "empty_tracker"]}
"""Cases combined into one OVERALL row each."""


def generate_case(
    seed: int,
    *,
    dims: int = 3,
    frames: int = 100,
    fish: int = 4,
    step: float = 0.25,
    noise: float = 0.25,
    miss_rate: float = 0.05,
    fp_rate: float = 0.05,
    swap_rate: float = 0.0,
    frag_rate: float = 0.0,
    late: float = 0.0,
    empty_frames: float = 0.0,
    invalid_rate: float = 0.0,
    quantum: float = 0.0,
    cross: bool = False,
    spread: float = 1.0,
    boxes: bool = False,
    **_: object,
) -> dict[str, np.ndarray]:
    """Generate ground truth and tracker output of one sequence of moving points.

    Lengths are in units of the matching threshold (0.5 cm in 3D, 20 px in 2D): ``step`` is the
    standard deviation of a fish's per-frame move, ``noise`` that of the tracker's error.

    Args:
        seed: seed of ``numpy.random.default_rng``.
        dims: 3 (centimetres in a 29 cm tank) or 2 (pixels of a 640 px image).
        frames: number of frames.
        fish: number of ground-truth objects.
        step: per-frame move, in thresholds.
        noise: tracker error, in thresholds.
        miss_rate: probability that the tracker drops a ground-truth row.
        fp_rate: expected false-positive rows per frame.
        swap_rate: probability per frame that two tracks exchange their ids from then on.
        frag_rate: probability per frame and fish that its track gets a new id from then on.
        late: fraction of fish that appear late or leave early.
        empty_frames: fraction of frames without ground-truth rows.
        invalid_rate: fraction of tracker rows with a coordinate set to -1 (dropped by the
            3D-ZeF filter).
        quantum: grid that tracker coordinates are rounded to (0: 3 decimals), which makes
            equal distances and tests Hungarian tie-breaking.
        cross: make fish 1 cross fish 0 repeatedly (two close tracks).
        spread: fraction of the tank the fish stay in; small values crowd them together.
        boxes: (2D only) return boxes ``left, top, width, height`` in whole pixels around the
            points instead of the points. Each fish has its own box size; tracker boxes vary
            it by up to 20 %.

    Returns:
        ``gt_frame``, ``gt_id``, ``gt_points``, ``tracker_frame``, ``tracker_id``,
        ``tracker_points``: rows in file order (frames ascending, shuffled within a frame).
    """
    rng = np.random.default_rng(seed)
    unit = THRESHOLD_3D if dims == 3 else THRESHOLD_2D
    size = 29.0 if dims == 3 else 640.0

    low, high = 0.05 * size, (0.05 + 0.9 * spread) * size
    position = rng.uniform(low, high, (fish, dims))
    start = np.ones(fish, np.int64)
    stop = np.full(fish, frames, np.int64)
    for f in range(fish):
        if rng.random() < late:
            if rng.random() < 0.5:
                start[f] = rng.integers(2, max(3, frames // 2))
            else:
                stop[f] = rng.integers(frames // 2, frames)
    empty = rng.random(frames + 1) < empty_frames

    hypothesis = np.arange(1, fish + 1) + 100
    next_id = 100 + fish + 1
    gt_rows: list[tuple[int, int, np.ndarray]] = []
    tr_rows: list[tuple[int, int, np.ndarray]] = []
    for t in range(1, frames + 1):
        position = position + rng.normal(0.0, step * unit, (fish, dims))
        position = np.clip(position, low, high)
        if cross and fish >= 2:
            phase = math.sin(t / 15.0)
            position[1] = position[0] + phase * 2.5 * unit
        if fish >= 2 and rng.random() < swap_rate:
            a, b = rng.choice(fish, 2, replace=False)
            hypothesis[a], hypothesis[b] = hypothesis[b], hypothesis[a]
        gt_frame_rows = []
        tr_frame_rows = []
        for f in range(fish):
            if rng.random() < frag_rate:
                hypothesis[f] = next_id
                next_id += 1
            if not start[f] <= t <= stop[f]:
                continue
            point = np.round(position[f], 3)
            if not empty[t]:
                gt_frame_rows.append((t, f + 1, point))
            if rng.random() < miss_rate:
                continue
            guess = position[f] + rng.normal(0.0, noise * unit, dims)
            tr_frame_rows.append((t, int(hypothesis[f]), guess))
        for _ in range(rng.poisson(fp_rate)):
            if fish and rng.random() < 0.5:
                near = position[rng.integers(fish)] + rng.normal(0.0, 1.2 * unit, dims)
            else:
                near = rng.uniform(low, high, dims)
            tr_frame_rows.append((t, next_id, near))
            next_id += 1
        for k in range(len(tr_frame_rows)):
            t_k, h_k, p_k = tr_frame_rows[k]
            p_k = np.round(p_k / quantum) * quantum if quantum else p_k
            p_k = np.round(p_k, 3)
            if rng.random() < invalid_rate:
                p_k = p_k.copy()
                p_k[rng.integers(dims)] = -1.0
            tr_frame_rows[k] = (t_k, h_k, p_k)
        for rows, out in ((gt_frame_rows, gt_rows), (tr_frame_rows, tr_rows)):
            order = rng.permutation(len(rows))
            out.extend(rows[i] for i in order)

    def pack(rows: list[tuple[int, int, np.ndarray]]) -> tuple[np.ndarray, ...]:
        frame = np.array([r[0] for r in rows], np.int64)
        ids = np.array([r[1] for r in rows], np.int64)
        points = np.array([r[2] for r in rows], np.float64).reshape(len(rows), dims)
        return frame, ids, points

    gt_frame, gt_id, gt_points = pack(gt_rows)
    tracker_frame, tracker_id, tracker_points = pack(tr_rows)
    if boxes:
        box_rng = np.random.default_rng(seed + 1000)
        sizes = box_rng.uniform(30.0, 60.0, (max(fish, 1), 2))
        gt_size = sizes[gt_id - 1]
        tracker_size = sizes[box_rng.integers(0, max(fish, 1), tracker_id.shape[0])]
        tracker_size = tracker_size * box_rng.uniform(0.8, 1.2, tracker_size.shape)
        gt_points = np.round(np.column_stack([gt_points - gt_size / 2, gt_size]))
        corner = np.where(tracker_points > 0, tracker_points - tracker_size / 2, -1.0)
        tracker_points = np.round(np.column_stack([corner, tracker_size]))
    return {
        "gt_frame": gt_frame, "gt_id": gt_id, "gt_points": gt_points,
        "tracker_frame": tracker_frame, "tracker_id": tracker_id,
        "tracker_points": tracker_points,
    }


def case_digest(case: dict[str, np.ndarray]) -> str:
    """Return the SHA-256 of a case's arrays (little-endian int64 / float64, fixed order)."""
    digest = hashlib.sha256()
    for key in ("gt_frame", "gt_id", "gt_points", "tracker_frame", "tracker_id",
                "tracker_points"):
        array = case[key]
        dtype = "<i8" if array.dtype.kind in "iu" else "<f8"
        digest.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
    return digest.hexdigest()


def case_threshold(params: dict) -> float:
    """Return the matching threshold of a case: 0.5 cm (3D), 20 px (2D) or 0.5 (1 - IoU)."""
    if params.get("boxes"):
        return BOX_THRESHOLD
    return THRESHOLD_3D if params.get("dims", 3) == 3 else THRESHOLD_2D


# ---------------------------------------------------------------------------------------------
# py-motmetrics side (needs the /tmp/mm14 environment)


def _accumulate_motmetrics(case: dict[str, np.ndarray], threshold: float):
    """Fill a ``MOTAccumulator`` frame by frame as the 3D-ZeF evaluation code does."""
    import motmetrics as mm
    import pandas as pd

    dims = case["gt_points"].shape[1]
    names = ["x", "y", "z"][:dims] if dims < 4 else ["left", "top", "width", "height"]
    gt_df = pd.DataFrame(case["gt_points"], columns=names)
    gt_df.insert(0, "id", case["gt_id"])
    gt_df.insert(0, "frame", case["gt_frame"])
    det_df = pd.DataFrame(case["tracker_points"], columns=names)
    det_df.insert(0, "id", case["tracker_id"])
    det_df.insert(0, "frame", case["tracker_frame"])
    gt_df = gt_df.dropna(subset=names)
    keep = np.ones(len(det_df), bool)
    for name in names:
        keep &= (det_df[name] > 0).to_numpy()
    det_df = det_df[keep]

    def positions(df):
        ids = [int(x) for x in df["id"].unique()]
        pos = np.zeros((len(ids), dims))
        for idx, identity in enumerate(ids):
            row = df[df["id"] == identity]
            for axis, name in enumerate(names):
                pos[idx, axis] = row[name].iloc[0]
        return pos, ids

    def pairwise(a, b):
        mat = np.zeros((a.shape[0], b.shape[0]))
        for i, pa in enumerate(a):
            for j, pb in enumerate(b):
                mat[i, j] = np.linalg.norm(pa - pb) if dims < 4 else 1 - iou(pa, pb)
        mat[mat > threshold] = np.nan
        return mat

    def iou(x, y):
        # 3D-ZeF's IoU on (tl_x, tl_y, br_x, br_y) with br = left + width, as its bbox tasks.
        x = (x[0], x[1], x[0] + x[2], x[1] + x[3])
        y = (y[0], y[1], y[0] + y[2], y[1] + y[3])
        width = max(0, min(x[2], y[2]) - max(x[0], y[0]) + 1)
        height = max(0, min(x[3], y[3]) - max(x[1], y[1]) + 1)
        intersection = width * height
        area_x = (x[2] - x[0] + 1) * (x[3] - x[1] + 1)
        area_y = (y[2] - y[0] + 1) * (y[3] - y[1] + 1)
        return intersection / float(area_x + area_y - intersection)

    gt_frames = [int(x) for x in gt_df["frame"].unique()]
    det_frames = [int(x) for x in det_df["frame"].unique()]
    frames = list(set(gt_frames + det_frames))
    acc = mm.MOTAccumulator(auto_id=False)
    for frame in frames:
        gts = gt_df[gt_df["frame"] == frame]
        dets = det_df[det_df["frame"] == frame]
        gt_ids: list[int] = []
        det_ids: list[int] = []
        dist: list = []
        if len(gts):
            gt_pos, gt_ids = positions(gts)
        if len(dets):
            det_pos, det_ids = positions(dets)
        if len(gts) and len(dets):
            dist = pairwise(gt_pos, det_pos).tolist()
        acc.update(gt_ids, det_ids, dist, frame)
    return acc


def _mtbf_counts(events) -> tuple[int, int, int]:
    """Run the 3D-ZeF ``MTBF`` loop over ``mot_events``; return its three counts."""
    seqs: list[int] = []
    null_seqs: list[int] = []
    for gt_id in events.OId.unique():
        gt_events = events[events.OId == gt_id]
        counter = 0
        null_counter = 0
        for kind in gt_events["Type"].tolist():
            if kind == "MATCH":
                counter += 1
            elif kind == "SWITCH":
                seqs.append(counter)
                counter = 1
            else:
                seqs.append(counter)
                counter = 0
                null_counter = 1
            if counter > 0 and null_counter > 0:
                null_seqs.append(null_counter)
                null_counter = 0
        if counter > 0:
            seqs.append(counter)
        if null_counter > 0:
            null_seqs.append(null_counter)
    positive = [s for s in seqs if s > 0]
    return sum(positive), len(positive), len(null_seqs)


METRICS = [
    "num_frames", "num_matches", "num_switches", "num_misses", "num_false_positives",
    "num_objects", "num_predictions", "num_unique_objects", "num_detections",
    "mostly_tracked", "partially_tracked", "mostly_lost", "num_fragmentations", "motp", "mota",
    "precision", "recall", "idfp", "idfn", "idtp", "idp", "idr", "idf1", "num_transfer",
    "num_ascend", "num_migrate",
]
"""py-motmetrics metrics stored per case."""


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def _extras(values: dict, ssum: int, slen: int, nslen: int) -> dict:
    """MOTAL and MTBF with the 3D-ZeF formulas."""
    with np.errstate(divide="ignore", invalid="ignore"):
        motal = 1 - np.true_divide(values["num_misses"] + values["num_false_positives"]
                                   + np.log10(values["num_switches"] + 1),
                                   np.float64(values["num_objects"]))
    values.update(mtbf_ssum=ssum, mtbf_slen=slen, mtbf_nslen=nslen, motal=_plain(float(motal)),
                  mtbf_std=ssum / slen if slen else 0.0,
                  mtbf_mono=ssum / (slen + nslen) if slen else 0.0)
    return values


def golden(output: Path) -> None:
    """Score every case with py-motmetrics and write the JSON."""
    import motmetrics as mm

    solver = mm.lap.default_solver
    if solver != "scipy":
        sys.exit(f"py-motmetrics uses the {solver!r} solver; run from a folder without lap or "
                 "lapsolver modules, with only scipy installed")
    host = mm.metrics.create()
    out: dict = {"motmetrics": mm.__version__, "solver": solver, "numpy": np.__version__,
                 "cases": {}, "overall": {}}
    accumulators = {}
    mtbf = {}
    for params in CASES:
        case = generate_case(**params)
        threshold = case_threshold(params)
        acc = _accumulate_motmetrics(case, threshold)
        summary = host.compute(acc, metrics=METRICS, return_dataframe=False)
        values = {name: _plain(summary[name]) for name in METRICS}
        mtbf[params["name"]] = _mtbf_counts(acc.mot_events)
        accumulators[params["name"]] = acc
        out["cases"][params["name"]] = {
            "params": params, "threshold": threshold, "sha256": case_digest(case),
            "metrics": _extras(values, *mtbf[params["name"]]),
        }
        print(params["name"], {k: values[k] for k in ("mota", "num_switches", "idf1")})
    for group, names in GROUPS.items():
        summary = host.compute_many([accumulators[n] for n in names], metrics=METRICS,
                                    names=names, generate_overall=True)
        row = summary.loc["OVERALL"]
        values = {name: _plain(row[name]) for name in METRICS}
        sums = [sum(mtbf[n][k] for n in names) for k in range(3)]
        out["overall"][group] = {"cases": names, "metrics": _extras(values, *sums)}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


BENCH_PARAMS = {"dims": 3, "swap_rate": 0.002, "frag_rate": 0.0005, "miss_rate": 0.05,
                "fp_rate": 0.1}
"""Generator parameters of the benchmark sequence (besides seed, frames and fish)."""


def timing(frames: int, fish: int, seed: int) -> None:
    """Time the 3D-ZeF evaluation with py-motmetrics on one generated sequence.

    Prints JSON: the metrics, the input's SHA-256 and the seconds of each phase: ``accumulate``
    (the 3D-ZeF per-frame loop with pandas filtering and ``MOTAccumulator.update``),
    ``metrics`` (``MetricsHost.compute``) and ``mtbf`` (the 3D-ZeF ``MTBF`` loop).
    """
    import motmetrics as mm

    case = generate_case(seed, frames=frames, fish=fish, **BENCH_PARAMS)
    begin = time.perf_counter()
    acc = _accumulate_motmetrics(case, THRESHOLD_3D)
    accumulated = time.perf_counter()
    summary = mm.metrics.create().compute(acc, metrics=METRICS, return_dataframe=False)
    values = {name: _plain(summary[name]) for name in METRICS}
    computed = time.perf_counter()
    counts = _mtbf_counts(acc.mot_events)
    end = time.perf_counter()
    print(json.dumps({"metrics": _extras(values, *counts), "sha256": case_digest(case),
                      "seconds": {"accumulate": accumulated - begin,
                                  "metrics": computed - accumulated, "mtbf": end - computed,
                                  "total": end - begin},
                      "solver": mm.lap.default_solver}))


def add_113(output: Path) -> None:
    """Add the 3D-ZeF MTBF counts under py-motmetrics 1.1.3 to an existing golden JSON."""
    import collections
    import collections.abc
    import inspect

    # motmetrics 1.1.3 imports collections.Iterable and calls inspect.getargspec, both removed
    # in Python 3.10/3.11.
    collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]
    inspect.getargspec = inspect.getfullargspec  # type: ignore[attr-defined]
    import motmetrics as mm

    if mm.__version__ != "1.1.3" or mm.lap.default_solver != "scipy":
        sys.exit(f"expected motmetrics 1.1.3 with the scipy solver, found {mm.__version__} "
                 f"with {mm.lap.default_solver!r}")
    out = json.loads(output.read_text())
    for params in CASES:
        acc = _accumulate_motmetrics(generate_case(**params), case_threshold(params))
        ssum, slen, nslen = _mtbf_counts(acc.mot_events)
        out["cases"][params["name"]]["mtbf_113"] = {"mtbf_ssum": ssum, "mtbf_slen": slen,
                                                    "mtbf_nslen": nslen}
    out["motmetrics_113"] = mm.__version__
    output.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).resolve().parents[1] / "tests" / "data"
                        / "zef3d_motmetrics_golden.json")
    parser.add_argument("--timing", nargs=2, type=int, metavar=("FRAMES", "FISH"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--add-113", action="store_true",
                        help="add the MTBF counts of motmetrics 1.1.3 to --output")
    args = parser.parse_args(argv)
    if args.add_113:
        add_113(args.output)
    elif args.timing:
        timing(args.timing[0], args.timing[1], args.seed)
    else:
        golden(args.output)


if __name__ == "__main__":
    main()
