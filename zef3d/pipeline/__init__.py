"""The modular 3D-ZeF baseline tracker: background, detection, 2D tracking, matching, joining.

The steps follow the official pipeline of Pedersen et al. (``mapeAAU/3D-ZeF``, scripts
``ExtractBackground.py``, ``BgDetector.py``, ``TrackerVisual.py``, ``TrackletMatching.py`` and
``FinalizeTracks.py``), re-implemented on numpy arrays:

* :mod:`zef3d.pipeline.background`: median background image of each view;
* :mod:`zef3d.pipeline.detection`: the naive background-subtraction detector;
* :mod:`zef3d.pipeline.frcnn`: the Faster R-CNN head detector (torch imported lazily);
* :mod:`zef3d.pipeline.tracking2d`: nearest-neighbour 2D tracklets per view;
* :mod:`zef3d.pipeline.matching`: 2D tracklets of the two views paired into 3D tracklets;
* :mod:`zef3d.pipeline.finalize`: 3D tracklets joined into one track per fish.

Every step reads its parameters from :class:`PipelineSettings`, which takes the sequence's
``settings.ini`` keys where the sequence gives them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from harness.errors import DataFormatError

__all__ = ["PipelineSettings", "estimate_fish_count", "tracks_from_detections"]


def _strip_comment(text: str) -> str:
    """Remove an inline ``# ...`` or ``; ...`` comment, as the official settings files carry."""
    for marker in ("#", ";"):
        index = text.find(marker)
        if index >= 0:
            text = text[:index]
    return text.strip()


# Settings field -> (settings.ini section, key, type). The section is searched first, then
# DEFAULT, as configparser does. Keys and defaults are those of the official dummy_settings.ini.
_KEYS: dict[str, tuple[str, str, type]] = {
    "n_fish": ("DEFAULT", "n_fish", int),
    "fps": ("DEFAULT", "fps", float),
    "n_median": ("BackgroundExtractor", "n_median", int),
    "downsample_factor": ("Detector", "downsample_factor", int),
    "blur_size": ("Detector", "blur_size", int),
    "min_blob_size": ("Detector", "min_blob_size", int),
    "window_size": ("Detector", "window_size", int),
    "top_ghost_threshold": ("Tracker", "cam1_ghost_threshold", float),
    "front_ghost_threshold": ("Tracker", "cam2_ghost_threshold", float),
    "max_kill_count": ("Tracker", "max_kill_count", int),
    "min_confidence": ("Tracker", "min_confidence", float),
    "reprojection_err_mean": ("TrackletMatcher", "reprojection_err_mean", float),
    "movement_err_mean": ("TrackletMatcher", "movement_err_mean", float),
    "movement_err_std": ("TrackletMatcher", "movement_err_std", float),
    "tracklet_min_length": ("TrackletMatcher", "tracklet_min_length", int),
    "temporal_penalty": ("TrackletMatcher", "temporal_penalty", float),
    "aquarium_width": ("Aquarium", "aquarium_width", float),
    "aquarium_depth": ("Aquarium", "aquarium_depth", float),
    "aquarium_height": ("Aquarium", "aquarium_height", float),
    "main_track_search_multiplier": ("TrackletLinker", "main_track_search_multiplier", int),
    "metric_margin": ("TrackletLinker", "metric_margin", float),
    "max_frame_difference": ("TrackletLinker", "max_frame_difference", float),
    "max_spatial_difference": ("TrackletLinker", "max_spatial_difference", float),
    "max_intersecting_frames": ("TrackletLinker", "max_intersecting_frames", float),
    "max_intersection_ratio": ("TrackletLinker", "max_intersection_ratio", float),
}


