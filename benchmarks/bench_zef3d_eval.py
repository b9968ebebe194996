"""Time the 3D-ZeF evaluation: ``zef3d.evaluation`` against the 3D-ZeF code with py-motmetrics.

Usage::

    .venv/bin/python benchmarks/bench_zef3d_eval.py [--frames 15000] [--fish 10] [--seed 0]
        [--motmetrics-python /tmp/mm14/bin/python] [--repeat 3]

The sequence comes from ``benchmarks/motmetrics_golden.py`` (random walks in the 29 cm tank,
tracker noise of half the threshold, 5 % misses, 0.1 false positives per frame, occasional id
swaps and new track ids). Ours runs in this process on the arrays (best of ``--repeat``) and
again from a submission file through ``zef3d.io.read_tracks3d``. py-motmetrics 1.4.0 runs the
3D-ZeF evaluation loop (pandas filtering per frame, ``MOTAccumulator.update``, ``compute`` and
the 3D-ZeF ``MTBF``) in its own virtualenv through ``motmetrics_golden.py --timing``. That file
explains how to create the environment. Both sides must give the same numbers: counts equal,
ratios within 1e-12. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _golden_module():
    spec = importlib.util.spec_from_file_location("motmetrics_golden",
                                                  ROOT / "benchmarks" / "motmetrics_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _same(ours: float, theirs: float | str) -> bool:
    if isinstance(theirs, str):
        theirs = float(theirs)
    if isinstance(theirs, int):
        return ours == theirs
    if math.isnan(theirs):
        return math.isnan(ours)
    return abs(ours - theirs) <= 1e-12 * max(1.0, abs(theirs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=15000)
    parser.add_argument("--fish", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--motmetrics-python", default="/tmp/mm14/bin/python",
                        help="python of the virtualenv with motmetrics 1.4.0 (empty: skip)")
    args = parser.parse_args(argv)

    golden = _golden_module()
    from zef3d.evaluation import evaluate_points
    from zef3d.io import read_tracks3d

    case = golden.generate_case(args.seed, frames=args.frames, fish=args.fish,
                                **golden.BENCH_PARAMS)
    arrays = (case["gt_frame"], case["gt_id"], case["gt_points"], case["tracker_frame"],
              case["tracker_id"], case["tracker_points"])
    times = []
    for _ in range(args.repeat):
        begin = time.perf_counter()
        ours = evaluate_points(*arrays, threshold=golden.THRESHOLD_3D)
        times.append(time.perf_counter() - begin)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ZebraFish-01.txt"
        lines = [f"{f},{i},{p[0]!r},{p[1]!r},{p[2]!r}" for f, i, p in
                 zip(case["tracker_frame"].tolist(), case["tracker_id"].tolist(),
                     case["tracker_points"].tolist(), strict=True)]
        path.write_text("\n".join(lines) + "\n")
        begin = time.perf_counter()
        tracks = read_tracks3d(path)
        evaluate_points(case["gt_frame"], case["gt_id"], case["gt_points"],
                        tracks["frame"].to_numpy(), tracks["id"].to_numpy(),
                        tracks.select(["x", "y", "z"]).to_numpy(), threshold=0.5)
        with_file = time.perf_counter() - begin

    rows = [(f"ours, arrays (best of {args.repeat})", min(times)),
            ("ours, from the submission file", with_file)]
    theirs = None
    if args.motmetrics_python:
        completed = subprocess.run(
            [args.motmetrics_python, str(ROOT / "benchmarks" / "motmetrics_golden.py"),
             "--timing", str(args.frames), str(args.fish), "--seed", str(args.seed)],
            capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
        theirs = json.loads(completed.stdout.strip().splitlines()[-1])
        if theirs["sha256"] != golden.case_digest(case):
            print("the two environments generated different inputs", file=sys.stderr)
            return 1
        seconds = theirs["seconds"]
        rows += [("3D-ZeF code + motmetrics 1.4.0, total", seconds["total"]),
                 ("  of which the per-frame accumulation loop", seconds["accumulate"]),
                 ("  of which compute + MTBF", seconds["metrics"] + seconds["mtbf"])]

    print(f"{args.frames} frames, {args.fish} fish, {case['gt_frame'].shape[0]} gt rows, "
          f"{case['tracker_frame'].shape[0]} tracker rows, seed {args.seed}\n")
    print("| evaluation | seconds |")
    print("|---|---:|")
    for label, value in rows:
        print(f"| {label} | {value:.2f} |")
    if theirs is not None:
        different = [name for name, value in theirs["metrics"].items()
                     if not _same(ours[name], value)]
        ratio = theirs["seconds"]["total"] / min(times)
        print(f"\nspeed-up (motmetrics total / ours on arrays): {ratio:.0f}x")
        print("numbers equal: " + ("yes, all " + str(len(theirs["metrics"])) + " metrics"
                                   if not different else "NO: " + ", ".join(different)))
        print(f"MOTA {ours['mota']:.6f}, IDF1 {ours['idf1']:.6f}, IDSW {ours['num_switches']}, "
              f"MTBF-std {ours['mtbf_std']:.4f}, MTBF-mono {ours['mtbf_mono']:.4f}")
        return 1 if different else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
