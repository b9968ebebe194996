"""Video decoding with PyAV: probing, frame iteration, frame-exact clip reads.

Frame indices are 0-based and count decoded frames in presentation order. A seek goes to the
keyframe at or before the requested frame and decodes forward, and each decoded frame's index is
computed from its timestamp, so a clip read returns the same frames as decoding from the start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import DataFormatError

if TYPE_CHECKING:  # av is imported where a video is opened
    import av.container

__all__ = ["VideoInfo", "clip_starts", "iter_frames", "probe", "read_clip"]

log = logging.getLogger(__name__)

SEEK_BACKOFF_SECONDS = 2.0
"""How much earlier to seek again when a seek lands after the requested frame."""


@dataclass
class VideoInfo:
    """Stream properties of one video."""

    path: Path
    fps: float
    frame_count: int
    width: int
    height: int


def probe(path: str | Path) -> VideoInfo:
    """Read the frame rate, frame count and size of the first video stream of ``path``.

    The frame count is the container's when it states one (MP4 does). Otherwise (Matroska) the
    video packets are counted without decoding, and a count more than 1 % (at least 2 frames)
    short of the container's duration is an error.

    Raises:
        DataFormatError: the file cannot be opened or decoded, has no video stream, or is cut off.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    with _open(path) as container:
        stream = _video_stream(container, path)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise DataFormatError("video stream states no frame rate", path=path,
                                  expected="a constant frame rate, e.g. 30 fps")
        count = int(stream.frames or 0)
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        if count <= 0:
            count = _count_frames(container, stream, path)
            _check_duration(container, count, float(rate), path)
    return VideoInfo(path=path, fps=float(rate), frame_count=count, width=width, height=height)


