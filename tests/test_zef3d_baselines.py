"""The 3D-ZeF baselines through the command line on the generated sample:
``python -m harness run zef3d naive`` and ``... frcnn``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import registry
from harness.cli import main
from zef3d.baselines import FRCNNBaseline, NaiveBaseline
from zef3d.io import read_tracks3d
from zef3d.plugin import Zef3DPlugin
from zef3d.sample import write_zef_sample

pytest.importorskip("cv2")


@pytest.fixture(autouse=True)
def zef3d_registered():
    registry.register_dataset("zef3d", Zef3DPlugin)
    registry.register_baseline("zef3d", "naive", NaiveBaseline)
    registry.register_baseline("zef3d", "frcnn", FRCNNBaseline)


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default sample (two train sequences, one test sequence), prepared."""
    registry.register_dataset("zef3d", Zef3DPlugin)
    root = tmp_path_factory.mktemp("zef3d")
    source = write_zef_sample(root / "source")
    home = root / "home"
    status = main(["-q", "prepare", "zef3d", "--source", str(source), "--data-dir", str(home)])
    assert status == 0
    return home


@pytest.fixture(scope="module")
def naive_run(sample_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    registry.register_baseline("zef3d", "naive", NaiveBaseline)
    output = tmp_path_factory.mktemp("naive") / "run"
    status = main(["-q", "run", "zef3d", "naive", "--output", str(output),
                   "--data-dir", str(sample_home)])
    assert status == 0
    return output


def read_record(run_dir: Path) -> dict:
    return json.loads((run_dir / "record.json").read_text(encoding="utf-8"))


def test_naive_mota_above_half_on_sample(naive_run: Path):
    record = read_record(naive_run)
    # MOTA is in percent; the sample is easy by construction.
    assert record["metrics"]["MOTA"] > 50.0
    assert record["split"] == "train"
    assert record["data_kind"] == "sample"


def test_naive_scores_every_sequence(naive_run: Path):
    record = read_record(naive_run)
    per_item = record["per_item"]
    assert sorted(per_item) == ["ZebraFish-01", "ZebraFish-02"]
    for values in per_item.values():
        assert values["MOTA"] > 30.0
    metrics = json.loads((naive_run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["COMBINED"]["MOTA"] == pytest.approx(record["metrics"]["MOTA"])


def test_naive_scores_equal_eval_of_its_tracks(naive_run: Path, sample_home: Path,
                                                tmp_path: Path):
    output = tmp_path / "eval"
    assert main(["-q", "eval", "zef3d", "--tracks", str(naive_run / "tracks"), "--output",
                 str(output), "--data-dir", str(sample_home)]) == 0
    evaluated = read_record(output)
    record = read_record(naive_run)
    assert evaluated["metrics"] == record["metrics"]
    assert evaluated["per_item"] == record["per_item"]


def test_naive_writes_submission_files(naive_run: Path):
    for name, fish in (("ZebraFish-01", 2), ("ZebraFish-02", 3)):
        tracks = read_tracks3d(naive_run / "tracks" / f"{name}.txt")
        assert tracks.height > 0
        assert tracks["id"].n_unique() == fish
        assert tracks["frame"].min() >= 1
        assert tracks.select(["x", "y"]).to_numpy().min() >= 0.0
        assert tracks.select(["x", "y"]).to_numpy().max() <= 29.0


def test_naive_plots_each_sequence(naive_run: Path):
    for name in ("ZebraFish-01", "ZebraFish-02"):
        plot = naive_run / "plots" / f"{name}.png"
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_naive_records_sample_preset(naive_run: Path):
    config = read_record(naive_run)["config"]
    assert config["interpolate"] is True
    assert config.get("settings", {}) == {}


def test_naive_test_split_writes_tracks_only(sample_home: Path, tmp_path: Path):
    output = tmp_path / "run"
    status = main(["-q", "run", "zef3d", "naive", "--split", "test", "--output", str(output),
                   "--data-dir", str(sample_home)])
    assert status == 0
    record = read_record(output)
    assert record["metrics"] == {}
    assert record["split"] == "test"
    assert read_tracks3d(output / "tracks" / "ZebraFish-05.txt").height > 0
    assert not (output / "metrics.json").exists()


def test_naive_one_sequence_with_paper_config(sample_home: Path, tmp_path: Path):
    output = tmp_path / "run"
    status = main(["-q", "run", "zef3d", "naive", "--sequences", "ZebraFish-01",
                   "--config", "paper", "--set", "max_frames=60", "--output", str(output),
                   "--data-dir", str(sample_home)])
    assert status == 0
    record = read_record(output)
    assert list(record["per_item"]) == ["ZebraFish-01"]
    assert record["config"]["interpolate"] is False
    tracks = read_tracks3d(output / "tracks" / "ZebraFish-01.txt")
    assert tracks["frame"].max() <= 60


def test_unknown_sequence_is_error(sample_home: Path, tmp_path: Path, capsys):
    status = main(["-q", "run", "zef3d", "naive", "--sequences", "ZebraFish-09",
                   "--output", str(tmp_path / "run"), "--data-dir", str(sample_home)])
    assert status != 0
    error = capsys.readouterr().err
    assert "ZebraFish-09" in error
    assert "ZebraFish-01" in error


def test_unknown_pipeline_setting_is_error(sample_home: Path, tmp_path: Path, capsys):
    status = main(["-q", "run", "zef3d", "naive", "--set", "settings.ghost=2",
                   "--output", str(tmp_path / "run"), "--data-dir", str(sample_home)])
    assert status != 0
    error = capsys.readouterr().err
    assert "'ghost'" in error
    assert "front_ghost_threshold" in error


def test_negative_max_frames_is_error(sample_home: Path, tmp_path: Path, capsys):
    status = main(["-q", "run", "zef3d", "naive", "--set", "max_frames=-3",
                   "--output", str(tmp_path / "run"), "--data-dir", str(sample_home)])
    assert status != 0
    assert "invalid max_frames -3; expected 0 (every frame)" in capsys.readouterr().err


def test_frcnn_trains_and_tracks_on_sample(sample_home: Path, tmp_path: Path):
    pytest.importorskip("torchvision")
    output = tmp_path / "run"
    status = main(["-q", "run", "zef3d", "frcnn", "--sequences", "ZebraFish-01",
                   "--set", "max_train_frames=2", "--set", "max_frames=3", "--device", "cpu",
                   "--output", str(output), "--data-dir", str(sample_home)])
    assert status == 0
    record = read_record(output)
    assert "MOTA" in record["metrics"]
    assert (output / "detector" / "checkpoints" / "last.pt").is_file()
    assert (output / "detector" / "history.csv").is_file()
    assert (output / "tracks" / "ZebraFish-01.txt").is_file()

    # The trained checkpoint initialises a run without training.
    checkpoint = output / "detector" / "checkpoints" / "last.pt"
    reused = tmp_path / "reused"
    status = main(["-q", "run", "zef3d", "frcnn", "--sequences", "ZebraFish-01",
                   "--epochs", "0", "--weights", str(checkpoint), "--set", "max_frames=2",
                   "--device", "cpu", "--output", str(reused), "--data-dir", str(sample_home)])
    assert status == 0
    assert read_record(reused)["config"]["weights"] == str(checkpoint.resolve())
    assert not (reused / "detector" / "checkpoints").exists()


def test_frcnn_zero_epochs_needs_weights(sample_home: Path, tmp_path: Path, capsys):
    pytest.importorskip("torchvision")
    status = main(["-q", "run", "zef3d", "frcnn", "--epochs", "0", "--device", "cpu",
                   "--output", str(tmp_path / "run"), "--data-dir", str(sample_home)])
    assert status != 0
    assert "--weights" in capsys.readouterr().err
