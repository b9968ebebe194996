"""Hand-made MOTChallenge cases with numbers worked out by hand, and the input checks."""

from __future__ import annotations

import dataclasses
import gc

import numpy as np
import pytest

from harness.errors import DataFormatError, EvaluationError
from motcom.data import GroundTruth, Tracks, empty_tracks
from motcom.evaluation import (
    DETAILED_COLUMNS,
    METRIC_FIELDS,
    SUMMARY_FIELDS,
    combine_sequences,
    evaluate_sequence,
    headline,
    prepare_sequence,
    preprocess,
)
from motcom.io import ground_truth_from_bytes
from motcom.trackeval_output import format_detailed, format_summary, write_detailed, write_summary


def make_gt(rows: list[tuple]) -> GroundTruth:
    """Rows of ``frame, id, left, top, width, height[, flag[, class]]`` (flag and class 1)."""
    full = [tuple(r) + (1, 1)[len(r) - 6 :] for r in rows]
    table = np.array(full, dtype=float).reshape(-1, 8)
    return GroundTruth(
        frame=table[:, 0].astype(np.int64),
        id=table[:, 1].astype(np.int64),
        boxes=table[:, 2:6].copy(),
        flag=table[:, 6].copy(),
        cls=table[:, 7].astype(np.int64),
        visibility=np.ones(len(table)),
    )


def make_tracks(rows: list[tuple]) -> Tracks:
    """Rows of ``frame, id, left, top, width, height``."""
    table = np.array(rows, dtype=float).reshape(-1, 6)
    return Tracks(
        frame=table[:, 0].astype(np.int64),
        id=table[:, 1].astype(np.int64),
        boxes=table[:, 2:6].copy(),
        conf=np.ones(len(table)),
    )


def walk(obj_id: int, frames: range, x: float = 0.0) -> list[tuple]:
    return [(t, obj_id, x, 0.0, 10.0, 10.0) for t in frames]


# --- matching threshold -------------------------------------------------------------------------


def test_iou_exactly_half_is_match():
    gt = make_gt([(1, 1, 0, 0, 20, 10)])
    tracks = make_tracks([(1, 1, 0, 0, 10, 10)])
    res = evaluate_sequence(gt, tracks, 1)
    assert res["CLR_TP"] == 1
    assert res["MOTA"] == 1.0
    assert res["MOTP"] == 0.5
    assert res["IDTP"] == 1
    assert res["HOTA"][9] == 1.0  # alpha 0.50 still matches
    assert res["HOTA"][10] == 0.0  # alpha 0.55 does not
    assert np.mean(res["HOTA"]) == pytest.approx(10 / 19, abs=1e-12)


def test_iou_below_half_is_no_match():
    gt = make_gt([(1, 1, 0, 0, 20, 10)])
    tracks = make_tracks([(1, 1, 0, 0, 9.99, 10)])
    res = evaluate_sequence(gt, tracks, 1)
    assert res["CLR_TP"] == 0
    assert res["CLR_FN"] == 1
    assert res["CLR_FP"] == 1
    assert res["MOTA"] == -1.0
    assert res["IDF1"] == 0.0


def test_threshold_changes_clear_and_identity_only():
    gt = make_gt([(1, 1, 0, 0, 20, 10)])
    tracks = make_tracks([(1, 1, 0, 0, 8, 10)])  # IoU 0.4
    res = evaluate_sequence(gt, tracks, 1, threshold=0.4)
    assert res["CLR_TP"] == 1
    assert res["IDTP"] == 1
    assert res["HOTA_TP"][7] == 1  # alpha 0.40
    assert res["HOTA_TP"][8] == 0  # alpha 0.45


# --- TrackEval's own tiny cases (tests/test_metrics.py), rebuilt from boxes ----------------------


def from_overlaps(
    gt_present: list[list[int]], tracker_present: list[list[int]], overlaps: dict[tuple, list]
) -> tuple[GroundTruth, Tracks, int]:
    """Build boxes where tracker k covers gt g exactly in the frames ``overlaps[(g, k)]`` marks.

    ``gt_present[g][t]`` and ``tracker_present[k][t]`` mark which boxes exist. A tracker box that
    covers no gt box lies far away from every gt box.
    """
    num_frames = len(gt_present[0])
    gt_rows, tracker_rows = [], []
    for g, present in enumerate(gt_present):
        gt_rows += [(t + 1, g + 1, 100 * g, 0, 10, 10) for t in range(num_frames) if present[t]]
    for k, present in enumerate(tracker_present):
        for t in range(num_frames):
            if not present[t]:
                continue
            covered = [g for (g, kk), marks in overlaps.items() if kk == k and marks[t]]
            x = 100 * covered[0] if covered else 5000 + 100 * k
            tracker_rows.append((t + 1, k + 1, x, 0, 10, 10))
    return make_gt(gt_rows), make_tracks(tracker_rows), num_frames


