"""The Sewer-ML baselines through the command line: ``python -m harness run sewerml ctgnn`` and
``... benchmark`` on the generated sample, with tiny schedules so that they run on a CPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from _processes import hide_packages_source, run_process_group

from harness.cli import main
from sewerml.classes import DEFECT_CODES
from sewerml.sample import write_sewerml_sample

CTGNN_TINY = ("--set", "image_size=64", "--set", "epochs=1", "--set", "batch_size=8")
BENCHMARK_TINY = ("--set", "image_size=64", "--set", "binary.epochs=1",
                  "--set", "multilabel.epochs=1", "--set", "multilabel.batch_size=4")
VAL_ONLY = ("--set", "predict_splits=val")
WATER_CLASSES = ["0%<5%", "5-15%", "15-30%", "30%<="]
SUBPROCESS_TIMEOUT_S = 300


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def read_record(run_dir: Path) -> dict:
    return json.loads((run_dir / "record.json").read_text(encoding="utf-8"))


def reject_constant(name: str) -> float:
    raise ValueError(f"not strict JSON: {name}")


def prepare_sample(root: Path, *, properties: bool = False) -> Path:
    """Write the sample into ``root/source``, prepare it in ``root/home`` and return the home."""
    source = write_sewerml_sample(root / "source", properties=properties)
    home = root / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDHARNESS_HOME", str(home))
        status = main(["-q", "prepare", "sewerml", "--source", str(source),
                       "--data-dir", str(home)])
    assert status == 0
    return home


def val_filenames(home: Path) -> list[str]:
    labels = pl.read_csv(home.parent / "source" / "SewerML_Val.csv")
    return sorted(labels["Filename"].to_list())


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory) -> Path:
    return prepare_sample(tmp_path_factory.mktemp("sewerml"))


@pytest.fixture(scope="module")
def properties_home(tmp_path_factory) -> Path:
    return prepare_sample(tmp_path_factory.mktemp("sewerml-properties"), properties=True)


@pytest.fixture(scope="module")
def ctgnn_run(sample_home, tmp_path_factory) -> Path:
    """One CT-GNN run on the sample, shared by the tests that read its files."""
    output = tmp_path_factory.mktemp("ctgnn") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDHARNESS_HOME", str(sample_home))
        status = main(["-q", "run", "sewerml", "ctgnn", "--output", str(output),
                       "--data-dir", str(sample_home), *CTGNN_TINY])
    assert status == 0
    return output


@pytest.fixture(scope="module")
def benchmark_both_run(sample_home, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("benchmark") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDHARNESS_HOME", str(sample_home))
        status = main(["-q", "run", "sewerml", "benchmark", "--stage", "both",
                       "--output", str(output), "--data-dir", str(sample_home),
                       *BENCHMARK_TINY, *VAL_ONLY])
    assert status == 0
    return output


# --- ctgnn: record and files -------------------------------------------------------------------


@pytest.mark.slow
def test_ctgnn_record_fields(ctgnn_run):
    record = read_record(ctgnn_run)
    assert record["dataset"] == "sewerml"
    assert record["method"] == "ctgnn"
    assert record["kind"] == "run"
    assert record["split"] == "val"
    assert record["data_kind"] == "sample"


@pytest.mark.slow
def test_ctgnn_record_metrics(ctgnn_run):
    metrics = read_record(ctgnn_run)["metrics"]
    for name in ("F2_CIW", "F1_Normal", "mAP", "W-MF1", "W-mF1"):
        assert name in metrics, name
        assert 0.0 <= metrics[name] <= 100.0, (name, metrics[name])


@pytest.mark.slow
def test_ctgnn_record_config(ctgnn_run):
    config = read_record(ctgnn_run)["config"]
    # The sample preset's schedule, then the --set overrides on top.
    assert config["lr"] == 0.01
    assert config["milestones"] == [2]
    assert config["gamma"] == 0.1
    assert config["image_size"] == 64
    assert config["epochs"] == 1
    assert config["batch_size"] == 8
    assert config["tasks"] == ["defect", "water"]
    # Hardware and output choices are left out so that runs on any machine compare as one.
    assert "workers" not in config
    assert "device" not in config
    assert "predict_splits" not in config


@pytest.mark.slow
def test_ctgnn_files_written(ctgnn_run):
    expected = ["ctgnn_Val_sigmoid.csv", "ctgnn_Val_water.csv", "ctgnn_Test_sigmoid.csv",
                "ctgnn_Test_water.csv", "adjacency.csv", "history.csv", "loss.png",
                "per_class_f2.png", "confusion_water.png", "metrics.json",
                "checkpoints/best.pt"]
    for name in expected:
        assert (ctgnn_run / name).is_file(), name
    assert not (ctgnn_run / "confusion_shape.png").exists()


@pytest.mark.slow
def test_ctgnn_defect_csv(ctgnn_run, sample_home):
    frame = pl.read_csv(ctgnn_run / "ctgnn_Val_sigmoid.csv")
    assert frame.columns == ["Filename", *DEFECT_CODES]
    assert sorted(frame["Filename"].to_list()) == val_filenames(sample_home)
    scores = frame.select(DEFECT_CODES).to_numpy()
    assert scores.min() >= 0.0
    assert scores.max() <= 1.0


@pytest.mark.slow
def test_ctgnn_water_csv(ctgnn_run, sample_home):
    frame = pl.read_csv(ctgnn_run / "ctgnn_Val_water.csv")
    assert frame.columns == ["Filename", *WATER_CLASSES]
    assert sorted(frame["Filename"].to_list()) == val_filenames(sample_home)
    sums = frame.select(WATER_CLASSES).to_numpy().sum(axis=1)
    np.testing.assert_allclose(sums, 1.0, atol=1e-6)


@pytest.mark.slow
def test_ctgnn_test_csv_unlabelled(ctgnn_run, sample_home):
    frame = pl.read_csv(ctgnn_run / "ctgnn_Test_sigmoid.csv")
    test_labels = pl.read_csv(sample_home.parent / "source" / "SewerML_Test.csv")
    assert frame.columns == ["Filename", *DEFECT_CODES]
    assert sorted(frame["Filename"].to_list()) == sorted(test_labels["Filename"].to_list())


@pytest.mark.slow
def test_ctgnn_metrics_json_strict(ctgnn_run):
    text = (ctgnn_run / "metrics.json").read_text(encoding="utf-8")
    metrics = json.loads(text, parse_constant=reject_constant)
    assert metrics["split"] == "val"
    assert metrics["best_epoch"] == 1
    assert set(metrics) >= {"defect", "water"}


@pytest.mark.slow
def test_ctgnn_history_one_epoch(ctgnn_run):
    history = pl.read_csv(ctgnn_run / "history.csv")
    assert history["epoch"].to_list() == [1]


@pytest.mark.slow
def test_ctgnn_eval_matches_record(ctgnn_run, sample_home, tmp_path, capsys):
    output = tmp_path / "eval"
    status, _, err = run_cli(capsys, "eval", "sewerml",
                             "--predictions", ctgnn_run / "ctgnn_Val_sigmoid.csv",
                             "--split", "val", "--data-dir", sample_home, "--output", output)
    assert status == 0, err
    scored = read_record(output)["metrics"]["F2_CIW"]
    recorded = read_record(ctgnn_run)["metrics"]["F2_CIW"]
    assert scored == pytest.approx(recorded, abs=1e-9)


def test_ctgnn_output_with_record_rejected(ctgnn_run, sample_home, capsys):
    status, _, err = run_cli(capsys, "run", "sewerml", "ctgnn", "--output", ctgnn_run,
                             "--data-dir", sample_home, *CTGNN_TINY)
    assert status == 2
    assert "already contains a run record" in err


def test_ctgnn_resume_finished_run_explained(ctgnn_run, sample_home, capsys):
    status, _, err = run_cli(capsys, "run", "sewerml", "ctgnn", "--output", ctgnn_run,
                             "--data-dir", sample_home, *CTGNN_TINY, "--resume")
    assert status == 2
    assert ("--resume continues a stopped run only; to train a finished one further, pass a "
            "new --output and --weights with one of its checkpoints/last.pt files.") in err


# --- ctgnn: tasks ------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctgnn_four_tasks(properties_home, tmp_path, capsys):
    output = tmp_path / "run"
    status, _, err = run_cli(capsys, "run", "sewerml", "ctgnn", "--output", output,
                             "--data-dir", properties_home, *CTGNN_TINY, *VAL_ONLY,
                             "--set", "tasks=auto")
    assert status == 0, err
    record = read_record(output)
    assert record["config"]["tasks"] == ["defect", "water", "shape", "material"]
    for name in ("S-MF1", "S-mF1", "M-MF1", "M-mF1"):
        assert 0.0 <= record["metrics"][name] <= 100.0, name
    for name in ("confusion_shape.png", "confusion_material.png", "ctgnn_Val_shape.csv",
                 "ctgnn_Val_material.csv"):
        assert (output / name).is_file(), name


def test_ctgnn_shape_unlabelled(sample_home, tmp_path, capsys):
    status, _, err = run_cli(capsys, "run", "sewerml", "ctgnn", "--output", tmp_path / "run",
                             "--data-dir", sample_home, *CTGNN_TINY,
                             "--set", "tasks=defect,water,shape")
    assert status == 2
    assert ("error: task 'shape' has no labels in the prepared training split (labelled "
            "tasks: defect, water)") in err
    assert "lack the Shape and Material columns" in err


# --- ctgnn: resume and weights -----------------------------------------------------------------


@pytest.mark.slow
def test_ctgnn_resume_second_epoch(ctgnn_run, sample_home, tmp_path, capsys):
    output = tmp_path / "run"
    shutil.copytree(ctgnn_run, output)
    (output / "record.json").unlink()
    first = pl.read_csv(ctgnn_run / "history.csv")

    status, _, err = run_cli(capsys, "run", "sewerml", "ctgnn", "--output", output,
                             "--data-dir", sample_home, *CTGNN_TINY, *VAL_ONLY,
                             "--set", "epochs=2", "--resume")
    assert status == 0, err
    history = pl.read_csv(output / "history.csv")
    assert history["epoch"].to_list() == [1, 2]
    assert history.row(0) == first.row(0)
    assert read_record(output)["config"]["epochs"] == 2


@pytest.mark.slow
def test_ctgnn_weights_checkpoint(ctgnn_run, sample_home, tmp_path, capsys):
    output = tmp_path / "run"
    status, _, err = run_cli(capsys, "run", "sewerml", "ctgnn", "--output", output,
                             "--data-dir", sample_home, *CTGNN_TINY, *VAL_ONLY,
                             "--weights", ctgnn_run / "checkpoints" / "best.pt")
    assert status == 0, err
    record = read_record(output)
    assert record["method"] == "ctgnn"
    assert record["config"]["weights"] == str((ctgnn_run / "checkpoints" / "best.pt").resolve())


@pytest.mark.filterwarnings("ignore:checkpoint .* contains Python objects")
def test_ctgnn_weights_not_checkpoint(sample_home, tmp_path, capsys):
    not_checkpoint = sample_home.parent / "source" / "SewerML_Train.csv"
    status, _, err = run_cli(capsys, "run", "sewerml", "ctgnn", "--output", tmp_path / "run",
                             "--data-dir", sample_home, *CTGNN_TINY,
                             "--weights", not_checkpoint)
    assert status == 2
    assert f"error: {not_checkpoint}: not a PyTorch checkpoint" in err
    assert not (tmp_path / "run" / "record.json").exists()


def test_ctgnn_weights_not_checkpoint_no_warning(sample_home, tmp_path, capsys, recwarn):
    not_checkpoint = sample_home.parent / "source" / "SewerML_Train.csv"
    run_cli(capsys, "run", "sewerml", "ctgnn", "--output", tmp_path / "run",
            "--data-dir", sample_home, *CTGNN_TINY, "--weights", not_checkpoint)
    messages = [str(warning.message) for warning in recwarn]
    assert not [text for text in messages if "weights_only=False" in text]


# --- config errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(("option", "message"), [
    (("--set", "no_such_key=1"),
     "error: unknown config key 'no_such_key'; valid values are: aux_weight, batch_size,"),
    (("--set", "epochs=abc"),
     "error: invalid value 'abc' for config key 'epochs'; expected an integer"),
    (("--config", "missing.toml"),
     "error: config file 'missing.toml' not found; expected an existing TOML file, or one of "
     "the presets paper, sample"),
    (("--config", "nosuchpreset"),
     "error: unknown config preset 'nosuchpreset'; valid values are: paper, sample"),
])
def test_ctgnn_config_error(option, message, sample_home, tmp_path, capsys):
    status, _, err = run_cli(capsys, "run", "sewerml", "ctgnn", "--output", tmp_path / "run",
                             "--data-dir", sample_home, *option)
    assert status == 2
    assert message in err


def test_ctgnn_unknown_key_lists_epochs(sample_home, tmp_path, capsys):
    _, _, err = run_cli(capsys, "run", "sewerml", "ctgnn", "--output", tmp_path / "run",
                        "--data-dir", sample_home, "--set", "no_such_key=1")
    valid = err.split("valid values are: ", 1)[1].strip().split(", ")
    assert "epochs" in valid
    assert "task_weights.water" in valid


# --- benchmark ---------------------------------------------------------------------------------


def test_benchmark_binary_stage(sample_home, tmp_path, capsys):
    # The default prediction splits include the unlabelled test split.
    output = tmp_path / "run"
    status, _, err = run_cli(capsys, "run", "sewerml", "benchmark", "--stage", "binary",
                             "--output", output, "--data-dir", sample_home, *BENCHMARK_TINY)
    assert status == 0, err
    record = read_record(output)
    assert record["method"] == "benchmark-binary"
    assert record["config"]["stage"] == "binary"
    assert "multilabel" not in record["config"]
    assert record["config"]["binary"]["model"] == "xie2019"
    assert set(record["metrics"]) == {"Defect-F1", "Defect-recall", "Defect-precision",
                                      "Normal-F1", "accuracy"}
    assert 0.0 <= record["metrics"]["accuracy"] <= 100.0

    frame = pl.read_csv(output / "benchmark_Val_binary.csv")
    assert frame.columns == ["Filename", "Defect"]
    assert sorted(frame["Filename"].to_list()) == val_filenames(sample_home)
    assert frame["Defect"].is_between(0.0, 1.0).all()
    assert not (output / "benchmark-multilabel_Val_sigmoid.csv").exists()
    assert not (output / "binary").exists()
    assert (output / "benchmark_Test_binary.csv").is_file()
    assert (output / "confusion_binary.png").is_file()


def test_benchmark_multilabel_stage(sample_home, tmp_path, capsys):
    # Xie et al.'s small network replaces TResNet-L here only to keep the test fast; the
    # combined run below trains TResNet-L.
    output = tmp_path / "run"
    status, _, err = run_cli(capsys, "run", "sewerml", "benchmark", "--stage", "multilabel",
                             "--output", output, "--data-dir", sample_home, *BENCHMARK_TINY,
                             *VAL_ONLY, "--set", "multilabel.model=xie2019")
    assert status == 0, err
    record = read_record(output)
    assert record["method"] == "benchmark-multilabel"
    for name in ("F2_CIW", "F1_Normal", "mAP", "MF1"):
        assert 0.0 <= record["metrics"][name] <= 100.0, name

    frame = pl.read_csv(output / "benchmark-multilabel_Val_sigmoid.csv")
    assert frame.columns == ["Filename", *DEFECT_CODES]
    assert sorted(frame["Filename"].to_list()) == val_filenames(sample_home)
    assert not (output / "benchmark_Val_binary.csv").exists()


@pytest.mark.slow
def test_benchmark_both_record(benchmark_both_run):
    record = read_record(benchmark_both_run)
    assert record["method"] == "benchmark"
    assert record["config"]["stage"] == "both"
    assert record["config"]["multilabel"]["model"] == "tresnet_l"
    for name in ("F2_CIW", "F1_Normal", "mAP"):
        assert 0.0 <= record["metrics"][name] <= 100.0, name


@pytest.mark.slow
def test_benchmark_both_stage_folders(benchmark_both_run):
    for stage in ("binary", "multilabel"):
        assert (benchmark_both_run / stage / "checkpoints" / "best.pt").is_file(), stage
        assert (benchmark_both_run / stage / "history.csv").is_file(), stage
    metrics = json.loads((benchmark_both_run / "metrics.json").read_text(encoding="utf-8"),
                         parse_constant=reject_constant)
    assert metrics["stage"] == "both"


@pytest.mark.slow
def test_benchmark_both_replace_rule(benchmark_both_run):
    binary = pl.read_csv(benchmark_both_run / "benchmark_Val_binary.csv").sort("Filename")
    combined = pl.read_csv(benchmark_both_run / "benchmark_Val_sigmoid.csv").sort("Filename")
    assert combined.columns == ["Filename", *DEFECT_CODES]
    assert combined["Filename"].to_list() == binary["Filename"].to_list()

    # The multi-label stage's own scores are not kept, so each row is checked against the rule
    # alone. An image the first stage calls normal gets its defect probability in all 17
    # columns, and any other image keeps the second stage's scores, which differ from it.
    defect = binary["Defect"].to_numpy()
    scores = combined.select(DEFECT_CODES).to_numpy()
    filled = np.isclose(scores, defect[:, None], rtol=0, atol=1e-8).all(axis=1)
    replaced = defect < 0.5
    assert filled[replaced].all()
    assert not filled[~replaced].any()


@pytest.mark.slow
def test_benchmark_weights_binary(benchmark_both_run, sample_home, tmp_path, capsys):
    output = tmp_path / "run"
    checkpoint = benchmark_both_run / "binary" / "checkpoints" / "best.pt"
    status, _, err = run_cli(capsys, "run", "sewerml", "benchmark", "--stage", "binary",
                             "--output", output, "--data-dir", sample_home, *BENCHMARK_TINY,
                             *VAL_ONLY, "--weights", checkpoint)
    assert status == 0, err
    assert read_record(output)["method"] == "benchmark-binary"


def test_benchmark_weights_both_rejected(sample_home, tmp_path, capsys):
    status, _, err = run_cli(capsys, "run", "sewerml", "benchmark", "--output", tmp_path / "run",
                             "--data-dir", sample_home, "--weights", tmp_path / "model.pt")
    assert status == 2
    assert ("error: --weights needs --stage binary or --stage multilabel: the two stages are "
            "separate networks") in err


# --- environment -------------------------------------------------------------------------------


def test_ctgnn_not_prepared(isolated_homes, tmp_path, capsys):
    status, _, err = run_cli(capsys, "run", "sewerml", "ctgnn", "--output", tmp_path / "run")
    assert status == 2
    assert "error: sewerml is not prepared in " in err
    assert "run: python -m harness prepare sewerml --source" in err
    assert not (tmp_path / "run").exists()


NO_TORCH_SCRIPT = hide_packages_source({"torch", "torchvision"}) + textwrap.dedent(
    """
    import sys

    from harness.cli import main

    if sys.argv[1] == "help":
        try:
            main(["run", "sewerml", "ctgnn", "--help"])
        except SystemExit as exit:
            print("help exit:", exit.code)
    else:
        print("run exit:", main(["run", "sewerml", "ctgnn", "--output", sys.argv[2]]))
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
    print("loaded:", ",".join(loaded) or "none")
    """
)


def run_without_torch(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH_SCRIPT, *argv], env=dict(os.environ),
                          capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
                          check=False)


def test_ctgnn_help_without_torch():
    result = run_without_torch("help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "--weights" in result.stdout
    assert lines[-2] == "help exit: 0"
    assert lines[-1] == "loaded: none"


def test_ctgnn_run_without_torch(tmp_path):
    result = run_without_torch("run", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == ["run exit: 2", "loaded: none"]
    assert "pip install 'fieldharness[train]'" in result.stderr
    assert result.stderr.startswith("error: training a Sewer-ML baseline needs PyTorch")


# --- distributed -------------------------------------------------------------------------------


def test_distributed_needs_output(sample_home, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    status, _, err = run_cli(capsys, "run", "sewerml", "ctgnn", "--data-dir", sample_home,
                             *CTGNN_TINY)
    assert status == 2
    assert "error: a distributed run (torchrun) needs --output DIR" in err


@pytest.mark.slow
def test_ctgnn_torchrun_two_processes(sample_home, tmp_path):
    output = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "harness", "run", "sewerml", "ctgnn",
               "--output", str(output), "--set", "image_size=64", "--set", "epochs=1",
               "--set", "batch_size=4", "--data-dir", str(sample_home), "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = run_process_group(command, env=env, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-4000:]

    assert [p.relative_to(output) for p in output.rglob("record.json")] == [Path("record.json")]
    written = sorted(p.name for p in output.rglob("*.csv") if p.name.startswith("ctgnn_"))
    assert written == ["ctgnn_Test_sigmoid.csv", "ctgnn_Test_water.csv",
                       "ctgnn_Val_sigmoid.csv", "ctgnn_Val_water.csv"]
    val = pl.read_csv(output / "ctgnn_Val_sigmoid.csv")
    assert sorted(val["Filename"].to_list()) == val_filenames(sample_home)
    assert read_record(output)["config"]["batch_size"] == 4


def test_weights_imagenet_style_resnet(tmp_path, caplog):
    import torch
    import torchvision

    from sewerml.baselines import _initialise
    from sewerml.ctgnn import CTGNN

    backbone = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(backbone.state_dict(), path)
    model = CTGNN({"defect": 17, "water": 4}, np.eye(21, dtype=np.float32))

    _initialise(model, path, [(model.encoder.network, ("fc.",), "the ResNet-50 encoder")])

    key = "layer4.2.conv3.weight"
    assert torch.equal(model.encoder.network.state_dict()[key], backbone.state_dict()[key])
    assert "initialised the ResNet-50 encoder from it" in caplog.text


def test_weights_matching_nothing(tmp_path):
    import torch

    from harness.errors import FieldHarnessError
    from sewerml.baselines import _initialise
    from sewerml.ctgnn import CTGNN

    path = tmp_path / "other.pth"
    torch.save({"linear.weight": torch.zeros(2, 2)}, path)
    model = CTGNN({"defect": 17, "water": 4}, np.eye(21, dtype=np.float32))
    with pytest.raises(FieldHarnessError, match=r"does not match the model: \d+ missing keys"):
        _initialise(model, path, [(model.encoder.network, ("fc.",), "the ResNet-50 encoder")])


def test_ctgnn_same_seed_same_scores(sample_home, tmp_path, capsys):
    runs = []
    for name in ("a", "b"):
        status, _, err = run_cli(capsys, "run", "sewerml", "ctgnn", "--output", tmp_path / name,
                                 "--data-dir", sample_home, "--seed", "3", *CTGNN_TINY,
                                 *VAL_ONLY)
        assert status == 0, err
        runs.append(pl.read_csv(tmp_path / name / "ctgnn_Val_sigmoid.csv"))
    assert runs[0].equals(runs[1])


@pytest.mark.slow
def test_benchmark_both_resume_second_stage(sample_home, tmp_path, capsys):
    output = tmp_path / "run"
    common = ("run", "sewerml", "benchmark", "--output", output, "--data-dir", sample_home,
              *BENCHMARK_TINY, *VAL_ONLY, "--set", "multilabel.model=xie2019")
    status, _, err = run_cli(capsys, *common, "--stage", "binary")
    assert status == 0, err
    # Lay the finished binary stage out as a --stage both run that stopped before stage 2.
    (output / "binary").mkdir()
    shutil.move(output / "checkpoints", output / "binary" / "checkpoints")
    shutil.move(output / "history.csv", output / "binary" / "history.csv")
    (output / "record.json").unlink()
    binary_history = (output / "binary" / "history.csv").read_text()

    status, _, err = run_cli(capsys, *common, "--resume")

    assert status == 0, err
    assert (output / "binary" / "history.csv").read_text() == binary_history
    assert (output / "multilabel" / "checkpoints" / "best.pt").is_file()
    assert read_record(output)["method"] == "benchmark"


def test_benchmark_both_resume_file_rejected(sample_home, tmp_path, capsys):
    status, _, err = run_cli(capsys, "run", "sewerml", "benchmark", "--output", tmp_path / "run",
                             "--data-dir", sample_home, "--resume", tmp_path / "last.pt")
    assert status == 2
    assert ("--stage both resumes each stage from its own folder: pass --resume without a "
            "file") in err
