"""VIRADA clips as a PyTorch dataset for the C3D rain detector.

Each video is cut into clips of 16 frames that start every 8 frames (0, 8, 16, ...), as long as
the whole clip fits in the video. A clip's label is the label of the minute of its first frame,
with the frame to minute rule of :func:`virada.labels.minute_of_frames`, as the authors' training
loader (``3DCNN/dataloading/dataloaders.py`` in github.com/chrisbahnsen/aau-virada) looks it up.
Clips are RGB, scaled to [0, 1], in the layout ``[3, T, H, W]``.

Three modes:

* ``train``: a random 112 x 112 crop and a random horizontal flip (probability 0.5), drawn from
  torch's random generator, which :func:`harness.training.fit` seeds in the main process and in
  every DataLoader worker;
* ``fcn``: the full frame without its last ``trim_width`` pixel columns (the authors' validation
  and test code drops 2 columns);
* ``center_crop``: the 112 x 112 centre of the frame, the authors' alternative to ``fcn``.

The clip table is built once in the main process. Items decode their frames with PyAV in the
process that loads them, so DataLoader workers decode in parallel and never touch polars.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from harness.errors import FieldHarnessError, UnknownNameError
from virada.labels import minute_of_frames
from virada.video import clip_starts, read_clip

__all__ = [
    "CLIP_LENGTH",
    "CLIP_STRIDE",
    "CROP_SIZE",
    "MODES",
    "ClipTable",
    "VideoRecord",
    "ViradaClips",
    "center_crop",
    "clip_table",
    "random_crop_flip",
    "records_from_rows",
    "to_tensor",
]

log = logging.getLogger(__name__)

CLIP_LENGTH = 16
"""Frames per clip in the authors' training script (``--frames 16``)."""

CLIP_STRIDE = 8
"""Frames between two clip starts in the authors' training script (``--stride 8``)."""

CROP_SIZE = 112
"""Side of the square training crop in pixels (``--crop_size 112 112``)."""

MODES = ("train", "fcn", "center_crop")

VIDEO_COLUMNS = ("video", "file_name", "frame_count", "width", "height", "labels", "per_file",
                 "frame_offset", "fpm")
"""Columns of the prepared ``videos`` table that :meth:`VideoRecord.from_row` reads."""


@dataclass(frozen=True)
class VideoRecord:
    """The fields of one prepared video that clip sampling needs.

    Attributes:
        path: The video file.
        file_name: Its file name, as the label JSON and the prediction CSV name it.
        frame_count: Decoded frames.
        width: Frame width in pixels.
        height: Frame height in pixels.
        labels: One label per minute, or one for the whole file when ``per_file``.
        per_file: Whether ``labels`` has a single label for the whole video.
        frame_offset: ``frameOffset`` of the label entry, or ``None``.
        fpm: Frames per minute.
    """

    path: Path
    file_name: str
    frame_count: int
    width: int
    height: int
    labels: tuple[float, ...]
    per_file: bool
    frame_offset: int | None
    fpm: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> VideoRecord:
        """Build a record from a row of the prepared ``videos`` table (a dict per row).

        Raises:
            FieldHarnessError: A column is missing or the row has no label.
        """
        missing = [name for name in VIDEO_COLUMNS if name not in row]
        if missing:
            raise FieldHarnessError(
                f"the VIRADA videos table lacks the column(s) {', '.join(missing)}; expected the "
                f"columns {', '.join(VIDEO_COLUMNS)} of the 'videos' config")
        labels = tuple(float(value) for value in (row["labels"] or ()))
        if not labels:
            raise FieldHarnessError(
                f"video {row['file_name']!r} has no label; prepare VIRADA with a label JSON or "
                "rain-gauge files that cover it")
        offset = row["frame_offset"]
        return cls(path=Path(row["video"]), file_name=str(row["file_name"]),
                   frame_count=int(row["frame_count"]), width=int(row["width"]),
                   height=int(row["height"]), labels=labels, per_file=bool(row["per_file"]),
                   frame_offset=None if offset is None else int(offset), fpm=int(row["fpm"]))


@dataclass(frozen=True)
class ClipTable:
    """The clips of a list of videos, one entry per clip in video order, then start order.

    Attributes:
        video: Index of the clip's video in the video list.
        start: First frame of the clip.
        minute: Minute index (into the video's labels) of the first frame.
        minute_id: ``minute`` made unique over the videos: the minute's position in the labels of
            all videos concatenated in list order.
        label: Binary label of the clip, 1 for rain (a minute label above 0).
        minute_labels: Binary labels of all videos concatenated, indexed by ``minute_id``.
    """

    video: np.ndarray
    start: np.ndarray
    minute: np.ndarray
    minute_id: np.ndarray
    label: np.ndarray
    minute_labels: np.ndarray

    def __len__(self) -> int:
        return int(self.start.size)