@dataclass
class PipelineSettings:
    """Parameters of every pipeline step; defaults are the official ``dummy_settings.ini``.

    Pixel parameters (``min_blob_size``, ``window_size``, ``top_ghost_threshold``) are in
    pixels of the frame after downsampling by ``downsample_factor``, as in the official code.
    ``reprojection_err_mean`` is the mean of the summed top and front reprojection errors in
    full-resolution pixels, and the movement parameters are speeds in centimetres per second.
    The ``max_*`` linker limits use ``-1`` for "no limit", as the official settings do.
    """

    n_fish: int | None = None
    """Number of fish; ``None`` (no ``n_fish`` key) lets :mod:`zef3d.pipeline.finalize` estimate
    it from the detections."""
    fps: float = 60.0
    n_median: int = 80
    downsample_factor: int = 2
    blur_size: int = 5
    min_blob_size: int = 100
    window_size: int = 10
    top_ghost_threshold: float = 15.0
    front_ghost_threshold: float = 0.5
    max_kill_count: int = 10
    min_confidence: float = 0.95
    reprojection_err_mean: float = 8.03
    movement_err_mean: float = 2.13
    movement_err_std: float = 2.32
    tracklet_min_length: int = 10
    temporal_penalty: float = 25.0
    aquarium_width: float = 29.0
    aquarium_depth: float = 29.0
    aquarium_height: float = math.inf
    main_track_search_multiplier: int = 5
    metric_margin: float = 0.02
    max_frame_difference: float = -1.0
    max_spatial_difference: float = -1.0
    max_intersecting_frames: float = -1.0
    max_intersection_ratio: float = -1.0
    head_detector: bool = False
    """True when the keypoints are detected heads (the FRCNN-H variant, ``cam2_head_detector``
    in ``settings.ini``): the matching uses only them, and no end of a blob is chosen."""
    orient_by_motion: bool = True
    """Take the blob end that the fish moves towards as the head in both views. The matching
    then takes the other front end only where it triangulates clearly better. ``False`` is the
    official behaviour: the top-view keypoint is the
    wider end of the blob, and the matching tries the front blob's centre and both ends and
    keeps the lowest reprojection error. Both ends of a front blob often share the x coordinate
    that the top view constrains, and then that choice cannot tell head from tail.
    Not a ``settings.ini`` key."""

    def __post_init__(self) -> None:
        if self.downsample_factor < 1:
            raise DataFormatError("invalid pipeline setting", field="downsample_factor",
                                  value=self.downsample_factor, expected="an integer >= 1")
        if self.blur_size < 1 or self.blur_size % 2 == 0:
            raise DataFormatError("invalid pipeline setting", field="blur_size",
                                  value=self.blur_size, expected="an odd integer >= 1")
        if self.n_fish is not None and self.n_fish < 1:
            raise DataFormatError("invalid pipeline setting", field="n_fish", value=self.n_fish,
                                  expected="an integer >= 1")

    def limit(self, name: str) -> float:
        """Return a ``max_*`` linker limit, with ``-1`` (no limit) as infinity."""
        value = getattr(self, name)
        return math.inf if value == -1 else value

    @classmethod
    def from_settings(cls, sections: Mapping[str, Mapping[str, Any]] | None, *,
                      source: str = "settings.ini", **overrides: Any) -> PipelineSettings:
        """Build settings from ``settings.ini`` sections (section -> key -> text).

        Keys are matched case-insensitively, and a key missing from its section is looked up in
        ``DEFAULT``, as configparser does. Missing keys keep the official defaults.

        Args:
            sections: The parsed file, e.g. the ``settings`` JSON of the prepared
                ``sequences`` table, or ``None`` for the defaults.
            source: Name of the file, used in error messages.
            **overrides: Field values that replace those of the file.

        Raises:
            DataFormatError: A value is not a number of the expected type.
        """
        lowered = {str(name).lower(): {str(key).lower(): value for key, value in table.items()}
                   for name, table in (sections or {}).items()}
        default = lowered.get("default", {})
        values: dict[str, Any] = {}
        for name, (section, key, kind) in _KEYS.items():
            table = lowered.get(section.lower(), {})
            raw = table.get(key, default.get(key))
            if raw is None:
                continue
            text = _strip_comment(str(raw))
            try:
                values[name] = kind(text)
            except ValueError:
                raise DataFormatError(
                    f"invalid value in section [{section}]", path=source, field=key, value=text,
                    expected="an integer" if kind is int else "a number") from None
        head = default.get("cam2_head_detector")
        if head is not None:
            values["head_detector"] = _strip_comment(str(head)).lower() in ("true", "1", "yes")
        known = {field.name for field in fields(cls)}
        values.update({key: value for key, value in overrides.items() if key in known})
        return cls(**values)


def estimate_fish_count(top_frames: Any) -> int:
    """Estimate the number of fish as the median count of top-view detections per frame.

    Args:
        top_frames: The frame number of every top-view detection (a 1-D array).
    """
    import numpy as np

    frames = np.asarray(top_frames)
    if frames.size == 0:
        return 1
    _, counts = np.unique(frames, return_counts=True)
    return max(1, int(round(float(np.median(counts)))))


def tracks_from_detections(detections: Mapping[str, Any], cameras: Mapping[str, Any],
                           settings: PipelineSettings, *, interpolate: bool = False) -> list:
    """Run 2D tracking, cross-view matching and linking on the two views' detections.

    Args:
        detections: ``{"top": Detections, "front": Detections}``.
        cameras: ``{"top": Camera, "front": Camera}``.
        settings: The pipeline settings; ``n_fish = None`` estimates it from the top view.
        interpolate: Fill missing frames inside each final track linearly.

    Returns:
        The final tracks (:class:`zef3d.pipeline.matching.Tracklet3D`), ordered by first frame.
    """
    from zef3d.pipeline.finalize import finalize_tracks
    from zef3d.pipeline.matching import match_tracklets
    from zef3d.pipeline.tracking2d import orient_heads, track_view

    tracklets = {view: track_view(view, detections[view], settings) for view in ("top", "front")}
    if settings.orient_by_motion and not settings.head_detector:
        for tracklet in tracklets["top"] + tracklets["front"]:
            orient_heads(tracklet)
    matched = match_tracklets(tracklets["top"], tracklets["front"], dict(cameras), settings)
    n_fish = settings.n_fish or estimate_fish_count(detections["top"].frames)
    return finalize_tracks(matched, settings, n_fish=n_fish, interpolate=interpolate)