def iter_frames(path: str | Path, *, gray: bool = False, start: int = 0,
                stop: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames ``start .. stop - 1`` of ``path`` (to the end when ``stop`` is None).

    Args:
        path: The video.
        gray: Yield HxW grey images (OpenCV's RGB to grey weights, 0.299 R + 0.587 G +
            0.114 B, as the authors' C++ Bossu detector converts its frames) instead of HxWx3
            RGB images.
        start: First frame index, ``>= 0``.
        stop: Frame index after the last one yielded.

    Raises:
        DataFormatError: the file cannot be opened or a frame fails to decode.
        ValueError: ``start`` is negative or ``stop`` is below ``start``.
    """
    path = Path(path)
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if stop is not None and stop < start:
        raise ValueError(f"stop ({stop}) must be >= start ({start})")
    if stop is not None and stop == start:
        return
    to_gray = _gray_converter() if gray else None

    with _open(path) as container:
        stream = _video_stream(container, path)
        for index, frame in _decode_from(container, stream, path, start):
            if stop is not None and index >= stop:
                break
            image = frame.to_ndarray(format="rgb24")
            yield to_gray(image) if to_gray is not None else image


def read_clip(path: str | Path, start: int, length: int = 16) -> np.ndarray:
    """Read the ``length`` frames from ``start`` as a (T, H, W, 3) uint8 RGB array.

    Raises:
        ValueError: the video ends before ``start + length`` frames.
        DataFormatError: the file cannot be opened or decoded.
    """
    frames = list(iter_frames(path, start=start, stop=start + length))
    if len(frames) < length:
        raise ValueError(f"{path}: clip of {length} frames from frame {start} runs past the end "
                         f"of the video ({start + len(frames)} frames decoded)")
    return np.stack(frames)


def clip_starts(frame_count: int, length: int = 16, stride: int = 8) -> np.ndarray:
    """Return the start frames ``0, stride, 2 * stride, ...`` of the clips that fit the video.

    NOTE: the authors' loader (NVVL) applies the stride to the clip index over all videos of a
    folder in turn, so its starts in a later video depend on the lengths of earlier ones. Here
    the clips of every video start at frame 0.
    """
    if length < 1 or stride < 1:
        raise ValueError(f"length and stride must be >= 1, got {length} and {stride}")
    last = frame_count - length
    if last < 0:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, last + 1, stride, dtype=np.int64)


def _open(path: Path) -> av.container.InputContainer:
    import av

    try:
        return av.open(str(path), mode="r")
    except FileNotFoundError:
        raise
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise DataFormatError(f"cannot open video ({error})", path=path,
                              expected="an H.264/H.265 video in an MP4 or Matroska container"
                              ) from None


def _video_stream(container: av.container.InputContainer, path: Path) -> Any:
    if not container.streams.video:
        raise DataFormatError("file has no video stream", path=path,
                              expected="a video in an MP4 or Matroska container")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _count_frames(container: av.container.InputContainer, stream: Any, path: Path) -> int:
    """Count the stream's packets, one per frame for H.264 and H.265, without decoding them."""
    import av

    count = 0
    try:
        for packet in container.demux(stream):
            if packet.size > 0:
                count += 1
    except av.FFmpegError as error:
        raise DataFormatError(f"reading the video failed after {count} frames ({error})",
                              path=path, expected="a complete, undamaged video file") from None
    return count


def _check_duration(container: av.container.InputContainer, count: int, fps: float,
                    path: Path) -> None:
    """Raise when fewer frames decode than the container's duration implies (a cut-off file)."""
    if container.duration is None:
        return
    expected = round(container.duration / 1_000_000 * fps)
    if expected - count > max(2, 0.01 * expected):
        raise DataFormatError(
            f"the file has {count} frames, but the container states a duration of "
            f"{container.duration / 1_000_000:.3f} s ({expected} frames at {fps:g} fps)",
            path=path, expected="a complete video file (is it truncated?)")


def _decoded(container: av.container.InputContainer, stream: Any, path: Path,
             first_index: int = 0) -> Iterator[Any]:
    import av

    try:
        for frame in container.decode(stream):
            yield frame
            first_index += 1
    except av.FFmpegError as error:
        raise DataFormatError(f"decoding failed after frame {first_index - 1} ({error})",
                              path=path, expected="a complete, undamaged video file") from None


def _decode_from(container: av.container.InputContainer, stream: Any, path: Path,
                 start: int) -> Iterator[tuple[int, Any]]:
    """Yield (index, frame) pairs from frame ``start`` on, seeking when ``start > 0``."""
    if start == 0:
        for index, frame in enumerate(_decoded(container, stream, path)):
            yield index, frame
        return

    # The first frame's timestamp anchors the timestamp to index conversion.
    first = next(iter(_decoded(container, stream, path)), None)
    if first is None:
        return
    rate = stream.average_rate or stream.guessed_rate
    time_base = stream.time_base
    if first.pts is None or not rate or time_base is None:
        log.debug("%s: no timestamps to seek with, decoding from the start", path)
        yield from _decode_sequentially(path, start)
        return

    def index_of(pts: int) -> int:
        return round(Fraction(pts - first.pts) * time_base * Fraction(rate))

    seconds_back = 0.0
    while True:
        target_seconds = max(0.0, start / float(rate) - seconds_back)
        target = first.pts + int(target_seconds / float(time_base))
        container.seek(target, stream=stream, backward=True, any_frame=False)
        frames = _decoded(container, stream, path)
        landed = next(frames, None)
        if landed is None or landed.pts is None:
            yield from _decode_sequentially(path, start)
            return
        index = index_of(landed.pts)
        if index <= start:
            break
        if target_seconds == 0.0:
            # A seek to the first frame landed after it: the timestamps cannot be trusted.
            yield from _decode_sequentially(path, start)
            return
        seconds_back += SEEK_BACKOFF_SECONDS

    if index >= start:
        yield index, landed
    for frame in frames:
        if frame.pts is None:
            raise DataFormatError("decoded frame has no timestamp after a seek", path=path,
                                  expected="timestamps on every frame")
        index = index_of(frame.pts)
        if index >= start:
            yield index, frame


def _decode_sequentially(path: Path, start: int) -> Iterator[tuple[int, Any]]:
    with _open(path) as container:
        stream = _video_stream(container, path)
        for index, frame in enumerate(_decoded(container, stream, path)):
            if index >= start:
                yield index, frame


def _gray_converter() -> Any:
    import cv2

    def convert(image: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)

    return convert
