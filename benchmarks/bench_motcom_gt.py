"""Time MOTCOM's ground-truth metrics (OCOM and MCOM) on MOT17-train-sized data.

Usage::

    .venv/bin/python benchmarks/bench_motcom_gt.py [--repeats 5] [--seed 0] [--box-mode]

Two inputs are timed. The first is a synthetic set in TrackEval's folder layout with the size
of MOT17 train after MOTCOM's preprocessing: the frames, pedestrian boxes and track ids of each
of the seven sequences (600/62/18,581 for MOT17-02, and so on). Its boxes move smoothly
inside the 1920 × 1080 image (640 × 480 for MOT17-05). The second is the real MOT17-02, -05
and -09 SDP ground truth under ``../shared/realdata``, when that folder exists.

Per input it reports the best of ``--repeats`` runs of (a) the whole
:func:`motcom.motcom_run.complexity_of_folder` (find, read, prepare, OCOM, MCOM) and (b) the
metrics alone on ground truth already in memory. With ``--box-mode`` it also times box-overlap
OCOM. No reference implementation is installed here, so only this project's times are printed,
as a Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from motcom.complexity import compute_complexity, motcom_ground_truth, ocom
from motcom.io import read_ground_truth, read_seqinfo
from motcom.motcom_run import complexity_of_folder

MOT17_TRAIN = {  # sequence: (frames, track ids, pedestrian boxes after MOTCOM's preprocessing)
    "MOT17-02": (600, 62, 18_581),
    "MOT17-04": (1050, 83, 47_557),
    "MOT17-05": (837, 133, 6_917),
    "MOT17-09": (525, 26, 5_325),
    "MOT17-10": (654, 57, 12_836),
    "MOT17-11": (900, 75, 9_436),
    "MOT17-13": (750, 110, 11_642),
}
IMAGE_SIZE = {"MOT17-05": (640, 480)}
DEFAULT_IMAGE_SIZE = (1920, 1080)
REAL_MOT17 = Path(__file__).resolve().parents[1].parent / "shared" / "realdata" / "mot" / "MOT17"


def _track_lengths(rng: np.random.Generator, ids: int, boxes: int, frames: int) -> np.ndarray:
    """Split ``boxes`` into ``ids`` track lengths of at most ``frames`` each."""
    weights = rng.uniform(0.5, 1.5, ids)
    lengths = np.minimum(np.floor(weights / weights.sum() * boxes).astype(int), frames)
    lengths = np.maximum(lengths, 1)
    while lengths.sum() != boxes:
        index = int(rng.integers(ids))
        step = 1 if lengths.sum() < boxes else -1
        if 1 <= lengths[index] + step <= frames:
            lengths[index] += step
    return lengths


def write_sequence(folder: Path, rng: np.random.Generator, name: str, frames: int, ids: int,
                   boxes: int) -> None:
    """Write one sequence's ``seqinfo.ini`` and 9-column ``gt/gt.txt`` (official format)."""
    width, height = IMAGE_SIZE.get(name, DEFAULT_IMAGE_SIZE)
    rows = []
    for track, length in enumerate(_track_lengths(rng, ids, boxes, frames), start=1):
        start = int(rng.integers(1, frames - length + 2))
        t = np.arange(length)
        box_h = rng.uniform(0.1, 0.4) * height * (1 + 0.1 * np.sin(t / 40))
        box_w = box_h * 0.4
        centre_x = rng.uniform(0.2, 0.8) * width + rng.uniform(-3, 3) * t / 2
        centre_y = rng.uniform(0.4, 0.7) * height + np.cumsum(rng.normal(0, 0.5, length))
        left = np.clip(centre_x - box_w / 2, 1, width - box_w - 1)
        top = np.clip(centre_y - box_h / 2, 1, height - box_h - 1)
        visibility = np.clip(rng.uniform(0, 1.2, length), 0, 1)
        rows.append(np.column_stack([start + t, np.full(length, track), left + 1, top + 1,
                                     box_w, box_h, np.ones(length), np.ones(length),
                                     visibility]))
    table = np.concatenate(rows)
    (folder / "gt").mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / "gt" / "gt.txt", table, delimiter=",",
               fmt=["%d", "%d", "%.2f", "%.2f", "%.2f", "%.2f", "%d", "%d", "%.5f"])
    (folder / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={frames}\n"
        f"imWidth={width}\nimHeight={height}\nimExt=.jpg\n", encoding="utf-8")


def write_synthetic(root: Path, seed: int) -> Path:
    split = root / "gt" / "mot_challenge" / "MOT17-train"
    for index, (name, (frames, ids, boxes)) in enumerate(MOT17_TRAIN.items()):
        write_sequence(split / f"{name}-SDP", np.random.default_rng([seed, index]), name,
                       frames, ids, boxes)
    return root


def best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def time_input(label: str, root: Path, repeats: int, box_mode: bool) -> list[str]:
    results = complexity_of_folder(root)
    boxes = sum(result.boxes for result in results.values())
    prepared = []
    for sequence in sorted(root.rglob("seqinfo.ini")):
        info = read_seqinfo(sequence)
        gt = read_ground_truth(sequence.parent / "gt" / "gt.txt", seq_length=info.seq_length)
        prepared.append((gt, info))

    whole = best_of(repeats, lambda: complexity_of_folder(root))
    metrics = best_of(repeats, lambda: [compute_complexity(motcom_ground_truth(gt, info))
                                        for gt, info in prepared])
    rows = [f"| {label} | {len(results)} | {boxes:,} | read + OCOM + MCOM | {whole:.3f} |",
            f"| {label} | {len(results)} | {boxes:,} | OCOM + MCOM (in memory) | "
            f"{metrics:.3f} |"]
    if box_mode:
        ready = [motcom_ground_truth(gt, info) for gt, info in prepared]
        seconds = best_of(max(1, repeats // 2),
                          lambda: [ocom(gt, mode="boxes") for gt in ready])
        rows.append(f"| {label} | {len(results)} | {boxes:,} | box-overlap OCOM | "
                    f"{seconds:.3f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per timing; the best "
                                                               "is reported (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic set")
    parser.add_argument("--box-mode", action="store_true",
                        help="also time box-overlap OCOM (with the bottom-edge rule)")
    args = parser.parse_args()

    print("| input | sequences | boxes | timed | seconds (best) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-motcom-") as folder:
        root = write_synthetic(Path(folder), args.seed)
        for row in time_input("synthetic MOT17 train size", root, args.repeats, args.box_mode):
            print(row)
    if REAL_MOT17.is_dir():
        for row in time_input("real MOT17-02/05/09 SDP", REAL_MOT17, args.repeats,
                              args.box_mode):
            print(row)
    else:
        print(f"(real files not found at {REAL_MOT17}; skipped)")


if __name__ == "__main__":
    main()