TRACKEVAL_TINY_CASES = {
    "no_confusion": (
        [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]],
        [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]],
        {(0, 1): [0, 0, 0, 1, 1], (1, 0): [1, 1, 0, 0, 0]},
        dict(CLR_TP=4, CLR_FN=4, CLR_FP=5, IDSW=0, MOTA=1 - 9 / 8, IDTP=4, IDFN=4, IDFP=5),
    ),
    "with_confusion": (
        [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]],
        [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]],
        {
            (0, 1): [0, 0, 0, 1, 1],
            (1, 0): [1, 1, 0, 0, 0],
            (0, 0): [0, 0, 1, 0, 0],
            (1, 1): [0, 1, 0, 0, 0],
        },
        dict(CLR_TP=5, CLR_FN=3, CLR_FP=4, IDSW=1, MOTA=0.0, IDTP=4, IDFN=4, IDFP=5),
    ),
    "split_tracks": (
        [[1, 1, 0, 1, 1], [1, 1, 1, 1, 1]],
        [[1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1], [0, 0, 1, 1, 1], [1, 1, 0, 0, 0]],
        {
            (0, 0): [1, 1, 0, 0, 0],
            (0, 3): [0, 0, 0, 1, 1],
            (1, 1): [0, 0, 1, 1, 0],
            (1, 2): [0, 0, 0, 0, 1],
            (1, 4): [1, 1, 0, 0, 0],
        },
        dict(CLR_TP=9, CLR_FN=0, CLR_FP=2, IDSW=3, MOTA=1 - 5 / 9, IDTP=4, IDFN=5, IDFP=7),
    ),
}


@pytest.mark.parametrize("case", list(TRACKEVAL_TINY_CASES))
def test_trackeval_tiny_case(case):
    gt_present, tracker_present, overlaps, expected = TRACKEVAL_TINY_CASES[case]
    gt, tracks, num_frames = from_overlaps(gt_present, tracker_present, overlaps)
    res = evaluate_sequence(gt, tracks, num_frames)
    for field, value in expected.items():
        assert res[field] == pytest.approx(value, abs=1e-12), field
    idtp, idfn, idfp = expected["IDTP"], expected["IDFN"], expected["IDFP"]
    assert res["IDF1"] == pytest.approx(2 * idtp / (2 * idtp + idfn + idfp), abs=1e-12)


# --- empty sides --------------------------------------------------------------------------------


def test_empty_tracker_gives_trackeval_early_result():
    gt = make_gt(walk(1, range(1, 4)) + walk(2, range(1, 3), x=50))
    res = evaluate_sequence(gt, empty_tracks(), 5)
    assert res["CLR_FN"] == 5
    assert res["ML"] == 2
    assert res["MLR"] == 1.0
    assert res["MOTA"] == 0
    assert res["CLR_Frames"] == 0  # TrackEval leaves it unset on this path
    assert res["IDFN"] == 5
    assert res["IDF1"] == 0
    assert np.all(res["HOTA_FN"] == 5)
    assert np.all(res["LocA"] == 1.0)
    assert res["LocA(0)"] == 1.0
    assert np.all(res["HOTA"] == 0)
    assert res["GT_IDs"] == 2
    assert res["Dets"] == 0


def test_empty_gt_counts_every_box_as_fp():
    tracks = make_tracks(walk(7, range(1, 4)))
    gt = make_gt([(1, 1, 500, 500, 10, 10, 0, 1)])  # flag 0: removed
    res = evaluate_sequence(gt, tracks, 3)
    assert res["CLR_FP"] == 3
    assert res["MOTA"] == 0
    assert res["MLR"] == 1.0
    assert res["IDFP"] == 3
    assert np.all(res["HOTA_FP"] == 3)
    assert res["GT_Dets"] == 0


# --- CLEAR rules --------------------------------------------------------------------------------


def test_id_switch_counts_once():
    gt = make_gt(walk(1, range(1, 5)))
    tracks = make_tracks(walk(1, range(1, 3)) + walk(2, range(3, 5)))
    res = evaluate_sequence(gt, tracks, 4)
    assert res["IDSW"] == 1
    assert res["MOTA"] == 0.75
    assert res["IDTP"] == 2
    assert res["IDFN"] == 2
    assert res["IDFP"] == 2
    assert res["IDF1"] == 0.5


