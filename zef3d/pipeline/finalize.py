"""3D tracklets joined into one track per fish (official ``FinalizeTracks.py``), and gap filling.

With more 3D tracklets than fish, the official greedy linker runs:

1. Tracklets shorter than 5 frames are dropped (the official ``minLen=5``).
2. Main tracks: the set of ``n_fish`` tracklets that pairwise overlap in time by at least one
   frame with the largest median pairwise overlap. The candidates are the
   ``n_fish * main_track_search_multiplier`` longest tracklets. When their combinations are too
   many to enumerate, the set is grown greedily from the longest tracklet instead.
3. The other ("gallery") tracklets are taken in order of their smallest temporal distance to a
   main track they do not overlap (overlapping ones last, shorter first on ties). Each is
   compared with every main track:

   * when it overlaps no main track in time, by the frame gap and the 3D distance between the
     facing ends;
   * when it overlaps every main track, by the number and ratio of shared frames and by the
     mean spatial and temporal jump where the shortest path through the overlap switches
     between the two tracks.

   Each measure is divided by its sum over the main tracks, the measures are averaged, and the
   tracklet joins the main track with the lowest value. It is left out when all main tracks
   are within ``metric_margin`` of each other, or when a ``max_*`` limit excludes them all. On
   overlap, only the detections on the shortest path are kept.

With at most ``n_fish`` tracklets, they are the tracks. Where ``n_fish`` is unknown, it is
estimated as the median number of top-view keypoints per frame (rounded, at least 1).
"""

from __future__ import annotations

import itertools
import logging
import math

import numpy as np
import polars as pl

from zef3d.pipeline import PipelineSettings
from zef3d.pipeline.matching import Tracklet3D

__all__ = ["finalize_tracks", "interpolate_tracks", "link_tracklets", "tracks_frame"]

logger = logging.getLogger(__name__)

MIN_TRACKLET_LENGTH = 5
"""3D tracklets shorter than this are dropped before linking (official ``minLen=5``)."""

_MAX_COMBINATIONS = 50_000


def _overlap(a: Tracklet3D, b: Tracklet3D) -> int:
    """Return the official temporal overlap of two tracklets, or -1 when they do not overlap."""
    if a.frames[0] <= b.frames[-1] and b.frames[0] <= a.frames[-1]:
        return int(min(b.frames[-1] - a.frames[0], a.frames[-1] - b.frames[0]))
    return -1


def _main_set(tracks: list[Tracklet3D], n_fish: int, multiplier: int) -> list[int]:
    """Return the indices of the main tracks."""
    order = sorted(range(len(tracks)), key=lambda index: (-len(tracks[index]), index))
    candidates = order[: max(n_fish, n_fish * multiplier)]
    overlaps = {(a, b): _overlap(tracks[a], tracks[b])
                for a, b in itertools.combinations(candidates, 2)}

    def overlap(a: int, b: int) -> int:
        return overlaps[(a, b)] if (a, b) in overlaps else overlaps[(b, a)]

    best: tuple[float, list[int]] | None = None
    if math.comb(len(candidates), n_fish) <= _MAX_COMBINATIONS:
        for combination in itertools.combinations(candidates, n_fish):
            values = [overlap(a, b) for a, b in itertools.combinations(combination, 2)]
            if values and min(values) < 1:
                continue
            median = float(np.median(values)) if values else float(len(tracks[combination[0]]))
            if best is None or median > best[0]:
                best = (median, list(combination))
    if best is not None:
        return best[1]

    # Greedy: grow from the longest tracklet, adding the candidate with the largest smallest
    # overlap with the chosen ones.
    chosen = [candidates[0]]
    while len(chosen) < n_fish:
        scored = [(min(overlap(c, other) for other in chosen), c) for c in candidates
                  if c not in chosen]
        scored = [item for item in scored if item[0] >= 1]
        if not scored:
            break
        chosen.append(max(scored)[1])
    return chosen


def _frame_gap(main: Tracklet3D, gallery: Tracklet3D) -> tuple[int, float]:
    """Return the frame gap and the 3D distance of the facing ends, or (-1, -1) on overlap."""
    if main.frames[0] > gallery.frames[-1]:
        return (int(main.frames[0] - gallery.frames[-1]),
                float(np.linalg.norm(main.positions[0] - gallery.positions[-1])))
    if main.frames[-1] < gallery.frames[0]:
        return (int(gallery.frames[0] - main.frames[-1]),
                float(np.linalg.norm(gallery.positions[0] - main.positions[-1])))
    return -1, -1.0


