"""Synthetic 3D-ZeF20-style sequences in the official layout, rendered through two cameras.

The data are made up. Fish heads move smoothly inside a 29 x 29 cm tank filled to
:data:`WATER_DEPTH` cm (``settings.ini`` of the real data gives only the 29 x 29 cm floor, so
the depth is this generator's choice). World axes: x along the front glass, y from the front
glass (y = 0) to the back wall, z up from the floor, all in centimetres. The top camera looks
down through the water surface and the front camera through the front glass. Both see the fish
through a refracting interface, modelled as in :mod:`zef3d.camera`.

Each fish is drawn per view as a dark filled ellipse from the projected head to the projected
tail (the body points against the direction of motion). The gt columns of a view contain the
projected head (``*_x``, ``*_y``) and the bounding box of the drawn ellipse (left, top, width,
height in pixels, inclusive of the last pixel). The occlusion flag is 1 when that box overlaps
the box of another fish in the same view, as a proxy for the official "part of an occlusion".
The first train sequence contains a crossing: its first two fish pass 1 cm apart at the middle
frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from harness.atomic import write_bytes, write_text
from harness.plugin import SAMPLE_MARKER
from zef3d.camera import Camera
from zef3d.io import OFFICIAL_GT_COLUMNS, VIEW_FOLDERS, VIEWS

logger = logging.getLogger(__name__)

TANK_SIZE = 29.0
"""Width (x) and depth (y) of the tank in centimetres (``[Aquarium]`` of the official
``settings.ini``)."""

WATER_DEPTH = 15.0
"""Water level above the floor in centimetres; chosen here, since the official files lack it."""

IMAGE_SIZE = (320, 180)
"""Width and height of the sample frames in pixels (16:9, as the 2704 x 1520 originals)."""

FRAME_RATE = 60
BODY_LENGTH = 3.0
"""Head-to-tail length of a fish in centimetres."""

MARGIN = 2.0
"""Minimum distance in centimetres between a head and a tank wall, the floor or the surface."""

ARCHIVE = "3DZeF20"

_FISH_GREY = 45
_JPEG_QUALITY = 92


@dataclass(frozen=True)
class _Rig:
    """The ground-truth cameras of the sample and the reference points they were solved from."""

    cameras: dict[str, Camera]
    intrinsics: dict[str, tuple[np.ndarray, np.ndarray]]
    references: dict[str, tuple[np.ndarray, np.ndarray]]


def write_zef_sample(
    out_dir: Path,
    *,
    seed: int = 0,
    sequences: int = 2,
    test_sequences: int = 1,
    frames: int = 150,
    fish: int | Sequence[int] = (2, 3),
) -> Path:
    """Write a small synthetic 3DZeF20 copy under ``out_dir`` and return ``out_dir``.

    Layout: ``out_dir/3DZeF20/train/ZebraFish-01`` ... with ``gt/gt.txt``, and
    ``out_dir/3DZeF20/test/ZebraFish-05`` ... without; every sequence has JPEG frames in
    ``imgT`` and ``imgF``, ``settings.ini`` and the four calibration JSON files. The file
    :data:`harness.plugin.SAMPLE_MARKER` marks ``out_dir`` as generated data.

    Args:
        out_dir: Folder to write into; created if missing.
        seed: Seed of the fish paths and the image noise.
        sequences: Number of train sequences (with ground truth).
        test_sequences: Number of test sequences (without ground truth).
        frames: Frames per sequence.
        fish: Fish per sequence, or one count per sequence (train first, then test), repeated
            when shorter than the number of sequences.
    """
    out_dir = Path(out_dir)
    if sequences < 1 or test_sequences < 0 or frames < 2:
        raise ValueError(f"need sequences >= 1, test_sequences >= 0 and frames >= 2; got "
                         f"{sequences}, {test_sequences} and {frames}")
    counts = [fish] if isinstance(fish, int) else list(fish)
    if not counts or min(counts) < 1:
        raise ValueError(f"fish counts must be >= 1; got {fish!r}")

    rng = np.random.default_rng(seed)
    rig = _make_rig()
    names = [("train", f"ZebraFish-{index:02d}") for index in range(1, sequences + 1)]
    first_test = max(5, sequences + 1)
    names += [("test", f"ZebraFish-{index:02d}")
              for index in range(first_test, first_test + test_sequences)]

    for position, (split, name) in enumerate(tqdm(names, desc="zef3d sample", unit="seq")):
        count = counts[position % len(counts)]
        crossing = position == 0 and count >= 2
        heads = _fish_paths(rng, frames, count, crossing=crossing)
        seq_dir = out_dir / ARCHIVE / split / name
        rows = _render_sequence(rng, seq_dir, rig, heads)
        if split == "train":
            _write_gt(seq_dir / "gt" / "gt.txt", rows)
        _write_settings(seq_dir / "settings.ini", count, frames)
        _write_calibration(seq_dir, rig)

    write_text(out_dir / SAMPLE_MARKER,
               f"Synthetic 3D-ZeF20 data written by zef3d.sample (seed {seed}).\n")
    return out_dir


def _look_at(centre: Sequence[float], forward: Sequence[float],
             right: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Return (rvec, tvec) of a camera at ``centre`` whose image x axis points along ``right``."""
    import cv2

    z_axis = np.asarray(forward, dtype=np.float64)
    z_axis /= np.linalg.norm(z_axis)
    x_axis = np.asarray(right, dtype=np.float64)
    x_axis -= (x_axis @ z_axis) * z_axis
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    rotation = np.stack([x_axis, y_axis, z_axis])
    return cv2.Rodrigues(rotation)[0].ravel(), -rotation @ np.asarray(centre, dtype=np.float64)