def test_id_switch_against_last_match_after_gap():
    gt = make_gt(walk(1, range(1, 6)))
    tracks = make_tracks(walk(1, range(1, 3)) + walk(2, range(4, 6)))  # frame 3 missed
    res = evaluate_sequence(gt, tracks, 5)
    assert res["IDSW"] == 1
    assert res["CLR_TP"] == 4
    # Frame 3 has no tracker boxes, so it does not end the tracked run: no fragmentation.
    assert res["Frag"] == 0.0


def test_mt_at_exactly_point_eight_is_pt():
    gt = make_gt(walk(1, range(1, 6)))
    tracks = make_tracks(walk(1, range(1, 5)))  # 4 of 5 frames
    res = evaluate_sequence(gt, tracks, 5)
    assert res["MT"] == 0
    assert res["PT"] == 1
    assert res["ML"] == 0


def test_mt_above_point_eight():
    gt = make_gt(walk(1, range(1, 7)))
    tracks = make_tracks(walk(1, range(1, 6)))  # 5 of 6 frames
    res = evaluate_sequence(gt, tracks, 6)
    assert res["MT"] == 1
    assert res["MTR"] == 1.0


def test_frag_skips_frame_without_tracker_boxes():
    gt = make_gt(walk(1, range(1, 6)))
    tracks = make_tracks([r for r in walk(1, range(1, 6)) if r[0] != 2])
    res = evaluate_sequence(gt, tracks, 5)
    assert res["Frag"] == 0.0
    assert isinstance(res["Frag"], float)
    assert res["CLR_FN"] == 1


def test_frag_counts_gap_with_other_tracker_box():
    gt = make_gt(walk(1, range(1, 6)))
    rows = [r for r in walk(1, range(1, 6)) if r[0] != 2] + [(2, 9, 300, 300, 10, 10)]
    res = evaluate_sequence(gt, make_tracks(rows), 5)
    assert res["Frag"] == 1.0
    assert res["CLR_FP"] == 1


def test_continuation_bonus_keeps_previous_id():
    # Frame 2: tracker 2 overlaps gt 1 better, but tracker 1 continues the frame-1 match.
    gt = make_gt([(1, 1, 0, 0, 10, 10), (2, 1, 0, 0, 10, 10)])
    tracks = make_tracks([(1, 1, 0, 0, 10, 10), (2, 1, 0, 0, 10, 8), (2, 2, 0, 0, 10, 10)])
    res = evaluate_sequence(gt, tracks, 2)
    assert res["IDSW"] == 0
    assert res["CLR_TP"] == 2
    assert res["CLR_FP"] == 1
    assert res["MOTP_sum"] == pytest.approx(1.8, abs=1e-12)


# --- preprocessing ------------------------------------------------------------------------------


def _one_pedestrian_and_other(other_class: int, benchmark: str | None) -> dict:
    gt = make_gt([(1, 1, 0, 0, 10, 10, 1, 1), (1, 2, 100, 0, 10, 10, 0, other_class)])
    tracks = make_tracks([(1, 1, 0, 0, 10, 10), (1, 2, 100, 0, 10, 10)])
    return evaluate_sequence(gt, tracks, 1, benchmark=benchmark)


def test_static_person_box_is_removed():
    res = _one_pedestrian_and_other(7, "MOT17")
    assert res["CLR_FP"] == 0
    assert res["MOTA"] == 1.0
    assert res["Dets"] == 1


def test_occluder_box_is_false_positive():
    res = _one_pedestrian_and_other(9, "MOT17")
    assert res["CLR_FP"] == 1
    assert res["MOTA"] == 0.0


def test_class_six_distractor_only_in_mot20():
    mot17 = _one_pedestrian_and_other(6, "MOT17")
    mot20 = _one_pedestrian_and_other(6, "MOT20")
    assert mot17["CLR_FP"] == 1
    assert mot17["MOTA"] == 0.0
    assert mot20["CLR_FP"] == 0
    assert mot20["MOTA"] == 1.0


@pytest.mark.parametrize("benchmark", ["MOT15", None])
def test_no_distractor_removal_without_preprocessing(benchmark):
    res = _one_pedestrian_and_other(7, benchmark)
    assert res["CLR_FP"] == 1
    assert res["GT_Dets"] == 1  # flag 0 row dropped, class ignored


