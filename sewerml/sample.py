"""Generator of a small synthetic Sewer-ML copy in the official layout.

The images are random-noise PNGs with 8-digit names. The labels are random, so the copy is fit
for tests of reading and scoring, not for training. Real frames are 350×284 to 768×576 pixels;
the sample uses 32×24 to keep it small.
"""

from __future__ import annotations

import io
import zipfile
from os import PathLike
from pathlib import Path

import numpy as np
from PIL import Image

from harness.errors import UnknownNameError
from harness.plugin import SAMPLE_MARKER
from sewerml.classes import DEFECT_CODES
from sewerml.io import OPTIONAL_COLUMNS
from sewerml.prepare import ARCHIVE_PREFIXES, CSV_NAMES, IMAGE_FOLDERS

__all__ = ["LAYOUTS", "write_sewerml_sample"]

LAYOUTS = ("folders", "flat", "zip")
IMAGE_SIZE = (32, 24)
"""Width and height of the sample PNGs in pixels."""

# Column order of the labelled CSVs as third-party copies show it. Readers select by name.
LABEL_HEADER = ("Filename", "WaterLevel", "VA", *DEFECT_CODES, "ND", "Defect")


def _png(rng: np.random.Generator) -> bytes:
    pixels = rng.integers(0, 256, size=(IMAGE_SIZE[1], IMAGE_SIZE[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _label_rows(rng: np.random.Generator, names: list[str], properties: bool) -> list[list[str]]:
    rows = []
    for name in names:
        labels = np.zeros(len(DEFECT_CODES), dtype=int)
        if rng.random() < 0.5:
            chosen = rng.choice(len(DEFECT_CODES), size=int(rng.integers(1, 4)), replace=False)
            labels[chosen] = 1
        defect = int(labels.any())
        water_level = int(rng.choice([0, 5, 10, 20, 30, 50]))
        row = [name, str(water_level), str(int(water_level >= 30)), *map(str, labels),
               str(1 - defect), str(defect)]
        if properties:
            row += [str(int(rng.integers(0, 6))), str(int(rng.integers(0, 8)))]
        rows.append(row)
    return rows


def _write_csv(path: Path, header: tuple[str, ...], rows: list[list[str]]) -> None:
    # The public test CSV ends its lines in CRLF, so the sample does the same.
    lines = [",".join(header)] + [",".join(row) for row in rows]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())


def _write_images(
    root: Path, split: str, images: dict[str, bytes], layout: str
) -> None:
    if layout == "folders":
        folder = root / IMAGE_FOLDERS[split][0]
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in images.items():
            (folder / name).write_bytes(data)
    elif layout == "flat":
        for name, data in images.items():
            (root / name).write_bytes(data)
    else:
        # Two archives per split, as the official val and test splits have.
        names = list(images)
        half = (len(names) + 1) // 2
        for number, part in enumerate((names[:half], names[half:])):
            path = root / f"{ARCHIVE_PREFIXES[split]}{number:02d}.zip"
            with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
                for name in part:
                    archive.writestr(name, images[name])


def write_sewerml_sample(
    root: str | PathLike[str],
    *,
    seed: int = 0,
    images_per_split: int = 12,
    layout: str = "folders",
    properties: bool = False,
) -> Path:
    """Write the three annotation CSVs, the PNG images and the sample marker into ``root``.

    Args:
        root: Output folder; it is created when missing.
        seed: Seed of the random labels and pixels.
        images_per_split: Images in each of train, val and test.
        layout: ``"folders"`` (``Train/``, ``Val/``, ``Test/``), ``"flat"`` (all images in
            ``root``) or ``"zip"`` (``train00.zip``, ``train01.zip``, ``valid00.zip``, ...).
        properties: Add the ``Shape`` and ``Material`` columns to the labelled CSVs.

    Returns:
        ``root`` as an absolute path.

    Raises:
        UnknownNameError: ``layout`` is not one of ``LAYOUTS``.
        ValueError: ``images_per_split`` is below 1.
    """
    if layout not in LAYOUTS:
        raise UnknownNameError("sample layout", layout, LAYOUTS)
    if images_per_split < 1:
        raise ValueError(f"images_per_split is {images_per_split}; expected at least 1")
    root = Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    # Image numbers are global across splits and not contiguous, as in the real release.
    numbers = np.sort(rng.choice(99_999_999, size=3 * images_per_split, replace=False))
    rng.shuffle(numbers)
    header = LABEL_HEADER + (OPTIONAL_COLUMNS if properties else ())
    for index, split in enumerate(CSV_NAMES):
        chunk = numbers[index * images_per_split:(index + 1) * images_per_split]
        names = sorted(f"{int(n):08d}.png" for n in chunk)
        csv_path = root / CSV_NAMES[split][0]
        if split == "test":
            _write_csv(csv_path, ("Filename",), [[name] for name in names])
        else:
            _write_csv(csv_path, header, _label_rows(rng, names, properties))
        _write_images(root, split, {name: _png(rng) for name in names}, layout)

    (root / SAMPLE_MARKER).write_text("Synthetic Sewer-ML sample written by fieldharness.\n")
    return root
