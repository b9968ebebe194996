"""Property tests: random scenes scored by TrackEval 1.3.0 and by ``motcom.evaluation``.

Boxes have small integer coordinates, so IoUs of exactly 0.5, identical boxes, zero-area boxes
and crowded frames with several optimal matchings are common.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _trackeval_oracle import (
    trackeval_combine,
    trackeval_on_arrays,
    trackeval_on_folder,
    write_mot_folder,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motcom.data import GroundTruth, Tracks
from motcom.evaluation import combine_sequences, evaluate_sequence
from motcom.trackeval_output import format_detailed, format_summary

GT_CLASSES = [1, 1, 1, 1, 1, 2, 6, 7, 8, 9, 12]
GT_FLAGS = [1.0, 1.0, 1.0, 1.0, 0.0, 0.5]
SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def scenes(draw: st.DrawFn) -> tuple[GroundTruth, Tracks, int]:
    """Draw a sequence: gt objects with classes and flags, and a tracker that follows some."""
    seq_length = draw(st.integers(1, 6))
    coordinate = st.integers(0, 24)
    size = st.integers(0, 12)

    gt_rows = []
    for obj_id in range(1, draw(st.integers(0, 9)) + 1):
        cls = draw(st.sampled_from(GT_CLASSES))
        flag = draw(st.sampled_from(GT_FLAGS)) if cls == 1 else 0.0
        x, y, w, h = draw(coordinate), draw(coordinate), draw(size), draw(size)
        for t in range(1, seq_length + 1):
            if draw(st.booleans()) or draw(st.booleans()):
                dx, dy = draw(st.integers(-2, 2)), draw(st.integers(-2, 2))
                gt_rows.append((t, obj_id, x + dx, y + dy, w, h, flag, cls))

    tracker_rows = []
    for t in range(1, seq_length + 1):
        in_frame = [r for r in gt_rows if r[0] == t]
        ids = draw(st.lists(st.integers(1, 12), unique=True, max_size=8))
        for track_id in ids:
            if in_frame and draw(st.integers(0, 3)) > 0:
                source = draw(st.sampled_from(in_frame))
                jitter = [draw(st.integers(-2, 2)) for _ in range(4)]
                box = (
                    source[2] + jitter[0],
                    source[3] + jitter[1],
                    max(source[4] + jitter[2], 0),
                    max(source[5] + jitter[3], 0),
                )
            else:
                box = (draw(coordinate), draw(coordinate), draw(size), draw(size))
            tracker_rows.append((t, track_id, *box))

    gt_table = np.array(gt_rows, dtype=float).reshape(-1, 8)
    tracker_table = np.array(tracker_rows, dtype=float).reshape(-1, 6)
    gt = GroundTruth(
        frame=gt_table[:, 0].astype(np.int64),
        id=gt_table[:, 1].astype(np.int64),
        boxes=gt_table[:, 2:6].copy(),
        flag=gt_table[:, 6].copy(),
        cls=gt_table[:, 7].astype(np.int64),
        visibility=np.ones(len(gt_table)),
    )
    tracks = Tracks(
        frame=tracker_table[:, 0].astype(np.int64),
        id=tracker_table[:, 1].astype(np.int64),
        boxes=tracker_table[:, 2:6].copy(),
        conf=np.ones(len(tracker_table)),
    )
    return gt, tracks, seq_length


def assert_same_fields(ours: dict[str, Any], expected: dict[str, Any]) -> None:
    """Every TrackEval field: integer-valued ones exactly, floats within 1e-9, same kind of number.

    The kind (integer or float) decides how the detailed CSV writes a value, e.g. ``5`` or ``5.0``.
    """
    for field, value in expected.items():
        assert field in ours, field
        if np.ndim(value) == 0:
            assert isinstance(ours[field], (int, np.integer)) == isinstance(
                value, (int, np.integer)
            ), (field, type(ours[field]), type(value))
        mine = np.asarray(ours[field], dtype=float)
        theirs = np.asarray(value, dtype=float)
        if np.all(theirs == np.round(theirs)) and field not in ("MOTP_sum",):
            assert np.array_equal(mine, theirs), (field, ours[field], value)
        else:
            assert np.allclose(mine, theirs, rtol=0, atol=1e-9), (field, ours[field], value)


@SETTINGS
@given(
    scene=scenes(),
    benchmark=st.sampled_from(["MOT17", "MOT20", "MOT16", "MOT15", None]),
    threshold=st.sampled_from([0.5, 0.5, 0.3, 0.75]),
)
def test_sequence_matches_trackeval(scene, benchmark, threshold):
    gt, tracks, seq_length = scene
    expected = trackeval_on_arrays(gt, tracks, seq_length, benchmark=benchmark, threshold=threshold)
    ours = evaluate_sequence(gt, tracks, seq_length, benchmark=benchmark, threshold=threshold)
    assert_same_fields(ours, expected)


@settings(SETTINGS, max_examples=25)
@given(scene_list=st.lists(scenes(), min_size=1, max_size=3))
def test_combined_matches_trackeval(scene_list):
    ours, expected = {}, {}
    for i, (gt, tracks, seq_length) in enumerate(scene_list):
        name = f"seq-{i}"
        ours[name] = evaluate_sequence(gt, tracks, seq_length)
        expected[name] = trackeval_on_arrays(gt, tracks, seq_length)
    assert_same_fields(combine_sequences(ours), trackeval_combine(expected))


def test_crowded_frame_ties_match_trackeval():
    """Many identical and half-overlapping boxes: several optimal matchings per frame."""
    rng = np.random.default_rng(7)
    rows_gt, rows_tracker = [], []
    for t in range(1, 9):
        for obj_id in range(1, 16):
            x = int(rng.integers(0, 4)) * 5
            rows_gt.append((t, obj_id, x, 0, 10, 10, 1, 1))
        for track_id in rng.permutation(20)[:16] + 1:
            x = int(rng.integers(0, 6)) * 5
            rows_tracker.append((t, int(track_id), x, 0, 10 + 10 * int(rng.integers(0, 2)), 10))
    gt_table = np.array(rows_gt, float)
    tracker_table = np.array(rows_tracker, float)
    gt = GroundTruth(
        frame=gt_table[:, 0].astype(np.int64),
        id=gt_table[:, 1].astype(np.int64),
        boxes=gt_table[:, 2:6].copy(),
        flag=gt_table[:, 6].copy(),
        cls=gt_table[:, 7].astype(np.int64),
        visibility=np.ones(len(gt_table)),
    )
    tracks = Tracks(
        frame=tracker_table[:, 0].astype(np.int64),
        id=tracker_table[:, 1].astype(np.int64),
        boxes=tracker_table[:, 2:6].copy(),
        conf=np.ones(len(tracker_table)),
    )
    expected = trackeval_on_arrays(gt, tracks, 8)
    ours = evaluate_sequence(gt, tracks, 8)
    assert_same_fields(ours, expected)


@settings(SETTINGS, max_examples=5)
@given(scene_list=st.lists(scenes(), min_size=2, max_size=3))
def test_output_files_match_trackeval(tmp_path_factory, scene_list):
    root = tmp_path_factory.mktemp("mot")
    sequences = {f"SEQ-{i:02d}": scene for i, scene in enumerate(scene_list)}
    write_mot_folder(root, sequences)
    expected = trackeval_on_folder(root / "gt", root / "trackers", output=root / "out")

    ours = {
        name: evaluate_sequence(gt, tracks, seq_length)
        for name, (gt, tracks, seq_length) in sequences.items()
    }
    ours["COMBINED"] = combine_sequences(ours)
    for name, row in expected.items():
        assert_same_fields(ours[name], row)
    out = root / "out" / "tracker"
    with open(out / "pedestrian_detailed.csv", newline="") as f:
        assert format_detailed(ours) == f.read()
    with open(out / "pedestrian_summary.txt", newline="") as f:
        assert format_summary(ours) == f.read()


def test_box_iou_bit_identical_to_trackeval():
    from trackeval.datasets._base_dataset import _BaseDataset

    from motcom.evaluation.ious import corner_boxes, overlap_ious

    rng = np.random.default_rng(3)
    gt_boxes = np.round(rng.uniform(0, 60, (40, 4)), int(rng.integers(0, 3)))
    tracker_boxes = np.round(rng.uniform(0, 60, (50, 4)), 1)
    tracker_boxes[:10] = gt_boxes[:10]
    tracker_boxes[10:15, 2] = 0.0
    dense = _BaseDataset._calculate_box_ious(gt_boxes, tracker_boxes, box_format="xywh")

    index_gt, index_tracker, iou = overlap_ious(
        np.zeros(40, np.int64),
        corner_boxes(gt_boxes),
        np.zeros(50, np.int64),
        corner_boxes(tracker_boxes),
    )
    sparse = np.zeros_like(dense)
    sparse[index_gt, index_tracker] = iou
    assert np.array_equal(sparse, dense)
    assert np.all(iou > 0)


@settings(SETTINGS, max_examples=40)
@given(scene=scenes())
def test_clear_frame_by_frame_fallback_matches_trackeval(scene):
    """With one round of whole-sequence matching, CLEAR finishes frame by frame."""
    from motcom.evaluation import clear

    gt, tracks, seq_length = scene
    expected = trackeval_on_arrays(gt, tracks, seq_length)
    rounds = clear.MAX_ROUNDS
    clear.MAX_ROUNDS = 1
    try:
        ours = evaluate_sequence(gt, tracks, seq_length)
    finally:
        clear.MAX_ROUNDS = rounds
    assert_same_fields(ours, expected)
