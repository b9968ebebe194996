"""The command line as a user runs it: list, info, download, sample, prepare, verify, eval, run,
leaderboard and publish."""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The loopback HTTP server fixture and a served toy dataset come from the download tests.
from test_download import _register_served_toy, server  # noqa: F401

from harness import registry
from harness.cli import main
from harness.plugin import Baseline, EvalOutcome, RunContext
from harness.records import RunRecord


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_list_names_datasets_and_evaluators(capsys):
    status, out, _ = run_cli(capsys, "list")
    assert status == 0
    assert "mot17" in out
    assert "mot20" in out
    assert "motchallenge" in out
    assert "sewerml" in out
    assert "ctgnn" in out
    assert "benchmark" in out


def test_info_shows_versions_schema_and_bibtex(capsys):
    status, out, _ = run_cli(capsys, "info", "mot17")
    assert status == 0
    assert "CC BY-NC-SA 3.0" in out
    assert "rows boxes/train: 204,501" in out
    assert "image: string (image file path; load_dataset decodes it as an image)" in out
    assert "@article" in out or "@misc" in out or "@inproceedings" in out

    status, out, _ = run_cli(capsys, "info", "mot17", "--bibtex")
    assert status == 0
    assert out.startswith("@")


def test_unknown_dataset_lists_valid_names(capsys):
    status, _, err = run_cli(capsys, "info", "MOT17")
    assert status == 2
    assert "error: unknown dataset 'MOT17'; valid values are: " in err
    assert "mot17, mot20, sewerml" in err


def test_download_through_cli(server, capsys, isolated_homes):  # noqa: F811
    base, behaviour = server
    from _toy_plugin import csv_text

    behaviour.files["/toy/train.csv"] = csv_text("train", 4).encode()
    _register_served_toy(base)
    status, out, _ = run_cli(capsys, "download", "served-toy")
    assert status == 0
    saved = isolated_homes / "downloads" / "served-toy" / "1.1" / "train.csv"
    assert out.strip() == str(saved)
    assert saved.read_bytes() == behaviour.files["/toy/train.csv"]


def test_download_checksum_mismatch_is_one_line(server, capsys):  # noqa: F811
    base, behaviour = server
    behaviour.files["/toy/train.csv"] = b"not the published file\n"
    _register_served_toy(base)
    status, _, err = run_cli(capsys, "download", "served-toy")
    assert status == 2
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("error: ")
    assert "md5" in last_line.lower()
    assert "Traceback" not in err


@pytest.fixture()
def mot_sample(tmp_path, capsys):
    """A generated MOT17 sample, prepared through the CLI."""
    status, out, _ = run_cli(capsys, "sample", "mot17", "--output", str(tmp_path / "data"))
    assert status == 0
    root = Path(out.strip())
    status, out, _ = run_cli(capsys, "prepare", "mot17", "--source", str(root))
    assert status == 0
    assert "Prepared mot17 1.0 (subset of sample data)" in out
    return root


def test_info_lists_prepared_copy_and_notes(mot_sample, capsys):
    status, out, _ = run_cli(capsys, "info", "mot17")
    assert status == 0
    assert "  1.0: " in out
    assert f"from {mot_sample}, sample data, subset" in out
    assert "    note: " in out


def test_info_without_prepared_copy(capsys):
    status, out, _ = run_cli(capsys, "info", "mot20")
    assert status == 0
    assert "Prepared: none (python -m harness prepare mot20 --source DIR)" in out


def test_eval_writes_record_and_trackeval_files(mot_sample, tmp_path, capsys):
    tracker = mot_sample / "trackers" / "noisytracker"
    status, out, _ = run_cli(capsys, "eval", "mot17", "--tracker-dir", str(tracker),
                             "--output", str(tmp_path / "run"), "--seed", "3")
    assert status == 0
    assert "COMBINED" in out
    record = RunRecord.read(tmp_path / "run" / "record.json")
    assert record.dataset == "mot17"
    assert record.method == "noisytracker"
    assert record.kind == "eval"
    assert record.seed == 3
    assert record.data_kind == "sample"
    assert record.split == "train"
    assert 0 < record.metrics["HOTA"] <= 100
    assert set(record.files) == {"pedestrian_summary.txt", "pedestrian_detailed.csv"}
    assert (tmp_path / "run" / "pedestrian_detailed.csv").is_file()


