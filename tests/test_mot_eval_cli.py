"""Tests of ``eval mot17``, ``eval mot20`` and ``eval motchallenge``, with TrackEval as oracle."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import logging
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from harness.errors import DataFormatError, EvaluationError, NotPreparedError
from harness.plugin import RunContext
from harness.registry import get_evaluator
from motcom.sample import write_mot_sample

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_MOT = SHARED / "realdata" / "mot"

needs_realdata = pytest.mark.skipif(
    not REAL_MOT.is_dir(), reason="real MOTChallenge files not found at ../shared/realdata/mot"
)

TUD_EXPECTED = {
    # TrackEval 1.3.0 on the TUD pair as MOT15; equal to the MOTChallenge devkit's numbers.
    "TUD-Campus": {"MOTA": 52.646, "MOTP": 72.280, "IDF1": 55.766, "HOTA": 39.140,
                   "CLR_TP": 209, "CLR_FN": 150, "CLR_FP": 13, "IDSW": 7, "Frag": 7,
                   "IDTP": 162, "IDFN": 197, "IDFP": 60},
    "TUD-Stadtmitte": {"MOTA": 56.401, "MOTP": 65.410, "IDF1": 64.462, "HOTA": 39.785,
                       "CLR_TP": 704, "CLR_FN": 452, "CLR_FP": 45, "IDSW": 7, "Frag": 6,
                       "IDTP": 614, "IDFN": 542, "IDFP": 135},
}
TUD_COMBINED = {"MOTA": 55.512, "MOTP": 66.982, "IDF1": 62.430, "HOTA": 39.996, "DetA": 39.768,
                "AssA": 41.245, "LocA": 73.248, "MT": 6, "PT": 10, "ML": 2}
TUD_LENGTHS = {"TUD-Campus": 71, "TUD-Stadtmitte": 179}


def run_eval(name: str, argv: list[str], output: Path, data_dir: Path | None = None):
    evaluator = get_evaluator(name)
    parser = argparse.ArgumentParser()
    evaluator.add_arguments(parser)
    args = parser.parse_args(argv)
    return evaluator.evaluate(args, RunContext(output_dir=output, data_dir=data_dir))


def read_detailed(path: Path) -> dict[str, dict[str, float]]:
    with open(path, newline="") as handle:
        return {row["seq"]: {k: float(v) for k, v in row.items() if k != "seq"}
                for row in csv.DictReader(handle)}


def assert_detailed_equal(ours: dict, theirs: dict, rename: dict | None = None) -> None:
    rename = rename or {}
    assert set(theirs) <= set(ours)
    for seq, row in theirs.items():
        for field, value in row.items():
            field = rename.get(field, field)
            for suffix, target in rename.items():
                if field.startswith(suffix + "___"):
                    field = target + field[len(suffix):]
            assert field in ours[seq], field
            assert np.isclose(ours[seq][field], value, rtol=1e-12, atol=1e-12), (seq, field)


def run_trackeval(root: Path, benchmark: str, tracker: str, output: Path) -> dict:
    """Run the installed trackeval 1.3.0 end to end on a folder in TrackEval's layout."""
    trackeval = pytest.importorskip("trackeval", reason="trackeval 1.3.0 is the test oracle")
    eval_config = trackeval.Evaluator.get_default_eval_config()
    eval_config.update(USE_PARALLEL=False, PRINT_RESULTS=False, PRINT_CONFIG=False,
                       PRINT_ONLY_COMBINED=True, TIME_PROGRESS=False, OUTPUT_SUMMARY=True,
                       OUTPUT_DETAILED=True, PLOT_CURVES=False, DISPLAY_LESS_PROGRESS=True)
    dataset_config = {
        "GT_FOLDER": str(root / "gt" / "mot_challenge"),
        "TRACKERS_FOLDER": str(root / "trackers" / "mot_challenge"),
        "OUTPUT_FOLDER": str(output),
        "TRACKERS_TO_EVAL": [tracker],
        "BENCHMARK": benchmark,
        "SPLIT_TO_EVAL": "train",
        "PRINT_CONFIG": False,
    }
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
               trackeval.metrics.Identity({"PRINT_CONFIG": False})]
    with contextlib.redirect_stdout(io.StringIO()):
        trackeval.Evaluator(eval_config).evaluate(
            [trackeval.datasets.MotChallenge2DBox(dataset_config)], metrics)
    return read_detailed(output / tracker / "pedestrian_detailed.csv")