def test_mot15_keeps_flagged_rows_of_any_class():
    gt = make_gt([(1, 1, 0, 0, 10, 10, 1, -1)])
    res = evaluate_sequence(gt, make_tracks([(1, 1, 0, 0, 10, 10)]), 1, benchmark="MOT15")
    assert res["MOTA"] == 1.0


def test_flag_truncated_to_integer():
    gt = make_gt([(1, 1, 0, 0, 10, 10, 0.5, 1), (1, 2, 50, 0, 10, 10, 1.5, 1)])
    res = evaluate_sequence(gt, make_tracks([(1, 1, 50, 0, 10, 10)]), 1)
    assert res["GT_Dets"] == 1
    assert res["MOTA"] == 1.0


def test_zero_flag_pedestrian_box_is_false_positive():
    gt = make_gt([(1, 1, 0, 0, 10, 10, 1, 1), (1, 2, 100, 0, 10, 10, 0, 1)])
    tracks = make_tracks([(1, 1, 0, 0, 10, 10), (1, 2, 100, 0, 10, 10)])
    res = evaluate_sequence(gt, tracks, 1)
    assert res["CLR_FP"] == 1


def test_ids_relabelled_in_counts():
    gt = make_gt(walk(1000, range(1, 3)) + walk(5, range(1, 3), x=50))
    tracks = make_tracks(walk(77, range(1, 3)))
    res = evaluate_sequence(gt, tracks, 2)
    assert res["GT_IDs"] == 2
    assert res["IDs"] == 1
    assert res["CLR_TP"] == 2


# --- combination --------------------------------------------------------------------------------


def test_combined_ignores_sequence_without_tp_in_assa():
    gt = make_gt(walk(1, range(1, 5)))
    tracks = make_tracks(walk(1, range(1, 3)) + walk(2, range(3, 5)))
    good = evaluate_sequence(gt, tracks, 4)
    empty = evaluate_sequence(gt, empty_tracks(), 4)
    combined = combine_sequences({"a": good, "b": empty})
    assert np.array_equal(combined["AssA"], good["AssA"])
    assert np.array_equal(combined["LocA"], good["LocA"])
    assert combined["CLR_TP"] == good["CLR_TP"]
    assert combined["CLR_FN"] == good["CLR_FN"] + 4
    assert combined["CLR_Frames"] == 4  # the empty sequence adds 0 frames
    assert combined["MOTA"] == (4 - 1) / 8
    assert combined["GT_Dets"] == 8


def test_combined_skips_existing_combined_entry():
    res = evaluate_sequence(make_gt(walk(1, range(1, 3))), make_tracks(walk(1, range(1, 3))), 2)
    once = combine_sequences({"a": res})
    again = combine_sequences({"a": res, "COMBINED": once})
    assert again["CLR_TP"] == once["CLR_TP"]


# --- output -------------------------------------------------------------------------------------


def test_fields_cover_every_metric_family():
    res = evaluate_sequence(make_gt(walk(1, range(1, 3))), make_tracks(walk(1, range(1, 3))), 2)
    for fields in METRIC_FIELDS.values():
        for field in fields:
            assert field in res
    assert len(DETAILED_COLUMNS) == 275
    assert len(SUMMARY_FIELDS) == 39


def test_headline_scale():
    gt = make_gt(walk(1, range(1, 5)))
    tracks = make_tracks(walk(1, range(1, 3)) + walk(2, range(3, 5)))
    flat = headline(evaluate_sequence(gt, tracks, 4))
    assert flat["MOTA"] == 75.0
    assert flat["IDF1"] == 50.0
    assert flat["IDSW"] == 1
    assert isinstance(flat["CLR_TP"], int)
    assert list(flat) == list(SUMMARY_FIELDS)


def test_summary_and_detailed_files(tmp_path):
    gt = make_gt(walk(1, range(1, 5)))
    tracks = make_tracks(walk(1, range(1, 3)) + walk(2, range(3, 5)))
    results = {"seq-b": evaluate_sequence(gt, tracks, 4), "seq-a": evaluate_sequence(gt, tracks, 4)}
    results["COMBINED"] = combine_sequences(results)
    write_summary(results, tmp_path / "pedestrian_summary.txt")
    write_detailed(results, tmp_path / "pedestrian_detailed.csv")

    summary = (tmp_path / "pedestrian_summary.txt").read_bytes().decode().split("\r\n")
    assert summary[0].split(" ") == list(SUMMARY_FIELDS)
    values = dict(zip(SUMMARY_FIELDS, summary[1].split(" "), strict=True))
    assert values["MOTA"] == "75"
    assert values["MOTP"] == "100"
    assert values["CLR_TP"] == "8"
    assert values["Frag"] == "0"

    lines = (tmp_path / "pedestrian_detailed.csv").read_bytes().decode().split("\r\n")
    assert lines[0] == "seq," + ",".join(DETAILED_COLUMNS)
    assert [line.split(",")[0] for line in lines[1:4]] == ["seq-a", "seq-b", "COMBINED"]
    row = dict(zip(["seq", *DETAILED_COLUMNS], lines[1].split(","), strict=True))
    assert row["CLR_TP"] == "4"
    assert row["Frag"] == "0.0"
    assert row["HOTA_TP___50"] == "4.0"
    assert row["MOTA"] == "0.75"
    assert format_detailed(results).endswith("\r\n")
    assert format_summary(results).count("\r\n") == 2


