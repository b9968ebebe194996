"""Synthetic VIRADA-style data: short street-scene videos with and without rain, labels, gauges.

Every video shows a static street scene (sky, buildings, a textured road with lane markings)
with a little sensor noise per frame. In the minutes that the sample's gauge records as rainy,
each frame gets rain streaks: thin lines 30 to 60 grey levels brighter than the scene, at
random positions in every frame, with one dominant orientation and a few degrees of spread.
Their size (6 to 13 pixels long, 1 pixel wide) passes the Bossu detector's blob limits (4 to 50
pixels), and their brightness passes its test of more than 3 grey levels.

Minutes and frames: VIRADA labels have 1800 frames per minute (30 fps), which would make a
sample several minutes long. The sample keeps the true FPM, and most videos start late in a
minute (second 39), so their ``frameOffset`` of 615 frames puts frames 0 to 615 in the first
minute and frames 616 to 719 in the next: each 720-frame video spans two label minutes, with
rain in one, both or neither. The first 500 frames, which the Bossu detector needs to learn its
background, fall in the first minute.

Layout, as the VIRADA release has it: ``train/``, ``val/``, ``tst/`` with H.264 videos (``.mp4``
and one ``.mkv``) named in both crossings' schemes, ``labels/sample_2hourbinary.json`` in the
official format, and ``gauges/`` with a station list and per-minute records from which
``prepare virada --gauges gauges`` makes exactly the shipped labels.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.atomic import atomic_path, write_bytes, write_text
from harness.plugin import SAMPLE_MARKER
from virada.gauges import DEFAULT_CLOCK_OFFSET_HOURS, TIMESTAMP_FORMAT
from virada.labels import VideoLabels, frame_labels, frame_offset_for, write_label_json
from virada.names import parse_video_name

__all__ = ["SAMPLE_LABEL_FILE", "SampleVideo", "SAMPLE_VIDEOS", "write_virada_sample"]

log = logging.getLogger(__name__)

FPS = 30
FRAMES = 720
WIDTH, HEIGHT = 160, 120
CRF = 18
KEYFRAME_INTERVAL = 16
"""Frames between keyframes; equal to the C3D clip length, as the authors encoded for NVVL."""
SAMPLE_LABEL_FILE = "sample_2hourbinary.json"

NEAR_STATION = (9001, "SAMPLE CROSSINGS", 57.0502, 9.9497)
FAR_STATION = (9002, "SAMPLE FAR AWAY", 57.19, 9.95)
"""About 15.6 km north of the crossings: beyond the 10 km limit, and rainy in every minute, so a
wrong station choice changes the labels."""
RAIN_MM = 0.2
"""Millimetres per rainy minute at the near station."""


@dataclass(frozen=True)
class SampleVideo:
    """One sample video: its split, file name and which of its two minutes are rainy."""

    split: str
    file_name: str
    rain: tuple[bool, bool]
    """Rain in the first and the second label minute of the video."""


SAMPLE_VIDEOS = (
    SampleVideo("train", "20180412_130039-left.mp4", (True, False)),
    SampleVideo("train", "20180412_130039-right.mp4", (True, False)),
    SampleVideo("train", "20180412_140539-left.mp4", (False, True)),
    SampleVideo("train", "6-12-14-cam.mkv", (False, False)),
    SampleVideo("train", "6-12-15-20-39-cam.mp4", (True, True)),
    SampleVideo("val", "20180413_090039-left.mp4", (False, True)),
    SampleVideo("val", "6-13-10-cam.mp4", (True, True)),
    SampleVideo("tst", "20180414_163039-left.mp4", (True, False)),
    SampleVideo("tst", "6-14-11-05-39-cam.mp4", (False, False)),
)


def write_virada_sample(out_dir: str | Path, *, seed: int = 0, frames: int = FRAMES) -> Path:
    """Write the synthetic sample under ``out_dir`` and return ``out_dir``.

    Args:
        out_dir: Folder to write into; created when missing.
        seed: Seed of the scene texture, the noise and the rain streaks.
        frames: Frames per video; at least 616, so that every video reaches its second minute.

    Returns:
        The sample's root folder, ready for ``prepare virada --source``.
    """
    if frames <= 615:
        raise ValueError(f"frames must be above 615 to reach the second minute, got {frames}")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scene = _render_scene(rng, WIDTH + 40, HEIGHT)

    gauge_rain: dict[datetime.datetime, bool] = {}
    entries: dict[str, VideoLabels] = {}
    for video in SAMPLE_VIDEOS:
        entry = _label_entry(video, frames)
        entries[video.file_name] = entry
        for stamp, label in zip(entry.timestamps, entry.labels, strict=True):
            gauge_rain[datetime.datetime.strptime(stamp, TIMESTAMP_FORMAT)] = bool(label)
        crop = _crop_for(video.file_name)
        rainy = frame_labels(entry, np.arange(frames)) > 0
        _write_video(root / video.split / video.file_name, scene[:, crop:crop + WIDTH],
                     rainy, np.random.default_rng(rng.integers(2**63)))

    write_label_json(root / "labels" / SAMPLE_LABEL_FILE, entries)
    _write_gauges(root / "gauges", gauge_rain)
    write_text(root / SAMPLE_MARKER, "VIRADA sample written by fieldharness "
                                     "(python -m harness sample virada)\n")
    return root


def _label_entry(video: SampleVideo, frames: int) -> VideoLabels:
    """Build the official label entry: two minutes in gauge time, as generate_labels.py would."""
    name = parse_video_name(video.file_name)
    offset = frame_offset_for(name.start.second, FPS)
    start = name.start.replace(second=0) - datetime.timedelta(hours=DEFAULT_CLOCK_OFFSET_HOURS)
    extra = -((offset - frames) // (FPS * 60))
    stamps = [(start + datetime.timedelta(minutes=k)).strftime(TIMESTAMP_FORMAT)
              for k in range(extra + 1)]
    # Minutes after the second one (the inclusive last gauge minute) repeat the second's rain.
    rain = [video.rain[min(k, 1)] for k in range(extra + 1)]
    if offset == 0:
        # Without an offset every frame is in minute 0; the second minute is never shown.
        rain = [video.rain[0]] * (extra + 1)
    return VideoLabels(labels=np.asarray(rain, dtype=np.float64), per_file=False,
                       frame_offset=offset, timestamps=stamps, frame_count=frames, fpm=FPS * 60)


def _crop_for(file_name: str) -> int:
    """Return the horizontal offset of the video's view into the wider scene."""
    if "right" in file_name:
        return 40
    if "left" in file_name:
        return 0
    return 20


