"""Measure the Sewer-ML input pipeline per CPU core: images read from files against zip members.

Usage::

    .venv/bin/python benchmarks/bench_sewerml_input.py [--images 400] [--repeats 3]
        [--image-size 224] [--seed 0] [--zip-compression stored|deflated] [--root DIR]
        [--output FILE]

The script writes one synthetic sample (``sewerml.sample``, real Sewer-ML frame sizes) twice
with the same seed, once with ``Train/``-style image folders and once as the official zip
archives, so both layouts hold the same PNG bytes. It prepares each copy into its own data
home and iterates the train split of ``SewerMLImages`` in this process with one torch thread.
Two stages are timed: ``decode`` (read and PNG-decode, ``load_image``) and ``train`` (an item
with the training transform: decode, resize, flip, colour jitter, normalise). A full warm-up
pass runs first so that both layouts are read from the page cache. Repeats alternate the
layout order. Rates are images per CPU second of this process (``time.process_time``), the
per-core rate, next to images per wall-clock second.

Prints a Markdown table and the zip/file ratio of the median per-core rates, and writes the
result as JSON (default ``benchmarks/results/sewerml_input.json``, git-ignored).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import PIL
import torch
import torchvision

from harness.atomic import write_json
from harness.prepare import prepare_dataset
from sewerml.sample import write_sewerml_sample
from sewerml.torchdata import SewerMLImages
from sewerml.transforms import train_transform

LAYOUTS = {"file": "folders", "zip": "zip"}
"""Row label -> sample layout."""

STAGES = ("decode", "train")
TARGET_RATIO = 0.9
"""Zip members should reach at least this fraction of the file rate."""

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "sewerml_input.json"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


ZIP_COMPRESSION = {"stored": zipfile.ZIP_STORED, "deflated": zipfile.ZIP_DEFLATED}
"""Compression methods of the zip archive members. The official archives' method is not known
here. PNG data barely shrinks under deflate, but reading a deflated member costs inflation."""


def _repack(source: Path, compression: int) -> None:
    """Rewrite every zip archive under ``source`` with the given member compression."""
    for archive in sorted(source.rglob("*.zip")):
        repacked = archive.with_suffix(".repack")
        with zipfile.ZipFile(archive) as old, zipfile.ZipFile(repacked, "w", compression) as new:
            for member in old.infolist():
                new.writestr(member.filename, old.read(member))
        os.replace(repacked, archive)


def _prepare(root: Path, images: int, seed: int, compression: str) -> dict[str, Path]:
    """Write and prepare the sample in both layouts; return the data home of each."""
    homes = {}
    for label, layout in LAYOUTS.items():
        started = time.perf_counter()
        source = write_sewerml_sample(root / layout / "src", seed=seed, images_per_split=images,
                                      layout=layout)
        if layout == "zip":
            _repack(source, ZIP_COMPRESSION[compression])
        homes[label] = root / layout / "home"
        prepare_dataset("sewerml", source, data_dir=homes[label], progress=False)
        print(f"wrote and prepared the {layout} sample ({3 * images} images) in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    return homes


def _time_pass(dataset: SewerMLImages, stage: str) -> tuple[float, float]:
    """Return (CPU seconds, wall seconds) of one pass over ``dataset``."""
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    if stage == "decode":
        for index in range(len(dataset)):
            dataset.load_image(index)
    else:
        for index in range(len(dataset)):
            dataset[index]
    return time.process_time() - cpu_start, time.perf_counter() - wall_start


def run(images: int, repeats: int, image_size: int, seed: int, root: Path,
        compression: str = "stored") -> dict[str, Any]:
    torch.set_num_threads(1)
    homes = _prepare(root, images, seed, compression)
    datasets = {label: SewerMLImages("train", transform=train_transform(image_size),
                                     data_dir=home)
                for label, home in homes.items()}
    if datasets["file"].filenames != datasets["zip"].filenames:
        raise RuntimeError("the file and zip samples list different images; same seed expected")

    for dataset in datasets.values():
        _time_pass(dataset, "train")  # warm-up: page cache, zip handles, lazy imports

    times: dict[str, dict[str, list[list[float]]]] = {
        stage: {label: [] for label in LAYOUTS} for stage in STAGES}
    for repeat in range(repeats):
        order = list(LAYOUTS) if repeat % 2 == 0 else list(reversed(LAYOUTS))
        for stage in STAGES:
            for label in order:
                torch.manual_seed(repeat)
                times[stage][label].append(list(_time_pass(datasets[label], stage)))

    count = len(datasets["file"])
    rates: dict[str, dict[str, dict[str, float]]] = {}
    for stage in STAGES:
        rates[stage] = {}
        for label in LAYOUTS:
            cpu = [count / pair[0] for pair in times[stage][label]]
            wall = [count / pair[1] for pair in times[stage][label]]
            rates[stage][label] = {"per_core_median": statistics.median(cpu),
                                   "per_core_max": max(cpu),
                                   "wall_median": statistics.median(wall)}
    ratios = {stage: rates[stage]["zip"]["per_core_median"]
              / rates[stage]["file"]["per_core_median"] for stage in STAGES}
    return {
        "benchmark": "sewerml_input",
        "images": count,
        "repeats": repeats,
        "image_size": image_size,
        "zip_compression": compression,
        "seed": seed,
        "torch_threads": torch.get_num_threads(),
        "rates_images_per_second": rates,
        "zip_over_file": ratios,
        "target_zip_over_file": TARGET_RATIO,
        "seconds": times,
        "machine": {
            "cpu": _cpu_model(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "pillow": PIL.__version__,
            "platform": platform.platform(),
        },
    }


def print_table(result: dict[str, Any]) -> None:
    rates = result["rates_images_per_second"]
    print(f"Sewer-ML input pipeline, {result['images']} train images, "
          f"{result['repeats']} repeats, {result['image_size']} px, 1 torch thread, "
          f"{result['machine']['cpu']}")
    print()
    print("| stage | source | images/s per core (median) | best | images/s wall (median) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for stage in STAGES:
        for label in LAYOUTS:
            row = rates[stage][label]
            print(f"| {stage} | {label} | {row['per_core_median']:.1f} | "
                  f"{row['per_core_max']:.1f} | {row['wall_median']:.1f} |")
    print()
    for stage, ratio in result["zip_over_file"].items():
        verdict = "meets" if ratio >= TARGET_RATIO else "misses"
        print(f"{stage}: zip/file = {ratio:.3f} ({verdict} the {TARGET_RATIO:.0%} target)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--images", type=int, default=400,
                        help="train images in the sample (val and test get as many; default 400)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed passes per stage and layout (default 3)")
    parser.add_argument("--image-size", type=int, default=224,
                        help="side of the resized image in pixels (default 224)")
    parser.add_argument("--seed", type=int, default=0, help="sample seed (default 0)")
    parser.add_argument("--zip-compression", choices=tuple(ZIP_COMPRESSION), default="stored",
                        help="member compression of the zip archives (default: stored)")
    parser.add_argument("--root", type=Path, default=None,
                        help="folder for the samples and data homes (default: a temporary one)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"JSON result file (default {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    if args.images < 1 or args.repeats < 1:
        parser.error("--images and --repeats must be at least 1")

    with tempfile.TemporaryDirectory(prefix="bench-sewerml-") as scratch:
        root = args.root if args.root is not None else Path(scratch)
        result = run(args.images, args.repeats, args.image_size, args.seed, root,
                     args.zip_compression)
    print_table(result)
    write_json(args.output, result)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