def test_output_without_combined_raises(tmp_path):
    res = evaluate_sequence(make_gt(walk(1, range(1, 3))), make_tracks(walk(1, range(1, 3))), 2)
    with pytest.raises(EvaluationError, match="no 'COMBINED' entry"):
        write_summary({"a": res}, tmp_path / "s.txt")
    with pytest.raises(EvaluationError, match="no 'COMBINED' entry"):
        write_detailed({"a": res}, tmp_path / "d.csv")


# --- input checks -------------------------------------------------------------------------------


def test_duplicate_gt_id_in_frame():
    gt = make_gt([(3, 4, 0, 0, 10, 10), (3, 4, 50, 0, 10, 10)])
    with pytest.raises(EvaluationError, match=r"gt: frame 3 has id 4 more than once"):
        evaluate_sequence(gt, empty_tracks(), 5)


def test_duplicate_tracker_id_in_frame():
    tracks = make_tracks([(2, 8, 0, 0, 10, 10), (2, 8, 50, 0, 10, 10)])
    with pytest.raises(EvaluationError, match=r"sequence 'S', tracker: frame 2 has id 8 more than"):
        evaluate_sequence(make_gt(walk(1, range(1, 3))), tracks, 5, name="S")


def test_frame_outside_sequence():
    tracks = make_tracks([(6, 1, 0, 0, 10, 10)])
    with pytest.raises(EvaluationError, match=r"tracker: frame 6 \(id 1\) is outside the sequence"):
        evaluate_sequence(make_gt(walk(1, range(1, 3))), tracks, 5)
    gt = make_gt([(0, 1, 0, 0, 10, 10)])
    with pytest.raises(EvaluationError, match=r"gt: frame 0 \(id 1\) is outside.*1\.\.5"):
        evaluate_sequence(gt, empty_tracks(), 5)


def test_negative_id_rejected():
    tracks = make_tracks([(1, -1, 0, 0, 10, 10)])
    with pytest.raises(EvaluationError, match=r"tracker: frame 1 has negative id -1"):
        evaluate_sequence(make_gt(walk(1, range(1, 3))), tracks, 2)


def test_non_finite_box_rejected():
    tracks = make_tracks([(1, 1, np.nan, 0, 10, 10)])
    with pytest.raises(EvaluationError, match=r"tracker: frame 1, id 1 has a non-finite box"):
        evaluate_sequence(make_gt(walk(1, range(1, 3))), tracks, 2)


def test_negative_size_rejected():
    gt = make_gt([(2, 3, 0, 0, -1, 10)])
    with pytest.raises(EvaluationError, match=r"gt: frame 2, id 3 has a negative width or height"):
        evaluate_sequence(gt, empty_tracks(), 2)


def test_non_finite_flag_rejected():
    gt = make_gt([(1, 1, 0, 0, 10, 10, np.inf, 1)])
    with pytest.raises(EvaluationError, match=r"gt: frame 1, id 1 has flag inf"):
        evaluate_sequence(gt, empty_tracks(), 2)


def test_invalid_gt_class_with_preprocessing():
    gt = make_gt([(1, 1, 0, 0, 10, 10, 1, 14)])
    tracks = make_tracks([(1, 1, 0, 0, 10, 10)])
    with pytest.raises(EvaluationError, match=r"frame 1 has class 14; expected a MOTChallenge"):
        evaluate_sequence(gt, tracks, 1, benchmark="MOT17")
    assert evaluate_sequence(gt, tracks, 1, benchmark="MOT15")["MOTA"] == 1.0


def test_unknown_benchmark():
    with pytest.raises(EvaluationError, match=r"unknown benchmark 'MOT18'; expected one of"):
        evaluate_sequence(make_gt(walk(1, range(1, 3))), empty_tracks(), 2, benchmark="MOT18")


