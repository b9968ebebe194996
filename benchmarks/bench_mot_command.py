"""Whole-command benchmark: ``python -m harness eval motchallenge`` against TrackEval 1.3.0.

Each side runs as its own process on the same synthetic MOT17-train-sized set in TrackEval's
folder layout (21 sequences, 7 bases x DPM/FRCNN/SDP, about 340,000 ground-truth boxes), with
HOTA, CLEAR and Identity and both tools writing their summary and detailed files. The script
reports wall time (imports and interpreter start included), peak resident memory of each
process, their ratios, and checks that both detailed CSV files agree to 1e-9. It also times
``prepare`` and ``load_dataset`` (first and warm load) on the same data in the MOTChallenge
layout.

Run: ``.venv/bin/python benchmarks/bench_mot_command.py [--repeat 3] [--frames 760]``
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from motcom.sample import write_mot_sample

TRACKEVAL_SCRIPT = textwrap.dedent("""
    import sys
    import trackeval
    gt, trackers, out = sys.argv[1:4]
    evaluator = trackeval.Evaluator({
        "USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False,
        "TIME_PROGRESS": False, "DISPLAY_LESS_PROGRESS": True, "OUTPUT_SUMMARY": True,
        "OUTPUT_DETAILED": True, "PLOT_CURVES": False})
    dataset = trackeval.datasets.MotChallenge2DBox({
        "GT_FOLDER": gt, "TRACKERS_FOLDER": trackers, "OUTPUT_FOLDER": out,
        "BENCHMARK": "MOT17", "SPLIT_TO_EVAL": "train", "PRINT_CONFIG": False})
    # The Evaluator adds the Count metric by itself.
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(), trackeval.metrics.Identity()]
    evaluator.evaluate([dataset], metrics)
""")


def run_process(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``command`` to completion; return its wall time in seconds and peak RSS in MiB."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=env)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"command failed: {' '.join(command)}\n{stderr}")
    return elapsed, usage.ru_maxrss / 1024


def compare_detailed(ours: Path, theirs: Path) -> float:
    """Return the largest absolute difference between two ``pedestrian_detailed.csv`` files."""
    def load(path: Path) -> dict[str, dict[str, str]]:
        with open(path, newline="") as handle:
            return {row["seq"]: row for row in csv.DictReader(handle)}

    mine, reference = load(ours), load(theirs)
    if set(mine) != set(reference):
        raise AssertionError(f"sequence rows differ: {sorted(set(mine) ^ set(reference))}")
    worst = 0.0
    for seq, row in reference.items():
        for column, value in row.items():
            if column == "seq":
                continue
            worst = max(worst, abs(float(mine[seq][column]) - float(value)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (default: 3)")
    parser.add_argument("--frames", type=int, default=760,
                        help="frames per sequence (default: 760, about MOT17 train size)")
    parser.add_argument("--pedestrians", type=int, default=21,
                        help="pedestrians per frame (default: 21)")
    args = parser.parse_args()

    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-mot-") as tmp:
        tmp = Path(tmp)
        root = write_mot_sample(tmp / "trackeval", benchmark="MOT17", seed=0, sequences=7,
                                frames=args.frames, pedestrians=args.pedestrians,
                                layout="trackeval", tracker="noisytracker")
        gt_folder = root / "gt" / "mot_challenge"
        trackers_folder = root / "trackers" / "mot_challenge"
        gt_boxes = sum(1 for p in (gt_folder / "MOT17-train").glob("*/gt/gt.txt")
                       for _ in open(p))

        ours_cmd = [python, "-m", "harness", "eval", "motchallenge",
                    "--gt-dir", str(gt_folder / "MOT17-train"),
                    "--tracker-dir", str(trackers_folder / "MOT17-train" / "noisytracker" / "data"),
                    "--benchmark", "MOT17", "--output", str(tmp / "ours")]
        theirs_cmd = [python, "-c", TRACKEVAL_SCRIPT, str(gt_folder), str(trackers_folder),
                      str(tmp / "trackeval-out")]
        env = dict(os.environ, FIELDHARNESS_HOME=str(tmp / "home"))

        ours, theirs = [], []
        for _ in range(args.repeat):
            theirs.append(run_process(theirs_cmd, env))
            ours.append(run_process(ours_cmd, env))
        worst = compare_detailed(
            tmp / "ours" / "pedestrian_detailed.csv",
            tmp / "trackeval-out" / "noisytracker" / "pedestrian_detailed.csv")

        sample = write_mot_sample(tmp / "motchallenge", benchmark="MOT17", seed=0, sequences=7,
                                  frames=args.frames, pedestrians=args.pedestrians,
                                  layout="motchallenge")
        prepare = run_process([python, "-m", "harness", "prepare", "mot17", "--source",
                               str(sample)], env)
        load_code = ("import time; t=time.perf_counter(); from harness import load_dataset; "
                     "ds = load_dataset('mot17', split='train'); print(len(ds))")
        load_first = run_process([python, "-c", load_code], env)
        load_warm = run_process([python, "-c", load_code], env)

    def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
        return min(r[0] for r in runs), max(r[1] for r in runs)

    ours_time, ours_rss = best(ours)
    theirs_time, theirs_rss = best(theirs)
    print(f"Synthetic MOT17 train: 21 sequences, {gt_boxes:,} gt boxes; best of {args.repeat}")
    print()
    print("| command | wall time (s) | peak RSS (MiB) |")
    print("|---|---|---|")
    print(f"| TrackEval 1.3.0 (HOTA+CLEAR+Identity) | {theirs_time:.2f} | {theirs_rss:.0f} |")
    print(f"| python -m harness eval motchallenge | {ours_time:.2f} | {ours_rss:.0f} |")
    print(f"| ratio TrackEval / ours | {theirs_time / ours_time:.1f}x | "
          f"{theirs_rss / ours_rss:.2f}x |")
    print(f"| python -m harness prepare mot17 | {prepare[0]:.2f} | {prepare[1]:.0f} |")
    print(f"| load_dataset('mot17', split='train'), first load | {load_first[0]:.2f} | "
          f"{load_first[1]:.0f} |")
    print(f"| load_dataset('mot17', split='train'), warm | {load_warm[0]:.2f} | "
          f"{load_warm[1]:.0f} |")
    print()
    print(f"Largest difference between the detailed CSV files: {worst:.3g}")
    print(f"Spread of our wall times: {statistics.pstdev([r[0] for r in ours]):.3f} s")
    if not math.isfinite(worst) or worst > 1e-9:
        raise SystemExit("the two detailed CSV files differ by more than 1e-9")


if __name__ == "__main__":
    main()
