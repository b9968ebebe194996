"""harness.config: defaults, TOML files and presets, ``--set`` overrides and the shared options."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from harness.config import add_training_arguments, config_from_args, load_config
from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError

DEFAULTS = {
    "epochs": 90,
    "lr": 0.1,
    "amp": True,
    "name": "resnet",
    "milestones": [30, 60, 80],
    "betas": (0.9, 0.99),
    "tags": [],
    "extra": None,
    "optim": {"lr": 0.1, "nesterov": False},
    "task_weights": {},
    "device": "auto",
    "workers": 4,
}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_copied() -> None:
    config = load_config(DEFAULTS)
    assert config == DEFAULTS
    config["optim"]["lr"] = 5.0
    config["milestones"].append(90)
    assert DEFAULTS["optim"]["lr"] == 0.1
    assert DEFAULTS["milestones"] == [30, 60, 80]


def test_file_then_overrides(tmp_path: Path) -> None:
    file = write(tmp_path / "run.toml",
                 'epochs = 40\nlr = 1\nmilestones = [20, 30]\n[optim]\nlr = 0.01\n')
    config = load_config(DEFAULTS, file, ["epochs=5", "optim.nesterov=yes"])
    assert config["epochs"] == 5
    assert config["lr"] == 1.0
    assert isinstance(config["lr"], float)
    assert config["milestones"] == [20, 30]
    assert config["optim"] == {"lr": 0.01, "nesterov": True}
    assert config["name"] == "resnet"


def test_file_path_as_string(tmp_path: Path) -> None:
    file = write(tmp_path / "run.toml", "name = 'tresnet'\n")
    assert load_config(DEFAULTS, str(file))["name"] == "tresnet"


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("epochs=7", "epochs", 7),
        ("epochs=-1", "epochs", -1),
        ("lr=3", "lr", 3.0),
        ("lr=1e-3", "lr", 0.001),
        ("amp=false", "amp", False),
        ("amp=TRUE", "amp", True),
        ("amp=0", "amp", False),
        ("amp=1", "amp", True),
        ("amp=No", "amp", False),
        ("amp=yes", "amp", True),
        ("name=a b=c", "name", "a b=c"),
        ("name=", "name", ""),
        ("milestones=10,20", "milestones", [10, 20]),
        ("milestones=[5, 6, 7]", "milestones", [5, 6, 7]),
        ("milestones= 1 , 2 ", "milestones", [1, 2]),
        ("milestones=", "milestones", []),
        ("betas=0.5,1", "betas", (0.5, 1.0)),
        ("tags=a,2", "tags", ["a", 2]),
        ("extra=0.5", "extra", 0.5),
        ("extra=[1, 2]", "extra", [1, 2]),
        ("extra=true", "extra", True),
        ('extra="quoted"', "extra", "quoted"),
        ("extra=hello world", "extra", "hello world"),
        ("optim.lr=0.01", "optim", {"lr": 0.01, "nesterov": False}),
        ("optim={lr = 2}", "optim", {"lr": 2.0, "nesterov": False}),
        ("task_weights.defect=27", "task_weights", {"defect": 27}),
    ],
)
def test_override_parsing(override: str, key: str, expected: object) -> None:
    value = load_config(DEFAULTS, overrides=[override])[key]
    assert value == expected
    assert type(value) is type(expected)


def test_override_type_from_defaults() -> None:
    # A None default stays open to any type even after an earlier override set a list.
    config = load_config(DEFAULTS, overrides=["extra=[1, 2]", "extra=text"])
    assert config["extra"] == "text"


def test_open_table_in_file(tmp_path: Path) -> None:
    file = write(tmp_path / "run.toml", "[task_weights]\ndefect = 27\nwater = 1\n")
    config = load_config(DEFAULTS, file, ["task_weights.shape=1"])
    assert config["task_weights"] == {"defect": 27, "water": 1, "shape": 1}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochs=1.5", r"invalid value '1\.5' for config key 'epochs'; expected an integer"),
        ("lr=fast", r"invalid value 'fast' for config key 'lr'; expected a number"),
        ("amp=maybe", r"'maybe' for config key 'amp'; expected a boolean \(true, false, 1, 0"),
        ("milestones=10,x", r"'x' for config key 'milestones\[1\]'; expected an integer"),
        ("milestones=[1, 2.5]", r"2\.5 for config key 'milestones\[1\]'; expected an integer"),
        ("milestones=[1", r"'\[1' for config key 'milestones'; expected a list of integers"),
        ("optim=3", r"'3' for config key 'optim'; expected an inline TOML table"),
    ],
)
def test_override_bad_value(override: str, message: str) -> None:
    with pytest.raises(FieldHarnessError, match=message):
        load_config(DEFAULTS, overrides=[override])


@pytest.mark.parametrize("override", ["epochs", "=3", "  =3"])
def test_override_without_equals(override: str) -> None:
    with pytest.raises(FieldHarnessError, match=r"invalid override .*expected the form KEY=VALUE"):
        load_config(DEFAULTS, overrides=[override])


def test_override_unknown_key() -> None:
    with pytest.raises(UnknownNameError,
                       match=r"unknown config key 'epoch'; valid values are: .*epochs.*optim\.lr"):
        load_config(DEFAULTS, overrides=["epoch=3"])


def test_override_unknown_nested_key() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown config key 'optim\.momentum'"):
        load_config(DEFAULTS, overrides=["optim.momentum=0.9"])
    with pytest.raises(UnknownNameError, match=r"unknown config key 'model'; valid values"):
        load_config(DEFAULTS, overrides=["model.depth=50"])


def test_override_key_below_a_value() -> None:
    with pytest.raises(FieldHarnessError,
                       match=r"invalid config key 'epochs\.x': 'epochs' is a value, not a table"):
        load_config(DEFAULTS, overrides=["epochs.x=1"])


def test_file_unknown_key(tmp_path: Path) -> None:
    file = write(tmp_path / "run.toml", "[optim]\nmomentum = 0.9\n")
    with pytest.raises(UnknownNameError,
                       match=r"unknown config key 'optim\.momentum'; valid values are: "
                             r"optim\.lr, optim\.nesterov$"):
        load_config(DEFAULTS, file)


def test_file_bad_value(tmp_path: Path) -> None:
    file = write(tmp_path / "run.toml", 'epochs = "ninety"\n')
    with pytest.raises(DataFormatError,
                       match=r"run\.toml: invalid config value \(field 'epochs', value "
                             r"'ninety'\); expected an integer"):
        load_config(DEFAULTS, file)


def test_file_bool_for_int(tmp_path: Path) -> None:
    file = write(tmp_path / "run.toml", "epochs = true\n")
    with pytest.raises(DataFormatError, match=r"field 'epochs', value True\); expected an integer"):
        load_config(DEFAULTS, file)


def test_file_value_for_table(tmp_path: Path) -> None:
    file = write(tmp_path / "run.toml", "optim = 3\n")
    with pytest.raises(DataFormatError, match=r"field 'optim', value 3\); expected a table"):
        load_config(DEFAULTS, file)


def test_file_syntax_error(tmp_path: Path) -> None:
    file = write(tmp_path / "bad.toml", "epochs = 3\nlr = \n")
    with pytest.raises(DataFormatError, match=r"bad\.toml:2: invalid TOML: .*line 2") as caught:
        load_config(DEFAULTS, file)
    assert caught.value.line == 2
    assert caught.value.path == str(file)


def test_file_not_utf8(tmp_path: Path) -> None:
    file = tmp_path / "latin1.toml"
    file.write_bytes(b"name = '\xe9'\n")
    with pytest.raises(DataFormatError, match=r"latin1\.toml: invalid TOML: the file is not UTF-8"):
        load_config(DEFAULTS, file)


def test_file_missing(tmp_path: Path) -> None:
    with pytest.raises(FieldHarnessError,
                       match=r"config file '.*nothere\.toml' not found; expected an existing"):
        load_config(DEFAULTS, tmp_path / "nothere.toml")


def test_config_path_is_folder(tmp_path: Path) -> None:
    with pytest.raises(FieldHarnessError, match=r"is not a file; expected a TOML file"):
        load_config(DEFAULTS, tmp_path)


def test_presets(tmp_path: Path) -> None:
    paper = write(tmp_path / "paper.toml", "epochs = 90\nlr = 0.1\n")
    sample = write(tmp_path / "sample.toml", "epochs = 1\n")
    presets = {"paper": paper, "sample": sample}
    assert load_config(DEFAULTS, "sample", presets=presets)["epochs"] == 1
    assert load_config(DEFAULTS, "paper", ["lr=0.2"], presets=presets)["lr"] == 0.2


def test_unknown_preset(tmp_path: Path) -> None:
    presets = {"paper": tmp_path / "paper.toml", "sample": tmp_path / "sample.toml"}
    with pytest.raises(UnknownNameError,
                       match=r"unknown config preset 'papr'; valid values are: paper, sample"):
        load_config(DEFAULTS, "papr", presets=presets)


def test_missing_file_with_presets(tmp_path: Path) -> None:
    presets = {"paper": tmp_path / "paper.toml"}
    with pytest.raises(FieldHarnessError,
                       match=r"config file 'runs/x\.toml' not found; expected an existing TOML "
                             r"file, or one of the presets paper"):
        load_config(DEFAULTS, "runs/x.toml", presets=presets)


def parser_with_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train")
    add_training_arguments(parser, presets=["paper", "sample"])
    return parser


def test_arguments_defaults() -> None:
    args = parser_with_options().parse_args([])
    assert args.config is None
    assert args.overrides == []
    assert args.device is None
    assert args.workers is None
    assert args.resume is None
    assert args.weights is None


def test_arguments_values(tmp_path: Path) -> None:
    args = parser_with_options().parse_args(
        ["--config", "paper", "--set", "lr=0.2", "--set", "epochs=3", "--device", "cuda:1",
         "--workers", "8", "--resume", "--weights", str(tmp_path / "w.pt")])
    assert args.config == "paper"
    assert args.overrides == ["lr=0.2", "epochs=3"]
    assert args.device == "cuda:1"
    assert args.workers == 8
    assert args.resume == "last"
    assert args.weights == tmp_path / "w.pt"


def test_resume_with_file() -> None:
    args = parser_with_options().parse_args(["--resume", "run/checkpoints/best.pt"])
    assert args.resume == "run/checkpoints/best.pt"


def test_help_lists_presets() -> None:
    text = parser_with_options().format_help()
    assert "preset: paper, sample" in text
    assert "DataLoader worker processes per training process" in text


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--device", "gpu", r"invalid device 'gpu'; expected auto, cpu, cuda or cuda:N"),
    ("--workers", "-1", r"invalid worker count '-1'; expected an integer >= 0"),
    ("--workers", "two", r"invalid worker count 'two'"),
])
def test_arguments_rejected(flag: str, value: str, message: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser_with_options().parse_args([flag, value])
    assert re.search(message, capsys.readouterr().err)


def test_config_from_args(tmp_path: Path) -> None:
    sample = write(tmp_path / "sample.toml", "epochs = 1\ndevice = 'cuda'\nworkers = 2\n")
    parser = parser_with_options()
    args = parser.parse_args(["--config", "sample", "--set", "lr=0.5", "--device", "cpu"])
    config = config_from_args(DEFAULTS, args, presets={"sample": sample})
    assert config["epochs"] == 1
    assert config["lr"] == 0.5
    assert config["device"] == "cpu"
    assert config["workers"] == 2

    args = parser.parse_args(["--workers", "0"])
    config = config_from_args(DEFAULTS, args)
    assert config["workers"] == 0
    assert config["device"] == "auto"


def test_preset_config_takes_sample_on_sample_data(caplog: pytest.LogCaptureFixture) -> None:
    from harness.config import load_preset_config
    from sewerml.baselines import PRESETS

    with caplog.at_level("WARNING"):
        sample = load_preset_config("sewerml", PRESETS["ctgnn"], None, ["epochs=2"],
                                    data_kind="sample", run_name="Sewer-ML ctgnn")
    assert "generated sample data, so Sewer-ML ctgnn uses the short 'sample'" in caplog.text
    assert sample["epochs"] == 2
    paper = load_preset_config("sewerml", PRESETS["ctgnn"], None, [], data_kind="real",
                               run_name="Sewer-ML ctgnn")
    chosen = load_preset_config("sewerml", PRESETS["ctgnn"], "paper", [], data_kind="sample",
                                run_name="Sewer-ML ctgnn")
    assert chosen == paper
    assert paper != load_preset_config("sewerml", PRESETS["ctgnn"], "sample", [],
                                       data_kind="real", run_name="Sewer-ML ctgnn")


def test_require_torch_names_missing_module() -> None:
    from harness.config import require_torch
    from harness.errors import MissingDependencyError

    require_torch("training")
    with pytest.raises(MissingDependencyError,
                       match=r"^training X needs PyTorch \(no_such_module_xyz is not installed\); "
                             r"install it with: pip install 'fieldharness\[train\]'$"):
        require_torch("training X", "torch", "no_such_module_xyz")