@pytest.mark.parametrize("threshold", [0.0, 1.5])
def test_threshold_out_of_range(threshold):
    with pytest.raises(EvaluationError, match=r"threshold is .*; expected a number in \[1e-6, 1\]"):
        evaluate_sequence(make_gt(walk(1, range(1, 3))), empty_tracks(), 2, threshold=threshold)


@pytest.mark.parametrize("seq_length", [0, 2.0])
def test_bad_seq_length(seq_length):
    with pytest.raises(EvaluationError, match=r"seq_length is .*; expected an integer >= 1"):
        evaluate_sequence(make_gt(walk(1, range(1, 3))), empty_tracks(), seq_length)


def test_mismatched_array_lengths():
    tracks = Tracks(
        frame=np.array([1, 1]), id=np.array([1]), boxes=np.zeros((2, 4)), conf=np.ones(2)
    )
    with pytest.raises(EvaluationError, match=r"tracker: arrays of different lengths"):
        evaluate_sequence(make_gt(walk(1, range(1, 3))), tracks, 2)


# --- numpy-identical sums -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 7), (5, 8), (4, 13), (6, 64), (2, 129), (3, 300), (40, 1)])
def test_sparse_sums_bit_identical_to_numpy(shape):
    from motcom.evaluation.sums import sequential_or_pairwise_sums

    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    dense = rng.random(shape) * (rng.random(shape) < 0.6)
    rows, cols = np.nonzero(dense)
    row_sums = sequential_or_pairwise_sums(
        rows, cols, dense[rows, cols], np.full(shape[0], shape[1]), np.ones(shape[0], bool)
    )
    assert np.array_equal(row_sums, dense.sum(axis=1))

    order = np.lexsort((rows, cols))
    column_sums = sequential_or_pairwise_sums(
        cols[order],
        rows[order],
        dense[rows, cols][order],
        np.full(shape[1], shape[0]),
        np.full(shape[1], shape[1] == 1),
    )
    assert np.array_equal(column_sums, dense.sum(axis=0))


@pytest.mark.parametrize("length", [5, 8, 127, 128, 129, 1000, 8192, 70001])
def test_pairwise_sums_of_long_runs_bit_identical(length):
    from motcom.evaluation.sums import sparse_pairwise_sums

    rng = np.random.default_rng(length)
    dense = np.zeros((3, length, 2))
    for owner in range(3):
        cells = rng.choice(length, size=min(length, 5 + 200 * owner), replace=False)
        scale = 10.0 ** rng.uniform(-3, 3, (cells.size, 1))
        dense[owner, cells] = rng.random((cells.size, 2)) * scale
    owner, position = np.nonzero(dense[:, :, 0])
    sums = sparse_pairwise_sums(owner, position, dense[owner, position], np.full(3, length), 3)
    for o in range(3):
        for column in range(2):
            expected = np.sum(np.ascontiguousarray(dense[o, :, column]))
            assert sums[o, column] == expected, (o, column)


# --- uniqueness certificate ---------------------------------------------------------------------


def _certify(weights: dict[tuple[int, int], float], num_gt: int, num_tracker: int):
    from motcom.evaluation.matching import certify_unique_matching

    pairs = sorted(weights)
    edge_gt = np.array([g for g, _ in pairs])
    edge_tracker = np.array([t for _, t in pairs])
    weight = np.array([weights[p] for p in pairs])
    chosen, failed = certify_unique_matching(
        np.zeros(len(pairs), np.int64), edge_gt, edge_tracker, weight, num_gt, num_tracker, 1
    )
    return {p for p, c in zip(pairs, chosen, strict=True) if c}, failed.tolist()


def test_certificate_proves_unique_matching():
    chosen, failed = _certify({(0, 0): 0.9, (0, 1): 0.2, (1, 1): 0.8, (2, 1): 0.1}, 3, 2)
    assert failed == []
    assert chosen == {(0, 0), (1, 1)}


def test_certificate_leaves_tie_to_solver():
    chosen, failed = _certify({(0, 0): 0.5, (0, 1): 0.5}, 1, 2)
    assert failed == [0]


def test_certificate_rejects_better_crossing_matching():
    # Greedy takes (0, 0) alone (1.0); the optimum is (0, 1) + (1, 0) = 1.8.
    chosen, failed = _certify({(0, 0): 1.0, (0, 1): 0.9, (1, 0): 0.9}, 2, 2)
    assert failed == [0]


# --- reuse of the gt preprocessing ---------------------------------------------------------------


