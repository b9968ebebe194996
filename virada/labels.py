"""The VIRADA label JSON and the rule that maps a video frame to its label minute.

The JSON maps each video file name to an entry with ``labels`` (one per minute, or one number
for the whole file), ``frameOffset``, ``timestamps`` (the gauge minute of each label),
``frameCount`` and ``FPM`` (frames per minute). ``Analysis/generate_labels.py`` in
``chrisbahnsen/aau-virada`` writes it.

Frame to minute: a video that starts at second s > 0 of a minute has ``frameOffset`` frames
left in that minute. Frames ``0 .. frameOffset - 1`` belong to minute 0 and a later frame f to
``ceil((f - frameOffset) / FPM)``; without an offset, frame f belongs to ``floor(f / FPM)``.
The index is clipped to the last label. The training loader (``3DCNN/dataloading/
dataloaders.py`` in ``chrisbahnsen/aau-virada``) tests ``f < frameOffset`` and the analysis
scripts (``Analysis/utils.py``) test ``f <= frameOffset``; this module follows the training
loader. Both give the boundary frame ``f == frameOffset`` minute 0, because
``ceil(0 / FPM) = 0``, so minute 0 contains ``frameOffset + 1`` frames under either test.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.atomic import write_text
from harness.errors import DataFormatError

__all__ = [
    "VideoLabels",
    "check_covers",
    "frame_labels",
    "frame_offset_for",
    "minute_of_frames",
    "minutes_needed",
    "read_label_json",
    "write_label_json",
]

log = logging.getLogger(__name__)


@dataclass
class VideoLabels:
    """The label entry of one video."""

    labels: np.ndarray
    """Labels as float64, one per minute; a per-file label is an array of length 1."""
    per_file: bool
    frame_offset: int | None
    """Frames left in the first, partly covered minute; 0 or ``None`` when there is none."""
    timestamps: list[str] = field(default_factory=list)
    """Gauge minute of each label, ``YYYY-MM-DD hh:mm:ss`` on the gauge clock."""
    frame_count: int | None = None
    """Frame count the authors recorded (OpenCV's estimate), ``None`` for per-file labels."""
    fpm: int = 1800
    """Frames per minute, 60 times the frame rate."""


def frame_offset_for(start_second: int, fps: int) -> int:
    """Return the ``frameOffset`` of a video that starts at ``start_second`` of a minute.

    The first minute has ``(60 - s) * fps`` frames left; the authors assume the video starts
    half-way through its second and subtract half a second, ``(60 - s) * fps - fps // 2``.

    NOTE: ``generate_labels.py`` subtracts a fixed 15 frames, which equals ``fps // 2`` only at
    the 30 fps of every VIRADA video.
    """
    if start_second <= 0:
        return 0
    return (60 - start_second) * fps - fps // 2


def minutes_needed(frame_count: int, *, frame_offset: int | None, fpm: int) -> int:
    """Return the number of minute labels that the frames ``0 .. frame_count - 1`` use."""
    if frame_count <= 0:
        return 0
    last = minute_of_frames(np.array([frame_count - 1]), frame_offset=frame_offset, fpm=fpm,
                            num_labels=None)
    return int(last[0]) + 1


def minute_of_frames(frames: np.ndarray, *, frame_offset: int | None, fpm: int,
                     num_labels: int | None) -> np.ndarray:
    """Map 0-based frame indices to minute indices (the ``<`` rule of the module docstring).

    Args:
        frames: Frame indices, each ``>= 0``.
        frame_offset: The entry's ``frameOffset``; ``None`` or 0 means no offset.
        fpm: Frames per minute.
        num_labels: Number of labels; indices are clipped to ``num_labels - 1``. ``None``
            leaves them unclipped.

    Returns:
        An int64 array of minute indices, the shape of ``frames``.

    Raises:
        ValueError: a frame index is negative, or ``fpm`` or ``num_labels`` is below 1.
    """
    frames = np.asarray(frames, dtype=np.int64)
    if fpm < 1:
        raise ValueError(f"FPM must be at least 1, got {fpm}")
    if frames.size and int(frames.min()) < 0:
        raise ValueError(f"frame indices must be >= 0, got {int(frames.min())}")

    if frame_offset is not None and frame_offset > 0:
        # ceil((f - offset) / fpm) in integer arithmetic: -((offset - f) // fpm).
        after = -((frame_offset - frames) // fpm)
        minutes = np.where(frames < frame_offset, 0, after)
    else:
        minutes = frames // fpm

    if num_labels is not None:
        if num_labels < 1:
            raise ValueError(f"a video needs at least one label, got {num_labels}")
        minutes = np.minimum(minutes, num_labels - 1)
    return minutes.astype(np.int64)


def frame_labels(entry: VideoLabels, frames: np.ndarray) -> np.ndarray:
    """Return the float64 label of each frame index in ``frames``."""
    frames = np.asarray(frames, dtype=np.int64)
    if entry.per_file:
        return np.full(frames.shape, float(entry.labels[0]))
    minutes = minute_of_frames(frames, frame_offset=entry.frame_offset, fpm=entry.fpm,
                               num_labels=len(entry.labels))
    return entry.labels[minutes]


def check_covers(entry: VideoLabels, frame_count: int, path: str | Path, *,
                 video: str | None = None) -> None:
    """Check that ``entry`` has a label for every minute of a video of ``frame_count`` frames.

    Without this check the frames past the last label would silently get the last label.

    Args:
        entry: The label entry.
        frame_count: Frames of the video, as decoded.
        path: The label JSON, named in the error.
        video: The video file name, named in the error.

    Raises:
        DataFormatError: the entry has fewer minute labels than the video spans.
    """
    if entry.per_file:
        return
    needed = minutes_needed(frame_count, frame_offset=entry.frame_offset, fpm=entry.fpm)
    if len(entry.labels) < needed:
        raise DataFormatError(
            f"the label entry of video {video!r} has {len(entry.labels)} minute labels, but the "
            f"video's {frame_count} frames span {needed} minutes (frameOffset "
            f"{entry.frame_offset}, FPM {entry.fpm})",
            path=path, field="labels", expected=f"at least {needed} labels")
    if entry.frame_count is not None and entry.frame_count != frame_count:
        log.info("%s: frameCount of %s is %d, the decoded video has %d frames", path, video,
                 entry.frame_count, frame_count)


def read_label_json(path: str | Path) -> dict[str, VideoLabels]:
    """Read a label JSON into one :class:`VideoLabels` per video file name.

    Raises:
        DataFormatError: the file is not valid JSON, or an entry lacks a field or has a value of
            the wrong type. The message names the video and the field.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataFormatError(f"invalid JSON: {error.msg}", path=path, line=error.lineno,
                              expected="a JSON object keyed by video file name") from None
    if not isinstance(data, dict):
        raise DataFormatError("top-level value is not an object", path=path,
                              value=type(data).__name__,
                              expected="a JSON object keyed by video file name")
    return {str(name): _parse_entry(path, str(name), value) for name, value in data.items()}


def _parse_entry(path: Path, name: str, value: Any) -> VideoLabels:
    if not isinstance(value, dict):
        raise DataFormatError(f"entry of video {name!r} is not an object", path=path,
                              value=type(value).__name__,
                              expected="an object with labels, frameOffset, timestamps, "
                                       "frameCount and FPM")

    def fail(key: str, found: object, expected: str) -> DataFormatError:
        return DataFormatError(f"invalid entry of video {name!r}", path=path, field=key,
                               value=found, expected=expected)

    if "labels" not in value:
        raise fail("labels", None, "a list of numbers, one per minute, or one number")
    raw = value["labels"]
    if _is_number(raw):
        labels = np.array([float(raw)])
        per_file = True
    elif isinstance(raw, list) and raw and all(_is_number(x) for x in raw):
        labels = np.asarray(raw, dtype=np.float64)
        per_file = False
    else:
        raise fail("labels", _short(raw), "a non-empty list of numbers, or one number")

    fpm = value.get("FPM")
    if not _is_integral(fpm) or fpm < 1:
        raise fail("FPM", fpm, "a positive integer (frames per minute)")

    offset = value.get("frameOffset")
    if offset is not None and (not _is_integral(offset) or offset < 0):
        raise fail("frameOffset", offset, "null or an integer >= 0")

    count = value.get("frameCount")
    if count is not None and (not _is_integral(count) or count < 0):
        raise fail("frameCount", count, "null or an integer >= 0")

    timestamps = value.get("timestamps", [])
    if not isinstance(timestamps, list) or not all(isinstance(t, str) for t in timestamps):
        raise fail("timestamps", _short(timestamps), "a list of 'YYYY-MM-DD hh:mm:ss' strings")
    if not per_file and timestamps and len(timestamps) != len(labels):
        raise fail("timestamps", f"{len(timestamps)} entries",
                   f"one timestamp per label ({len(labels)})")

    return VideoLabels(
        labels=labels,
        per_file=per_file,
        frame_offset=None if offset is None else int(offset),
        timestamps=list(timestamps),
        frame_count=None if count is None else int(count),
        fpm=int(fpm),
    )


def write_label_json(path: str | Path, mapping: Mapping[str, VideoLabels]) -> None:
    """Write label entries atomically in the official layout (4-space indent, sorted keys).

    Minute labels that are all whole numbers (binary labels) are written as integers, others as
    floats. A per-file label is written as a float, because the training loader accepts only
    that type.
    """
    data = {}
    for name, entry in mapping.items():
        labels: Any
        if entry.per_file:
            labels = float(entry.labels[0])
        elif all(float(x).is_integer() for x in entry.labels):
            labels = [int(x) for x in entry.labels]
        else:
            labels = [float(x) for x in entry.labels]
        data[name] = {
            "labels": labels,
            "frameOffset": entry.frame_offset,
            "timestamps": list(entry.timestamps),
            "frameCount": entry.frame_count,
            "FPM": entry.fpm,
        }
    text = json.dumps(data, indent=4, sort_keys=True, separators=(",", ": "), ensure_ascii=False)
    write_text(path, text)


def _is_number(value: object) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def _is_integral(value: object) -> bool:
    return _is_number(value) and float(value).is_integer()  # type: ignore[arg-type]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
