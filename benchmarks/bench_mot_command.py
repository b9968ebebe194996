"""Whole-command benchmark: ``python -m harness eval motchallenge`` against TrackEval 1.3.0.

Each side runs as its own process on the same synthetic MOT17-train-sized set in TrackEval's
folder layout: 21 sequences (7 bases x DPM/FRCNN/SDP) with about 350,000 ground-truth boxes.
Both tools compute HOTA, CLEAR and Identity and write their summary and detailed files. The script
reports wall time (imports and interpreter start included), the peak resident memory of each
process (VmHWM, so Linux only), their ratios, and checks that both detailed CSV files agree to
1e-9. It also times ``prepare`` and ``load_dataset`` (first and warm load) on the same data in
the MOTChallenge layout.

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


# Runs a module or a script like ``python -m`` / ``python -c`` would, then appends the peak
# resident memory of this process image (VmHWM, in kB) to the file named first. ru_maxrss is not
# used because Linux carries it over fork and exec, so a child would report at least the
# benchmark's own size.
LAUNCHER = textwrap.dedent("""
    import runpy, sys
    report, kind, target, *args = sys.argv[1:]
    status = 0
    try:
        if kind == "module":
            sys.argv = [target, *args]
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.argv = ["-c", *args]
            exec(compile(target, "<benchmark>", "exec"), {"__name__": "__main__"})
    except SystemExit as exc:
        status = exc.code or 0
    finally:
        with open("/proc/self/status") as handle:
            peak = next(line.split()[1] for line in handle if line.startswith("VmHWM:"))
        with open(report, "a") as handle:
            handle.write(peak + "\\n")
    sys.exit(status)
""")


def run_process(kind: str, target: str, args: list[str], env: dict[str, str],
                report: Path) -> tuple[float, float]:
    """Run a module (``kind="module"``) or a script (``"script"``) with ``args`` in a fresh
    interpreter; return its wall time in seconds and its peak RSS in MiB."""
    command = [sys.executable, "-c", LAUNCHER, str(report), kind, target, *args]
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{target} {' '.join(args)} failed:\n{result.stderr}")
    peak_kib = int(report.read_text().split()[-1])
    return elapsed, peak_kib / 1024


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

    with tempfile.TemporaryDirectory(prefix="bench-mot-") as tmp:
        tmp = Path(tmp)
        root = write_mot_sample(tmp / "trackeval", benchmark="MOT17", seed=0, sequences=7,
                                frames=args.frames, pedestrians=args.pedestrians,
                                layout="trackeval", tracker="noisytracker")
        gt_folder = root / "gt" / "mot_challenge"
        trackers_folder = root / "trackers" / "mot_challenge"
        gt_boxes = sum(1 for p in (gt_folder / "MOT17-train").glob("*/gt/gt.txt")
                       for _ in open(p))

        ours_args = ["eval", "motchallenge", "--gt-dir", str(gt_folder / "MOT17-train"),
                     "--tracker-dir",
                     str(trackers_folder / "MOT17-train" / "noisytracker" / "data"),
                     "--benchmark", "MOT17", "--output", str(tmp / "ours")]
        theirs_args = [str(gt_folder), str(trackers_folder), str(tmp / "trackeval-out")]
        env = dict(os.environ, FIELDHARNESS_HOME=str(tmp / "home"))
        report = tmp / "peaks.txt"

        ours, theirs = [], []
        for _ in range(args.repeat):
            theirs.append(run_process("script", TRACKEVAL_SCRIPT, theirs_args, env, report))
            ours.append(run_process("module", "harness", ours_args, env, report))
        worst = compare_detailed(
            tmp / "ours" / "pedestrian_detailed.csv",
            tmp / "trackeval-out" / "noisytracker" / "pedestrian_detailed.csv")

        sample = write_mot_sample(tmp / "motchallenge", benchmark="MOT17", seed=0, sequences=7,
                                  frames=args.frames, pedestrians=args.pedestrians,
                                  layout="motchallenge")
        prepare = run_process("module", "harness", ["prepare", "mot17", "--source", str(sample)],
                              env, report)
        load_code = ("from harness import load_dataset; "
                     "dataset = load_dataset('mot17', split='train'); print(len(dataset))")
        load_first = run_process("script", load_code, [], env, report)
        load_warm = run_process("script", load_code, [], env, report)

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
