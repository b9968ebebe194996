"""Bossu detector frames per second on one core, and VIRADA clip decoding throughput.

Usage::

    .venv/bin/python benchmarks/bench_virada_bossu.py [--frames 300] [--warm-up 100]
        [--clips 20] [--repeats 3] [--output FILE]

Two measurements, each at the generated sample's resolution (160 × 120) and at 640 × 480:

1. ``bossu``: :class:`virada.bossu.BossuDetector` on rendered frames (a static scene with
   sensor noise, and rain streaks in the rainy runs). The first ``--warm-up`` frames only train
   MOG2, as the C++ does with its first 500; the timed frames after them run the whole
   pipeline. Rainy frames have about 40 streak blobs, dry frames none (a frame without blobs
   skips the histogram, EM and Kalman steps).
2. ``decode``: an H.264 video (CRF 18, yuv420p, a keyframe every 16 frames as the authors
   encoded for NVVL) is written with PyAV, then read back with :func:`virada.video.read_clip`
   (16-frame clips at the starts :func:`virada.video.clip_starts` gives, stride 8) and with
   :func:`virada.video.iter_frames` (every frame, in order).

One core: the script sets ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS``
to 1 before numpy loads and calls ``cv2.setNumThreads(1)``. PyAV's decoder threads are left at
the reader's settings.

NOTE: neither the authors' code nor the abstract states the VIRADA videos' resolution, so
640 × 480 replaces it. No official tool runs here for comparison: the authors' detector
is C++ against OpenCV 3.1 and their loader needs NVIDIA NVVL on a GPU.

Prints a Markdown table and writes JSON (default ``benchmarks/results/virada_bossu.json``).
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RESOLUTIONS = ((160, 120), (640, 480))
DEFAULT_OUTPUT = Path(__file__).parent / "results" / "virada_bossu.json"


def render_frames(width: int, height: int, count: int, rainy: bool, seed: int) -> list[np.ndarray]:
    """Render ``count`` RGB frames of a static scene, with about 40 rain streaks when rainy."""
    import cv2

    rng = np.random.default_rng(seed)
    scene = np.tile(np.linspace(60, 150, width, dtype=np.float32), (height, 1))
    scene += rng.normal(0, 4, scene.shape).astype(np.float32)
    scale = width / 160
    frames = []
    for _ in range(count):
        frame = scene + rng.normal(0, 1.0, scene.shape).astype(np.float32)
        if rainy:
            for _ in range(int(40 * scale)):
                x, y = rng.uniform(0, width), rng.uniform(0, height)
                angle = math.radians(rng.normal(75, 4))
                length = rng.uniform(6, 13)
                end = (int(x + length * math.cos(angle)), int(y + length * math.sin(angle)))
                brightness = float(frame[int(y) % height, int(x) % width]) + rng.uniform(30, 60)
                cv2.line(frame, (int(x), int(y)), end, brightness, 1)
        gray = np.clip(frame, 0, 255).astype(np.uint8)
        frames.append(np.repeat(gray[:, :, None], 3, axis=2))
    return frames


def time_bossu(width: int, height: int, frames: int, warm_up: int, rainy: bool) -> dict:
    """Time the warm-up frames and the analysed frames of one detector run."""
    from virada.bossu import BossuDetector, BossuParameters

    images = render_frames(width, height, warm_up + frames, rainy, seed=1)
    detector = BossuDetector(BossuParameters(warm_up_frames=warm_up))
    start = time.perf_counter()
    for image in images[:warm_up]:
        detector.process(image)
    warm_up_s = time.perf_counter() - start
    detected = 0
    start = time.perf_counter()
    for image in images[warm_up:]:
        result = detector.process(image)
        detected += int(result.em_rain)
    analysed_s = time.perf_counter() - start
    return {
        "warm_up_fps": warm_up / warm_up_s,
        "analysed_fps": frames / analysed_s,
        "em_rain_fraction": detected / frames,
    }


def write_video(path: Path, width: int, height: int, count: int) -> None:
    """Write an H.264 video of rendered rainy frames with PyAV."""
    import av

    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": "18", "g": "16", "keyint_min": "16", "sc_threshold": "0"}
    for image in render_frames(width, height, count, rainy=True, seed=2):
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def time_decoding(width: int, height: int, clips: int, repeats: int, folder: Path) -> dict:
    """Time 16-frame clip reads and full sequential decoding of one video."""
    from virada.video import clip_starts, iter_frames, read_clip

    count = 16 + 8 * (clips - 1)
    path = folder / f"bench_{width}x{height}.mp4"
    write_video(path, width, height, count)
    starts = clip_starts(count)

    clip_rates, frame_rates = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for clip_start in starts:
            clip = read_clip(path, int(clip_start))
            assert clip.shape == (16, height, width, 3)
        clip_rates.append(len(starts) / (time.perf_counter() - start))

        start = time.perf_counter()
        decoded = sum(1 for _ in iter_frames(path))
        frame_rates.append(decoded / (time.perf_counter() - start))
    return {
        "clips": len(starts),
        "clips_per_s": statistics.median(clip_rates),
        "frames_per_s": statistics.median(frame_rates),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="timed frames after the warm-up")
    parser.add_argument("--warm-up", type=int, default=100, help="MOG2 warm-up frames")
    parser.add_argument("--clips", type=int, default=20, help="16-frame clips per video")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the decoding runs")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON result file")
    args = parser.parse_args(argv)

    import cv2

    cv2.setNumThreads(1)
    results: dict = {
        "machine": {
            "python": platform.python_version(),
            "opencv": cv2.__version__,
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "bossu": {},
        "decode": {},
    }
    with tempfile.TemporaryDirectory() as folder:
        for width, height in RESOLUTIONS:
            key = f"{width}x{height}"
            results["bossu"][key] = {
                "rainy": time_bossu(width, height, args.frames, args.warm_up, rainy=True),
                "dry": time_bossu(width, height, args.frames, args.warm_up, rainy=False),
            }
            results["decode"][key] = time_decoding(
                width, height, args.clips, args.repeats, Path(folder)
            )

    print(
        "| resolution | Bossu warm-up (frames/s) | Bossu rainy (frames/s) | Bossu dry "
        "(frames/s) | 16-frame clips/s | sequential decode (frames/s) |"
    )
    print("|---|---|---|---|---|---|")
    for width, height in RESOLUTIONS:
        key = f"{width}x{height}"
        bossu = results["bossu"][key]
        decode = results["decode"][key]
        print(
            f"| {width} × {height} | {bossu['rainy']['warm_up_fps']:.0f} | "
            f"{bossu['rainy']['analysed_fps']:.0f} | {bossu['dry']['analysed_fps']:.0f} | "
            f"{decode['clips_per_s']:.1f} | {decode['frames_per_s']:.0f} |"
        )

    args.output.parent.mkdir(parents=True, exist_ok=True)
    from harness import atomic

    atomic.write_json(args.output, results)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