def _make_rig() -> _Rig:
    """Place the two cameras and solve their poses from four reference points, as real data do.

    The reference points are the corners of the water surface (top) and of the wet part of the
    front glass (front). Their image points are projections through the true pose, so the solved
    cameras equal the true ones up to ``cv2.solvePnP``'s convergence.
    """
    width, height = IMAGE_SIZE
    setups = {
        # centre, forward, right, focal length (px), distortion k1, k2, p1, p2, k3
        "top": ((14.5, 14.0, 62.0), (0.0, 0.02, -1.0), (1.0, 0.0, 0.0), 225.0,
                (-0.04, 0.008, 0.0004, -0.0003, 0.0)),
        "front": ((14.5, -46.0, 8.0), (0.0, 1.0, -0.01), (1.0, 0.0, 0.0), 380.0,
                  (-0.03, 0.006, -0.0002, 0.0003, 0.0)),
    }
    references = {
        "top": np.array([[0.0, 0.0, WATER_DEPTH], [TANK_SIZE, 0.0, WATER_DEPTH],
                         [TANK_SIZE, TANK_SIZE, WATER_DEPTH], [0.0, TANK_SIZE, WATER_DEPTH]]),
        "front": np.array([[0.0, 0.0, 0.0], [TANK_SIZE, 0.0, 0.0],
                           [TANK_SIZE, 0.0, WATER_DEPTH], [0.0, 0.0, WATER_DEPTH]]),
    }
    cameras: dict[str, Camera] = {}
    intrinsics = {}
    image_references = {}
    for view, (centre, forward, right, focal, dist) in setups.items():
        K = np.array([[focal, 0.0, width / 2 - 0.5], [0.0, focal, height / 2 - 0.5],
                      [0.0, 0.0, 1.0]])
        dist = np.array(dist)
        rvec, tvec = _look_at(centre, forward, right)
        true_camera = Camera(view, K, dist, rvec, tvec)
        image_points = true_camera.project(references[view])
        cameras[view] = Camera.from_references(view, K, dist, image_points, references[view])
        intrinsics[view] = (K, dist)
        image_references[view] = (image_points, references[view])
    return _Rig(cameras, intrinsics, image_references)