GT_TEXT = (
    # frame, id, left, top, width, height, flag, class, visibility. Id 3 is a static person
    # (class 7) with flag 1, a distractor for MOT16/17/20 but a kept gt row for MOT15.
    b"1,1,0,0,10,20,1,1,1\n1,2,30,0,10,20,1,1,1\n1,3,60,0,10,20,1,7,1\n"
    b"2,1,1,0,10,20,1,1,1\n2,2,31,0,10,20,1,1,1\n2,3,60,0,10,20,1,7,1\n"
    b"3,1,2,0,10,20,1,1,1\n3,2,32,0,10,20,1,1,1\n"
)


def _parsed_gt() -> GroundTruth:
    return ground_truth_from_bytes(GT_TEXT, source="gt.txt", seq_length=3)


def _writeable_gt() -> GroundTruth:
    table = np.loadtxt(GT_TEXT.splitlines(), delimiter=",")
    return make_gt([tuple(row) for row in table[:, :8]])


def _tracker_pair() -> tuple[Tracks, Tracks]:
    first = make_tracks(
        [(1, 5, 0, 0, 10, 20), (1, 6, 30, 0, 10, 20), (1, 7, 60, 0, 10, 20),
         (2, 5, 1, 0, 10, 20), (2, 6, 60, 0, 10, 20), (3, 6, 2, 0, 10, 20)]
    )  # fmt: skip
    second = make_tracks(
        [(1, 1, 30, 0, 10, 20), (2, 1, 31, 0, 10, 20), (2, 2, 1, 0, 10, 20),
         (3, 2, 2, 0, 10, 20), (3, 1, 32, 0, 10, 21), (3, 3, 90, 0, 10, 20)]
    )  # fmt: skip
    return first, second


