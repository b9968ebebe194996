"""3D-ZeF evaluation: golden values of py-motmetrics 1.4.0, the record names and ``eval zef3d``.

The goldens come from ``benchmarks/motmetrics_golden.py`` run with motmetrics 1.4.0 (scipy
solver); the test rebuilds each case's input with the same generator and checks its SHA-256.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from harness import registry
from harness.errors import DataFormatError, EvaluationError
from harness.plugin import EvalOutcome, RunContext
from harness.prepare import prepare_dataset
from motcom.evaluation.motmetrics import combine_metrics
from zef3d.evaluation import (
    RECORD_FIELDS,
    evaluate_boxes2d,
    evaluate_points,
    evaluate_tracks2d,
    evaluate_tracks3d,
    read_tracks2d,
)
from zef3d.plugin import Zef3DPlugin

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((ROOT / "tests" / "data" / "zef3d_motmetrics_golden.json").read_text())


def _load_generator():
    spec = importlib.util.spec_from_file_location("motmetrics_golden",
                                                  ROOT / "benchmarks" / "motmetrics_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _load_generator()
_SCORED: dict[str, dict] = {}


def scored(name: str) -> dict:
    """Our result for a golden case (cached: the overall rows reuse them)."""
    if name not in _SCORED:
        entry = GOLDEN["cases"][name]
        case = GENERATOR.generate_case(**entry["params"])
        assert GENERATOR.case_digest(case) == entry["sha256"], (
            f"generated input of case {name} changed; rerun benchmarks/motmetrics_golden.py")
        _SCORED[name] = evaluate_points(
            case["gt_frame"], case["gt_id"], case["gt_points"], case["tracker_frame"],
            case["tracker_id"], case["tracker_points"], threshold=entry["threshold"],
            boxes=bool(entry["params"].get("boxes")))
    return _SCORED[name]


def assert_matches_golden(ours: dict, golden: dict, label: str) -> None:
    for metric, expected in golden.items():
        value = ours[metric]
        if isinstance(expected, str):  # non-finite floats are stored as their repr
            expected = float(expected)
        if isinstance(expected, int):
            assert value == expected, f"{label} {metric}: {value} != {expected}"
        elif math.isnan(expected):
            assert math.isnan(value), f"{label} {metric}: {value} is not NaN"
        elif math.isinf(expected):
            assert value == expected, f"{label} {metric}: {value} != {expected}"
        else:
            assert abs(value - expected) <= 1e-12 * max(1.0, abs(expected)), (
                f"{label} {metric}: {value!r} != {expected!r}")


def test_golden_file_provenance():
    assert GOLDEN["motmetrics"] == "1.4.0"
    assert GOLDEN["solver"] == "scipy"
    assert GOLDEN["motmetrics_113"] == "1.1.3"


@pytest.mark.parametrize("name", sorted(GOLDEN["cases"]))
def test_case_equals_motmetrics(name):
    assert_matches_golden(scored(name), GOLDEN["cases"][name]["metrics"], name)


@pytest.mark.parametrize("name", sorted(GOLDEN["cases"]))
def test_case_mtbf_equals_motmetrics_113(name):
    entry = GOLDEN["cases"][name]
    case = GENERATOR.generate_case(**entry["params"])
    ours = evaluate_points(case["gt_frame"], case["gt_id"], case["gt_points"],
                           case["tracker_frame"], case["tracker_id"], case["tracker_points"],
                           threshold=entry["threshold"], boxes=bool(entry["params"].get("boxes")),
                           mtbf_extra_events=False)
    assert_matches_golden(ours, entry["mtbf_113"], f"{name} (motmetrics 1.1.3)")


@pytest.mark.parametrize("group", sorted(GOLDEN["overall"]))
def test_overall_equals_motmetrics(group):
    entry = GOLDEN["overall"][group]
    ours = combine_metrics([scored(name) for name in entry["cases"]])
    assert_matches_golden(ours, entry["metrics"], group)


def test_goldens_cover_hard_events():
    cases = GOLDEN["cases"].values()
    assert sum(case["metrics"]["num_switches"] for case in cases) > 100
    assert sum(case["metrics"]["num_transfer"] for case in cases) > 50
    assert sum(case["metrics"]["num_migrate"] for case in cases) > 0


def test_trackeval_semantics_on_tangle():
    entry = GOLDEN["cases"]["tangle3d"]
    case = GENERATOR.generate_case(**entry["params"])
    res = evaluate_points(case["gt_frame"], case["gt_id"], case["gt_points"],
                          case["tracker_frame"], case["tracker_id"], case["tracker_points"],
                          threshold=0.5, semantics="trackeval")
    assert res["num_detections"] + res["num_misses"] == res["num_objects"]
    assert res["num_detections"] + res["num_false_positives"] == entry["metrics"][
        "num_predictions"]
    # Identity uses the same pairs under both rules.
    assert res["idtp"] == entry["metrics"]["idtp"]
    assert res["num_switches"] != entry["metrics"]["num_switches"]


# --------------------------------------------------------------------------------------------
# Tables and record names


def gt_table(frames: int = 20) -> pl.DataFrame:
    rows = [(t, fish, 5.0 + fish + 0.1 * t, 10.0, 8.0) for t in range(1, frames + 1)
            for fish in (1, 2)]
    return pl.DataFrame(rows, schema=["frame", "id", "x", "y", "z"], orient="row")


def test_perfect_tracks_records():
    gt = gt_table()
    values = evaluate_tracks3d(gt, gt.with_columns(pl.col("id") + 10))
    assert list(values) == list(RECORD_FIELDS)
    assert values["MOTA"] == 100.0
    assert values["MOTP"] == 0.0
    assert values["IDF1"] == 100.0
    assert values["MT"] == 2
    assert values["MTBF-std"] == 20.0
    assert values["MTBF-mono"] == 20.0
    assert values["GT"] == 40


def test_nonpositive_tracker_rows_dropped(caplog):
    gt = gt_table(5)
    tracks = pl.concat([gt, pl.DataFrame([(3, 99, -1.0, -1.0, -1.0)], schema=gt.schema,
                                         orient="row")])
    with caplog.at_level(logging.WARNING, logger="zef3d.evaluation"):
        values = evaluate_tracks3d(gt, tracks, name="ZebraFish-01")
    assert values["FP"] == 0
    assert values["Dets"] == 10
    assert "ZebraFish-01: 1 tracker row(s) with a coordinate <= 0 left out" in caplog.text


def test_threshold_is_inclusive_2d():
    gt = pl.DataFrame([(1, 1, 100.0, 100.0), (2, 1, 100.0, 100.0)],
                      schema=["frame", "id", "x", "y"], orient="row")
    tracks = pl.DataFrame([(1, 1, 120.0, 100.0), (2, 1, 120.5, 100.0)],
                          schema=["frame", "id", "x", "y"], orient="row")
    values = evaluate_tracks2d(gt, tracks)
    assert values["TP"] == 1
    assert values["FN"] == 1
    assert values["MOTP"] == 20.0


def test_box_iou_plus_one_convention():
    # 10 x 10 px boxes span 11 x 11 pixels; shifted by 5 px they share 6 x 11 of them, so
    # IoU = 66 / (121 + 121 - 66) = 0.375 and the distance 0.625 exceeds 0.5 (a plain IoU
    # would be 50 / 150 = 0.333). Shifted by 2 px: 99 / 143, a match.
    columns = ["frame", "id", "left", "top", "width", "height"]
    gt = pl.DataFrame([(1, 1, 10.0, 10.0, 10.0, 10.0), (2, 1, 10.0, 10.0, 10.0, 10.0)],
                      schema=columns, orient="row")
    tracks = pl.DataFrame([(1, 7, 15.0, 10.0, 10.0, 10.0), (2, 7, 12.0, 10.0, 10.0, 10.0)],
                          schema=columns, orient="row")
    values = evaluate_boxes2d(gt, tracks)
    assert values["TP"] == 1
    assert values["FP"] == 1
    assert values["MOTP"] == pytest.approx(1 - 99 / 143, abs=1e-12)
    assert evaluate_boxes2d(gt, tracks, threshold=0.7)["TP"] == 2


def test_missing_column_rejected():
    with pytest.raises(EvaluationError, match="tracks table has no column 'z'"):
        evaluate_tracks3d(gt_table(2), gt_table(2).drop("z"))


def test_invalid_threshold_rejected():
    with pytest.raises(EvaluationError, match="threshold is -1.0; expected a positive number"):
        evaluate_tracks3d(gt_table(2), gt_table(2), threshold=-1.0)


def test_read_tracks2d_bad_line(tmp_path):
    path = tmp_path / "ZebraFish-01.txt"
    path.write_text("1,1,10.5,20\n2,1,abc,20\n")
    with pytest.raises(DataFormatError, match="ZebraFish-01.txt:2:") as error:
        read_tracks2d(path)
    assert "field 'x', value 'abc'" in str(error.value)


# --------------------------------------------------------------------------------------------
# eval zef3d on the prepared sample


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    from zef3d.sample import write_zef_sample

    return write_zef_sample(tmp_path_factory.mktemp("zefeval"), frames=30)


@pytest.fixture()
def prepared(sample_root, tmp_path) -> tuple[Path, Path]:
    registry.register_dataset("zef3d", Zef3DPlugin)
    home = tmp_path / "home"
    prepare_dataset("zef3d", sample_root, data_dir=home, progress=False)
    return sample_root / "3DZeF20" / "train", home


def write_tracks(train: Path, folder: Path, *, shift: float = 0.1, view: str = "3d") -> Path:
    """Write each train sequence's ground truth, shifted by ``shift``, as a tracks file."""
    from zef3d.io import read_gt

    folder.mkdir(parents=True, exist_ok=True)
    for seq in sorted(train.iterdir()):
        gt = read_gt(seq / "gt" / "gt.txt")
        columns = ["x", "y", "z"] if view == "3d" else [f"{view}_x", f"{view}_y"]
        lines = [",".join([str(row[0]), str(row[1] + 100),
                           *(repr(value + shift) for value in row[2:])])
                 for row in gt.select(["frame", "id", *columns]).iter_rows()]
        (folder / f"{seq.name}.txt").write_text("\n".join(lines) + "\n")
    return folder


