"""The naive background-subtraction detector of the 3D-ZeF baseline (official ``BgDetector.py``).

Per frame and view, the detector downsamples by ``downsample_factor`` and takes the largest
absolute difference to the median background over the colour channels, stretched to 0-255. It
median-blurs and thresholds that image: the intermodes threshold in the top view and the
maximum-entropy threshold in the front view, as the official code. Then it fills holes (top
view) and labels the connected components. Components larger than ``min_blob_size`` pixels
are kept, at most ``2 * n_fish`` of them, largest first. While there are fewer blobs than fish,
the largest blob is split in two by 2-means on its pixel coordinates. The official top-view
detector keeps touching fish apart through the several skeleton end points of their joint blob
instead, and this split replaces that here.

Each kept blob gives one detection with three candidate points:

* top view: the head end of the blob, the tail end and the centre. The official code takes
  end points of the blob's skeleton and keeps the widest as the head. Here the two ends are the
  extreme pixels along the blob's principal axis, and the head is the end with more blob pixels
  in a ``window_size`` window. On a fish-shaped blob both give the same two ends without a
  skeletonisation dependency.
* front view: the centre and the middles of the two extreme edges along the longer side of the
  bounding box, the ``c``, ``l`` and ``r`` points of the official code.

:func:`zef3d.pipeline.tracking2d.orient_heads` later reorders the candidates by the direction
of motion, and :mod:`zef3d.pipeline.matching` chooses among them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zef3d.pipeline import PipelineSettings

__all__ = [
    "Detections",
    "NaiveDetector",
    "difference_image",
    "intermodes_threshold",
    "max_entropy_threshold",
]

_INTERMODES_MAX_ITERATIONS = 10_000
_FIELDS = ("frames", "centres", "points", "boxes", "covariances", "confidences")


@dataclass
class Detections:
    """The detections of one view, one row per detection, in full-resolution pixels."""

    frames: np.ndarray
    """``(N,)`` 1-based frame numbers."""
    centres: np.ndarray
    """``(N, 2)`` blob or box centres (x, y), the positions the 2D tracker associates."""
    points: np.ndarray
    """``(N, 3, 2)`` candidate points (x, y): the keypoint first, then two alternatives."""
    boxes: np.ndarray
    """``(N, 4)`` axis-aligned boxes: left, top, width, height."""
    covariances: np.ndarray
    """``(N, 2, 2)`` covariance of the blob's pixel coordinates (identity for box detectors)."""
    confidences: np.ndarray
    """``(N,)`` detector confidence; 1.0 for the naive detector."""

    def __len__(self) -> int:
        return len(self.frames)

    @classmethod
    def empty(cls) -> Detections:
        """Return detections with no rows."""
        return cls(np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros((0, 3, 2)),
                   np.zeros((0, 4)), np.zeros((0, 2, 2)), np.zeros(0))

    @classmethod
    def concatenate(cls, parts: Sequence[Detections]) -> Detections:
        """Stack the rows of ``parts`` in order."""
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(part, name) for part in parts])
                     for name in _FIELDS))

    def select(self, mask: np.ndarray) -> Detections:
        """Return the rows where ``mask`` is true (or the rows at the given indices)."""
        return Detections(*(getattr(self, name)[mask] for name in _FIELDS))

    def by_frame(self) -> dict[int, np.ndarray]:
        """Return frame number -> indices of that frame's rows."""
        if len(self.frames) == 0:
            return {}
        order = np.argsort(self.frames, kind="stable")
        frames, starts = np.unique(self.frames[order], return_index=True)
        groups = np.split(order, starts[1:])
        return {int(frame): group for frame, group in zip(frames, groups, strict=True)}


