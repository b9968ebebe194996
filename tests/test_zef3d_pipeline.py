"""The 3D-ZeF baseline pipeline steps on small arrays: background, detector, 2D tracker,
cross-view matching, linking and interpolation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness.errors import DataFormatError
from zef3d.pipeline import PipelineSettings, estimate_fish_count
from zef3d.pipeline.background import background_from_paths, median_background, sample_indices
from zef3d.pipeline.detection import (
    Detections,
    NaiveDetector,
    difference_image,
    intermodes_threshold,
    max_entropy_threshold,
)
from zef3d.pipeline.finalize import finalize_tracks, interpolate_tracks, tracks_frame
from zef3d.pipeline.matching import Tracklet3D, match_tracklets
from zef3d.pipeline.tracking2d import Tracklet2D, orient_heads, track_view

cv2 = pytest.importorskip("cv2")


# --- settings ----------------------------------------------------------------------------------


def test_settings_read_official_keys():
    sections = {
        "DEFAULT": {"n_fish": "2\t# SET TO THE AMOUNT OF FISH", "fps": "60",
                    "cam2_head_detector": "True"},
        "Detector": {"downsample_factor": "1", "min_blob_size": "15"},
        "Tracker": {"cam1_ghost_threshold": "4", "cam2_ghost_threshold": "0.5"},
        "TrackletMatcher": {"reprojection_err_mean": "1.0"},
        "TrackletLinker": {"max_frame_difference": "-1"},
    }
    settings = PipelineSettings.from_settings(sections)
    assert settings.n_fish == 2
    assert settings.downsample_factor == 1
    assert settings.min_blob_size == 15
    assert settings.top_ghost_threshold == 4.0
    assert settings.reprojection_err_mean == 1.0
    assert settings.head_detector is True
    assert settings.limit("max_frame_difference") == math.inf
    assert settings.blur_size == 5  # official default where the file has no key


def test_settings_override_and_defaults():
    settings = PipelineSettings.from_settings(None, front_ghost_threshold=1.5)
    assert settings.n_fish is None
    assert settings.front_ghost_threshold == 1.5
    assert settings.n_median == 80


def test_settings_invalid_value_names_key():
    with pytest.raises(DataFormatError, match=r"ZebraFish-01/settings.ini.*'n_median'.*'many'"):
        PipelineSettings.from_settings({"BackgroundExtractor": {"n_median": "many"}},
                                       source="ZebraFish-01/settings.ini")


def test_settings_even_blur_size_rejected():
    with pytest.raises(DataFormatError, match="blur_size.*odd"):
        PipelineSettings(blur_size=4)


# --- background --------------------------------------------------------------------------------


def test_sample_indices_spread_inside_sequence():
    assert sample_indices(100, 3).tolist() == [25, 50, 75]
    assert sample_indices(5, 80).tolist() == [0, 1, 2, 3, 4]


def test_median_background_removes_moving_object():
    rng = np.random.default_rng(0)
    background = rng.integers(100, 200, size=(20, 30), dtype=np.uint8)
    frames = []
    for k in range(5):
        frame = background.copy()
        frame[2:6, 5 * k:5 * k + 4] = 0  # a dark object at a new place in every frame
        frames.append(frame)
    assert np.array_equal(median_background(frames), background)


def test_background_from_paths_reads_frames(tmp_path: Path):
    paths = []
    for k in range(4):
        image = np.full((8, 10, 3), 100 + 10 * k, np.uint8)
        path = tmp_path / f"{k + 1:06d}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    background = background_from_paths(paths, 2)
    # Samples at frames 1 and 2 (0-based) have values 110 and 120.
    assert background.shape == (8, 10, 3)
    assert int(background[0, 0, 0]) == 115


# --- detection ---------------------------------------------------------------------------------


def _fish_frame(heads, tails, size=(120, 160), background=200, seed=0):
    """Draw fish as a dark ellipse from tail to head plus a wider disc at the head, with
    camera-like pixel noise (standard deviation 2)."""
    noise = np.random.default_rng(seed).normal(0.0, 2.0, size=(*size, 3))
    image = np.clip(background + noise, 0, 255).astype(np.uint8)
    for head, tail in zip(heads, tails, strict=True):
        head = np.asarray(head, float)
        tail = np.asarray(tail, float)
        centre = (head + tail) / 2
        length = float(np.linalg.norm(head - tail))
        angle = math.degrees(math.atan2(head[1] - tail[1], head[0] - tail[0]))
        cv2.ellipse(image, (int(centre[0]), int(centre[1])), (int(length / 2), 3),
                    angle, 0, 360, (40, 40, 40), -1)
        cv2.circle(image, (int(head[0]), int(head[1])), 5, (40, 40, 40), -1)
    return image


def test_thresholds_split_bimodal_image():
    image = np.zeros((50, 50), np.uint8)
    image[:, :] = 10
    image[20:30, 20:30] = 200
    image[0, :25] = 14  # a little spread in the low mode
    assert 10 <= intermodes_threshold(image) < 200
    assert 10 <= max_entropy_threshold(image) < 200


def test_difference_image_stretches_to_full_range():
    background = np.full((4, 4, 3), 100, np.uint8)
    frame = background.copy()
    frame[1, 1] = (100, 150, 90)
    diff = difference_image(frame, background)
    assert diff[1, 1] == 255
    assert diff[0, 0] == 0
    assert difference_image(background, background).max() == 0


@pytest.mark.parametrize("view", ["top", "front"])
def test_detector_finds_rendered_fish(view: str):
    settings = PipelineSettings(n_fish=2, downsample_factor=1, blur_size=3, min_blob_size=20)
    background = np.full((120, 160, 3), 200, np.uint8)
    heads = [(40, 30), (120, 90)]
    tails = [(15, 30), (120, 65)]
    frame = _fish_frame(heads, tails)
    detections = NaiveDetector(view, background, settings).detect(frame, 7)

    assert len(detections) == 2
    assert detections.frames.tolist() == [7, 7]
    for head, tail in zip(heads, tails, strict=True):
        ys, xs = np.nonzero(_fish_frame([head], [tail])[:, :, 0] < 120)
        centre = (xs.mean(), ys.mean())
        distance = np.linalg.norm(detections.centres - centre, axis=1)
        assert distance.min() < 1.5
    if view == "top":
        # The head disc (radius 5) makes the head end the wider one, so the keypoint is the
        # blob's tip beyond the head point.
        for head, tail in zip(heads, tails, strict=True):
            keypoint = detections.points[np.argmin(np.linalg.norm(detections.points[:, 0] - head,
                                                                  axis=1)), 0]
            assert np.linalg.norm(keypoint - head) <= 6.0
            assert np.linalg.norm(keypoint - tail) > 20.0


def test_detector_downsampling_reports_full_resolution():
    settings = PipelineSettings(n_fish=1, downsample_factor=2, blur_size=3, min_blob_size=30)
    background = np.full((120, 160, 3), 200, np.uint8)
    frame = _fish_frame([(100, 60)], [(60, 60)])
    detections = NaiveDetector("front", background, settings).detect(frame, 1)
    assert len(detections) == 1
    ys, xs = np.nonzero(frame[:, :, 0] < 120)
    assert np.linalg.norm(detections.centres[0] - (xs.mean(), ys.mean())) < 2.0
    left, top, width, height = detections.boxes[0]
    assert 50 <= left <= 62
    assert 90 <= left + width <= 110


def test_detector_splits_merged_fish():
    settings = PipelineSettings(n_fish=2, downsample_factor=1, blur_size=3, min_blob_size=20)
    background = np.full((120, 160, 3), 200, np.uint8)
    # Two fish touching head to head: one blob that the detector splits in two.
    heads = [(60, 50), (66, 52)]
    tails = [(30, 50), (96, 52)]
    frame = _fish_frame(heads, tails)
    count = cv2.connectedComponents((frame[:, :, 0] < 120).astype(np.uint8))[0] - 1
    assert count == 1
    detections = NaiveDetector("front", background, settings).detect(frame, 1)
    assert len(detections) == 2
    for head, tail in zip(heads, tails, strict=True):
        ys, xs = np.nonzero(_fish_frame([head], [tail])[:, :, 0] < 120)
        distance = np.linalg.norm(detections.centres - (xs.mean(), ys.mean()), axis=1)
        assert distance.min() < 3.0


def test_detector_empty_frame_gives_no_detections():
    settings = PipelineSettings(n_fish=2, downsample_factor=1)
    background = np.full((60, 80, 3), 200, np.uint8)
    detections = NaiveDetector("top", background, settings).detect(background.copy(), 1)
    assert len(detections) == 0


# --- 2D tracking -------------------------------------------------------------------------------


def _detections(rows):
    """Detections from (frame, x, y) rows with unit covariance."""
    rows = np.asarray(rows, float).reshape(-1, 3)
    centres = rows[:, 1:3]
    return Detections(
        frames=rows[:, 0].astype(np.int64),
        centres=centres,
        points=np.repeat(centres[:, None, :], 3, axis=1),
        boxes=np.concatenate([centres - 2, np.full((len(rows), 2), 4.0)], axis=1),
        covariances=np.repeat(np.eye(2)[None] * 4.0, len(rows), axis=0),
        confidences=np.ones(len(rows)),
    )


def test_tracker_keeps_id_through_short_miss():
    settings = PipelineSettings(downsample_factor=1, top_ghost_threshold=5.0, max_kill_count=5)
    # 1 px per frame: after three missed frames the fish is 4 px from its last position, inside
    # the gate of 5 px (the tracker has no motion model).
    rows = [(frame, 10 + frame, 50) for frame in range(1, 31) if frame not in (12, 13, 14)]
    rows += [(frame, 10 + frame, 90) for frame in range(1, 31)]
    tracklets = track_view("top", _detections(rows), settings)
    assert len(tracklets) == 2
    first = next(t for t in tracklets if t.centres[0][1] == 50)
    assert first.frames == [f for f in range(1, 31) if f not in (12, 13, 14)]
    assert all(point[1] == 50 for point in first.centres)


def test_tracker_ends_tracklet_after_long_miss():
    settings = PipelineSettings(downsample_factor=1, top_ghost_threshold=5.0, max_kill_count=3)
    rows = [(frame, 10 + frame, 50) for frame in range(1, 21) if not 8 <= frame <= 13]
    tracklets = track_view("top", _detections(rows), settings)
    assert [t.frames[0] for t in tracklets] == [1, 14]


def test_tracker_gates_by_distance():
    settings = PipelineSettings(downsample_factor=2, top_ghost_threshold=5.0)
    # Jumps of 12 px are 6 downsampled pixels, beyond the gate of 5.
    rows = [(frame, 12 * frame, 50) for frame in range(1, 5)]
    tracklets = track_view("top", _detections(rows), settings)
    assert len(tracklets) == 4


def test_tracker_front_view_mahalanobis_gate():
    settings = PipelineSettings(downsample_factor=1, front_ghost_threshold=0.5)
    # Covariance 4 (std 2 px): steps of 0.8 px are 0.4 standard deviations, inside the gate.
    rows = [(frame, 10 + 0.8 * frame, 40) for frame in range(1, 11)]
    assert len(track_view("front", _detections(rows), settings)) == 1
    rows = [(frame, 10 + 1.2 * frame, 40) for frame in range(1, 11)]
    assert len(track_view("front", _detections(rows), settings)) == 10


def test_tracker_drops_low_confidence():
    settings = PipelineSettings(downsample_factor=1, min_confidence=0.9)
    detections = _detections([(1, 10, 10), (2, 11, 10)])
    detections.confidences = np.array([0.95, 0.5])
    tracklets = track_view("top", detections, settings)
    assert [t.frames for t in tracklets] == [[1]]


def test_orient_heads_takes_forward_end():
    tracklet = Tracklet2D(0, "top")
    for frame in range(1, 21):
        centre = np.array([10.0 + frame, 20.0])
        # The detector's first point is the end behind the motion.
        tracklet.frames.append(frame)
        tracklet.centres.append(centre)
        tracklet.points.append(np.stack([centre - (5, 0), centre + (5, 0), centre]))
    orient_heads(tracklet)
    assert all(point[0][0] > centre[0] for point, centre in
               zip(tracklet.points, tracklet.centres, strict=True))


# --- matching and linking ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cameras(tmp_path_factory: pytest.TempPathFactory):
    from zef3d.camera import load_cameras
    from zef3d.io import find_sequences
    from zef3d.sample import write_zef_sample

    root = write_zef_sample(tmp_path_factory.mktemp("zef"), sequences=1, test_sequences=0,
                            frames=2, fish=1)
    return load_cameras(find_sequences(root)["train"][0])


def _tracklet2d(tracklet_id, view, frames, pixels):
    tracklet = Tracklet2D(tracklet_id, view)
    for frame, pixel in zip(frames, pixels, strict=True):
        tracklet.frames.append(int(frame))
        tracklet.centres.append(np.asarray(pixel, float))
        tracklet.points.append(np.repeat(np.asarray(pixel, float)[None], 3, axis=0))
    return tracklet


def test_matching_pairs_tracklets_across_views(cameras):
    settings = PipelineSettings(n_fish=2, head_detector=True, tracklet_min_length=5,
                                reprojection_err_mean=1.0, aquarium_height=30.0)
    frames = np.arange(1, 41)
    fish_a = np.stack([8 + 0.1 * frames, 10 + 0 * frames, 6 + 0.02 * frames], axis=1)
    fish_b = np.stack([20 - 0.1 * frames, 18 + 0 * frames, 9 - 0.02 * frames], axis=1)
    top = [_tracklet2d(0, "top", frames, cameras["top"].project(fish_a)),
           _tracklet2d(1, "top", frames, cameras["top"].project(fish_b))]
    # Fish b's front-view tracklet is split in two at frame 20; they must join into one.
    front_b = cameras["front"].project(fish_b)
    front = [_tracklet2d(5, "front", frames[:20], front_b[:20]),
             _tracklet2d(6, "front", frames, cameras["front"].project(fish_a)),
             _tracklet2d(7, "front", frames[20:], front_b[20:])]

    tracklets = match_tracklets(top, front, cameras, settings)

    assert len(tracklets) == 2
    by_source = {track.sources: track for track in tracklets}
    assert set(by_source) == {((0, 6),), ((1, 5), (1, 7))}
    np.testing.assert_allclose(by_source[((0, 6),)].positions, fish_a, atol=1e-4)
    joined = by_source[((1, 5), (1, 7))]
    assert joined.frames.tolist() == frames.tolist()
    np.testing.assert_allclose(joined.positions, fish_b, atol=1e-4)


def test_matching_drops_points_outside_aquarium(cameras):
    settings = PipelineSettings(head_detector=True, tracklet_min_length=5,
                                aquarium_width=10.0)
    frames = np.arange(1, 11)
    fish = np.stack([12 + 0 * frames, 10 + 0 * frames, 6 + 0 * frames], axis=1).astype(float)
    top = [_tracklet2d(0, "top", frames, cameras["top"].project(fish))]
    front = [_tracklet2d(0, "front", frames, cameras["front"].project(fish))]
    assert match_tracklets(top, front, cameras, settings) == []


def _line(frames, start, step):
    frames = np.asarray(frames)
    positions = np.asarray(start, float) + np.outer(frames - frames[0], step)
    return Tracklet3D(frames, positions, np.zeros(len(frames)))


def test_finalize_joins_split_tracklets():
    settings = PipelineSettings(n_fish=2)
    fish_a = _line(np.arange(1, 61), (5, 5, 5), (0.1, 0, 0))
    fish_b_first = _line(np.arange(1, 25), (20, 20, 8), (-0.1, 0, 0))
    fish_b_second = _line(np.arange(30, 61), (20 - 2.9, 20, 8), (-0.1, 0, 0))
    tracks = finalize_tracks([fish_b_second, fish_a, fish_b_first], settings)

    assert len(tracks) == 2
    lengths = sorted(len(track) for track in tracks)
    assert lengths == [55, 60]
    joined = next(track for track in tracks if len(track) == 55)
    assert joined.frames.tolist() == list(range(1, 25)) + list(range(30, 61))
    assert np.all(joined.positions[:, 1] == 20)


def test_finalize_drops_short_tracklets_and_keeps_few():
    settings = PipelineSettings(n_fish=3)
    tracks = finalize_tracks([_line(np.arange(1, 4), (1, 1, 1), (0, 0, 0)),
                              _line(np.arange(1, 30), (5, 5, 5), (0, 0, 0))], settings)
    assert [len(track) for track in tracks] == [29]


def test_interpolation_fills_gap_linearly():
    track = Tracklet3D(np.array([1, 2, 6, 7]),
                       np.array([[0, 0, 0], [1, 2, 3], [5, 10, 15], [6, 12, 18]], float),
                       np.zeros(4))
    filled = interpolate_tracks([track])[0]
    assert filled.frames.tolist() == [1, 2, 3, 4, 5, 6, 7]
    np.testing.assert_allclose(filled.positions[:, 0], [0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(filled.positions[:, 2], [0, 3, 6, 9, 12, 15, 18])
    assert np.isnan(filled.errors[2:5]).all()
    assert not np.isnan(filled.errors[[0, 1, 5, 6]]).any()


def test_finalize_interpolates_when_asked():
    settings = PipelineSettings(n_fish=1)
    track = Tracklet3D(np.array([1, 2, 3, 10, 11, 12]), np.zeros((6, 3)), np.zeros(6))
    assert len(finalize_tracks([track], settings)[0]) == 6
    assert len(finalize_tracks([track], settings, interpolate=True)[0]) == 12


def test_tracks_frame_numbers_ids_from_one():
    table = tracks_frame([_line([3, 4], (1, 2, 3), (1, 0, 0)), _line([1], (0, 0, 0), (0, 0, 0))])
    assert table.columns == ["frame", "id", "x", "y", "z"]
    assert table["id"].to_list() == [2, 1, 1]
    assert table["frame"].to_list() == [1, 3, 4]


def test_fish_count_estimate_is_median():
    frames = np.array([1, 1, 2, 2, 2, 3, 3])
    assert estimate_fish_count(frames) == 2
    assert estimate_fish_count(np.array([], np.int64)) == 1


def test_pipeline_without_detections_gives_no_tracks(cameras):
    from zef3d.pipeline import tracks_from_detections

    settings = PipelineSettings(n_fish=2)
    empty = {"top": Detections.empty(), "front": Detections.empty()}
    assert tracks_from_detections(empty, cameras, settings) == []
    assert tracks_frame([]).height == 0