def run_eval(arguments: list[str], home: Path, output: Path) -> EvalOutcome:
    """Parse ``arguments`` with the evaluator's own options and run it."""
    evaluator = Zef3DPlugin().evaluator()
    parser = argparse.ArgumentParser()
    evaluator.add_arguments(parser)
    return evaluator.evaluate(parser.parse_args(arguments),
                              RunContext(output_dir=output, data_dir=home))


def test_eval_through_cli(prepared, tmp_path):
    # The CLI builds a parser for every registered baseline, the zef3d ones included.
    pytest.importorskip("zef3d.baselines", reason="zef3d.baselines is not installed yet")
    from harness import cli

    train, home = prepared
    tracks = write_tracks(train, tmp_path / "mytracker")
    status = cli.main(["eval", "zef3d", "--tracks", str(tracks), "--data-dir", str(home),
                       "--output", str(tmp_path / "run")])
    assert status == 0
    assert (tmp_path / "run" / "zef3d_results.csv").is_file()


def test_eval_folder(prepared, tmp_path):
    train, home = prepared
    tracks = write_tracks(train, tmp_path / "mytracker")
    outcome = run_eval(["--tracks", str(tracks)], home, tmp_path / "run")
    assert outcome.method == "mytracker"
    assert outcome.split == "train"
    table = pl.read_csv(tmp_path / "run" / "zef3d_results.csv")
    assert table["sequence"].to_list() == ["ZebraFish-01", "ZebraFish-02", "COMBINED"]
    assert table["MOTA"].to_list() == [100.0, 100.0, 100.0]
    assert table["IDSW"].to_list() == [0, 0, 0]
    assert np.allclose(table["MOTP"].to_numpy(), 0.1 * math.sqrt(3))
    assert (tmp_path / "run" / "zef3d_summary.txt").read_text().startswith("3D-ZeF20 train")