def clip_table(videos: Sequence[VideoRecord], *, length: int = CLIP_LENGTH,
               stride: int = CLIP_STRIDE) -> ClipTable:
    """List the clips of ``videos``: starts every ``stride`` frames, each ``length`` long.

    Labels above 0 are rain. With binary labels that is the label itself; with labels in
    millimetres it is the rule that makes binary labels from the gauge records.

    Raises:
        FieldHarnessError: ``length`` or ``stride`` below 1.
    """
    if length < 1 or stride < 1:
        raise FieldHarnessError(
            f"invalid clip length {length} or stride {stride}; expected integers >= 1")
    parts: dict[str, list[np.ndarray]] = {"video": [], "start": [], "minute": [], "minute_id": []}
    minute_labels: list[np.ndarray] = []
    first_id = 0
    for index, record in enumerate(videos):
        starts = clip_starts(record.frame_count, length, stride)
        labels = np.asarray(record.labels, dtype=np.float64)
        if record.per_file:
            minutes = np.zeros(starts.shape, dtype=np.int64)
        else:
            minutes = minute_of_frames(starts, frame_offset=record.frame_offset,
                                       fpm=record.fpm, num_labels=labels.size)
        parts["video"].append(np.full(starts.shape, index, dtype=np.int64))
        parts["start"].append(starts)
        parts["minute"].append(minutes)
        parts["minute_id"].append(minutes + first_id)
        minute_labels.append((labels > 0).astype(np.int64))
        first_id += labels.size
        if starts.size == 0:
            log.warning("%s has %d frames, fewer than one %d-frame clip, so it has no clips",
                        record.file_name, record.frame_count, length)

    def joined(name: str) -> np.ndarray:
        return np.concatenate(parts[name]) if parts[name] else np.zeros(0, dtype=np.int64)

    all_labels = (np.concatenate(minute_labels) if minute_labels
                  else np.zeros(0, dtype=np.int64))
    minute_id = joined("minute_id")
    return ClipTable(video=joined("video"), start=joined("start"), minute=joined("minute"),
                     minute_id=minute_id, label=all_labels[minute_id], minute_labels=all_labels)


# --- transforms on (T, H, W, 3) uint8 frames ---------------------------------------------------


def random_crop_flip(frames: np.ndarray, size: int, *, flip: bool = True,
                     generator: torch.Generator | None = None) -> np.ndarray:
    """Cut a random ``size`` x ``size`` window from every frame and flip it with probability 0.5.

    One window and one flip decision apply to all frames of the clip. The draws come from
    ``generator``, or from torch's global generator when it is ``None``.

    Args:
        frames: ``(T, H, W, C)`` frames with ``H`` and ``W`` at least ``size``.
        size: Side of the window in pixels.
        flip: Whether to flip horizontally at random; ``False`` never flips.
        generator: The torch generator to draw from.

    Raises:
        FieldHarnessError: A frame smaller than the window.
    """
    height, width = frames.shape[1:3]
    if height < size or width < size:
        raise FieldHarnessError(
            f"frames of {height} x {width} pixels are smaller than the {size} x {size} training "
            "crop; use videos of at least that size or a smaller crop_size")
    top = int(torch.randint(height - size + 1, (1,), generator=generator))
    left = int(torch.randint(width - size + 1, (1,), generator=generator))
    window = frames[:, top:top + size, left:left + size]
    if flip and float(torch.rand((), generator=generator)) < 0.5:
        window = window[:, :, ::-1]
    return window


def center_crop(frames: np.ndarray, size: int, *, center_width: int | None = None) -> np.ndarray:
    """Cut the ``size`` x ``size`` window at the centre of every frame.

    Args:
        frames: ``(T, H, W, C)`` frames.
        size: Side of the window in pixels.
        center_width: The width whose centre is used; the authors' test code takes the centre of
            the frame before it drops the last 2 columns. ``None`` uses the width of ``frames``.

    Raises:
        FieldHarnessError: A frame smaller than the window.
    """
    height, width = frames.shape[1:3]
    if height < size or width < size:
        raise FieldHarnessError(
            f"frames of {height} x {width} pixels are smaller than the {size} x {size} centre "
            "crop; use a smaller crop_size or the fcn mode")
    top = height // 2 - size // 2
    left = (width if center_width is None else center_width) // 2 - size // 2
    left = min(max(left, 0), width - size)
    return frames[:, top:top + size, left:left + size]


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """Convert ``(T, H, W, 3)`` uint8 RGB frames to a float ``[3, T, H, W]`` tensor in [0, 1]."""
    clip = torch.from_numpy(np.ascontiguousarray(frames))
    return clip.permute(3, 0, 1, 2).float().div_(255.0)


# --- dataset -----------------------------------------------------------------------------------