def _shortest_path(main: Tracklet3D, gallery: Tracklet3D):
    """Join two overlapping tracklets through their overlap along the shortest 3D path.

    Over the frames of the overlap (plus each track's nearest frame outside it), one detection
    per frame is chosen so that the summed 3D distance between consecutive choices is smallest.

    Returns:
        The mean spatial and temporal jump where the path switches between the tracklets (0
        without a switch), and per tracklet a boolean mask of the detections to keep.
    """
    start = max(main.frames[0], gallery.frames[0])
    end = min(main.frames[-1], gallery.frames[-1])
    nodes = []  # (frame, source, index)
    for source, track in enumerate((main, gallery)):
        inside = np.flatnonzero((track.frames >= start) & (track.frames <= end))
        before = np.flatnonzero(track.frames < start)
        after = np.flatnonzero(track.frames > end)
        chosen = list(inside)
        if len(before):
            chosen.append(before[-1])
        if len(after):
            chosen.append(after[0])
        nodes += [(int(track.frames[index]), source, int(index)) for index in chosen]
    nodes.sort()
    frames = sorted({node[0] for node in nodes})
    layers = [[node for node in nodes if node[0] == frame] for frame in frames]
    tracks = (main, gallery)

    def position(node):
        return tracks[node[1]].positions[node[2]]

    cost = [0.0] * len(layers[0])
    back: list[list[int]] = [[-1] * len(layers[0])]
    for previous, layer in itertools.pairwise(layers):
        new_cost, pointers = [], []
        for node in layer:
            steps = [cost[k] + float(np.linalg.norm(position(node) - position(prior)))
                     for k, prior in enumerate(previous)]
            best = int(np.argmin(steps))
            new_cost.append(steps[best])
            pointers.append(best)
        cost = new_cost
        back.append(pointers)
    index = int(np.argmin(cost))
    path = []
    for depth in range(len(layers) - 1, -1, -1):
        path.append(layers[depth][index])
        index = back[depth][index]
    path.reverse()

    spatial, temporal = [], []
    for prior, node in itertools.pairwise(path):
        if prior[1] != node[1]:
            spatial.append(float(np.linalg.norm(position(node) - position(prior))))
            temporal.append(node[0] - prior[0])
    keep = []
    on_path = {(node[1], node[2]) for node in path}
    for source, track in enumerate(tracks):
        outside = (track.frames < start) | (track.frames > end)
        selected = np.array([(source, i) in on_path for i in range(len(track))], bool)
        keep.append(outside | selected)
    mean_spatial = float(np.mean(spatial)) if spatial else 0.0
    mean_temporal = float(np.mean(temporal)) if temporal else 0.0
    return mean_spatial, mean_temporal, keep


def _normalised(values: np.ndarray) -> np.ndarray:
    """Divide the valid (non-negative) values by their sum; invalid ones become infinite."""
    valid = values >= 0
    result = np.full(len(values), np.inf)
    total = values[valid].sum()
    if total > 0:
        result[valid] = values[valid] / total
    else:
        result[valid] = 1.0 / max(valid.sum(), 1)
    return result


def _assign(measures: dict[str, np.ndarray], margin: float) -> int | None:
    """Return the main track with the lowest mean normalised measure, or None on a tie."""
    votes = np.mean([_normalised(values) for values in measures.values()], axis=0)
    finite = votes[np.isfinite(votes)]
    if len(finite) == 0:
        return None
    if len(votes) > 1 and len(finite) > 1 and finite.max() - finite.min() <= margin:
        return None
    return int(np.argmin(votes))


def link_tracklets(tracklets: list[Tracklet3D], n_fish: int,
                   settings: PipelineSettings) -> list[Tracklet3D]:
    """Join 3D tracklets into at most ``n_fish`` tracks with the official greedy linker."""
    tracks = [track for track in tracklets if len(track) >= MIN_TRACKLET_LENGTH]
    if len(tracks) <= n_fish:
        return [_sorted(track) for track in tracks]

    main_indices = _main_set(tracks, n_fish, settings.main_track_search_multiplier)
    mains = [_sorted(tracks[index]) for index in main_indices]
    gallery = [_sorted(tracks[index]) for index in range(len(tracks))
               if index not in main_indices]
    limits = {name: settings.limit(name) for name in
              ("max_frame_difference", "max_spatial_difference", "max_intersecting_frames",
               "max_intersection_ratio")}

    while gallery:
        gallery.sort(key=lambda track: (_closest_gap(track, mains), len(track)))
        candidate = gallery.pop(0)
        gaps = np.full(len(mains), -1.0)
        distances = np.full(len(mains), -1.0)
        shared = np.full(len(mains), -1.0)
        ratios = np.full(len(mains), -1.0)
        jumps_space = np.full(len(mains), -1.0)
        jumps_time = np.full(len(mains), -1.0)
        keeps: list = [None] * len(mains)
        valid_mains = np.zeros(len(mains), bool)
        for k, main in enumerate(mains):
            gap, distance = _frame_gap(main, candidate)
            common = len(np.intersect1d(main.frames, candidate.frames))
            ratio = common / len(candidate)
            if gap == -1:
                space, time, keep = _shortest_path(main, candidate)
            else:
                space, time, keep = -1.0, -1.0, None
            valid = (gap <= limits["max_frame_difference"]
                     and distance <= limits["max_spatial_difference"]
                     and common <= limits["max_intersecting_frames"]
                     and ratio <= limits["max_intersection_ratio"])
            if not valid:
                continue
            valid_mains[k] = True
            gaps[k], distances[k], shared[k], ratios[k] = gap, distance, common, ratio
            jumps_space[k], jumps_time[k], keeps[k] = space, time, keep
        if not valid_mains.any():
            continue

        if (gaps >= 0).any():
            measures = {"temporal": gaps, "spatial": distances}
        else:
            measures = {"intersection": shared, "internal_temporal": jumps_time,
                        "internal_spatial": jumps_space}
            if ratios[ratios >= 0].sum() != 0:
                measures["intersection_ratio"] = ratios
        chosen = _assign(measures, settings.metric_margin)
        if chosen is None:
            continue
        mains[chosen] = _combine(mains[chosen], candidate, keeps[chosen])
    return mains