def test_eval_single_file_and_view(prepared, tmp_path):
    train, home = prepared
    tracks = write_tracks(train, tmp_path / "top", shift=25.0, view="top")
    outcome = run_eval(["--tracks", str(tracks / "ZebraFish-02.txt"), "--view", "top"], home,
                       tmp_path / "run")
    assert outcome.config["threshold"] == 20.0
    table = pl.read_csv(tmp_path / "run" / "zef3d_results.csv")
    assert table["sequence"].to_list() == ["ZebraFish-02", "COMBINED"]
    # 25 px along both axes is 35.4 px, beyond the 20 px threshold: nothing matches.
    assert table["TP"].to_list() == [0, 0]


def test_eval_single_file_method_name(prepared):
    from zef3d.evaluation import Zef3DEvaluator

    evaluator = Zef3DEvaluator()
    train, _ = prepared
    args = argparse.Namespace(tracks=str(train.parent / "mytracker" / "ZebraFish-01.txt"),
                              method=None)
    assert evaluator.method_name(args) == "mytracker"
    args.method = "given"
    assert evaluator.method_name(args) == "given"


def test_eval_view_warns_about_3d_tracks(prepared, tmp_path, caplog):
    train, home = prepared
    tracks = write_tracks(train, tmp_path / "3d")
    with caplog.at_level(logging.WARNING, logger="zef3d.evaluation"):
        run_eval(["--tracks", str(tracks / "ZebraFish-02.txt"), "--view", "front"], home,
                 tmp_path / "run")
    assert "is scored with --view 3d" in caplog.text


