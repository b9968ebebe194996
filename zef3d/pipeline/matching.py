"""2D tracklets of the two views paired into 3D tracklets (official ``TrackletMatching.py``).

1. Every top-view tracklet is paired with every front-view tracklet that shares frames with it
   (tracklets shorter than ``tracklet_min_length`` are left out). In each shared frame the
   pair's keypoints are triangulated. For blob detections the front view also tries other
   candidate points. With ``orient_by_motion`` off, it tries the blob centre and both ends and
   keeps the lowest reprojection error, as the official code does. With it on, the tail end
   replaces the head only where it is better by more than ``reprojection_err_mean``. Frames
   whose 3D point lies outside the aquarium are left out. The pair's weight is
   ``median(1 - F(error)) * kept frames / frames of either tracklet``. ``F`` is the CDF of an
   exponential distribution of mean ``reprojection_err_mean``, and ``error`` is the sum of the
   two views' reprojection errors in pixels. Pairs of weight 0.001 or less are dropped.
2. Two pairs that share a 2D tracklet and follow each other in time without overlap get an
   edge of weight ``(w1 + w2) * (1 - G(speed)) * exp(-gap / temporal_penalty)``. ``G`` is an
   exponential CDF of mean ``movement_err_mean + movement_err_std`` (cm/s), and ``speed`` is
   the 3D distance from the first pair's last to the second pair's first point over the gap.
3. The highest-scoring path through this directed acyclic graph becomes a 3D tracklet, every
   pair that uses one of its 2D tracklets is removed, and this repeats until no pair is left.

Difference from the official code: a path scores its first pair's weight plus its edge weights.
The official code takes ``networkx.dag_longest_path``, which counts only edge weights. It so
picks an arbitrary single pair when the graph has no edges, a case that the first pair's
weight decides here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from zef3d.pipeline import PipelineSettings
from zef3d.pipeline.tracking2d import Tracklet2D

__all__ = ["Tracklet3D", "match_tracklets"]

_MIN_PAIR_WEIGHT = 0.001


@dataclass
class Tracklet3D:
    """A 3D tracklet: frames in increasing order and the head position (cm) in each."""

    frames: np.ndarray
    positions: np.ndarray
    """``(n, 3)`` positions in centimetres."""
    errors: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """``(n,)`` summed reprojection errors in pixels (NaN where interpolated)."""
    sources: tuple[tuple[int, int], ...] = ()
    """The (top, front) 2D tracklet ids of the pairs it was built from."""

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class _Pair:
    top: int
    front: int
    weight: float
    track: Tracklet3D


def _exponential_survival(values: np.ndarray, mean: float) -> np.ndarray:
    """``1 - CDF`` of an exponential distribution with the given mean (scipy's ``expon``)."""
    values = np.maximum(np.asarray(values, np.float64), 0.0)
    return np.exp(-values / mean)


def _inside(points: np.ndarray, settings: PipelineSettings) -> np.ndarray:
    upper = np.array([settings.aquarium_width, settings.aquarium_depth,
                      settings.aquarium_height])
    return np.all((points >= 0.0) & (points <= upper), axis=1) & np.all(np.isfinite(points),
                                                                         axis=1)


def _pair(top: Tracklet2D, front: Tracklet2D, cameras: dict, settings: PipelineSettings):
    from zef3d.camera import triangulate

    frames, top_index, front_index = np.intersect1d(top.frame_array(), front.frame_array(),
                                                    return_indices=True)
    if len(frames) == 0:
        return None
    top_points = top.point_array()[top_index, 0, :]
    candidates = front.point_array()[front_index]
    if settings.head_detector:
        choices, margin = [0], 0.0
    elif settings.orient_by_motion:
        # Candidates are (head by motion, tail, centre): the tail replaces the head only where
        # it triangulates better by more than the mean reprojection error.
        choices, margin = [0, 1], settings.reprojection_err_mean
    else:
        choices, margin = [0, 1, 2], 0.0

    best_points = best_errors = None
    for choice in choices:
        points, mean_error = triangulate(cameras["top"], cameras["front"], top_points,
                                         candidates[:, choice, :])
        # The official error is the sum of the two views' errors; triangulate returns the mean.
        error = np.where(np.isfinite(mean_error), 2.0 * mean_error, np.inf)
        if best_errors is None:
            best_points, best_errors = points, error
        else:
            better = error + margin < best_errors
            best_points = np.where(better[:, None], points, best_points)
            best_errors = np.where(better, error, best_errors)

    keep = _inside(best_points, settings)
    if not keep.any():
        return None
    scores = _exponential_survival(best_errors[keep], settings.reprojection_err_mean)
    union = len(np.union1d(top.frame_array(), front.frame_array()))
    weight = float(np.median(scores)) * keep.sum() / union
    track = Tracklet3D(frames[keep], best_points[keep], best_errors[keep],
                       ((top.id, front.id),))
    return _Pair(top.id, front.id, weight, track)


def _edge_weight(first: _Pair, second: _Pair, settings: PipelineSettings) -> float | None:
    """Return the weight of the edge first -> second, or None where they may not follow."""
    gap = int(second.track.frames[0] - first.track.frames[-1])
    if gap <= 0:
        return None
    distance = float(np.linalg.norm(second.track.positions[0] - first.track.positions[-1]))
    speed = distance / (gap / settings.fps)
    movement = float(_exponential_survival(speed, settings.movement_err_mean
                                           + settings.movement_err_std))
    return (first.weight + second.weight) * movement * math.exp(-gap / settings.temporal_penalty)


def _best_path(pairs: list[_Pair], edges: dict[int, list[tuple[int, float]]],
               alive: set[int]) -> list[int]:
    """Return the highest-scoring path among the alive pairs (indices in ``pairs``)."""
    order = sorted(alive, key=lambda index: (int(pairs[index].track.frames[0]), index))
    score: dict[int, float] = {}
    previous: dict[int, int | None] = {}
    for index in order:
        score[index] = pairs[index].weight
        previous[index] = None
        for source, weight in edges.get(index, ()):
            if source in score and score[source] + weight > score[index]:
                score[index] = score[source] + weight
                previous[index] = source
    end = max(order, key=lambda index: (score[index], -index))
    path = [end]
    while previous[path[-1]] is not None:
        path.append(previous[path[-1]])
    return path[::-1]


def match_tracklets(top: list[Tracklet2D], front: list[Tracklet2D], cameras: dict,
                    settings: PipelineSettings) -> list[Tracklet3D]:
    """Pair the two views' 2D tracklets into 3D tracklets.

    Args:
        top: Top-view tracklets.
        front: Front-view tracklets.
        cameras: ``{"top": Camera, "front": Camera}`` (:func:`zef3d.camera.load_cameras`).
        settings: The pipeline settings.

    Returns:
        The 3D tracklets in the order they were extracted (best first).
    """
    top = [tracklet for tracklet in top if len(tracklet) >= settings.tracklet_min_length]
    front = [tracklet for tracklet in front if len(tracklet) >= settings.tracklet_min_length]

    pairs: list[_Pair] = []
    for top_tracklet in top:
        for front_tracklet in front:
            if (front_tracklet.frames[0] > top_tracklet.frames[-1]
                    or top_tracklet.frames[0] > front_tracklet.frames[-1]):
                continue
            pair = _pair(top_tracklet, front_tracklet, cameras, settings)
            if pair is not None and pair.weight > _MIN_PAIR_WEIGHT:
                pairs.append(pair)

    # Incoming edges per pair, between pairs that share a 2D tracklet.
    edges: dict[int, list[tuple[int, float]]] = {}
    for view in ("top", "front"):
        members: dict[int, list[int]] = {}
        for index, pair in enumerate(pairs):
            members.setdefault(getattr(pair, view), []).append(index)
        for indices in members.values():
            for first in indices:
                for second in indices:
                    if first == second:
                        continue
                    weight = _edge_weight(pairs[first], pairs[second], settings)
                    if weight is not None:
                        edges.setdefault(second, []).append((first, weight))

    alive = set(range(len(pairs)))
    result = []
    while alive:
        path = _best_path(pairs, edges, alive)
        used_top = {pairs[index].top for index in path}
        used_front = {pairs[index].front for index in path}
        parts = [pairs[index].track for index in path]
        result.append(Tracklet3D(
            np.concatenate([part.frames for part in parts]),
            np.concatenate([part.positions for part in parts]),
            np.concatenate([part.errors for part in parts]),
            tuple(source for part in parts for source in part.sources)))
        alive = {index for index in alive
                 if pairs[index].top not in used_top and pairs[index].front not in used_front}
    return result
