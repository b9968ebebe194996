"""Golden numbers on real MOTChallenge files: MOT17 train (3 sequences), the TUD pair, MOT20-01."""

from __future__ import annotations

import configparser
from pathlib import Path

import numpy as np
import pytest
from _trackeval_oracle import (
    read_detailed_csv,
    read_mot_text,
    trackeval_on_arrays,
    trackeval_on_folder,
)

from motcom.data import Tracks
from motcom.evaluation import (
    DETAILED_COLUMNS,
    combine_sequences,
    detailed_values,
    evaluate_sequence,
    headline,
)
from motcom.trackeval_output import format_detailed, format_summary

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MOT_ROOT = SHARED / "realdata" / "mot"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not MOT_ROOT.is_dir(), reason=f"real MOTChallenge files not found at {MOT_ROOT}"
    ),
]

MOT17 = MOT_ROOT / "MOT17"
MOT17_SEQUENCES = ["MOT17-02-SDP", "MOT17-05-SDP", "MOT17-09-SDP"]
TUD_LENGTHS = {"TUD-Campus": 71, "TUD-Stadtmitte": 179}

# TrackEval 1.3.0 on the TUD pair as MOT15 (values x100, rounded to 3 decimals); they equal the
# MOTChallenge devkit's published numbers.
TUD_EXPECTED = {
    "TUD-Campus": dict(
        MOTA=52.646, MOTP=72.280, IDF1=55.766, IDP=72.973, IDR=45.125, CLR_TP=209, CLR_FN=150,
        CLR_FP=13, IDSW=7, Frag=7, MT=1, PT=6, ML=1, MOTAL=54.361, HOTA=39.140, DetA=41.805,
        AssA=36.912, LocA=77.005, IDTP=162, IDFN=197, IDFP=60,
    ),
    "TUD-Stadtmitte": dict(
        MOTA=56.401, MOTP=65.410, IDF1=64.462, IDP=81.976, IDR=53.114, CLR_TP=704, CLR_FN=452,
        CLR_FP=45, IDSW=7, Frag=6, MT=5, PT=4, ML=1, MOTAL=56.934, HOTA=39.785, DetA=39.227,
        AssA=40.884, LocA=73.752, IDTP=614, IDFN=542, IDFP=135,
    ),
    "COMBINED": dict(
        MOTA=55.512, MOTP=66.982, IDF1=62.430, IDP=79.918, IDR=51.221, CLR_TP=913, CLR_FN=602,
        CLR_FP=58, IDSW=14, Frag=13, MT=6, PT=10, ML=2, MOTAL=56.360, HOTA=39.996, DetA=39.768,
        AssA=41.245, LocA=73.248,
    ),
}  # fmt: skip


def seq_length(seq_folder: Path) -> int:
    ini = configparser.ConfigParser()
    ini.read(seq_folder / "seqinfo.ini")
    return int(ini["Sequence"]["seqLength"])


@pytest.fixture(scope="module")
def mot17_results() -> dict[str, dict]:
    results = {}
    for name in MOT17_SEQUENCES:
        folder = MOT17 / "gt" / "MOT17-train" / name
        gt = read_mot_text(folder / "gt" / "gt.txt", is_gt=True)
        tracks = read_mot_text(
            MOT17 / "trackers" / "realtracker" / "data" / f"{name}.txt", is_gt=False
        )
        results[name] = evaluate_sequence(
            gt, tracks, seq_length(folder), benchmark="MOT17", name=name
        )
    results["COMBINED"] = combine_sequences(results)
    return results


def test_mot17_every_detailed_field(mot17_results):
    expected = read_detailed_csv(MOT17 / "trackeval_pedestrian_detailed.csv")
    assert sorted(expected) == MOT17_SEQUENCES
    for name in MOT17_SEQUENCES:
        ours = dict(zip(DETAILED_COLUMNS, detailed_values(mot17_results[name]), strict=True))
        for column, text in expected[name].items():
            if column == "seq":
                continue
            # An older TrackEval wrote OWTA under the name RHOTA.
            field = column.replace("RHOTA", "OWTA")
            assert float(ours[field]) == pytest.approx(float(text), abs=1e-9), (name, column)


def test_mot17_headline_numbers(mot17_results):
    flat = headline(mot17_results["MOT17-02-SDP"])
    assert round(flat["HOTA"], 3) == 52.538
    assert round(flat["MOTA"], 3) == 81.072
    assert round(flat["IDF1"], 3) == 55.124
    assert flat["IDSW"] == 168
    assert flat["Frag"] == 156


def test_mot17_files_identical_to_trackeval(tmp_path, mot17_results):
    lengths = {name: seq_length(MOT17 / "gt" / "MOT17-train" / name) for name in MOT17_SEQUENCES}
    expected = trackeval_on_folder(
        MOT17 / "gt" / "MOT17-train",
        MOT17 / "trackers",
        tracker="realtracker",
        output=tmp_path,
        seq_info=lengths,
        skip_split_fol=True,
    )
    for name, row in expected.items():
        for field, value in row.items():
            assert np.array_equal(np.asarray(mot17_results[name][field]), np.asarray(value)), (
                name,
                field,
            )
    with open(tmp_path / "realtracker" / "pedestrian_detailed.csv", newline="") as f:
        assert format_detailed(mot17_results) == f.read()
    with open(tmp_path / "realtracker" / "pedestrian_summary.txt", newline="") as f:
        assert format_summary(mot17_results) == f.read()


@pytest.fixture(scope="module")
def tud_results() -> dict[str, dict]:
    results = {}
    for name, length in TUD_LENGTHS.items():
        gt = read_mot_text(MOT_ROOT / "TUD" / name / "gt.txt", is_gt=True)
        tracks = read_mot_text(MOT_ROOT / "TUD" / name / "test.txt", is_gt=False)
        results[name] = evaluate_sequence(gt, tracks, length, benchmark="MOT15", name=name)
        reference = trackeval_on_arrays(gt, tracks, length, benchmark="MOT15")
        for field, value in reference.items():
            assert np.allclose(results[name][field], value, rtol=0, atol=1e-12), (name, field)
    results["COMBINED"] = combine_sequences(results)
    return results


@pytest.mark.parametrize("name", [*TUD_LENGTHS, "COMBINED"])
def test_tud_published_numbers(tud_results, name):
    res = tud_results[name]
    flat = headline(res) | {"MOTAL": 100 * float(res["MOTAL"])}
    for field, value in TUD_EXPECTED[name].items():
        if isinstance(value, int):
            assert flat[field] == value, field
        else:
            assert round(flat[field], 3) == pytest.approx(value, abs=1e-9), field


def test_mot20_gt_as_tracker_scores_one():
    folder = MOT_ROOT / "MOT20" / "gt" / "MOT20-train" / "MOT20-01"
    gt = read_mot_text(folder / "gt" / "gt.txt", is_gt=True)
    keep = (gt.cls == 1) & (gt.flag == 1)
    tracks = Tracks(
        frame=gt.frame[keep], id=gt.id[keep], boxes=gt.boxes[keep], conf=np.ones(keep.sum())
    )
    res = evaluate_sequence(gt, tracks, seq_length(folder), benchmark="MOT20")
    assert res["MOTA"] == 1.0
    assert res["IDF1"] == 1.0
    assert np.all(res["HOTA"] == 1.0)
    assert res["CLR_TP"] == 19870
    assert res["GT_IDs"] == res["IDs"]
