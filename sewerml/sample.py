"""Generator of a small synthetic Sewer-ML copy in the official layout.

Every image is a PNG with an 8-digit name, at one of the six frame sizes of the real release
(width × height 350×284, 352×288, 466×568, 480×576, 720×576 and 768×576, from supplementary
Figs. 10 and 11 of the Sewer-ML paper). The labels are random, but the pixels show them, so a
classifier can learn the sample a little:

* the scene is a dark pipe interior, a smooth gradient whose outline follows the pipe shape and
  whose tint follows the pipe material;
* a water band covers the bottom ``WaterLevel`` percent of the image height;
* each positive defect class adds a mark with its own colour, outline and place on a ring
  around the pipe centre.

The scene is drawn at a quarter of the frame size with light noise and scaled up by pixel
repetition, which keeps the PNGs small: 32 KB on average in the default sample of 72 images.
Test images get hidden random labels too, so they look like the labelled splits, but
``SewerML_Test.csv`` lists only the file names, as the official file does.
"""

from __future__ import annotations

import colorsys
import io
import zipfile
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
from PIL import Image

from harness.atomic import atomic_path, write_bytes, write_text
from harness.errors import UnknownNameError
from harness.plugin import SAMPLE_MARKER
from sewerml.classes import DEFECT_CODES
from sewerml.io import OPTIONAL_COLUMNS
from sewerml.prepare import ARCHIVE_PREFIXES, CSV_NAMES, IMAGE_FOLDERS

__all__ = ["IMAGE_SIZES", "LAYOUTS", "write_sewerml_sample"]

LAYOUTS = ("folders", "flat", "zip")

IMAGE_SIZES: tuple[tuple[int, int], ...] = (
    (350, 284), (352, 288), (466, 568), (480, 576), (720, 576), (768, 576),
)
"""Width and height in pixels of the Sewer-ML frames, supplementary Figs. 10 and 11 of the
Sewer-ML paper (Haurum & Moeslund, CVPR 2021). Each sample image gets one of them."""

WATER_LEVELS = (0, 0, 5, 10, 15, 20, 30, 40, 50)
"""Water levels (percent) the sample draws from, uniformly. 0 is listed twice to make it the
most common value, and the values cover the four CT-GNN water-level bins."""

SHAPE_COUNT = 6
MATERIAL_COUNT = 8

# Wall colours (RGB) per material code, in the order of CT-GNN's material classes: Unknown,
# Concrete, Plastic, Lining, Vitrified clay, Iron, Brickwork, Other.
MATERIAL_TINTS = np.array([
    (85, 85, 85), (100, 96, 84), (70, 86, 106), (104, 82, 62),
    (118, 72, 46), (82, 58, 46), (112, 60, 52), (74, 96, 70),
], dtype=np.float32)  # fmt: skip

WATER_COLOUR = np.array((46, 64, 58), dtype=np.float32)

DRAW_SCALE = 4
"""The scene is drawn at 1/DRAW_SCALE of the frame size and scaled up by pixel repetition."""

NOISE_AMPLITUDE = 3
"""Largest noise offset per pixel of the drawn scene, in 8-bit levels."""

# Column order of the labelled CSVs as third-party copies show it. Readers select by name.
LABEL_HEADER = ("Filename", "WaterLevel", "VA", *DEFECT_CODES, "ND", "Defect")


@dataclass(frozen=True)
class _Scene:
    """The labels of one sample image, which also decide what its pixels show."""

    size: tuple[int, int]
    defects: np.ndarray
    water_level: int
    shape: int
    material: int

    def csv_row(self, name: str, properties: bool) -> list[str]:
        defect = int(self.defects.any())
        row = [name, str(self.water_level), str(int(self.water_level >= 30)),
               *map(str, self.defects), str(1 - defect), str(defect)]
        if properties:
            row += [str(self.shape), str(self.material)]
        return row


def _random_scene(rng: np.random.Generator) -> _Scene:
    defects = np.zeros(len(DEFECT_CODES), dtype=int)
    if rng.random() < 0.5:
        chosen = rng.choice(len(DEFECT_CODES), size=int(rng.integers(1, 4)), replace=False)
        defects[chosen] = 1
    width, height = IMAGE_SIZES[int(rng.integers(len(IMAGE_SIZES)))]
    return _Scene(
        size=(width, height),
        defects=defects,
        water_level=int(rng.choice(WATER_LEVELS)),
        shape=int(rng.integers(SHAPE_COUNT)),
        material=int(rng.integers(MATERIAL_COUNT)),
    )


def _pipe_distance(u: np.ndarray, v: np.ndarray, shape: int) -> np.ndarray:
    """Return a distance from the pipe centre whose level sets have the outline of ``shape``.

    ``u`` and ``v`` are coordinates scaled to about -1..1. The shape codes follow CT-GNN's
    classes: Circular, Conical, Egg shaped, Eye shaped, Rectangular, Other.
    """
    if shape == 0:
        return np.hypot(u, v)
    if shape == 1:
        return np.hypot(1.4 * u, v)
    if shape == 2:
        return np.hypot(u * (1.0 + 0.4 * v), v)
    if shape == 3:
        return np.abs(v) + 0.6 * u * u
    if shape == 4:
        return np.maximum(np.abs(u), np.abs(v))
    return np.abs(u) + np.abs(v)