class ViradaClips(Dataset):
    """The clips of VIRADA videos as dicts ``{"clip", "target", "index"}``.

    ``clip`` is a float ``[3, T, H, W]`` tensor in [0, 1], ``target`` the binary label (int64,
    1 = rain) and ``index`` the clip's position in :attr:`table`.

    Args:
        videos: The videos, e.g. from :meth:`from_frame`.
        mode: ``train``, ``fcn`` or ``center_crop`` (see the module docstring).
        length: Frames per clip.
        stride: Frames between two clip starts.
        crop_size: Side of the training and centre crop in pixels.
        random_flip: Whether ``train`` mode flips at random.
        trim_width: Pixel columns dropped at the right edge in ``fcn`` and ``center_crop``
            mode (2 in the authors' code); ``train`` mode ignores it.

    Raises:
        UnknownNameError: An unknown mode.
        FieldHarnessError: Invalid sizes, or a video smaller than the crop.
    """

    def __init__(self, videos: Sequence[VideoRecord], *, mode: str = "train",
                 length: int = CLIP_LENGTH, stride: int = CLIP_STRIDE,
                 crop_size: int = CROP_SIZE, random_flip: bool = True, trim_width: int = 0):
        if mode not in MODES:
            raise UnknownNameError("VIRADA clip mode", mode, MODES)
        if crop_size < 1 or trim_width < 0:
            raise FieldHarnessError(
                f"invalid crop_size {crop_size} or trim_width {trim_width}; expected crop_size "
                ">= 1 and trim_width >= 0")
        self.videos = list(videos)
        self.mode = mode
        self.length = int(length)
        self.crop_size = int(crop_size)
        self.random_flip = bool(random_flip)
        self.trim_width = int(trim_width) if mode != "train" else 0
        self.table = clip_table(self.videos, length=length, stride=stride)
        self._paths = [str(record.path) for record in self.videos]
        self._check_sizes()

    @classmethod
    def from_frame(cls, frame: Any, **options: Any) -> ViradaClips:
        """Build the dataset from the prepared ``videos`` table (a polars DataFrame).

        Args:
            frame: Rows of the ``videos`` config, e.g. ``load_dataset("virada", split="train",
                format="polars")``.
            **options: Passed to :class:`ViradaClips`.
        """
        return cls(records_from_rows(frame.iter_rows(named=True)), **options)

    def _check_sizes(self) -> None:
        used = np.unique(self.table.video)
        for index in used:
            record = self.videos[int(index)]
            width = record.width - self.trim_width
            needs_crop = self.mode in ("train", "center_crop")
            if needs_crop and min(record.height, width) < self.crop_size:
                raise FieldHarnessError(
                    f"video {record.file_name} has {record.width} x {record.height} pixel frames, "
                    f"too small for the {self.crop_size} x {self.crop_size} crop of {self.mode} "
                    "mode; choose a smaller crop_size")
            if width < 1:
                raise FieldHarnessError(
                    f"video {record.file_name} is {record.width} pixels wide, so dropping "
                    f"{self.trim_width} columns leaves nothing; lower trim_width")

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.table):
            raise IndexError(f"clip index {index} out of range for {len(self.table)} clips")
        video = int(self.table.video[index])
        start = int(self.table.start[index])
        frames = read_clip(self._paths[video], start, self.length)
        frames = self._transform(frames)
        return {"clip": to_tensor(frames),
                "target": torch.tensor(int(self.table.label[index]), dtype=torch.int64),
                "index": index}

    def _transform(self, frames: np.ndarray) -> np.ndarray:
        if self.mode == "train":
            return random_crop_flip(frames, self.crop_size, flip=self.random_flip)
        full_width = frames.shape[2]
        if self.trim_width:
            frames = frames[:, :, :full_width - self.trim_width]
        if self.mode == "center_crop":
            return center_crop(frames, self.crop_size, center_width=full_width)
        return frames

    def input_size(self, video: int) -> tuple[int, int]:
        """Return the (height, width) of the clips of video number ``video`` in this mode."""
        if self.mode != "fcn":
            return self.crop_size, self.crop_size
        record = self.videos[video]
        return record.height, record.width - self.trim_width

    def clips_by_input_size(self) -> dict[tuple[int, int], np.ndarray]:
        """Group the clip indices by the (height, width) of their clips.

        Clips of different sizes cannot share a batch, and in ``fcn`` mode videos of different
        frame sizes give clips of different sizes.
        """
        sizes = np.array([self.input_size(video) for video in range(len(self.videos))],
                         dtype=np.int64).reshape(-1, 2)
        groups: dict[tuple[int, int], list[int]] = {}
        for index, video in enumerate(self.table.video):
            groups.setdefault((int(sizes[video, 0]), int(sizes[video, 1])), []).append(index)
        return {size: np.asarray(indices, dtype=np.int64) for size, indices in groups.items()}

    def clip_rows(self) -> dict[str, np.ndarray | list[str]]:
        """Return the clip table as columns: file_name, start, minute, minute_id, label."""
        names = [self.videos[int(video)].file_name for video in self.table.video]
        return {"file_name": names, "start": self.table.start, "minute": self.table.minute,
                "minute_id": self.table.minute_id, "label": self.table.label}


def records_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[VideoRecord]:
    """Build :class:`VideoRecord` objects from rows of the prepared ``videos`` table."""
    return [VideoRecord.from_row(row) for row in rows]