def _fish_paths(rng: np.random.Generator, frames: int, count: int, *,
                crossing: bool) -> np.ndarray:
    """Return smooth head paths (frames x fish x 3, centimetres) inside the tank.

    Each coordinate is a sum of two slow sinusoids around a random centre, scaled to stay
    :data:`MARGIN` away from the walls. With ``crossing``, fish 1 and 2 swim along straight
    lines that pass 1 cm apart (vertically) at the middle frame.
    """
    low = np.array([MARGIN, MARGIN, MARGIN])
    high = np.array([TANK_SIZE - MARGIN, TANK_SIZE - MARGIN, WATER_DEPTH - MARGIN])
    time = np.arange(frames, dtype=np.float64) / FRAME_RATE
    paths = np.zeros((frames, count, 3))
    for fish in range(count):
        centre = rng.uniform(low + 4.0, high - 4.0)
        room = np.minimum(centre - low, high - centre)
        amplitude = rng.uniform(0.4, 0.9, size=(2, 3)) * room / 2
        frequency = rng.uniform(0.08, 0.25, size=(2, 3))
        phase = rng.uniform(0.0, 2 * np.pi, size=(2, 3))
        wave = amplitude[None] * np.sin(2 * np.pi * frequency[None] * time[:, None, None]
                                         + phase[None])
        paths[:, fish] = centre + wave.sum(axis=1)

    if crossing:
        middle = np.array([TANK_SIZE / 2, TANK_SIZE / 2, WATER_DEPTH / 2])
        offset = (time - time[frames // 2])[:, None]
        # 4 cm/s (a calm zebrafish), slower in long sequences so the ends stay 10 cm from the middle
        speed = min(4.0, 10.0 / max(float(np.abs(offset).max()), 1e-9))
        paths[:, 0] = middle + offset * speed * np.array([0.8, 0.6, 0.0])
        paths[:, 1] = middle + np.array([0.0, 0.0, 1.0]) + offset * speed * np.array(
            [-0.8, 0.6, 0.0])
    return np.clip(paths, low, high)


def _headings(paths: np.ndarray) -> np.ndarray:
    """Unit swimming directions (frames x fish x 3) from the path's finite differences."""
    velocity = np.gradient(paths, axis=0)
    norm = np.linalg.norm(velocity, axis=2, keepdims=True)
    fallback = np.array([1.0, 0.0, 0.0])
    return np.where(norm > 1e-9, velocity / np.maximum(norm, 1e-12), fallback)


def _background(rng: np.random.Generator, view: str, rig: _Rig) -> np.ndarray:
    """Draw a light grey, smoothly textured background with the tank outline of the view."""
    import cv2

    width, height = IMAGE_SIZE
    coarse = rng.normal(0.0, 1.0, size=(height // 12 + 2, width // 12 + 2))
    texture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    image = 205.0 + 9.0 * texture
    image_points = rig.references[view][0]
    cv2.polylines(image, [np.round(image_points).astype(np.int32).reshape(-1, 1, 2)],
                  isClosed=True, color=150.0, thickness=1)
    return image


def _render_sequence(rng: np.random.Generator, seq_dir: Path, rig: _Rig,
                     heads: np.ndarray) -> list[list[float]]:
    """Draw every frame of both views and return the gt rows (19 values) in frame order."""
    import cv2

    frames, count, _ = heads.shape
    tails = heads - BODY_LENGTH * _headings(heads)
    flat_heads = heads.reshape(-1, 3)
    flat_tails = tails.reshape(-1, 3)

    per_view = {}
    for view in VIEWS:
        camera = rig.cameras[view]
        head_px = camera.project(flat_heads).reshape(frames, count, 2)
        tail_px = camera.project(flat_tails).reshape(frames, count, 2)
        polygons = [[_body_polygon(head_px[f, i], tail_px[f, i]) for i in range(count)]
                    for f in range(frames)]
        boxes = np.array([[_polygon_box(polygon) for polygon in row] for row in polygons])
        occluded = _overlap_flags(boxes)
        per_view[view] = (head_px, polygons, boxes, occluded)

        folder = seq_dir / VIEW_FOLDERS[view]
        folder.mkdir(parents=True, exist_ok=True)
        background = _background(rng, view, rig)
        for frame in range(frames):
            image = background + rng.normal(0.0, 2.0, size=background.shape)
            for polygon in polygons[frame]:
                cv2.fillPoly(image, [polygon.reshape(-1, 1, 2)], color=float(_FISH_GREY))
            pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
            ok, encoded = cv2.imencode(".jpg", pixels,
                                       [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for frame {frame + 1} of {folder}")
            write_bytes(folder / f"{frame + 1:06d}.jpg", encoded.tobytes())

    rows: list[list[float]] = []
    for frame in range(frames):
        for fish in range(count):
            row = [frame + 1, fish + 1, *heads[frame, fish]]
            for view in VIEWS:
                head_px, _, boxes, occluded = per_view[view]
                row += [*head_px[frame, fish], *boxes[frame, fish], int(occluded[frame, fish])]
            rows.append(row)
    return rows


def _body_polygon(head: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """Return the integer outline (K x 2) of the ellipse from ``head`` to ``tail``."""
    import cv2

    centre = 0.5 * (head + tail)
    length = float(np.linalg.norm(head - tail))
    major = max(length / 2.0, 2.0)
    minor = max(major * 0.28, 1.5)
    angle = float(np.degrees(np.arctan2(head[1] - tail[1], head[0] - tail[0])))
    return cv2.ellipse2Poly((int(round(centre[0])), int(round(centre[1]))),
                            (int(round(major)), int(round(minor))), int(round(angle)), 0, 360, 10)


def _polygon_box(polygon: np.ndarray) -> tuple[float, float, float, float]:
    """Return (left, top, width, height) of the pixels a filled polygon covers."""
    left, top = polygon.min(axis=0)
    right, bottom = polygon.max(axis=0)
    return float(left), float(top), float(right - left + 1), float(bottom - top + 1)


def _overlap_flags(boxes: np.ndarray) -> np.ndarray:
    """Flag (frames x fish) boxes that share a pixel with another fish's box in the frame."""
    left = boxes[..., 0]
    top = boxes[..., 1]
    right = left + boxes[..., 2]
    bottom = top + boxes[..., 3]
    overlap_x = (np.minimum(right[:, :, None], right[:, None, :])
                 > np.maximum(left[:, :, None], left[:, None, :]))
    overlap_y = (np.minimum(bottom[:, :, None], bottom[:, None, :])
                 > np.maximum(top[:, :, None], top[:, None, :]))
    overlap = overlap_x & overlap_y
    count = boxes.shape[1]
    overlap &= ~np.eye(count, dtype=bool)[None]
    return overlap.any(axis=2)


def _format_value(value: float, column: str) -> str:
    if column in ("frame", "id") or column.endswith("occlusion"):
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _write_gt(path: Path, rows: list[list[float]]) -> None:
    lines = [",".join(_format_value(value, column)
                      for value, column in zip(row, OFFICIAL_GT_COLUMNS, strict=True))
             for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, "".join(line + "\n" for line in lines))


def _write_settings(path: Path, count: int, frames: int) -> None:
    """Write ``settings.ini`` with the sections and keys of the official files.

    Values in pixels are scaled from the official 2704-pixel-wide frames (which the baseline
    halves with ``downsample_factor = 2``) to the sample's 320-pixel frames, so detector sizes
    (``min_blob_size``, ``min_patch_area``, ``min_skeleton_length``) and 2D distances
    (``cam1_ghost_threshold``, ``reprojection_err_*``) fit the small fish here. The front-view gate
    ``cam2_ghost_threshold`` is 1.5 instead of 0.5: the centroid of a 15-pixel fish jitters more, in
    units of its blob size, than that of a full-size fish. Values in
    centimetres or frames keep the official numbers.
    """
    text = f"""[DEFAULT]
n_fish = {count}
seed = 1234567890
fps = {FRAME_RATE}
cam2_head_detector = False

[BackgroundExtractor]
n_median = {min(80, frames)}

[Detector]
cam1_type = skeleton
cam2_type = blob
cam1_maxframe = {frames}
cam2_maxframe = {frames}
cam1_minframe = 1
cam2_minframe = 1
downsample_factor = 1
blur_size = 3
min_blob_size = 15
min_patch_area = 6
min_skeleton_length = 5
window_size = 10
nms_threshold = 0.25

[Tracker]
cam1_ghost_threshold = 4
cam2_ghost_threshold = 1.5
max_kill_count = 10
min_confidence = 0.95

[TrackletMatcher]
reprojection_err_mean = 1.0
reprojection_err_std = 1.0
movement_err_mean = 2.13
movement_err_std = 2.32
same_view_max_overlap = 0
tracklet_min_length = 10
temporal_penalty = 25

[CameraSynchronization]
cam1_sync_frame = 1
cam2_sync_frame = 1
cam1_length = {frames}
cam2_length = {frames}

[Aquarium]
aquarium_width = {TANK_SIZE}
aquarium_depth = {TANK_SIZE}

[TrackletLinker]
max_frame_difference = -1
max_spatial_difference = -1
max_intersecting_frames = -1
max_intersection_ratio = -1
min_main_track_overlap_multiplier = 0.20
main_track_search_multiplier = 5
metric_margin = 0.02
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)


def _write_calibration(seq_dir: Path, rig: _Rig) -> None:
    """Write ``camT_*``/``camF_*`` intrinsic and references JSON files in the official format."""
    import json

    for view, prefix in (("top", "camT"), ("front", "camF")):
        K, dist = rig.intrinsics[view]
        intrinsic = {"K": K.tolist(), "Distortion": [dist.tolist()]}
        write_text(seq_dir / f"{prefix}_intrinsic.json", json.dumps(intrinsic, indent=4) + "\n")
        image_points, world_points = rig.references[view]
        entries = [{"camera": {"x": float(u), "y": float(v)},
                    "world": {"x": float(x), "y": float(y), "z": float(z)}}
                   for (u, v), (x, y, z) in zip(image_points, world_points, strict=True)]
        comment = ("/* Synthetic sample: aquarium corners in the image (pixels) and in the world "
                   "(centimetres) */\n")
        write_text(seq_dir / f"{prefix}_references.json",
                   comment + json.dumps(entries, indent=4) + "\n")