def test_eval_default_output_under_runs(mot_sample, capsys, isolated_homes):
    tracker = mot_sample / "trackers" / "noisytracker"
    status, out, _ = run_cli(capsys, "eval", "mot17", "--tracker-dir", str(tracker))
    assert status == 0
    records = list((isolated_homes / "runs").glob("*/record.json"))
    assert len(records) == 1
    assert "-mot17-noisytracker-" in records[0].parent.name
    assert f"Run record: {records[0]}" in out


def test_failed_eval_leaves_no_run_folder(mot_sample, tmp_path, capsys, isolated_homes):
    empty = tmp_path / "empty-tracker"
    empty.mkdir()
    status, _, err = run_cli(capsys, "eval", "mot17", "--tracker-dir", str(empty))
    assert status == 2
    assert err.startswith("error: ")
    runs = isolated_homes / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_eval_output_that_is_a_file(mot_sample, tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("x")
    tracker = mot_sample / "trackers" / "noisytracker"
    status, _, err = run_cli(capsys, "eval", "mot17", "--tracker-dir", str(tracker),
                             "--output", str(target))
    assert status == 2
    assert f"error: --output {target} is a file; expected a folder" in err


def test_prepare_data_dir_that_is_a_file(mot_sample, tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("x")
    status, _, err = run_cli(capsys, "prepare", "mot17", "--source", str(mot_sample),
                             "--data-dir", str(target))
    assert status == 2
    assert err.startswith("error: ")
    assert "Traceback" not in err


def test_verify_ok_then_reports_changed_table(mot_sample, capsys, isolated_homes):
    status, out, _ = run_cli(capsys, "verify", "mot17")
    assert status == 0
    assert out.startswith("OK: mot17 1.0 matches its manifest")

    table = next((isolated_homes / "datasets" / "mot17" / "1.0").rglob("boxes/train.parquet"))
    table.write_bytes(table.read_bytes() + b"x")
    status, _, err = run_cli(capsys, "verify", "mot17")
    assert status == 1
    assert "differs from its manifest" in err
    assert "boxes/train" in err


def test_leaderboard_from_eval_runs(mot_sample, tmp_path, capsys):
    tracker = mot_sample / "trackers" / "noisytracker"
    for seed in (0, 1):
        status, _, _ = run_cli(capsys, "eval", "mot17", "--tracker-dir", str(tracker),
                               "--output", str(tmp_path / "runs" / f"seed{seed}"),
                               "--seed", str(seed))
        assert status == 0

    status, out, _ = run_cli(capsys, "leaderboard", "--runs", str(tmp_path / "runs"))
    assert status == 0
    with open(tmp_path / "runs" / "leaderboard.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == []  # sample runs are left out by default, and with them their dataset

    status, out, _ = run_cli(capsys, "leaderboard", "--runs", str(tmp_path / "runs"),
                             "--include-sample", "--output", str(tmp_path / "board.csv"))
    assert status == 0
    markdown = (tmp_path / "board.md").read_text()
    assert "| 1.0 | train | noisytracker |" in markdown
    assert "| 2 |" in markdown  # two seeds of one configuration, aggregated
    assert "| paper | test | ByteTrack |" in markdown
    assert (tmp_path / "board.png").read_bytes()[:4] == b"\x89PNG"


class EchoBaseline(Baseline):
    """A baseline that records its seed as its score, to test the run command's wiring."""

    dataset = "toy"
    name = "echo"
    description = "records its seed as its score"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--scale", type=float, default=1.0, help="multiplies the score")

    def run(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome:
        (ctx.output_dir / "scores.txt").write_text(f"{ctx.seed * args.scale}\n")
        return EvalOutcome(dataset="toy", method="echo", metrics={"score": ctx.seed * args.scale},
                           config={"scale": args.scale}, files=[ctx.output_dir / "scores.txt"])


def test_run_records_baseline(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(registry._extra[registry.BASELINES_GROUP], "toy.echo", EchoBaseline)
    status, _, _ = run_cli(capsys, "run", "toy", "echo", "--scale", "2", "--seed", "4",
                           "--output", str(tmp_path / "run"))
    assert status == 0
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert record["kind"] == "run"
    assert record["metrics"] == {"score": 8.0}
    assert record["config"] == {"scale": 2.0}
    assert record["files"] == ["scores.txt"]


def test_run_without_baselines(capsys, monkeypatch):
    from harness import registry

    monkeypatch.setattr(registry, "baseline_names", lambda dataset=None: [])
    status, _, err = run_cli(capsys, "run")
    assert status == 2
    assert "error: no baselines are registered yet" in err


def test_publish_folder_only(mot_sample, tmp_path, capsys):
    status, out, _ = run_cli(capsys, "publish", "mot17", "--folder-only", str(tmp_path / "hub"))
    assert status == 0
    assert (tmp_path / "hub" / "README.md").is_file()
    assert list((tmp_path / "hub" / "data").rglob("*.parquet"))


def test_publish_needs_repo(mot_sample, capsys):
    status, _, err = run_cli(capsys, "publish", "mot17")
    assert status == 2
    assert "error: publish needs --repo ORG/NAME, or --folder-only DIR" in err


def test_python_m_harness_end_to_end(tmp_path):
    """The README's commands in a fresh interpreter, as a user types them."""
    env = dict(os.environ, FIELDHARNESS_HOME=str(tmp_path / "home"))

    def harness(*argv: str) -> str:
        result = subprocess.run([sys.executable, "-m", "harness", *argv], env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout

    root = Path(harness("sample", "mot17", "--output", str(tmp_path / "data")).strip())
    harness("prepare", "mot17", "--source", str(root))
    harness("eval", "mot17", "--tracker-dir", str(root / "trackers" / "noisytracker"),
            "--output", str(tmp_path / "runs" / "a"))
    out = harness("leaderboard", "--runs", str(tmp_path / "runs"), "--include-sample")
    assert str(tmp_path / "runs" / "leaderboard.csv") in out
    assert (tmp_path / "runs" / "leaderboard.md").is_file()


def test_data_folders_do_not_shadow_packages(tmp_path):
    """A sample written to ./virada or ./zef3d must not replace the installed packages."""
    for folder in ("virada/labels", "virada/train", "zef3d/configs", "motcom", "harness"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-m", "harness", "list"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "virada bossu" in result.stdout
    assert "zef3d naive" in result.stdout


def test_eval_refuses_existing_run_record(mot_sample, tmp_path, capsys):
    tracker = mot_sample / "trackers" / "noisytracker"
    argv = ["eval", "mot17", "--tracker-dir", str(tracker), "--output", str(tmp_path / "run")]
    assert run_cli(capsys, *argv)[0] == 0
    before = (tmp_path / "run" / "record.json").read_text()
    status, _, err = run_cli(capsys, *argv)
    assert status == 2
    assert f"error: --output {tmp_path / 'run'} already contains a run record" in err
    assert (tmp_path / "run" / "record.json").read_text() == before


def test_folder_options_that_are_files(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("x")
    for argv in (["verify", "mot17", "--data-dir", str(target)],
                 ["leaderboard", "--runs", str(target)],
                 ["prepare", "mot17", "--source", str(target)]):
        status, _, err = run_cli(capsys, *argv)
        assert status == 2, argv
        assert "is a file; expected a folder" in err, argv


def test_run_unknown_dataset_without_baselines(capsys, monkeypatch):
    from harness import registry

    monkeypatch.setattr(registry, "baseline_names", lambda dataset=None: [])
    status, _, err = run_cli(capsys, "run", "mot17", "x")
    assert status == 2
    assert "error: no baselines are registered yet" in err


def test_load_test_split_without_boxes(tmp_path, capsys):
    from harness import load_dataset
    from harness.errors import NotPreparedError
    from motcom.sample import write_mot_sample

    root = write_mot_sample(tmp_path / "data", sequences=1, frames=8, pedestrians=2)
    # A test sequence: frames and detections, no ground truth.
    test_seq = root / "MOT17" / "test" / "MOT17-01-SDP"
    (test_seq / "det").mkdir(parents=True)
    (test_seq / "det" / "det.txt").write_text("1,-1,10,10,5,5,0.9,-1,-1,-1\n")
    (test_seq / "seqinfo.ini").write_text(
        "[Sequence]\nname=MOT17-01-SDP\nimDir=img1\nframeRate=30\nseqLength=8\n"
        "imWidth=64\nimHeight=48\nimExt=.jpg\n")
    assert run_cli(capsys, "prepare", "mot17", "--source", str(root))[0] == 0
    with pytest.raises(NotPreparedError,
                       match=r"split 'test' of mot17 1.0 has no 'boxes' table; the split has "
                             r"no public labels; its prepared configs are: .*detections"):
        load_dataset("mot17", split="test")