def test_eval_warns_about_frames_after_the_sequence(prepared, tmp_path, caplog):
    train, home = prepared
    tracks = write_tracks(train, tmp_path / "late")
    path = tracks / "ZebraFish-01.txt"
    path.write_text(path.read_text() + "100000,1,1.0,1.0,1.0\n")
    with caplog.at_level(logging.WARNING, logger="zef3d.evaluation"):
        outcome = run_eval(["--tracks", str(path)], home, tmp_path / "run")
    assert "has 1 row(s) after the last frame 30 of ZebraFish-01" in caplog.text
    assert outcome.metrics["FP"] == 1


def test_eval_view_boxes(prepared, tmp_path):
    train, home = prepared
    folder = tmp_path / "boxes"
    folder.mkdir()
    from zef3d.io import read_gt

    for seq in sorted(train.iterdir()):
        gt = read_gt(seq / "gt" / "gt.txt")
        rows = gt.select(["frame", "id", "front_left", "front_top", "front_width",
                          "front_height"]).iter_rows()
        (folder / f"{seq.name}.txt").write_text(
            "".join(f"{f},{i + 50},{x + 1},{y},{w},{h}\n" for f, i, x, y, w, h in rows))
    outcome = run_eval(["--tracks", str(folder), "--view", "front", "--boxes"], home,
                       tmp_path / "run")
    assert outcome.config["boxes"] is True
    assert outcome.config["threshold"] == 0.5
    assert outcome.metrics["FN"] == 0
    assert outcome.metrics["IDSW"] == 0
    assert 0.0 < outcome.metrics["MOTP"] < 0.5


def test_eval_boxes_threshold_below_one(prepared, tmp_path):
    train, home = prepared
    tracks = write_tracks(train, tmp_path / "b1")
    with pytest.raises(EvaluationError, match="with --boxes; expected a largest 1 - IoU below 1"):
        run_eval(["--tracks", str(tracks), "--boxes", "--view", "top", "--threshold", "1"],
                 home, tmp_path / "run")


def test_eval_boxes_need_view(prepared, tmp_path):
    train, home = prepared
    tracks = write_tracks(train, tmp_path / "b3d")
    with pytest.raises(EvaluationError, match="--boxes needs --view top or --view front"):
        run_eval(["--tracks", str(tracks), "--boxes"], home, tmp_path / "run")


