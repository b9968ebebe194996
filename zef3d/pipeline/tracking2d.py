"""2D tracklets per view, as the official ``TrackerVisual.py`` builds them.

Each frame's detections are assigned to the live tracklets with the Hungarian algorithm on a
square cost matrix padded with the view's "ghost" threshold. A detection may so stay unassigned
and start a tracklet, and a tracklet may miss a frame. The cost is the distance from a
detection's centre to the tracklet's last centre:

* top view: Euclidean distance in downsampled pixels (``top_ghost_threshold``, 15 in
  ``dummy_settings.ini``);
* front view: Mahalanobis distance under the covariance of the tracklet's last blob
  (``front_ghost_threshold``, 0.5), which is scale-free.

An assignment at or above the threshold is no match. A tracklet that missed more than
``max_kill_count`` consecutive frames ends. Detections below ``min_confidence`` are dropped
first. Like the official tracker, there is no motion model: the gate is centred on the last
position.

Difference from the official code: the top view associates blob centres, where the official
tracker associates the head keypoint. Which end of a blob is the head can change from frame to
frame, so after tracking :func:`orient_heads` picks per frame the end the fish moves towards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from zef3d.pipeline import PipelineSettings
from zef3d.pipeline.detection import Detections

__all__ = ["Tracklet2D", "orient_heads", "track_view"]

_REGULARISER = 1e-3  # added to the diagonal of a singular covariance, as the official code
_MOTION_WINDOW = 5
"""Frames on each side over which :func:`orient_heads` measures the direction of motion."""


@dataclass
class Tracklet2D:
    """A 2D tracklet of one view: frames in increasing order and the detection in each."""

    id: int
    view: str
    frames: list[int] = field(default_factory=list)
    centres: list[np.ndarray] = field(default_factory=list)
    """Per frame the ``(2,)`` centre of the detection, the position the tracker associates."""
    points: list[np.ndarray] = field(default_factory=list)
    """Per frame the ``(3, 2)`` candidate points of the detection (keypoint first)."""
    boxes: list[np.ndarray] = field(default_factory=list)
    precision: np.ndarray = field(default_factory=lambda: np.eye(2))
    """Inverse covariance of the last detection (front-view distance)."""
    missed: int = 0

    def frame_array(self) -> np.ndarray:
        """Return the frames as an ``int64`` array."""
        return np.asarray(self.frames, np.int64)

    def point_array(self) -> np.ndarray:
        """Return the candidate points as an ``(n, 3, 2)`` array."""
        return np.asarray(self.points, np.float64).reshape(-1, 3, 2)

    def __len__(self) -> int:
        return len(self.frames)


def _inverse(covariance: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(covariance)
    except np.linalg.LinAlgError:
        return np.linalg.inv(covariance + _REGULARISER * np.eye(2))


class _Tracker:
    def __init__(self, view: str, settings: PipelineSettings):
        self.view = view
        self.settings = settings
        if view == "top":
            self.threshold = settings.top_ghost_threshold
        else:
            self.threshold = settings.front_ghost_threshold
        self.live: list[Tracklet2D] = []
        self.ended: list[Tracklet2D] = []
        self.count = 0

    def _costs(self, keypoints: np.ndarray) -> np.ndarray:
        size = max(len(keypoints), len(self.live))
        costs = np.full((size, size), self.threshold, np.float64)
        if len(keypoints) == 0 or not self.live:
            return costs
        last = np.stack([tracklet.centres[-1] for tracklet in self.live])
        difference = keypoints[:, None, :] - last[None, :, :]
        if self.view == "top":
            values = np.linalg.norm(difference, axis=2) / self.settings.downsample_factor
        else:
            precisions = np.stack([tracklet.precision for tracklet in self.live])
            squared = np.einsum("dti,tij,dtj->dt", difference, precisions, difference)
            values = np.sqrt(np.maximum(squared, 0.0))
        costs[: len(keypoints), : len(self.live)] = values
        return costs

    def update(self, frame: int, detections: Detections) -> None:
        from scipy.optimize import linear_sum_assignment

        keep = detections.confidences >= self.settings.min_confidence
        detections = detections.select(keep)
        keypoints = detections.centres
        for tracklet in self.live:
            tracklet.missed += 1

        costs = self._costs(keypoints)
        rows, columns = linear_sum_assignment(costs)
        finished = []
        live_count = len(self.live)
        for row, column in zip(rows, columns, strict=True):
            if costs[row, column] < self.threshold:
                self._extend(self.live[column], frame, detections, row)
            elif row < len(detections):
                tracklet = Tracklet2D(self.count, self.view)
                self.count += 1
                self._extend(tracklet, frame, detections, row)
                self.live.append(tracklet)
            elif column < live_count and self.live[column].missed > self.settings.max_kill_count:
                finished.append(column)
        for column in sorted(finished, reverse=True):
            self.ended.append(self.live.pop(column))

    @staticmethod
    def _extend(tracklet: Tracklet2D, frame: int, detections: Detections, row: int) -> None:
        tracklet.frames.append(frame)
        tracklet.centres.append(detections.centres[row])
        tracklet.points.append(detections.points[row])
        tracklet.boxes.append(detections.boxes[row])
        tracklet.precision = _inverse(detections.covariances[row])
        tracklet.missed = 0


def track_view(view: str, detections: Detections, settings: PipelineSettings) -> list[Tracklet2D]:
    """Link one view's detections into 2D tracklets, ordered by id (order of creation).

    Frames without detections still age the live tracklets, so a gap longer than
    ``max_kill_count`` frames ends a tracklet whatever the detections around it.
    """
    tracker = _Tracker(view, settings)
    groups = detections.by_frame()
    if not groups:
        return []
    for frame in range(min(groups), max(groups) + 1):
        rows = groups.get(frame)
        tracker.update(frame, detections.select(rows) if rows is not None
                       else Detections.empty())
    return sorted(tracker.ended + tracker.live, key=lambda tracklet: tracklet.id)


def orient_heads(tracklet: Tracklet2D, *, window: int = _MOTION_WINDOW,
                 min_motion: float = 0.5) -> Tracklet2D:
    """Make the blob end that the fish moves towards the keypoint of each detection.

    Per frame, the direction of motion is the displacement of the centre from ``window``
    frames before to ``window`` frames after (within the tracklet). Fish swim head first, so
    the end further along that direction is the head; the candidate points become
    ``(head, tail, centre)``. Where the displacement is shorter than ``min_motion`` pixels the
    detector's points stay as they are. The blob ends are the first two candidate points in
    the top view and the last two in the front view (see :mod:`zef3d.pipeline.detection`).
    The tracklet is changed in place and returned.
    """
    if len(tracklet) < 2:
        return tracklet
    first, second = (0, 1) if tracklet.view == "top" else (1, 2)
    centres = np.asarray(tracklet.centres, np.float64)
    points = tracklet.point_array()
    count = len(centres)
    later = centres[np.minimum(np.arange(count) + window, count - 1)]
    earlier = centres[np.maximum(np.arange(count) - window, 0)]
    motion = later - earlier
    moving = np.linalg.norm(motion, axis=1) >= min_motion
    along_first = np.einsum("ij,ij->i", points[:, first] - centres, motion)
    along_second = np.einsum("ij,ij->i", points[:, second] - centres, motion)
    for index in np.flatnonzero(moving):
        head, tail = points[index, first], points[index, second]
        if along_second[index] > along_first[index]:
            head, tail = tail, head
        tracklet.points[index] = np.stack([head, tail, centres[index]])
    return tracklet