def _assert_same_results(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert type(actual[key]) is type(value), key
        assert np.array_equal(actual[key], value), key


def test_reader_returns_read_only_gt():
    gt = _parsed_gt()
    for array in (gt.frame, gt.id, gt.boxes, gt.flag, gt.cls, gt.visibility):
        assert not array.flags.writeable


def test_shared_gt_matches_separate_copies():
    first, second = _tracker_pair()
    shared = _parsed_gt()
    trackers = (first, second)
    shared_results = [evaluate_sequence(shared, tracks, 3) for tracks in trackers]
    copy_results = [evaluate_sequence(_parsed_gt(), tracks, 3) for tracks in trackers]
    writeable_results = [evaluate_sequence(_writeable_gt(), tracks, 3) for tracks in trackers]
    for actual, expected in zip(shared_results, copy_results, strict=True):
        _assert_same_results(actual, expected)
    for actual, expected in zip(shared_results, writeable_results, strict=True):
        _assert_same_results(actual, expected)
    # The two trackers score differently, so a reused result would show.
    assert shared_results[0]["CLR_TP"] != shared_results[1]["CLR_TP"]


def test_shared_gt_preprocessing_is_reused():
    first, second = _tracker_pair()
    gt = _parsed_gt()
    prepared_first = prepare_sequence(gt, first, 3, benchmark="MOT17")
    prepared_second = prepare_sequence(gt, second, 3, benchmark="MOT17")
    assert prepared_second.gt is prepared_first.gt
    assert not prepared_first.gt.frame.flags.writeable


def test_gt_reuse_keyed_by_length_and_benchmark():
    first, _ = _tracker_pair()
    gt = _parsed_gt()
    evaluate_sequence(gt, first, 3, benchmark="MOT17")
    for length, benchmark in [(4, "MOT17"), (3, "MOT15"), (3, None), (3, "MOT20")]:
        fresh = evaluate_sequence(_parsed_gt(), first, length, benchmark=benchmark)
        _assert_same_results(evaluate_sequence(gt, first, length, benchmark=benchmark), fresh)
    # The benchmarks keep different gt rows, so a result reused across them would show.
    mot15 = evaluate_sequence(gt, first, 3, benchmark="MOT15")
    mot17 = evaluate_sequence(gt, first, 3, benchmark="MOT17")
    assert mot15["GT_Dets"] == 8
    assert mot17["GT_Dets"] == 6


def test_replaced_gt_not_served_from_cache():
    first, _ = _tracker_pair()
    gt = _parsed_gt()
    before = evaluate_sequence(gt, first, 3)
    boxes = gt.boxes.copy()
    boxes[:, 0] += 100.0
    boxes.setflags(write=False)
    moved = dataclasses.replace(gt, boxes=boxes)
    after = evaluate_sequence(moved, first, 3)
    assert after["CLR_TP"] == 0
    assert before["CLR_TP"] > 0


def test_gt_changed_in_place_not_served_from_cache():
    first, _ = _tracker_pair()
    gt = _writeable_gt()
    before = evaluate_sequence(gt, first, 3)
    gt.boxes[:, 0] += 100.0
    after = evaluate_sequence(gt, first, 3)
    assert before["CLR_TP"] > 0
    assert after["CLR_TP"] == 0


def test_gt_over_writeable_base_not_cached():
    first, _ = _tracker_pair()
    table = np.loadtxt(GT_TEXT.splitlines(), delimiter=",")
    boxes = table[:, 2:6]
    boxes.setflags(write=False)  # a read-only view; ``table`` stays writeable
    gt = dataclasses.replace(make_gt([tuple(row) for row in table[:, :8]]), boxes=boxes)
    before = evaluate_sequence(gt, first, 3)
    table[:, 2] += 100.0
    after = evaluate_sequence(gt, first, 3)
    assert before["CLR_TP"] > 0
    assert after["CLR_TP"] == 0


def test_collected_gt_not_served_from_cache():
    first, second = _tracker_pair()
    evaluate_sequence(_parsed_gt(), first, 3)
    gc.collect()
    # A new gt may get the id of the collected one; its own boxes must be used.
    boxes = _parsed_gt().boxes.copy()
    boxes[:, 1] += 50.0
    boxes.setflags(write=False)
    moved = dataclasses.replace(_parsed_gt(), boxes=boxes)
    assert evaluate_sequence(moved, first, 3)["CLR_TP"] == 0
    _assert_same_results(evaluate_sequence(_parsed_gt(), second, 3),
                         evaluate_sequence(_parsed_gt(), second, 3))  # fmt: skip


def test_shared_gt_still_checks_tracker():
    first, _ = _tracker_pair()
    gt = _parsed_gt()
    evaluate_sequence(gt, first, 3, name="S")
    outside = make_tracks([(4, 1, 0, 0, 10, 20)])
    with pytest.raises(EvaluationError, match=r"'S', tracker: frame 4 \(id 1\) is outside"):
        evaluate_sequence(gt, outside, 3, name="S")
    with pytest.raises(EvaluationError, match=r"seq_length is 3\.0; expected an integer >= 1"):
        evaluate_sequence(gt, first, 3.0)


@pytest.mark.parametrize(
    "text",
    [
        "1,1,0,0,10,20,1,1,1\n1,2,0,0,10,20,1,1,1\n2,1,0,0,10,20,1,1,1\n",  # frame, then id
        "1,1,0,0,10,20,1,1,1\n2,1,0,0,10,20,1,1,1\n1,2,0,0,10,20,1,1,1\n",  # id, then frame
        "2,1,0,0,10,20,1,1,1\n1,2,0,0,10,20,1,1,1\n1,1,0,0,10,20,1,1,1\n",  # unsorted
    ],
)
def test_reader_accepts_distinct_pairs_in_any_order(text):
    gt = ground_truth_from_bytes(text.encode(), source="gt.txt")
    assert len(gt) == 3


@pytest.mark.parametrize(
    ("text", "line", "first"),
    [
        ("1,1,0,0,10,20,1,1,1\n2,1,0,0,10,20,1,1,1\n1,1,5,0,10,20,1,1,1\n", 3, 1),
        ("1,1,0,0,10,20,1,1,1\n1,2,0,0,10,20,1,1,1\n1,1,5,0,10,20,1,1,1\n", 3, 1),
        ("1,2,0,0,10,20,1,1,1\n1,2,5,0,10,20,1,1,1\n2,1,0,0,10,20,1,1,1\n", 2, 1),
    ],
)
def test_reader_finds_repeated_pair(text, line, first):
    with pytest.raises(
        DataFormatError, match=rf"gt\.txt:{line}: id used twice .*first used on line {first}"
    ):
        ground_truth_from_bytes(text.encode(), source="gt.txt")


def test_gt_cache_stays_small():
    first, _ = _tracker_pair()
    kept = [_parsed_gt() for _ in range(preprocess.GT_CACHE_SIZE + 3)]
    for gt in kept:
        evaluate_sequence(gt, first, 3)
    assert len(preprocess._GT_CACHE) == preprocess.GT_CACHE_SIZE
    assert preprocess._GT_CACHE[0][0]() is kept[-1]
    del gt, kept
    gc.collect()
    evaluate_sequence(_parsed_gt(), first, 3)
    # Storing the new entry dropped the entries of the collected ground truths.
    assert len(preprocess._GT_CACHE) == 1