def test_eval_missing_sequence_file(prepared, tmp_path):
    train, home = prepared
    tracks = write_tracks(train, tmp_path / "partial")
    (tracks / "ZebraFish-02.txt").unlink()
    with pytest.raises(EvaluationError, match="tracks file for sequence ZebraFish-02 not found"
                       ) as error:
        run_eval(["--tracks", str(tracks)], home, tmp_path / "run")
    assert str(tracks / "ZebraFish-02.txt") in str(error.value)


def test_eval_unknown_file_name(prepared, tmp_path):
    train, home = prepared
    tracks = write_tracks(train, tmp_path / "extra")
    shutil.copy(tracks / "ZebraFish-01.txt", tracks / "zebrafish1.txt")
    with pytest.raises(EvaluationError, match="not named after a sequence: zebrafish1.txt"):
        run_eval(["--tracks", str(tracks)], home, tmp_path / "run")


def test_eval_test_sequence_file_ignored(prepared, tmp_path, caplog):
    train, home = prepared
    tracks = write_tracks(train, tmp_path / "withtest")
    shutil.copy(tracks / "ZebraFish-01.txt", tracks / "ZebraFish-05.txt")
    outcome = run_eval(["--tracks", str(tracks)], home, tmp_path / "run")
    assert sorted(outcome.per_item) == ["ZebraFish-01", "ZebraFish-02"]
    assert "ZebraFish-05.txt" in caplog.text


def test_eval_unknown_sequence_option(prepared, tmp_path):
    train, home = prepared
    tracks = write_tracks(train, tmp_path / "t")
    with pytest.raises(EvaluationError, match="sequence 'ZebraFish-09' in --sequences has no "
                                              "ground truth here; expected one of"):
        run_eval(["--tracks", str(tracks), "--sequences", "ZebraFish-09"], home,
                 tmp_path / "run")
    with pytest.raises(EvaluationError, match="are test sequences, whose ground truth is not"):
        run_eval(["--tracks", str(tracks), "--sequences", "ZebraFish-05"], home,
                 tmp_path / "run")


def test_eval_unnamed_single_file(prepared, tmp_path):
    train, home = prepared
    tracks = write_tracks(train, tmp_path / "one")
    path = tracks / "ZebraFish-01.txt"
    renamed = path.rename(tracks / "result.txt")
    with pytest.raises(EvaluationError, match="not named after a sequence with ground truth"):
        run_eval(["--tracks", str(renamed)], home, tmp_path / "run")


def test_eval_malformed_row(prepared, tmp_path):
    train, home = prepared
    tracks = write_tracks(train, tmp_path / "bad")
    path = tracks / "ZebraFish-01.txt"
    lines = path.read_text().splitlines()
    lines[2] = "3,101,12.5,x,7.5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="ZebraFish-01.txt:3:") as error:
        run_eval(["--tracks", str(tracks)], home, tmp_path / "run")
    assert "'x'" in str(error.value)


def test_eval_duplicate_id(prepared, tmp_path):
    train, home = prepared
    tracks = write_tracks(train, tmp_path / "dup")
    path = tracks / "ZebraFish-02.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[0]]) + "\n")
    with pytest.raises(EvaluationError, match=r"dup/ZebraFish-02\.txt: sequence ZebraFish-02: "
                                              r"tracker id 101 occurs more than once in frame 1"):
        run_eval(["--tracks", str(tracks)], home, tmp_path / "run")


def test_eval_semantics_recorded(prepared, tmp_path):
    train, home = prepared
    tracks = write_tracks(train, tmp_path / "sem")
    outcome = run_eval(["--tracks", str(tracks), "--semantics", "trackeval", "--threshold",
                        "0.3"], home, tmp_path / "out")
    assert outcome.config["semantics"] == "trackeval"
    assert outcome.config["threshold"] == 0.3
    assert outcome.metrics["MOTA"] == 100.0
    assert sorted(outcome.per_item) == ["ZebraFish-01", "ZebraFish-02"]