# --------------------------------------------------------------------------------------------
# Prepared MOT17 / MOT20


@pytest.fixture(scope="module")
def prepared17(tmp_path_factory):
    """A TrackEval-layout MOT17 sample, prepared into its own data home."""
    from harness.prepare import prepare_dataset

    base = tmp_path_factory.mktemp("prepared17")
    root = write_mot_sample(base / "data", sequences=2, frames=40, pedestrians=6,
                            layout="trackeval", seed=5)
    home = base / "home"
    prepare_dataset("mot17", root, data_dir=home, progress=False)
    tracker = root / "trackers" / "mot_challenge" / "MOT17-train" / "noisytracker"
    return root, home, tracker


def test_eval_mot17_matches_trackeval(prepared17, tmp_path):
    root, home, tracker = prepared17

    outcome = run_eval("mot17", ["--tracker-dir", str(tracker)], tmp_path / "ours", home)

    theirs = run_trackeval(root, "MOT17", "noisytracker", tmp_path / "trackeval")
    ours = read_detailed(tmp_path / "ours" / "pedestrian_detailed.csv")
    assert set(ours) == set(theirs)  # the 6 copies and COMBINED
    assert_detailed_equal(ours, theirs)
    assert outcome.metrics["MOTA"] == pytest.approx(100 * theirs["COMBINED"]["MOTA"], abs=1e-9)
    assert outcome.metrics["HOTA"] == pytest.approx(100 * theirs["COMBINED"]["HOTA___AUC"],
                                                    abs=1e-9)


def test_eval_mot17_outcome_fields(prepared17, tmp_path):
    _, home, tracker = prepared17
    outcome = run_eval("mot17", ["--tracker-dir", str(tracker), "--threshold", "0.6"],
                       tmp_path, home)

    assert outcome.dataset == "mot17"
    assert outcome.method == "noisytracker"
    assert outcome.version == "1.0"
    assert outcome.split == "train"
    assert outcome.data_kind == "sample"
    copies = ["MOT17-02-DPM", "MOT17-02-FRCNN", "MOT17-02-SDP",
              "MOT17-04-DPM", "MOT17-04-FRCNN", "MOT17-04-SDP"]
    assert outcome.config == {"benchmark": "MOT17", "threshold": 0.6, "sequences": copies,
                              "subset": True}
    assert sorted(outcome.per_item) == copies
    assert outcome.files == [tmp_path / "pedestrian_summary.txt",
                             tmp_path / "pedestrian_detailed.csv"]
    assert all(path.is_file() for path in outcome.files)
    assert {"HOTA", "MOTA", "IDF1", "IDSW"} <= set(outcome.metrics)


def test_eval_mot17_selected_sequences_and_method(prepared17, tmp_path):
    _, home, tracker = prepared17
    outcome = run_eval("mot17", ["--tracker-dir", str(tracker), "--sequences", "MOT17-04-SDP",
                                 "--method", "mine"], tmp_path, home)
    assert list(outcome.per_item) == ["MOT17-04-SDP"]
    assert outcome.method == "mine"
    assert outcome.config["sequences"] == ["MOT17-04-SDP"]
    assert outcome.metrics["MOTA"] == pytest.approx(outcome.per_item["MOT17-04-SDP"]["MOTA"])


def test_eval_mot17_base_names(prepared17, tmp_path):
    _, home, tracker = prepared17
    flat = tmp_path / "flat"
    flat.mkdir()
    for base in ("MOT17-02", "MOT17-04"):
        shutil.copy(tracker / "data" / f"{base}-FRCNN.txt", flat / f"{base}.txt")
    outcome = run_eval("mot17", ["--tracker-dir", str(flat)], tmp_path / "out", home)
    with_copies = run_eval("mot17", ["--tracker-dir", str(tracker)], tmp_path / "copies", home)
    assert sorted(outcome.per_item) == ["MOT17-02", "MOT17-04"]
    assert outcome.method == "flat"
    assert outcome.per_item["MOT17-02"] == with_copies.per_item["MOT17-02-FRCNN"]