def difference_image(frame: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Return the largest absolute channel difference to ``background``, stretched to 0-255.

    A frame equal to its background gives an all-zero image.
    """
    diff = np.abs(frame.astype(np.int16) - background.astype(np.int16))
    if diff.ndim == 3:
        diff = diff.max(axis=2)
    low, high = int(diff.min()), int(diff.max())
    if high == low:
        return np.zeros(diff.shape, np.uint8)
    return (255.0 * (diff - low) / (high - low)).astype(np.uint8)


def _histogram(image: np.ndarray) -> np.ndarray:
    # The official code sets two pixels to 0 and 255 so that the histogram spans 0-255.
    hist = np.bincount(image.ravel(), minlength=256).astype(np.float64)[:256]
    hist[0] += 1
    hist[255] += 1
    return hist


def _local_maxima(hist: np.ndarray) -> np.ndarray:
    inner = hist[1:-1]
    return np.flatnonzero((hist[:-2] < inner) & (hist[2:] < inner)) + 1


def intermodes_threshold(image: np.ndarray) -> float:
    """Return the intermodes threshold of a ``uint8`` image (ImageJ's "Intermodes").

    The histogram is smoothed with a 3-bin mean filter until it has exactly two local maxima,
    and the threshold is the floor of their mean. Pixels above it are foreground. When no
    smoothing makes it bimodal, the mean of the remaining maxima is used, as in the official
    code, and 255 (no foreground) when none remain.
    """
    hist = _histogram(image)
    kernel = np.ones(3) / 3.0
    for _ in range(_INTERMODES_MAX_ITERATIONS):
        if len(_local_maxima(hist)) == 2:
            break
        hist = np.convolve(hist, kernel, mode="same")
    peaks = _local_maxima(hist)
    if len(peaks) == 0:
        return 255.0
    return float(np.floor(peaks.mean()))


def max_entropy_threshold(image: np.ndarray) -> float:
    """Return the maximum-entropy threshold of a ``uint8`` image (Kapur et al., ImageJ).

    The threshold ``t`` maximises the sum of the entropies of the histogram below and above it.
    Pixels above ``t`` are foreground.
    """
    hist = _histogram(image)
    p = hist / hist.sum()
    cumulative = np.cumsum(p)
    q = p + 1e-19  # as the official code, so that log(0) does not occur
    plogp = q * np.log(q)
    s1, s0 = np.cumsum(plogp), np.cumsum(q)
    black_p = np.where(cumulative > 0, cumulative, 1.0)
    black = np.abs(s1 / black_p - s0 / black_p * np.log(black_p))
    white_p = 1.0 - cumulative
    safe_white = np.where(white_p > 0, white_p, 1.0)
    white = np.abs((s1[-1] - s1) / safe_white
                   - (s0[-1] - s0) / safe_white * np.log(safe_white))
    white[-1] = 0.0
    total = np.where(p > 0, black + white, 0.0)
    return float(np.argmax(total))


def _two_means(pixels: np.ndarray, iterations: int = 10) -> list[np.ndarray]:
    """Split a blob's pixel coordinates into two clusters (2-means from the principal-axis ends).

    Starting from the two extreme pixels along the principal axis makes the split
    deterministic. It separates fish that touch end to end or cross at an angle. Two fish
    lying side by side along their whole length are cut into a front and a back half instead.
    """
    centre = pixels.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(pixels.T))
    projection = (pixels - centre) @ vectors[:, np.argmax(values)]
    means = np.stack([pixels[np.argmin(projection)], pixels[np.argmax(projection)]])
    labels = np.zeros(len(pixels), bool)
    for _ in range(iterations):
        distances = np.linalg.norm(pixels[:, None, :] - means[None], axis=2)
        new_labels = distances[:, 1] < distances[:, 0]
        if new_labels.all() or not new_labels.any():
            break
        means = np.stack([pixels[~new_labels].mean(axis=0), pixels[new_labels].mean(axis=0)])
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
    if labels.all() or not labels.any():
        return [pixels]
    return [pixels[~labels], pixels[labels]]


class NaiveDetector:
    """Background-subtraction detector of one view.

    Args:
        view: ``"top"`` or ``"front"``.
        background: The view's median background (BGR or grey, full resolution).
        settings: The pipeline settings (``downsample_factor``, ``blur_size``,
            ``min_blob_size``, ``window_size``, ``n_fish``).
    """

    def __init__(self, view: str, background: np.ndarray, settings: PipelineSettings):
        if view not in ("top", "front"):
            raise ValueError(f"view {view!r}; expected 'top' or 'front'")
        self.view = view
        self.settings = settings
        step = settings.downsample_factor
        self.background = background[::step, ::step]

    def foreground(self, frame: np.ndarray) -> np.ndarray:
        """Return the boolean foreground mask of ``frame`` at the downsampled resolution."""
        import cv2
        from scipy import ndimage

        step = self.settings.downsample_factor
        diff = difference_image(frame[::step, ::step], self.background)
        blurred = cv2.medianBlur(diff, self.settings.blur_size) if self.settings.blur_size > 1 \
            else diff
        if self.view == "top":
            mask = blurred > intermodes_threshold(blurred)
            return ndimage.binary_fill_holes(mask)
        return blurred > max_entropy_threshold(blurred)

    def detect(self, frame: np.ndarray, frame_number: int) -> Detections:
        """Detect the fish in one frame (BGR or grey ``uint8``)."""
        import cv2

        mask = self.foreground(frame)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
        areas = stats[1:, cv2.CC_STAT_AREA]
        order = np.argsort(-areas, kind="stable")
        order = order[areas[order] > self.settings.min_blob_size]
        if self.settings.n_fish is not None:
            order = order[: 2 * self.settings.n_fish]

        blobs = []
        for label in order:
            left, top, width, height = (int(value) for value in stats[label + 1, :4])
            ys, xs = np.nonzero(labels[top:top + height, left:left + width] == label + 1)
            blobs.append(np.stack([xs + left, ys + top], axis=1).astype(np.float64))
        blobs = self._split_merged(blobs)

        rows = [self._blob(pixels) for pixels in blobs]
        if not rows:
            return Detections.empty()
        centres, points, boxes, covariances = (np.stack(part)
                                               for part in zip(*rows, strict=True))
        return Detections(np.full(len(rows), frame_number, np.int64), centres, points, boxes,
                          covariances, np.ones(len(rows)))

    def _split_merged(self, blobs: list[np.ndarray]) -> list[np.ndarray]:
        """Split the largest blobs in two while there are fewer blobs than fish.

        A blob is split only when it is at least 1.5 times the median area of the others (or is
        the only blob), so a frame that misses a fish keeps its single-fish blobs whole.
        """
        n_fish = self.settings.n_fish
        if n_fish is None:
            return blobs
        blobs = sorted(blobs, key=len, reverse=True)
        while 0 < len(blobs) < n_fish:
            largest = blobs[0]
            others = [len(blob) for blob in blobs[1:]]
            if others and len(largest) < 1.5 * float(np.median(others)):
                break
            if len(largest) < 2 * max(self.settings.min_blob_size, 2):
                break
            parts = _two_means(largest)
            if len(parts) == 1:
                break
            blobs = sorted([*parts, *blobs[1:]], key=len, reverse=True)
        return blobs

    def _blob(self, coordinates: np.ndarray) -> tuple[np.ndarray, ...]:
        """Return the centre, candidate points, box and covariance of a blob's pixels."""
        xs, ys = coordinates[:, 0], coordinates[:, 1]
        width = int(xs.max() - xs.min() + 1)
        height = int(ys.max() - ys.min() + 1)
        centre = coordinates.mean(axis=0)
        covariance = np.cov(coordinates.T) if len(coordinates) > 1 else np.eye(2)

        if self.view == "top":
            first, second = self._principal_ends(coordinates, covariance, centre)
            points = np.stack([first, second, centre])
        else:
            first, second = self._box_ends(xs, ys, width, height)
            points = np.stack([centre, first, second])

        step = self.settings.downsample_factor
        # A downsampled pixel i covers full-resolution pixels i*step to i*step + step - 1.
        box = np.array([xs.min(), ys.min(), width, height], np.float64) * step
        return centre * step, points * step, box, covariance * step**2

    def _principal_ends(self, coordinates: np.ndarray, covariance: np.ndarray,
                        centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the head end and the tail end along the principal axis of a blob."""
        values, vectors = np.linalg.eigh(covariance)
        axis = vectors[:, np.argmax(values)]
        projection = (coordinates - centre) @ axis
        ends = [coordinates[projection <= projection.min() + 1.0].mean(axis=0),
                coordinates[projection >= projection.max() - 1.0].mean(axis=0)]
        half = self.settings.window_size / 2.0
        widths = [np.count_nonzero(np.all(np.abs(coordinates - end) <= half, axis=1))
                  for end in ends]
        if widths[1] > widths[0]:
            ends.reverse()
        return ends[0], ends[1]

    @staticmethod
    def _box_ends(xs: np.ndarray, ys: np.ndarray, width: int,
                  height: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the middles of the two extreme edges along the longer side of the box."""
        if width > height:
            low, high = xs.min(), xs.max()
            return (np.array([low, ys[xs == low].mean()], np.float64),
                    np.array([high, ys[xs == high].mean()], np.float64))
        low, high = ys.min(), ys.max()
        return (np.array([xs[ys == low].mean(), low], np.float64),
                np.array([xs[ys == high].mean(), high], np.float64))


def detect_sequence(view: str, frames: Sequence, background: np.ndarray,
                    settings: PipelineSettings, *, reader=None, progress: bool = True,
                    first_frame: int = 1) -> Detections:
    """Run the naive detector over a sequence's frames of one view.

    Args:
        view: ``"top"`` or ``"front"``.
        frames: Frame images (arrays) or paths, in frame order.
        background: The view's median background.
        settings: The pipeline settings.
        reader: Reads a path into an array (default: OpenCV, BGR).
        progress: Show a tqdm bar over the frames.
        first_frame: Frame number of ``frames[0]``.
    """
    from tqdm.auto import tqdm

    from zef3d.pipeline.background import read_frame

    reader = reader or read_frame
    detector = NaiveDetector(view, background, settings)
    parts = []
    for index, frame in enumerate(tqdm(frames, desc=f"detect {view}", unit="frame",
                                       disable=not progress, leave=False)):
        image = frame if isinstance(frame, np.ndarray) else reader(frame)
        parts.append(detector.detect(image, first_frame + index))
    return Detections.concatenate(parts)
