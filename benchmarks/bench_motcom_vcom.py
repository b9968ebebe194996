"""Time VCOM feature extraction: ``motcom.vcom.extract_features`` against the per-box path.

Usage::

    .venv/bin/python benchmarks/bench_motcom_vcom.py [--frames 2] [--boxes 20] [--naive-boxes 4]
        [--batch-size 8] [--device auto] [--seed 0]

Writes ``--frames`` synthetic 1920x1080 JPEG frames with ``--boxes`` boxes each to a temporary
folder. The network is a randomly initialised ResNet-18 (``random:SEED``), which costs the same as
the ImageNet weights. The per-box path is what the MOTCOM reference code runs for every box:
decode the frame, blur the whole frame, paste the box, one full-resolution ResNet-18 pass with
batch size 1. It is timed on the first ``--naive-boxes`` boxes only, because it is slow on a CPU.
Ours blurs each frame once. The incremental method (the default) runs the network once per frame
and per box recomputes only the activations the box changes. The batched method runs one full
pass per box in batches, and is timed on the first frame only. Times include decoding and
blurring and exclude building the model. Both paths run once untimed on one box first, to warm
up the backend. Prints a Markdown table with boxes per second and the machine. With CUDA, the GPU
is timed as well unless ``--device cpu`` is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from motcom import vcom  # noqa: E402

WIDTH, HEIGHT = 1920, 1080


def write_frames(folder: Path, frames: int, boxes: int, seed: int):
    """Write the JPEG frames and return the ground truth and the frame paths."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = []
    paths = {}
    background = rng.integers(0, 256, size=(HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    for frame in range(1, frames + 1):
        pixels = np.kron(background, np.ones((8, 8, 1), dtype=np.uint8))
        for track in range(1, boxes + 1):
            width = int(rng.integers(40, 160))
            height = int(width * rng.uniform(1.8, 2.8))
            left = int(rng.integers(0, WIDTH - width))
            top = int(rng.integers(0, HEIGHT - height))
            pixels[top:top + height, left:left + width] = rng.integers(0, 256, size=3)
            rows.append((frame, track, left, top, width, height))
        paths[frame] = folder / f"{frame:06d}.jpg"
        Image.fromarray(pixels).save(paths[frame], quality=90)
    table = np.asarray(rows, dtype=np.float64)
    gt = SimpleNamespace(frame=table[:, 0].astype(np.int64), id=table[:, 1].astype(np.int64),
                         boxes=table[:, 2:6])
    return gt, paths


def subset(gt, count: int):
    return SimpleNamespace(frame=gt.frame[:count], id=gt.id[:count], boxes=gt.boxes[:count])


def per_box_features(gt, paths, model, device) -> np.ndarray:
    """Compute features at the reference's cost: per box, decode, blur, paste, one pass."""
    import torch

    features = []
    with torch.inference_mode():
        for frame, box in zip(gt.frame.tolist(), gt.boxes, strict=True):
            image = torch.from_numpy(vcom._load_frame(paths[frame])).permute(2, 0, 1).to(device)
            composite = vcom._normalise(vcom.blur_image(image))
            sharp = vcom._normalise(image)
            rows, columns = vcom._sharp_region(box)
            composite[:, rows, columns] = sharp[:, rows, columns]
            features.append(model(composite[None])[0].cpu().numpy())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return np.stack(features)


def time_device(device_name: str, gt, paths, args) -> list[tuple[str, str, int, float]]:
    """Time both paths on one device; return ``(device, path, boxes, seconds)`` rows."""
    import torch

    from harness.training import resolve_device

    device = resolve_device(device_name)
    model, _ = vcom.build_model(seed=args.seed)
    model = model.to(device)
    naive_gt = subset(gt, args.naive_boxes)

    per_box_features(subset(gt, 1), paths, model, device)
    vcom.extract_features(subset(gt, 1), paths, seed=args.seed, device=device_name,
                          progress=False)

    start = time.perf_counter()
    naive = per_box_features(naive_gt, paths, model, device)
    naive_seconds = time.perf_counter() - start

    rows = [(str(device), "per box (reference cost)", len(naive_gt.frame), naive_seconds)]
    # The batched method costs one full pass per box, so it runs on the first frame only.
    for method, boxes in (("incremental", gt), ("batched", subset(gt, args.boxes))):
        start = time.perf_counter()
        ours = vcom.extract_features(boxes, paths, seed=args.seed, device=device_name,
                                     batch_size=args.batch_size, method=method, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        difference = float(np.abs(ours[:args.naive_boxes] - naive).max())
        print(f"{device_name} {method}: max |ours - per-box| feature difference "
              f"{difference:.2e}", file=sys.stderr)
        label = f"ours, {method}" + (f" (batch {args.batch_size})" if method == "batched" else "")
        rows.append((str(device), label, len(boxes.frame), seconds))
    return rows


def machine() -> str:
    import torch

    text = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2, help="number of frames")
    parser.add_argument("--boxes", type=int, default=20, help="boxes per frame")
    parser.add_argument("--naive-boxes", type=int, default=4,
                        help="boxes timed on the per-box path")
    parser.add_argument("--batch-size", type=int, default=8, help="boxes per network pass")
    parser.add_argument("--device", default="auto",
                        help="auto (CPU, and CUDA when available), cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="seed of frames and network")
    args = parser.parse_args(argv)

    import torch

    devices = [args.device]
    if args.device == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as folder:
        gt, paths = write_frames(Path(folder), args.frames, args.boxes, args.seed)
        rows = []
        for device in devices:
            rows.extend(time_device(device, gt, paths, args))

    print(f"VCOM features, {WIDTH}x{HEIGHT} JPEG frames, {args.boxes} boxes per frame; "
          f"{machine()}\n")
    print("| device | path | boxes | seconds | boxes/s |")
    print("|---|---|---|---|---|")
    for device, path, boxes, seconds in rows:
        print(f"| {device} | {path} | {boxes} | {seconds:.2f} | {boxes / seconds:.2f} |")


if __name__ == "__main__":
    main()