def _mark_colour(code_index: int) -> np.ndarray:
    """Return the saturated RGB colour of a defect class, with hues spread evenly."""
    red, green, blue = colorsys.hsv_to_rgb(code_index / len(DEFECT_CODES), 0.9, 0.95)
    return np.array((red, green, blue), dtype=np.float32) * 255


def _draw_mark(pixels: np.ndarray, code_index: int, u: np.ndarray, v: np.ndarray) -> None:
    """Draw the mark of one defect class: a disc, square or ring at the class's own angle."""
    angle = 2 * np.pi * code_index / len(DEFECT_CODES) - np.pi / 2
    du = u - 0.62 * np.cos(angle)
    dv = v - 0.62 * np.sin(angle)
    radius = 0.13
    outline = code_index % 3
    if outline == 0:
        inside = np.hypot(du, dv) < radius
    elif outline == 1:
        inside = np.maximum(np.abs(du), np.abs(dv)) < radius * 0.85
    else:
        distance = np.hypot(du, dv)
        inside = (distance < radius) & (distance > radius * 0.5)
    pixels[inside] = _mark_colour(code_index)


def _render(scene: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Return the RGB pixels (uint8, height × width × 3) that show the labels of ``scene``."""
    width, height = scene.size
    small_width = -(-width // DRAW_SCALE)
    small_height = -(-height // DRAW_SCALE)
    rows, columns = np.mgrid[0:small_height, 0:small_width].astype(np.float32)
    u = (columns - small_width / 2) / (small_width / 2)
    v = (rows - small_height * 0.45) / (small_height / 2)

    # Dark far end at the centre, lit walls towards the edges.
    distance = np.clip(_pipe_distance(u, v, scene.shape), 0.0, 1.3)
    pixels = distance[..., None] ** 0.8 * MATERIAL_TINTS[scene.material] + 8.0

    band = int(round(small_height * scene.water_level / 100))
    if band:
        ripple = 4.0 * (np.arange(band) % 2)[:, None, None]
        pixels[small_height - band:] = pixels[small_height - band:] * 0.3 + WATER_COLOUR + ripple

    for code_index in np.flatnonzero(scene.defects):
        _draw_mark(pixels, int(code_index), u, v)

    pixels += rng.integers(-NOISE_AMPLITUDE, NOISE_AMPLITUDE + 1, size=pixels.shape[:2])[..., None]
    small = np.clip(pixels, 0, 255).astype(np.uint8)
    full = np.repeat(np.repeat(small, DRAW_SCALE, axis=0), DRAW_SCALE, axis=1)
    return full[:height, :width]


def _png(scene: _Scene, rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_render(scene, rng)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_csv(path: Path, header: tuple[str, ...], rows: list[list[str]]) -> None:
    # The public test CSV ends its lines in CRLF, so the sample does the same.
    lines = [",".join(header)] + [",".join(row) for row in rows]
    write_bytes(path, ("\r\n".join(lines) + "\r\n").encode())


def _write_images(
    root: Path, split: str, images: dict[str, bytes], layout: str
) -> None:
    if layout == "folders":
        folder = root / IMAGE_FOLDERS[split][0]
        for name, data in images.items():
            write_bytes(folder / name, data)
    elif layout == "flat":
        for name, data in images.items():
            write_bytes(root / name, data)
    else:
        # Two archives per split, as the official val and test splits have.
        names = list(images)
        half = (len(names) + 1) // 2
        for number, part in enumerate((names[:half], names[half:])):
            path = root / f"{ARCHIVE_PREFIXES[split]}{number:02d}.zip"
            with atomic_path(path) as tmp, zipfile.ZipFile(
                tmp, "w", compression=zipfile.ZIP_STORED
            ) as archive:
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
        seed: Seed of the random labels, image sizes and pixels. The same seed gives the same
            files in every layout.
        images_per_split: Images in each of train, val and test.
        layout: ``"folders"`` (``Train/``, ``Val/``, ``Test/``), ``"flat"`` (all images in
            ``root``) or ``"zip"`` (``train00.zip``, ``train01.zip``, ``valid00.zip``, ...).
        properties: Add the ``Shape`` and ``Material`` columns to the labelled CSVs. The images
            show the pipe shape and material either way.

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
        scenes = {name: _random_scene(rng) for name in names}
        csv_path = root / CSV_NAMES[split][0]
        if split == "test":
            _write_csv(csv_path, ("Filename",), [[name] for name in names])
        else:
            rows = [scene.csv_row(name, properties) for name, scene in scenes.items()]
            _write_csv(csv_path, header, rows)
        images = {name: _png(scene, rng) for name, scene in scenes.items()}
        _write_images(root, split, images, layout)

    write_text(root / SAMPLE_MARKER, "Synthetic Sewer-ML sample written by fieldharness.\n")
    return root