def _render_scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Draw a static street scene as an HxWx3 float32 RGB image in 0..255."""
    y = np.arange(height, dtype=np.float32)[:, None, None]
    horizon = int(height * 0.45)
    sky = np.array([150, 170, 190], np.float32) + (y / horizon) * np.array([20, 15, 10])
    image = np.broadcast_to(sky, (height, width, 3)).copy()

    # Buildings: darkish blocks along the horizon, with window rows.
    x = 0
    while x < width:
        w = int(rng.integers(14, 30))
        top = int(rng.integers(horizon // 3, horizon - 5))
        shade = float(rng.uniform(60, 110))
        image[top:horizon, x:x + w] = [shade, shade * 0.95, shade * 0.9]
        for wy in range(top + 3, horizon - 3, 6):
            image[wy:wy + 2, x + 2:x + w - 2:4] = shade * 0.6
        x += w + int(rng.integers(0, 4))

    # Road: grey with a fixed fine texture and lane markings.
    texture = rng.normal(0, 4, (height - horizon, width)).astype(np.float32)
    road = 90 + texture
    image[horizon:] = road[:, :, None]
    lane_y = horizon + (height - horizon) // 2
    image[lane_y:lane_y + 2, 5::20] = 200
    image[lane_y:lane_y + 2, 6::20] = 200
    image[lane_y:lane_y + 2, 7::20] = 200
    image[lane_y:lane_y + 2, 8::20] = 200
    image[height - 8:height - 6, :] = 180
    return image


def _streaks(rng: np.random.Generator, count: int) -> np.ndarray:
    """Return (count, 4) line end points x0, y0, x1, y1 of rain streaks."""
    angle = np.deg2rad(rng.normal(75, 4, count))  # from the image x axis, y pointing down
    length = rng.uniform(6, 13, count)
    x0 = rng.uniform(-5, WIDTH + 5, count)
    y0 = rng.uniform(-5, HEIGHT, count)
    x1 = x0 + length * np.cos(angle)
    y1 = y0 + length * np.sin(angle)
    return np.stack([x0, y0, x1, y1], axis=1)


def _write_video(path: Path, scene: np.ndarray, rainy: np.ndarray,
                 rng: np.random.Generator) -> None:
    import av
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name ends in .tmp, so the container format is named here.
    container_format = {".mp4": "mp4", ".mkv": "matroska"}[path.suffix]
    with atomic_path(path) as tmp:
        _encode_video(av, cv2, tmp, container_format, scene, rainy, rng)


def _encode_video(av: Any, cv2: Any, tmp: Path, container_format: str, scene: np.ndarray,
                  rainy: np.ndarray, rng: np.random.Generator) -> None:
    container = av.open(str(tmp), mode="w", format=container_format)
    try:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": str(CRF), "g": str(KEYFRAME_INTERVAL),
                          "keyint_min": str(KEYFRAME_INTERVAL), "sc_threshold": "0",
                          "preset": "veryfast"}
        for index in range(len(rainy)):
            frame = scene + rng.normal(0, 1.0, scene.shape[:2]).astype(np.float32)[:, :, None]
            if rainy[index]:
                streak_layer = np.zeros(scene.shape[:2], np.float32)
                for x0, y0, x1, y1 in _streaks(rng, int(rng.integers(35, 55))):
                    cv2.line(streak_layer, (int(x0), int(y0)), (int(x1), int(y1)),
                             float(rng.uniform(30, 60)), 1, cv2.LINE_8)
                frame = frame + streak_layer[:, :, None]
            image = np.clip(frame, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()


def _write_gauges(folder: Path, rain: dict[datetime.datetime, bool]) -> None:
    """Write the station list and one record file per year, whole days around the videos."""
    lines = ["05-Nr,Stationsnavn,Lat. (ED50),Long. (ED50),Northings  (WGS84) ZONE32,"
             "Eastings (WGS84) ZONE32"]
    for station_id, name, lat, lon in (NEAR_STATION, FAR_STATION):
        lines.append(f"{station_id},{name},{lat:.2f} ,{lon:.2f} ,0 ,0 ,{lat:.8f},{lon:.8f}")
    write_bytes(folder / "SampleGaugeInfo.txt", ("\r\n".join(lines) + "\r\n").encode("iso-8859-1"))

    for year in sorted({t.year for t in rain}):
        days = sorted({t.date() for t in rain if t.year == year})
        first = datetime.datetime.combine(days[0], datetime.time())
        last = datetime.datetime.combine(days[-1], datetime.time(23, 59))
        rows = [f"0,{NEAR_STATION[0]},{FAR_STATION[0]}"]
        minutes = int((last - first).total_seconds() // 60) + 1
        for k in range(minutes):
            time = first + datetime.timedelta(minutes=k)
            near = RAIN_MM if rain.get(time, False) else 0.0
            rows.append(f"{time:{TIMESTAMP_FORMAT}},{near:.6f},{0.5:.6f}")
        end = last + datetime.timedelta(minutes=1)
        name = f"Sample-{first:%d-%b-%Y}-{end:%d-%b-%Y}.txt"
        write_bytes(folder / name, ("\r\n".join(rows) + "\r\n").encode("ascii"))


