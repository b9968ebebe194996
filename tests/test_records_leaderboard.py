"""Run records and the leaderboard built from them."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path

import pytest

from harness import leaderboard
from harness.errors import DataFormatError, FieldHarnessError
from harness.plugin import EvalOutcome
from harness.records import RECORD_FILE, RunRecord, find_records, new_run_dir


def _write_run(root: Path, name: str, *, method: str = "tracker", seed: int = 0,
               mota: float = 50.0, data_kind: str = "real", config=None) -> Path:
    outcome = EvalOutcome(dataset="toyset", method=method, metrics={"MOTA": mota, "IDF1": 60.0},
                          version="v1", split="train", data_kind=data_kind,
                          config=config or {"threshold": 0.5},
                          per_item={"seq-1": {"MOTA": mota}})
    record = RunRecord.from_outcome(outcome, kind="eval", seed=seed,
                                    started=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
                                    runtime_s=1.5, output_dir=root / name, command=["x"])
    (root / name).mkdir(parents=True)
    return record.write(root / name)


def test_record_roundtrip(tmp_path):
    path = _write_run(tmp_path, "a", mota=42.0)
    record = RunRecord.read(path)
    assert record.metrics == {"MOTA": 42.0, "IDF1": 60.0}
    assert record.date == "2026-01-02T00:00:00+00:00"
    assert record.hardware["cpu_count"] >= 1
    assert record.fieldharness_version
    assert record.per_item == {"seq-1": {"MOTA": 42.0}}
    assert not list(tmp_path.rglob("*.tmp"))


def test_record_missing_field_is_reported(tmp_path):
    path = tmp_path / RECORD_FILE
    path.write_text(json.dumps({"dataset": "x", "metrics": {}, "kind": "eval"}))
    with pytest.raises(DataFormatError, match=r"record.json: run record lacks a required field "
                                              r"\(field 'method'\)"):
        RunRecord.read(path)


def test_record_invalid_json_names_line(tmp_path):
    path = tmp_path / RECORD_FILE
    path.write_text('{\n"dataset": "x",\n oops\n}')
    with pytest.raises(DataFormatError, match=r"record.json:3: invalid JSON"):
        RunRecord.read(path)


def test_new_run_dir_is_unique_and_under_home(tmp_path):
    first = new_run_dir("mot17", "my tracker/v2", tmp_path)
    second = new_run_dir("mot17", "my tracker/v2", tmp_path)
    assert first != second
    assert first.parent == tmp_path / "runs"
    assert "my_tracker_v2" in first.name


def test_leaderboard_aggregates_seeds(tmp_path):
    _write_run(tmp_path, "r1", seed=0, mota=50.0)
    _write_run(tmp_path, "r2", seed=1, mota=54.0)
    _write_run(tmp_path, "r3", method="other", mota=10.0)
    board = leaderboard.build(tmp_path)
    assert len(board.rows) == 6  # 3 runs x 2 metrics
    markdown = leaderboard.to_markdown(board)
    assert "| v1 | train | tracker | threshold=0.5 | 2 | 52.000 ± 2.828 |" in markdown
    assert "| v1 | train | other | threshold=0.5 | 1 | 10 |" in markdown


def test_leaderboard_excludes_sample_runs_unless_asked(tmp_path):
    _write_run(tmp_path, "real", mota=50.0)
    _write_run(tmp_path, "sample", mota=99.0, data_kind="sample", method="s")
    assert {r["method"] for r in leaderboard.build(tmp_path).rows} == {"tracker"}
    board = leaderboard.build(tmp_path, include_sample=True)
    assert {r["method"] for r in board.rows} == {"tracker", "s"}
    assert "(sample data)" in leaderboard.to_markdown(board)


def test_leaderboard_write_csv_markdown_plot(tmp_path):
    runs = tmp_path / "runs"
    _write_run(runs, "r1", mota=50.0)
    written = leaderboard.write(runs, tmp_path / "board.csv")
    with open(written["csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["metric"] for r in rows] == ["MOTA", "IDF1"]
    assert rows[0]["value"] == "50.0"
    assert rows[0]["source"] == "run"
    assert written["markdown"].read_text().startswith("## toyset")
    assert written["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert find_records(runs) == [runs / "r1" / RECORD_FILE]


def test_leaderboard_missing_runs_folder(tmp_path):
    with pytest.raises(FieldHarnessError, match="runs folder not found"):
        leaderboard.write(tmp_path / "nope", tmp_path / "board.csv")


def test_describe_settings_is_short():
    config = json.dumps({"benchmark": "MOT17", "sequences": ["a", "b", "c"], "subset": True,
                         "seq_length": None, "threshold": 0.5})
    assert leaderboard.describe_settings(config) == (
        "benchmark=MOT17, sequences=[a, b, c], subset, threshold=0.5")
    assert leaderboard.describe_settings("{}") == ""


def test_describe_settings_nested_and_numbers():
    config = json.dumps({"binary": {"epochs": 2, "milestones": [30, 60, 80]},
                         "steps": list(range(10)), "gnn": "gat"})
    assert leaderboard.describe_settings(config) == (
        "binary.epochs=2, binary.milestones=[30, 60, 80], steps: 10, gnn=gat")


def test_record_nan_metric_round_trip(tmp_path):
    outcome = EvalOutcome(dataset="toy", method="m", metrics={"CR": float("nan"), "F1": 0.5},
                          per_item={"RB": {"R": float("nan")}})
    record = RunRecord.from_outcome(outcome, kind="eval", seed=0, started=dt.datetime.now(dt.UTC),
                                    runtime_s=1.0, output_dir=tmp_path)
    path = record.write(tmp_path)

    text = path.read_text()
    assert "NaN" not in text
    read = RunRecord.read(path)
    assert math.isnan(read.metrics["CR"])
    assert read.metrics["F1"] == 0.5
    assert math.isnan(read.per_item["RB"]["R"])


def test_leaderboard_hints_sample_runs(tmp_path):
    _write_run(tmp_path, "a", data_kind="sample")
    _write_run(tmp_path, "b", data_kind="sample", seed=1)

    board = leaderboard.build(tmp_path)

    assert board.sample_runs_left_out == 2
    assert leaderboard.to_markdown(board) == (
        "No runs on real data yet; 2 run(s) on generated sample data were left out (pass "
        "--include-sample to list them).\n")


def test_leaderboard_skips_runs_without_scores(tmp_path):
    _write_run(tmp_path, "scored")
    outcome = EvalOutcome(dataset="toyset", method="submission", metrics={}, version="v1",
                          split="test")
    record = RunRecord.from_outcome(outcome, kind="eval", seed=0,
                                    started=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
                                    runtime_s=1.0, output_dir=tmp_path / "unscored")
    (tmp_path / "unscored").mkdir()
    record.write(tmp_path / "unscored")

    board = leaderboard.build(tmp_path)

    assert [key[3] for key in board.groups] == ["tracker"]
    assert "submission" not in leaderboard.to_markdown(board)


def test_plot_labels_show_distinct_settings(tmp_path):
    _write_run(tmp_path, "a", config={"lr": 0.1, "epochs": 40, "gnn": "gat"})
    _write_run(tmp_path, "b", config={"lr": 0.1, "epochs": 40, "gnn": "gcn"})
    board = leaderboard.build(tmp_path)

    distinct = leaderboard._distinct_settings(list(board.groups))

    assert sorted(distinct.values()) == ["gnn=gat", "gnn=gcn"]


def test_plot_bars_use_each_methods_first_metric(tmp_path):
    _write_run(tmp_path, "a", method="tracker")  # MOTA and IDF1
    outcome = EvalOutcome(dataset="toyset", method="identity", metrics={"IDF1": 70.0},
                          version="v1", split="train")
    record = RunRecord.from_outcome(outcome, kind="eval", seed=0,
                                    started=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
                                    runtime_s=1.0, output_dir=tmp_path / "b", command=["x"])
    (tmp_path / "b").mkdir()
    record.write(tmp_path / "b")
    board = leaderboard.build(tmp_path)

    labels, means, _, colors, axis = leaderboard._bars(
        board, "toyset", leaderboard._distinct_settings(list(board.groups)))

    assert means == [70.0, 50.0]
    assert labels[0].startswith("identity (IDF1, ")
    assert labels[1].startswith("tracker (MOTA, ")
    assert colors == ["tab:blue", "tab:blue"]
    assert axis == "score (metric in each label)"
    assert leaderboard.plot(board, tmp_path / "board.png").is_file()


def test_leaderboard_group_with_a_nan_metric(tmp_path):
    runs = tmp_path / "runs"
    _write_run(runs, "r1", mota=float("nan"), seed=0)
    _write_run(runs, "r2", mota=50.0, seed=1)
    written = leaderboard.write(runs, tmp_path / "board.csv")
    table = written["markdown"].read_text()
    assert "| nan |" in table
    assert "60.000 ± 0.000" in table
    assert written["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_find_records_follows_linked_run_folders(tmp_path):
    kept = tmp_path / "kept"
    _write_run(kept, "r1")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "linked").symlink_to(kept / "r1", target_is_directory=True)
    (runs / "loop").symlink_to(runs, target_is_directory=True)
    assert find_records(runs) == [runs / "linked" / RECORD_FILE]


def test_markdown_formats_each_column_alike(tmp_path):
    runs = tmp_path / "runs"
    _write_run(runs, "r1", mota=76.0, config={"threshold": 0.5})
    _write_run(runs, "r2", mota=76.667, config={"threshold": 0.3})
    table = leaderboard.write(runs, tmp_path / "board.csv")["markdown"].read_text()
    assert "| 76.000 |" in table
    assert "| 76.667 |" in table
    assert "| 60 |" in table  # IDF1 is 60 in both runs: a column of whole numbers


def test_plot_draws_bars_whose_labels_are_the_same(tmp_path):
    board = leaderboard.Leaderboard(groups={}, published=[])
    for mota in (76.0, 56.0):
        key = ("toyset", "v1", "train", "tracker", json.dumps({"n": mota}), "real")
        board.groups[key] = {"MOTA": [mota]}
    labels, means, *_ = leaderboard._bars(board, "toyset", {key: "" for key in board.groups})
    assert labels[0] == labels[1]
    assert sorted(means) == [56.0, 76.0]
    path = leaderboard.plot(board, tmp_path / "board.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