def test_eval_mot17_base_and_copy_names(prepared17, tmp_path):
    _, home, tracker = prepared17
    folder = shutil.copytree(tracker / "data", tmp_path / "tracker")
    shutil.copy(folder / "MOT17-02-SDP.txt", folder / "MOT17-02.txt")
    pattern = (r"tracker folder .*tracker mixes the two naming styles of MOT17: detector copy "
               r"names \(MOT17-02-DPM\.txt, MOT17-02-FRCNN\.txt, MOT17-02-SDP\.txt, \.\.\.\) "
               r"and base sequence names \(MOT17-02\.txt\); name every file "
               r"<sequence>-<detector>\.txt to score each detector copy, or every file "
               r"<sequence>\.txt to score each sequence once")
    with pytest.raises(EvaluationError, match=pattern):
        run_eval("mot17", ["--tracker-dir", str(folder)], tmp_path / "out", home)
    with pytest.raises(EvaluationError, match=pattern):
        run_eval("mot17", ["--tracker-dir", str(folder), "--sequences", "MOT17-02-SDP"],
                 tmp_path / "out", home)


def test_eval_mot17_extra_files_ignored(prepared17, tmp_path, caplog):
    _, home, tracker = prepared17
    folder = shutil.copytree(tracker / "data", tmp_path / "tracker")
    for name in ("MOT17-05-SDP", "MOT17-01-FRCNN"):
        (folder / f"{name}.txt").write_text("not a tracker file\n")
    with caplog.at_level(logging.WARNING):
        outcome = run_eval("mot17", ["--tracker-dir", str(folder)], tmp_path / "out", home)
    assert outcome.config["sequences"] == sorted(f"MOT17-{seq}-{det}" for seq in ("02", "04")
                                                 for det in ("DPM", "FRCNN", "SDP"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"ignoring 2 tracker file(s) in {folder}, which are not evaluated. Sequences of MOT17 "
        "that are not in the prepared train split: MOT17-01-FRCNN.txt, MOT17-05-SDP.txt"
    ]


def test_eval_mot17_misnamed_file_is_error(prepared17, tmp_path):
    _, home, tracker = prepared17
    folder = shutil.copytree(tracker / "data", tmp_path / "tracker")
    for name in ("MOT17-99-SDP", "notes", "MOT17-02-XYZ"):
        (folder / f"{name}.txt").write_text("not a tracker file\n")
    with pytest.raises(EvaluationError,
                       match=r"tracker file\(s\) not named after a sequence: MOT17-02-XYZ\.txt, "
                             r"MOT17-99-SDP\.txt, notes\.txt in .*tracker; expected "
                             r"<sequence>\.txt or <sequence>-<detector>\.txt with a MOT17 "
                             r"sequence\. Rename or remove them, or pass --sequences"):
        run_eval("mot17", ["--tracker-dir", str(folder)], tmp_path / "out", home)


def test_eval_mot17_requested_sequences_with_extra_files(prepared17, tmp_path, caplog):
    _, home, tracker = prepared17
    folder = shutil.copytree(tracker / "data", tmp_path / "tracker")
    (folder / "MOT17-05-SDP.txt").write_text("")
    (folder / "notes.txt").write_text("")
    requested = ["MOT17-04-SDP", "MOT17-02-SDP"]
    with caplog.at_level(logging.WARNING):
        outcome = run_eval("mot17", ["--tracker-dir", str(folder), "--sequences", *requested],
                           tmp_path / "out", home)
    assert sorted(outcome.per_item) == sorted(requested)
    assert outcome.config["sequences"] == ["MOT17-02-SDP", "MOT17-04-SDP"]
    assert ("Sequences of MOT17 that are not in the prepared train split: MOT17-05-SDP.txt. "
            "Not names of MOT17 sequences: notes.txt") in caplog.text
    assert "MOT17-02-DPM.txt" not in caplog.text


def test_eval_mot17_requested_sequence_without_file(prepared17, tmp_path):
    _, home, tracker = prepared17
    folder = shutil.copytree(tracker / "data", tmp_path / "tracker")
    (folder / "MOT17-04-SDP.txt").unlink()
    with pytest.raises(EvaluationError,
                       match=r"tracker file for sequence MOT17-04-SDP not found: expected "
                             r".*tracker/MOT17-04-SDP\.txt"):
        run_eval("mot17", ["--tracker-dir", str(folder), "--sequences", "MOT17-02-SDP",
                           "MOT17-04-SDP"], tmp_path / "out", home)


def test_eval_mot17_only_unknown_files(prepared17, tmp_path):
    _, home, _ = prepared17
    folder = tmp_path / "tracker"
    folder.mkdir()
    (folder / "notes.txt").write_text("")
    with pytest.raises(EvaluationError,
                       match=r"tracker file for sequence MOT17-02 not found: expected "
                             r".*tracker/MOT17-02\.txt"):
        run_eval("mot17", ["--tracker-dir", str(folder)], tmp_path / "out", home)


def test_eval_mot17_empty_tracker_file(prepared17, tmp_path, caplog):
    _, home, tracker = prepared17
    folder = shutil.copytree(tracker / "data", tmp_path / "tracker")
    (folder / "MOT17-02-SDP.txt").write_text("")
    with caplog.at_level(logging.WARNING):
        outcome = run_eval("mot17", ["--tracker-dir", str(folder), "--sequences",
                                     "MOT17-02-SDP"], tmp_path / "out", home)
    assert outcome.per_item["MOT17-02-SDP"]["CLR_TP"] == 0
    assert (f"tracker file {folder / 'MOT17-02-SDP.txt'} has no boxes: sequence MOT17-02-SDP "
            "is scored as if the tracker found nothing") in caplog.text


def test_eval_tracker_dir_is_file(prepared17, tmp_path):
    _, home, tracker = prepared17
    path = tracker / "data" / "MOT17-02-SDP.txt"
    with pytest.raises(EvaluationError,
                       match=r"tracker folder .*MOT17-02-SDP\.txt is a file, not a folder: pass "
                             r"the folder that contains the <sequence>\.txt files"):
        run_eval("mot17", ["--tracker-dir", str(path)], tmp_path / "out", home)


@pytest.mark.parametrize("evaluator", ["mot17", "motchallenge"])
def test_method_name(evaluator, tmp_path):
    instance = get_evaluator(evaluator)
    parser = argparse.ArgumentParser()
    instance.add_arguments(parser)
    base = ["--gt-dir", str(tmp_path)] if evaluator == "motchallenge" else []
    tracker = tmp_path / "mytracker"

    def name(*argv: str) -> str:
        return instance.method_name(parser.parse_args([*base, *argv]))

    assert name("--tracker-dir", str(tracker)) == "mytracker"
    assert name("--tracker-dir", str(tracker / "data")) == "mytracker"
    assert name("--tracker-dir", str(tracker) + "/") == "mytracker"
    assert name("--tracker-dir", str(tracker), "--method", "mine") == "mine"


def test_eval_mot17_missing_tracker_file(prepared17, tmp_path):
    _, home, tracker = prepared17
    folder = shutil.copytree(tracker, tmp_path / "tracker")
    (folder / "data" / "MOT17-04-FRCNN.txt").unlink()
    with pytest.raises(EvaluationError,
                       match=r"tracker file for sequence MOT17-04-FRCNN not found: expected "
                             r".*tracker/data/MOT17-04-FRCNN\.txt"):
        run_eval("mot17", ["--tracker-dir", str(folder)], tmp_path / "out", home)


def test_eval_mot17_unknown_requested_sequence(prepared17, tmp_path):
    _, home, tracker = prepared17
    with pytest.raises(EvaluationError,
                       match=r"unknown sequence 'MOT17-05-SDP' in --sequences; expected one of"):
        run_eval("mot17", ["--tracker-dir", str(tracker), "--sequences", "MOT17-05-SDP"],
                 tmp_path, home)


def test_eval_mot17_bad_tracker_line(prepared17, tmp_path):
    _, home, tracker = prepared17
    folder = shutil.copytree(tracker, tmp_path / "tracker")
    bad = folder / "data" / "MOT17-02-SDP.txt"
    bad.write_text(bad.read_text() + "41,1,1,1,1,1,1,-1,-1,-1\n")
    lines = len(bad.read_text().splitlines())
    with pytest.raises(DataFormatError,
                       match=rf"MOT17-02-SDP\.txt:{lines}: frame is past the end of the sequence "
                             r"\(40 frames\)"):
        run_eval("mot17", ["--tracker-dir", str(folder)], tmp_path / "out", home)


def test_eval_mot17_not_prepared(tmp_path):
    tracker = tmp_path / "t"
    tracker.mkdir()
    (tracker / "MOT17-02-SDP.txt").write_text("")
    with pytest.raises(NotPreparedError, match=r"prepare mot17"):
        run_eval("mot17", ["--tracker-dir", str(tracker)], tmp_path / "out", tmp_path / "home")


def test_eval_mot20_matches_trackeval(tmp_path):
    from harness.prepare import prepare_dataset

    root = write_mot_sample(tmp_path / "data", benchmark="MOT20", sequences=2, frames=40,
                            pedestrians=6, layout="trackeval", seed=2)
    prepare_dataset("mot20", root, data_dir=tmp_path / "home", progress=False)
    tracker = root / "trackers" / "mot_challenge" / "MOT20-train" / "noisytracker"

    outcome = run_eval("mot20", ["--tracker-dir", str(tracker)], tmp_path / "ours",
                       tmp_path / "home")

    theirs = run_trackeval(root, "MOT20", "noisytracker", tmp_path / "trackeval")
    assert_detailed_equal(read_detailed(tmp_path / "ours" / "pedestrian_detailed.csv"), theirs)
    assert sorted(outcome.per_item) == ["MOT20-01", "MOT20-02"]
    assert outcome.config["benchmark"] == "MOT20"


def test_eval_through_cli(prepared17, tmp_path):
    cli = pytest.importorskip("harness.cli")
    _, home, tracker = prepared17
    status = cli.main(["eval", "mot17", "--tracker-dir", str(tracker), "--data-dir", str(home),
                       "--output", str(tmp_path / "run")])
    assert status == 0
    assert (tmp_path / "run" / "pedestrian_summary.txt").is_file()
    summary = (tmp_path / "run" / "pedestrian_summary.txt").read_text().splitlines()
    assert summary[0].startswith("HOTA DetA AssA")


# --------------------------------------------------------------------------------------------
# Unprepared folders


@pytest.fixture()
def tud(tmp_path):
    """The TUD pair as a ground-truth folder with seqinfo.ini and a flat tracker folder."""
    if not REAL_MOT.is_dir():
        pytest.skip("real MOTChallenge files not found at ../shared/realdata/mot")
    gt_dir, tracker_dir = tmp_path / "gt", tmp_path / "cem"
    tracker_dir.mkdir()
    for name, length in TUD_LENGTHS.items():
        (gt_dir / name / "gt").mkdir(parents=True)
        shutil.copy(REAL_MOT / "TUD" / name / "gt.txt", gt_dir / name / "gt" / "gt.txt")
        (gt_dir / name / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nseqLength={length}\n")
        shutil.copy(REAL_MOT / "TUD" / name / "test.txt", tracker_dir / f"{name}.txt")
    return gt_dir, tracker_dir


def assert_tud_numbers(outcome) -> None:
    for name, expected in TUD_EXPECTED.items():
        for field, value in expected.items():
            assert outcome.per_item[name][field] == pytest.approx(value, abs=5e-4), (name, field)
    for field, value in TUD_COMBINED.items():
        assert outcome.metrics[field] == pytest.approx(value, abs=5e-4), field


def test_motchallenge_tud_mot15(tud, tmp_path):
    gt_dir, tracker_dir = tud
    outcome = run_eval("motchallenge", ["--gt-dir", str(gt_dir), "--tracker-dir",
                                        str(tracker_dir), "--benchmark", "MOT15"], tmp_path / "o")
    assert_tud_numbers(outcome)
    assert outcome.dataset == "motchallenge"
    assert outcome.method == "cem"
    assert outcome.config == {"benchmark": "MOT15", "threshold": 0.5,
                              "sequences": ["TUD-Campus", "TUD-Stadtmitte"],
                              "gt_dir": str(gt_dir.resolve()), "seq_length": None}
    assert outcome.data_kind == "real"


def test_motchallenge_without_seqinfo(tud, tmp_path, caplog):
    gt_dir, tracker_dir = tud
    for name in TUD_LENGTHS:
        (gt_dir / name / "seqinfo.ini").unlink()
    with caplog.at_level(logging.WARNING):
        outcome = run_eval("motchallenge", ["--gt-dir", str(gt_dir), "--tracker-dir",
                                            str(tracker_dir)], tmp_path / "o")
    assert_tud_numbers(outcome)
    assert outcome.config["benchmark"] is None
    assert "TUD-Campus has no seqinfo.ini and --seq-length is not set" in caplog.text
    assert "71, as seqLength" in caplog.text


def test_motchallenge_seq_length_option(tud, tmp_path):
    gt_dir, tracker_dir = tud
    for name in TUD_LENGTHS:
        (gt_dir / name / "seqinfo.ini").unlink()
    with pytest.raises(DataFormatError, match=r"gt\.txt:\d+: frame is past the end .*\(100 "
                                              r"frames\)"):
        run_eval("motchallenge", ["--gt-dir", str(gt_dir), "--tracker-dir", str(tracker_dir),
                                  "--seq-length", "100"], tmp_path / "o")
    outcome = run_eval("motchallenge", ["--gt-dir", str(gt_dir), "--tracker-dir",
                                        str(tracker_dir), "--seq-length", "200",
                                        "--sequences", "TUD-Campus"], tmp_path / "o")
    assert list(outcome.per_item) == ["TUD-Campus"]
    assert outcome.metrics["MOTA"] == pytest.approx(52.646, abs=5e-4)
    assert outcome.config["seq_length"] == 200
    assert outcome.config["sequences"] == ["TUD-Campus"]


def test_motchallenge_errors(tud, tmp_path):
    gt_dir, tracker_dir = tud
    with pytest.raises(EvaluationError, match=r"ground-truth folder not found: .*nowhere"):
        run_eval("motchallenge", ["--gt-dir", str(tmp_path / "nowhere"), "--tracker-dir",
                                  str(tracker_dir)], tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluationError, match=r"no ground truth found under .*empty"):
        run_eval("motchallenge", ["--gt-dir", str(tmp_path / "empty"), "--tracker-dir",
                                  str(tracker_dir)], tmp_path / "o")
    with pytest.raises(EvaluationError,
                       match=r"unknown sequence 'TUD-Crossing' in --sequences; expected one of: "
                             r"TUD-Campus, TUD-Stadtmitte"):
        run_eval("motchallenge", ["--gt-dir", str(gt_dir), "--tracker-dir", str(tracker_dir),
                                  "--sequences", "TUD-Crossing"], tmp_path / "o")
    with pytest.raises(EvaluationError, match=r"--seq-length is 0; expected an integer >= 1"):
        run_eval("motchallenge", ["--gt-dir", str(gt_dir), "--tracker-dir", str(tracker_dir),
                                  "--seq-length", "0"], tmp_path / "o")


def test_motchallenge_extra_files_ignored(tud, tmp_path, caplog):
    gt_dir, tracker_dir = tud
    (gt_dir / "TUD-Crossing").mkdir()
    (gt_dir / "TUD-Crossing" / "seqinfo.ini").write_text("[Sequence]\nseqLength=201\n")
    (tracker_dir / "TUD-Crossing.txt").write_text("")
    with caplog.at_level(logging.WARNING):
        outcome = run_eval("motchallenge", ["--gt-dir", str(gt_dir), "--tracker-dir",
                                            str(tracker_dir), "--benchmark", "MOT15"],
                           tmp_path / "o")
    assert_tud_numbers(outcome)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"ignoring 1 tracker file(s) in {tracker_dir}, which are not evaluated. Sequences "
        f"without gt/gt.txt under {gt_dir}: TUD-Crossing.txt"
    ]

    (tracker_dir / "notes.txt").write_text("")
    with pytest.raises(EvaluationError,
                       match=r"tracker file\(s\) not named after a sequence: notes\.txt in "
                             r".*; expected <sequence>\.txt named after a sequence folder"):
        run_eval("motchallenge", ["--gt-dir", str(gt_dir), "--tracker-dir", str(tracker_dir),
                                  "--benchmark", "MOT15"], tmp_path / "o2")
    with caplog.at_level(logging.WARNING):
        outcome = run_eval("motchallenge", ["--gt-dir", str(gt_dir), "--tracker-dir",
                                            str(tracker_dir), "--benchmark", "MOT15",
                                            "--sequences", "TUD-Campus", "TUD-Stadtmitte"],
                           tmp_path / "o3")
    assert f"Not names of sequence folders under {gt_dir}: notes.txt" in caplog.text


@pytest.fixture()
def mot17_unprepared(tmp_path):
    """A MOT17 sample in the archive layout: gt with distractor classes, one tracker folder."""
    root = write_mot_sample(tmp_path / "data", sequences=1, frames=20, pedestrians=5, seed=3)
    return root / "MOT17" / "train", root / "trackers" / "noisytracker"


def test_motchallenge_distractors_without_benchmark(mot17_unprepared, tmp_path, caplog):
    gt_dir, tracker_dir = mot17_unprepared
    with caplog.at_level(logging.WARNING):
        outcome = run_eval("motchallenge", ["--gt-dir", str(gt_dir), "--tracker-dir",
                                            str(tracker_dir)], tmp_path / "o")
    assert outcome.config["benchmark"] is None
    assert ("the ground truth of MOT17-02-DPM, MOT17-02-FRCNN, MOT17-02-SDP has 9 columns and "
            "class ids from 2 to 13, as MOT16, MOT17 and MOT20 files have, but without "
            "--benchmark no distractor preprocessing is applied, so tracker boxes on distractors "
            "count as false positives; pass --benchmark MOT17 (or MOT20) for the official "
            "numbers") in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        run_eval("motchallenge", ["--gt-dir", str(gt_dir), "--tracker-dir", str(tracker_dir),
                                  "--benchmark", "MOT17"], tmp_path / "o")
    assert "distractor" not in caplog.text


def test_motchallenge_outcome_config(mot17_unprepared, tmp_path, monkeypatch):
    gt_dir, tracker_dir = mot17_unprepared
    monkeypatch.chdir(gt_dir.parent)
    outcome = run_eval("motchallenge", ["--gt-dir", "train", "--tracker-dir", str(tracker_dir),
                                        "--benchmark", "MOT17", "--sequences", "MOT17-02-SDP",
                                        "--threshold", "0.4"], tmp_path / "o")
    assert outcome.config == {"benchmark": "MOT17", "threshold": 0.4,
                              "sequences": ["MOT17-02-SDP"], "gt_dir": str(gt_dir.resolve()),
                              "seq_length": None}
    assert outcome.method == "noisytracker"
    assert outcome.data_kind == "sample"


def test_motchallenge_gt_in_zip(tud, tmp_path):
    gt_dir, tracker_dir = tud
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    with zipfile.ZipFile(archive_dir / "TUD.zip", "w") as handle:
        for path in sorted(gt_dir.rglob("*")):
            if path.is_file():
                handle.write(path, "train/" + path.relative_to(gt_dir).as_posix())
    outcome = run_eval("motchallenge", ["--gt-dir", str(archive_dir), "--tracker-dir",
                                        str(tracker_dir), "--benchmark", "MOT15"], tmp_path / "o")
    assert_tud_numbers(outcome)


@needs_realdata
def test_motchallenge_real_mot17_matches_published_csv(tmp_path):
    outcome = run_eval(
        "motchallenge",
        ["--gt-dir", str(REAL_MOT / "MOT17" / "gt"), "--tracker-dir",
         str(REAL_MOT / "MOT17" / "trackers" / "realtracker"), "--benchmark", "MOT17"],
        tmp_path,
    )
    theirs = read_detailed(REAL_MOT / "MOT17" / "trackeval_pedestrian_detailed.csv")
    ours = read_detailed(tmp_path / "pedestrian_detailed.csv")
    # The CSV was written by a TrackEval whose RHOTA columns TrackEval 1.3.0 calls OWTA.
    assert_detailed_equal(ours, theirs, rename={"RHOTA": "OWTA"})
    assert outcome.method == "realtracker"
    assert outcome.per_item["MOT17-02-SDP"]["MOTA"] == pytest.approx(81.072, abs=5e-4)


@needs_realdata
def test_eval_mot17_prepared_real_subset(tmp_path):
    from harness.prepare import prepare_dataset

    prepare_dataset("mot17", REAL_MOT / "MOT17", data_dir=tmp_path / "home", progress=False)
    outcome = run_eval("mot17", ["--tracker-dir", str(REAL_MOT / "MOT17" / "trackers" /
                                                      "realtracker")], tmp_path / "o",
                       tmp_path / "home")
    assert sorted(outcome.per_item) == ["MOT17-02-SDP", "MOT17-05-SDP", "MOT17-09-SDP"]
    assert outcome.data_kind == "real"
    assert outcome.per_item["MOT17-05-SDP"]["IDF1"] == pytest.approx(82.784, abs=5e-4)
    assert outcome.per_item["MOT17-09-SDP"]["HOTA"] == pytest.approx(65.188, abs=5e-4)
