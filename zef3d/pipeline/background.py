"""Median background image of a camera view, as the official ``ExtractBackground.py`` makes it.

The official code samples ``n_median`` frames (``[BackgroundExtractor] n_median`` in
``settings.ini``, 80 in ``dummy_settings.ini``) at uniform intervals through the video, leaving
out the first and the last frame position, and takes the per-pixel median.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from harness.errors import DataFormatError

__all__ = ["background_from_paths", "median_background", "sample_indices"]


def sample_indices(frame_count: int, n_median: int) -> np.ndarray:
    """Return the 0-based frame indices of the background samples.

    The samples are ``n_median`` uniformly spaced positions strictly between 0 and
    ``frame_count`` (``linspace(0, frame_count, n_median + 2)[1:-1]`` truncated to integers, the
    official choice), without repeats. A sequence shorter than ``n_median`` frames gives fewer
    samples.

    Raises:
        ValueError: ``frame_count`` or ``n_median`` is below 1.
    """
    if frame_count < 1 or n_median < 1:
        raise ValueError(f"frame_count={frame_count} and n_median={n_median}; expected both >= 1")
    positions = np.linspace(0, frame_count, n_median + 2)[1:-1].astype(np.int64)
    return np.unique(np.clip(positions, 0, frame_count - 1))


def median_background(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Return the per-pixel median of ``frames`` as ``uint8`` (rounded half to even).

    Raises:
        ValueError: No frames, or frames of different shapes.
    """
    if len(frames) == 0:
        raise ValueError("median_background needs at least one frame")
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise ValueError(f"frames of different shapes {sorted(shapes)}; expected one shape")
    median = np.median(np.stack(frames), axis=0)
    return np.clip(np.rint(median), 0, 255).astype(np.uint8)


def read_frame(path: Path) -> np.ndarray:
    """Read a frame as a BGR ``uint8`` array.

    Raises:
        DataFormatError: The file cannot be decoded as an image.
    """
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataFormatError("the frame cannot be read as an image", path=path,
                              expected="a JPEG or PNG frame")
    return image


def background_from_paths(paths: Sequence[Path], n_median: int,
                          reader: Callable[[Path], np.ndarray] = read_frame) -> np.ndarray:
    """Read the sampled frames of one view and return their median image."""
    indices = sample_indices(len(paths), n_median)
    return median_background([reader(paths[index]) for index in indices])