def _closest_gap(track: Tracklet3D, mains: list[Tracklet3D]) -> float:
    gaps = [_frame_gap(main, track)[0] for main in mains]
    valid = [gap for gap in gaps if gap >= 0]
    return float(min(valid)) if valid else math.inf


def _sorted(track: Tracklet3D) -> Tracklet3D:
    order = np.argsort(track.frames, kind="stable")
    errors = track.errors[order] if len(track.errors) == len(track.frames) else track.errors
    return Tracklet3D(track.frames[order], track.positions[order], errors, track.sources)


def _combine(main: Tracklet3D, gallery: Tracklet3D, keep) -> Tracklet3D:
    if keep is None:
        keep = [np.ones(len(main), bool), np.ones(len(gallery), bool)]
    errors = np.concatenate([main.errors[keep[0]], gallery.errors[keep[1]]])
    return _sorted(Tracklet3D(np.concatenate([main.frames[keep[0]], gallery.frames[keep[1]]]),
                              np.concatenate([main.positions[keep[0]],
                                              gallery.positions[keep[1]]]),
                              errors, main.sources + gallery.sources))


def interpolate_tracks(tracks: list[Tracklet3D]) -> list[Tracklet3D]:
    """Fill every missing frame between a track's first and last frame linearly in 3D.

    The official code interpolates the 2D points of both views and triangulates them. Only the
    3D positions are at hand here, so this interpolates them, which agrees for straight
    segments. Filled frames get a NaN reprojection error.
    """
    filled = []
    for track in tracks:
        track = _sorted(track)
        frames = np.arange(track.frames[0], track.frames[-1] + 1)
        positions = np.stack([np.interp(frames, track.frames, track.positions[:, axis])
                              for axis in range(3)], axis=1)
        errors = np.full(len(frames), np.nan)
        errors[np.searchsorted(frames, track.frames)] = track.errors
        filled.append(Tracklet3D(frames, positions, errors, track.sources))
    return filled


def finalize_tracks(tracklets: list[Tracklet3D], settings: PipelineSettings, *,
                    n_fish: int | None = None, interpolate: bool = False) -> list[Tracklet3D]:
    """Link 3D tracklets into one track per fish and optionally fill the gaps.

    Args:
        tracklets: 3D tracklets from :func:`zef3d.pipeline.matching.match_tracklets`.
        settings: The pipeline settings (``n_fish`` and the ``TrackletLinker`` keys).
        n_fish: The number of fish where ``settings.n_fish`` is ``None``.
        interpolate: Fill missing frames inside each track linearly.
    """
    count = settings.n_fish or n_fish or 1
    tracks = link_tracklets(tracklets, count, settings)
    tracks = [track for track in tracks if len(track)]
    tracks.sort(key=lambda track: (int(track.frames[0]), -len(track)))
    if interpolate:
        tracks = interpolate_tracks(tracks)
    return tracks


def tracks_frame(tracks: list[Tracklet3D]) -> pl.DataFrame:
    """Return the tracks as a submission table (frame, id, x, y, z), ids from 1."""
    frames, ids, positions = [], [], []
    for number, track in enumerate(tracks, start=1):
        frames.append(track.frames)
        ids.append(np.full(len(track), number, np.int64))
        positions.append(track.positions)
    if not frames:
        return pl.DataFrame(schema={"frame": pl.Int64, "id": pl.Int64, "x": pl.Float64,
                                    "y": pl.Float64, "z": pl.Float64})
    xyz = np.concatenate(positions)
    return pl.DataFrame({
        "frame": np.concatenate(frames).astype(np.int64),
        "id": np.concatenate(ids),
        "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
    }).sort(["frame", "id"])
