"""py-motmetrics matching rules in the shared evaluator, on a crossing worked out by hand.

Two fish A (id 1) and B (id 2) and a tracker with hypotheses h1, h2 (and h3, a false positive).
Positions are x coordinates (y = z = 10 cm); the matching threshold is 0.5 cm.

=====  ==========  ==========  ===========================================================
frame  A, B        h1, h2      py-motmetrics 1.4.0 events
=====  ==========  ==========  ===========================================================
1      10, 12      10, 12      A-h1 MATCH, B-h2 MATCH (the only pairs within 0.5)
2      10, 12      h3 at 20    A MISS, B MISS, h3 FP (the tracker lost both fish)
3      10, 10.4    10.3, 10.1  A-h1 MATCH (0.3), B-h2 MATCH (0.3): both pairs continue the
                               pairing of frame 1, because each object's last hypothesis is
                               still within the threshold; the cheaper crossed pairs
                               (0.1 + 0.1) are not considered
4      10, 12      10, 12      A-h1 MATCH, B-h2 MATCH
5      10, 11      11, 10      the tracker swaps: A-h2 SWITCH, B-h1 SWITCH (+ 2 TRANSFER)
6      10, 11      10, 11      it swaps back: A-h1 SWITCH, B-h2 SWITCH (+ 2 TRANSFER)
7      10, 11      10, 11      A-h1 MATCH, B-h2 MATCH
=====  ==========  ==========  ===========================================================

py-motmetrics: 14 gt rows, 13 tracker rows, TP = 8 matches + 4 switches = 12, FN = 2, FP = 1,
IDSW = 4, MOTA = 1 - (2 + 1 + 4) / 14 = 0.5, MOTP = (0.3 + 0.3) / 12 = 0.05 cm. Frag = 2 (each
fish is missed once between tracked frames). Each fish is tracked in 6 of 7 frames, so MT = 2.
Frames within the threshold per pair: A-h1 5 (frames 1, 3, 4, 6, 7), B-h2 5, A-h2 2, B-h1 2, so
IDTP = 10 and IDF1 = 2 * 10 / (14 + 13) = 20 / 27.
MTBF (3D-ZeF): per fish the runs are frame 1, frames 3-4, frame 5, frames 6-7 (a SWITCH starts a
run), so 6 tracked frames in 4 runs: MTBF-std = 12 / 8 = 1.5. The gaps are frame 2 and, in
py-motmetrics 1.4.0, the TRANSFER events of frames 5 and 6, which the 3D-ZeF ``MTBF`` function
counts like misses: MTBF-mono = 12 / (8 + 6). With py-motmetrics 1.1.3 (no TRANSFER events) only
frame 2 is a gap: MTBF-mono = 12 / (8 + 2).

TrackEval's rule differs in frame 3: its continuation bonus looks only at the previous frame with
boxes on both sides (frame 2, without matches), so it takes the crossed pairs (A-h2, B-h1) and
counts 2 switches, then 2 more in frame 4 when the fish part, plus the 4 of frames 5 and 6:
IDSW = 8 and MOTA = 1 - (2 + 1 + 8) / 14 = 3 / 14.
py-motmetrics' numbers were checked with motmetrics 1.4.0 on the same input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.errors import EvaluationError
from motcom.data import GroundTruth, Tracks
from motcom.evaluation import evaluate_sequence
from zef3d.evaluation import evaluate_points

GT_X = {1: (10.0, 12.0), 2: (10.0, 12.0), 3: (10.0, 10.4), 4: (10.0, 12.0), 5: (10.0, 11.0),
        6: (10.0, 11.0), 7: (10.0, 11.0)}
TRACKER_X = {1: [(1, 10.0), (2, 12.0)], 2: [(3, 20.0)], 3: [(1, 10.3), (2, 10.1)],
             4: [(1, 10.0), (2, 12.0)], 5: [(1, 11.0), (2, 10.0)], 6: [(1, 10.0), (2, 11.0)],
             7: [(1, 10.0), (2, 11.0)]}


def crossing_arrays() -> tuple[np.ndarray, ...]:
    gt = [(frame, fish, x) for frame, xs in GT_X.items() for fish, x in enumerate(xs, start=1)]
    tracker = [(frame, hyp, x) for frame, rows in TRACKER_X.items() for hyp, x in rows]

    def split(rows):
        frame = np.array([r[0] for r in rows], np.int64)
        ids = np.array([r[1] for r in rows], np.int64)
        points = np.array([[r[2], 10.0, 10.0] for r in rows])
        return frame, ids, points

    return (*split(gt), *split(tracker))


def score(semantics: str, **kwargs) -> dict:
    return evaluate_points(*crossing_arrays(), threshold=0.5, semantics=semantics, **kwargs)


def test_crossing_motmetrics_counts():
    res = score("motmetrics")
    assert res["num_matches"] == 8
    assert res["num_switches"] == 4
    assert res["num_detections"] == 12
    assert res["num_misses"] == 2
    assert res["num_false_positives"] == 1
    assert res["num_fragmentations"] == 2
    assert res["mostly_tracked"] == 2
    assert res["num_transfer"] == 4
    assert res["num_ascend"] == 0
    assert res["idtp"] == 10
    assert res["num_frames"] == 7


def test_crossing_motmetrics_ratios():
    res = score("motmetrics")
    assert res["mota"] == pytest.approx(0.5, abs=1e-12)
    assert res["motp"] == pytest.approx(0.6 / 12, abs=1e-12)
    assert res["idf1"] == pytest.approx(20 / 27, abs=1e-12)
    assert res["idp"] == pytest.approx(10 / 13, abs=1e-12)
    assert res["idr"] == pytest.approx(10 / 14, abs=1e-12)
    assert res["motal"] == pytest.approx(1 - (2 + 1 + math.log10(5)) / 14, abs=1e-12)


def test_crossing_mtbf_with_and_without_transfers():
    res = score("motmetrics")
    assert (res["mtbf_ssum"], res["mtbf_slen"], res["mtbf_nslen"]) == (12, 8, 6)
    assert res["mtbf_std"] == 1.5
    assert res["mtbf_mono"] == pytest.approx(12 / 14, abs=1e-12)
    old = score("motmetrics", mtbf_extra_events=False)
    assert (old["mtbf_ssum"], old["mtbf_slen"], old["mtbf_nslen"]) == (12, 8, 2)
    assert old["mtbf_mono"] == pytest.approx(12 / 10, abs=1e-12)


def test_crossing_trackeval_switches_differ():
    res = score("trackeval")
    assert res["num_switches"] == 8
    assert res["num_detections"] == 12
    assert res["num_misses"] == 2
    assert res["num_false_positives"] == 1
    assert res["mota"] == pytest.approx(3 / 14, abs=1e-12)
    assert res["idtp"] == 10


def box_case() -> tuple[GroundTruth, Tracks]:
    """The crossing as 10 x 10 px boxes: x in cm becomes left = 10 (x - 10) px.

    Offsets of 1 and 3 px give IoU 0.818 and 0.538, above 0.5; 10 px and more give no overlap
    above 0.5, so the pairs within the threshold are those of the point case.
    """
    gt_f, gt_i, gt_p, tr_f, tr_i, tr_p = crossing_arrays()

    def boxes(points):
        left = np.round(10 * (points[:, 0] - 10.0), 9)
        return np.column_stack([left, np.zeros_like(left), np.full_like(left, 10.0),
                                np.full_like(left, 10.0)])

    gt = GroundTruth(frame=gt_f, id=gt_i, boxes=boxes(gt_p), flag=np.ones(len(gt_f)),
                     cls=np.ones(len(gt_f), np.int64), visibility=np.ones(len(gt_f)))
    tracks = Tracks(frame=tr_f, id=tr_i, boxes=boxes(tr_p), conf=np.ones(len(tr_f)))
    return gt, tracks


def test_boxes_semantics_option():
    gt, tracks = box_case()
    trackeval = evaluate_sequence(gt, tracks, 7, benchmark=None)
    motmetrics = evaluate_sequence(gt, tracks, 7, benchmark=None, semantics="motmetrics")
    assert trackeval["IDSW"] == 8
    assert motmetrics["IDSW"] == 4
    assert motmetrics["CLR_TP"] == 12
    assert motmetrics["CLR_FN"] == 2
    assert motmetrics["CLR_FP"] == 1
    assert motmetrics["MOTA"] == pytest.approx(0.5, abs=1e-12)
    assert motmetrics["IDF1"] == pytest.approx(20 / 27, abs=1e-12)
    assert motmetrics["MOTP"] == pytest.approx((10 + 2 * 7 / 13) / 12, abs=1e-12)
    assert motmetrics["Frag"] == 2.0


def test_boxes_semantics_keeps_hota():
    gt, tracks = box_case()
    trackeval = evaluate_sequence(gt, tracks, 7, benchmark=None)
    motmetrics = evaluate_sequence(gt, tracks, 7, benchmark=None, semantics="motmetrics")
    np.testing.assert_array_equal(motmetrics["HOTA"], trackeval["HOTA"])
    assert motmetrics["GT_Dets"] == trackeval["GT_Dets"]


def test_unknown_semantics_rejected():
    gt, tracks = box_case()
    with pytest.raises(EvaluationError, match="unknown semantics 'pymot'"):
        evaluate_sequence(gt, tracks, 7, semantics="pymot")
    with pytest.raises(EvaluationError, match="expected one of trackeval, motmetrics"):
        score("pymot")


def test_duplicate_id_in_frame_rejected():
    gt_f, gt_i, gt_p, tr_f, tr_i, tr_p = crossing_arrays()
    tr_i = tr_i.copy()
    tr_i[1] = tr_i[0]
    with pytest.raises(EvaluationError, match="tracker id 1 occurs more than once in frame 1"):
        evaluate_points(gt_f, gt_i, gt_p, tr_f, tr_i, tr_p, threshold=0.5, name="ZebraFish-01")
