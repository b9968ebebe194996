"""harness.training: fit, resume, precision, predict, load_weights and a two-process DDP run."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _processes import run_process_group  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402

from harness.errors import DataFormatError, FieldHarnessError  # noqa: E402
from harness.training import (  # noqa: E402
    FitResult,
    TrainSettings,
    checkpoint_settings,
    fit,
    load_weights,
    predict,
    resolve_device,
    seed_everything,
)

FEATURES = 8
ECHO_SCALE = 0.01


def echo_values(size: int) -> torch.Tensor:
    return torch.arange(size, dtype=torch.float32) * ECHO_SCALE


class VectorData(Dataset):
    """Random feature vectors with a linear target; ``image[0]`` is ``index * ECHO_SCALE``."""

    def __init__(self, size: int, *, seed: int = 0, sign: float = 1.0, noise: bool = False):
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(size, FEATURES, generator=generator)
        self.x[:, 0] = echo_values(size)
        weights = torch.linspace(0.0, 1.0, FEATURES)
        weights[0] = 0.0
        self.y = sign * (self.x @ weights).unsqueeze(1)
        self.noise = noise

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict:
        x = self.x[index]
        if self.noise:  # draws from the global torch generator, which resuming must restore
            x = x + 0.01 * torch.randn(FEATURES)
        return {"image": x, "target": self.y[index], "name": f"item{index}"}


class ImageData(Dataset):
    """Tiny random RGB images with a scalar target."""

    def __init__(self, size: int, pixels: int = 16):
        generator = torch.Generator().manual_seed(1)
        self.images = torch.rand(size, 3, pixels, pixels, generator=generator)
        self.targets = self.images.mean(dim=(1, 2, 3)).unsqueeze(1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "target": self.targets[index]}


def mlp(dropout: float = 0.0) -> nn.Module:
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(16, 1))


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 1)
        self.channels_last_inputs: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.channels_last_inputs.append(x.is_contiguous(memory_format=torch.channels_last))
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(x.mean(dim=(2, 3)))


def mse(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    return nn.functional.mse_loss(outputs.float(), batch["target"])


def settings(**values: object) -> TrainSettings:
    base = {"epochs": 2, "batch_size": 8, "lr": 0.05, "device": "cpu", "seed": 3}
    base.update(values)
    return TrainSettings(**base)


def same_weights(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def read_history(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# --- settings and devices ------------------------------------------------------------------


def test_settings_from_config() -> None:
    config = {"epochs": 40, "milestones": [20, 30], "gamma": 0.01, "model": "ctgnn",
              "channels_last": False, "precision": "bf16"}
    result = TrainSettings.from_config(config)
    assert result.epochs == 40
    assert result.milestones == (20, 30)
    assert result.gamma == 0.01
    assert result.channels_last is False
    assert result.precision == "bf16"
    assert result.to_dict()["milestones"] == [20, 30]


@pytest.mark.parametrize(("values", "message"), [
    ({"epochs": 0}, r"invalid training setting epochs=0; expected an integer >= 1"),
    ({"batch_size": "32"}, r"batch_size='32'; expected an integer >= 1"),
    ({"lr": 0}, r"lr=0; expected a number > 0"),
    ({"lr": float("nan")}, r"lr=nan; expected a number > 0"),
    ({"momentum": -0.1}, r"momentum=-0\.1; expected a number >= 0"),
    ({"workers": True}, r"workers=True; expected an integer >= 0"),
    ({"milestones": [0]}, r"milestones=0; expected an integer >= 1"),
    ({"milestones": "30"}, r"milestones='30'; expected a list of epoch numbers"),
    ({"precision": "half"}, r"precision='half'; expected one of auto, bf16, fp16, fp32"),
    ({"channels_last": "yes"}, r"channels_last='yes'; expected auto, true or false"),
    ({"max_steps_per_epoch": 0}, r"max_steps_per_epoch=0; expected an integer >= 1"),
    ({"device": 0}, r"device=0; expected auto, cpu, cuda or cuda:N"),
    ({"deterministic": "no"}, r"deterministic='no'; expected true or false"),
])
def test_settings_rejected(values: dict, message: str) -> None:
    with pytest.raises(FieldHarnessError, match=message):
        TrainSettings.from_config(values)


def test_resolve_device_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_without_cuda() -> None:
    with pytest.raises(FieldHarnessError,
                       match=r"device 'cuda:1' requested but CUDA is not available on this "
                             r"machine; use --device cpu"):
        resolve_device("cuda:1")


def test_resolve_device_unknown() -> None:
    with pytest.raises(FieldHarnessError,
                       match=r"invalid device 'tpu'; expected auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")


def test_fp16_needs_cuda(tmp_path: Path) -> None:
    with pytest.raises(FieldHarnessError, match=r"precision 'fp16' needs a CUDA device"):
        fit(mlp(), VectorData(8), None, mse, settings(precision="fp16"), tmp_path,
            progress=False)


# --- fit -----------------------------------------------------------------------------------


def test_fit_loss_decreases(tmp_path: Path) -> None:
    seed_everything(0)
    result = fit(mlp(), VectorData(256), VectorData(32, seed=1), mse, settings(epochs=4, lr=0.02),
                 tmp_path, progress=False)
    assert isinstance(result, FitResult)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    assert result.files == [tmp_path / "checkpoints" / "last.pt",
                            tmp_path / "checkpoints" / "best.pt",
                            tmp_path / "history.csv", tmp_path / "loss.png"]
    assert all(path.is_file() for path in result.files)
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.pt", "last.pt"]


def test_history_csv(tmp_path: Path) -> None:
    result = fit(mlp(), VectorData(16), VectorData(8, seed=1), mse,
                 settings(epochs=2, milestones=[1], gamma=0.5), tmp_path, progress=False)
    rows = read_history(tmp_path / "history.csv")
    assert list(rows[0]) == ["epoch", "train_loss", "val_loss", "lr", "seconds"]
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert [float(row["lr"]) for row in rows] == [0.05, 0.025]
    assert float(rows[1]["val_loss"]) == pytest.approx(result.history[1]["val_loss"])


def test_checkpoint_contents(tmp_path: Path) -> None:
    model = mlp()
    fit(model, VectorData(16), VectorData(8, seed=1), mse, settings(epochs=1), tmp_path,
        progress=False)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["format"] == "fieldharness.training"
    assert checkpoint["format_version"] == 1
    assert checkpoint["epoch"] == 1
    assert checkpoint["best_epoch"] == 1
    assert checkpoint["best_val_loss"] == checkpoint["history"][0]["val_loss"]
    assert set(checkpoint["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert {"optimizer", "scheduler", "scaler"} <= set(checkpoint)
    assert same_weights(checkpoint["model"], model.state_dict())
    assert checkpoint_settings(tmp_path / "checkpoints" / "last.pt")["batch_size"] == 8


def test_best_follows_lowest_val_loss(tmp_path: Path) -> None:
    # The validation targets are the negated training targets, so the validation loss of a
    # zero-initialised linear model rises with every epoch of training.
    def linear() -> nn.Module:
        model = nn.Linear(FEATURES, 1)
        nn.init.zeros_(model.weight)
        nn.init.zeros_(model.bias)
        return model

    train, val = VectorData(32), VectorData(32, sign=-1.0)
    slow = {"lr": 0.02, "momentum": 0.0}
    result = fit(linear(), train, val, mse, settings(epochs=3, **slow), tmp_path / "run",
                 progress=False)
    val_losses = [row["val_loss"] for row in result.history]
    assert val_losses[0] < val_losses[1] < val_losses[2]
    assert result.best_epoch == 1
    assert result.best_val_loss == val_losses[0]

    best = torch.load(result.best_checkpoint, weights_only=True)
    last = torch.load(result.last_checkpoint, weights_only=True)
    assert best["epoch"] == 1
    assert last["epoch"] == 3
    assert not same_weights(best["model"], last["model"])

    one_epoch = linear()
    fit(one_epoch, train, val, mse, settings(epochs=1, **slow), tmp_path / "one",
        progress=False)
    assert same_weights(best["model"], one_epoch.state_dict())


def test_best_follows_highest_val_metric(tmp_path: Path) -> None:
    # As above the validation loss rises every epoch, but this metric (closeness to the negated
    # validation target, i.e. to the training target) rises too, so the last epoch is best.
    def closeness(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        return -((outputs.float() + batch["target"]) ** 2).squeeze(1)

    model = nn.Linear(FEATURES, 1)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    train, val = VectorData(32), VectorData(32, sign=-1.0)
    run = tmp_path / "run"
    result = fit(model, train, val, mse, settings(epochs=3, lr=0.02, momentum=0.0), run,
                 progress=False, val_metric=closeness)
    metrics = [row["val_metric"] for row in result.history]
    assert metrics[0] < metrics[1] < metrics[2]
    assert result.best_epoch == 3
    assert result.best_val_metric == metrics[2]
    assert result.best_val_loss == result.history[2]["val_loss"]
    assert torch.load(result.best_checkpoint, weights_only=True)["best_val_metric"] == metrics[2]
    written = read_history(run / "history.csv")
    assert [float(row["val_metric"]) for row in written] == pytest.approx(metrics)

    resumed = fit(model, train, val, mse, settings(epochs=4, lr=0.02, momentum=0.0), run,
                  resume="last", progress=False, val_metric=closeness)
    assert resumed.best_epoch == 4
    assert resumed.best_val_metric > metrics[2]


def test_val_metric_needs_one_score_per_sample(tmp_path: Path) -> None:
    def mean_only(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        return outputs.mean()

    with pytest.raises(FieldHarnessError, match=r"val_metric returned \(\) for a batch of 8; "
                                                r"expected one score per sample, shape \(8,\)"):
        fit(mlp(), VectorData(16), VectorData(8), mse, settings(epochs=1), tmp_path,
            progress=False, val_metric=mean_only)


def test_no_val_data_best_is_last(tmp_path: Path) -> None:
    result = fit(mlp(), VectorData(16), None, mse, settings(epochs=2), tmp_path, progress=False)
    assert result.best_epoch == 2
    assert result.best_val_loss is None
    best = torch.load(result.best_checkpoint, weights_only=True)
    assert best["epoch"] == 2
    assert [row["val_loss"] for row in read_history(tmp_path / "history.csv")] == ["", ""]


def test_resume_bitwise_identical(tmp_path: Path) -> None:
    train, val = VectorData(40, noise=True), VectorData(16, seed=1)
    run_settings = {"milestones": [2], "batch_size": 6}

    seed_everything(0)
    full = mlp(dropout=0.3)
    straight = fit(full, train, val, mse, settings(epochs=4, **run_settings), tmp_path / "a",
                   progress=False)

    seed_everything(0)
    first = mlp(dropout=0.3)
    fit(first, train, val, mse, settings(epochs=2, **run_settings), tmp_path / "b",
        progress=False)
    seed_everything(99)  # the resumed run must not depend on the state before it
    resumed_model = mlp(dropout=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = fit(resumed_model, train, val, mse, settings(epochs=4, **run_settings),
                      tmp_path / "b", resume="last", progress=False)

    assert same_weights(full.state_dict(), resumed_model.state_dict())
    assert [row["train_loss"] for row in resumed.history] == \
        [row["train_loss"] for row in straight.history]
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert len(read_history(tmp_path / "b" / "history.csv")) == 4


def test_resume_from_file_path(tmp_path: Path) -> None:
    fit(mlp(), VectorData(16), None, mse, settings(epochs=1), tmp_path / "a", progress=False)
    result = fit(mlp(), VectorData(16), None, mse, settings(epochs=2), tmp_path / "b",
                 resume=tmp_path / "a" / "checkpoints" / "last.pt", progress=False)
    assert [row["epoch"] for row in result.history] == [1, 2]


def test_resume_fewer_epochs_rejected(tmp_path: Path) -> None:
    fit(mlp(), VectorData(16), None, mse, settings(epochs=2), tmp_path, progress=False)
    with pytest.raises(FieldHarnessError,
                       match=r"has finished 2 epochs but epochs=1; set epochs >= 2"):
        fit(mlp(), VectorData(16), None, mse, settings(epochs=1), tmp_path, resume="last",
            progress=False)


def test_resume_changed_batch_size_warns(tmp_path: Path) -> None:
    fit(mlp(), VectorData(16), None, mse, settings(epochs=1), tmp_path, progress=False)
    with pytest.warns(UserWarning, match=r"differ from the checkpoint's \(batch_size 8 -> 4\)"):
        fit(mlp(), VectorData(16), None, mse, settings(epochs=2, batch_size=4), tmp_path,
            resume="last", progress=False)


def test_resume_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FieldHarnessError,
                       match=r"cannot resume: checkpoint '.*last\.pt' not found; run without "
                             r"--resume"):
        fit(mlp(), VectorData(16), None, mse, settings(), tmp_path, resume="last",
            progress=False)


def test_resume_foreign_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(mlp().state_dict(), path)
    with pytest.raises(DataFormatError,
                       match=r"weights\.pt: cannot resume from a checkpoint not written by"):
        fit(mlp(), VectorData(16), None, mse, settings(), tmp_path, resume=path,
            progress=False)


def test_resume_other_architecture(tmp_path: Path) -> None:
    fit(mlp(), VectorData(16), None, mse, settings(epochs=1), tmp_path, progress=False)
    other = nn.Sequential(nn.Linear(FEATURES, 4), nn.ReLU(), nn.Linear(4, 1))
    with pytest.raises(FieldHarnessError,
                       match=r"cannot resume from '.*last\.pt': the model or optimizer differs"):
        fit(other, VectorData(16), None, mse, settings(epochs=2), tmp_path, resume="last",
            progress=False)


def test_checkpoint_every_and_crash(tmp_path: Path) -> None:
    calls = []

    def failing_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        calls.append(1)
        if len(calls) > 4:  # 2 batches per epoch: fail in epoch 3
            raise RuntimeError("interrupted")
        return mse(outputs, batch)

    with pytest.raises(RuntimeError, match="interrupted"):
        fit(mlp(), VectorData(16), None, failing_loss,
            settings(epochs=4, checkpoint_every=2), tmp_path, progress=False)
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 2
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]


def test_workers_two(tmp_path: Path) -> None:
    result = fit(mlp(), VectorData(32, noise=True), VectorData(16, seed=1), mse,
                 settings(epochs=1, workers=2), tmp_path, progress=False)
    assert math.isfinite(result.history[0]["train_loss"])
    assert math.isfinite(result.history[0]["val_loss"])


def test_bf16_autocast_on_cpu(tmp_path: Path) -> None:
    dtypes = []

    def recording_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        dtypes.append(outputs.dtype)
        return mse(outputs, batch)

    result = fit(mlp(), VectorData(16), VectorData(8), recording_loss,
                 settings(epochs=1, precision="bf16"), tmp_path, progress=False)
    assert set(dtypes) == {torch.bfloat16}
    assert math.isfinite(result.history[0]["val_loss"])


def test_fp32_on_cpu_by_default(tmp_path: Path) -> None:
    dtypes = []

    def recording_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        dtypes.append(outputs.dtype)
        return mse(outputs, batch)

    fit(mlp(), VectorData(8), None, recording_loss, settings(epochs=1), tmp_path,
        progress=False)
    assert set(dtypes) == {torch.float32}


def test_channels_last_on_cpu(tmp_path: Path) -> None:
    model = ConvNet()
    fit(model, ImageData(8), ImageData(4), mse, settings(epochs=1, channels_last=True),
        tmp_path, progress=False)
    assert model.channels_last_inputs
    assert all(model.channels_last_inputs)
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_auto_off_on_cpu(tmp_path: Path) -> None:
    model = ConvNet()
    fit(model, ImageData(8), None, mse, settings(epochs=1), tmp_path, progress=False)
    assert not any(model.channels_last_inputs)


def test_max_steps_per_epoch(tmp_path: Path) -> None:
    model = mlp()
    modes = []

    def recording_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        modes.append("train" if model.training else "eval")
        return mse(outputs, batch)

    fit(model, VectorData(64), VectorData(40), recording_loss,
        settings(epochs=2, batch_size=4, max_steps_per_epoch=3), tmp_path, progress=False)
    assert modes == ["train"] * 3 + ["eval"] * 3 + ["train"] * 3 + ["eval"] * 3


def test_non_finite_loss(tmp_path: Path) -> None:
    calls = []

    def exploding_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        calls.append(1)
        loss = mse(outputs, batch)
        return loss * float("nan") if len(calls) == 2 else loss

    with pytest.raises(FieldHarnessError,
                       match=r"training loss is nan at epoch 1, step 2; check the inputs"):
        fit(mlp(), VectorData(32), None, exploding_loss, settings(), tmp_path, progress=False)


def test_loss_not_scalar(tmp_path: Path) -> None:
    def per_sample_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        return (outputs - batch["target"]) ** 2

    with pytest.raises(FieldHarnessError,
                       match=r"loss_fn returned \(8, 1\); expected a scalar tensor"):
        fit(mlp(), VectorData(16), None, per_sample_loss, settings(), tmp_path, progress=False)


def test_missing_input_key(tmp_path: Path) -> None:
    with pytest.raises(FieldHarnessError,
                       match=r"a batch has no key 'pixels'; its keys are image, target, name"):
        fit(mlp(), VectorData(16), None, mse, settings(), tmp_path, input_key="pixels",
            progress=False)


def test_tuple_items_rejected(tmp_path: Path) -> None:
    data = torch.utils.data.TensorDataset(torch.randn(8, FEATURES), torch.randn(8, 1))
    with pytest.raises(FieldHarnessError, match=r"a batch is a list; expected a dict"):
        fit(mlp(), data, None, mse, settings(), tmp_path, progress=False)


def test_custom_optimizer_and_scheduler(tmp_path: Path) -> None:
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    result = fit(model, VectorData(16), None, mse, settings(epochs=2), tmp_path,
                 optimizer=optimizer, scheduler=scheduler, progress=False)
    assert [row["lr"] for row in result.history] == [0.01, 0.005]


def test_epoch_logging(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="harness.training"):
        fit(mlp(), VectorData(16), VectorData(8), mse, settings(epochs=1), tmp_path,
            progress=False)
    assert "epoch 1/1 started (lr 0.05)" in caplog.text
    assert "epoch 1/1 finished: training loss" in caplog.text
    assert "validation loss" in caplog.text


# --- predict -------------------------------------------------------------------------------


class TwoHeads(nn.Module):
    """Returns ``{"out": {"score": ...}, "pre": {"score": ...}, "echo": image[:, 0]}``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x: torch.Tensor) -> dict:
        score = self.net(x)
        return {"out": {"score": score}, "pre": {"score": 2 * score}, "echo": x[:, 0]}


def test_predict_dataset_order(tmp_path: Path) -> None:
    model = TwoHeads()
    fit(model, VectorData(24), None, lambda out, batch: mse(out["out"]["score"], batch),
        settings(epochs=1), tmp_path, progress=False)
    assert model.training

    outputs = predict(model, VectorData(20), settings(batch_size=6), progress=False)
    assert sorted(outputs) == ["echo", "out.score", "pre.score"]
    np.testing.assert_array_equal(outputs["echo"], echo_values(20).numpy())
    assert outputs["out.score"].shape == (20, 1)
    assert outputs["out.score"].dtype == np.float32
    np.testing.assert_allclose(outputs["pre.score"], 2 * outputs["out.score"], rtol=1e-6)
    assert model.training


def test_predict_output_fn(tmp_path: Path) -> None:
    model = TwoHeads()
    scores = predict(model, VectorData(10), settings(batch_size=4),
                     output_fn=lambda out: torch.sigmoid(out["out"]["score"]), progress=False)
    assert isinstance(scores, np.ndarray)
    assert scores.shape == (10, 1)
    assert ((scores > 0) & (scores < 1)).all()

    picked = predict(model, VectorData(10), settings(batch_size=4),
                     output_fn=lambda out: {"echo": out["echo"]}, progress=False)
    np.testing.assert_array_equal(picked["echo"], echo_values(10).numpy())


def test_predict_bf16_returns_float32() -> None:
    outputs = predict(mlp(), VectorData(6), settings(precision="bf16"), progress=False)
    assert outputs.dtype == np.float32
    assert outputs.shape == (6, 1)


def test_predict_bad_outputs() -> None:
    with pytest.raises(FieldHarnessError,
                       match=r"model outputs \(after output_fn\) are a tuple; expected a tensor"):
        predict(mlp(), VectorData(6), settings(), output_fn=lambda out: (out, out),
                progress=False)
    with pytest.raises(FieldHarnessError,
                       match=r"output 'output' has shape \(\) for a batch of 6; expected "
                             r"per-sample values"):
        predict(mlp(), VectorData(6), settings(), output_fn=lambda out: out.sum(),
                progress=False)


def test_predict_empty_dataset() -> None:
    with pytest.raises(FieldHarnessError, match=r"cannot predict on an empty dataset"):
        predict(mlp(), VectorData(0), settings(), progress=False)


# --- load_weights --------------------------------------------------------------------------


def test_load_fit_checkpoint(tmp_path: Path) -> None:
    trained = mlp()
    result = fit(trained, VectorData(16), None, mse, settings(epochs=1), tmp_path,
                 progress=False)
    fresh = mlp()
    load_weights(fresh, result.last_checkpoint)
    assert same_weights(fresh.state_dict(), trained.state_dict())


@pytest.mark.parametrize("layout", ["bare", "state_dict", "model", "module_prefix"])
def test_load_state_dict_layouts(tmp_path: Path, layout: str) -> None:
    source = mlp()
    state = source.state_dict()
    content = {
        "bare": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "model": {"model": state, "optimizer": {}},
        "module_prefix": {f"module.{key}": value for key, value in state.items()},
    }[layout]
    path = tmp_path / "weights.pt"
    torch.save(content, path)
    target = mlp()
    load_weights(target, path)
    assert same_weights(target.state_dict(), state)


def test_load_lightning_prefix(tmp_path: Path) -> None:
    state = mlp().state_dict()
    content = {"state_dict": {**{f"model.{k}": v for k, v in state.items()},
                              "criterion.pos_weight": torch.ones(17)}}
    path = tmp_path / "lightning.ckpt"
    torch.save(content, path)
    target = mlp()
    load_weights(target, path, prefix="model.")
    assert same_weights(target.state_dict(), state)

    with pytest.raises(FieldHarnessError, match=r"lightning\.ckpt' does not match the model"):
        load_weights(mlp(), path)


def test_load_with_python_objects(tmp_path: Path) -> None:
    state = mlp().state_dict()
    path = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": argparse.Namespace(lr=0.1)}, path)
    target = mlp()
    with pytest.warns(UserWarning, match=r"loaded with weights_only=False"):
        load_weights(target, path)
    assert same_weights(target.state_dict(), state)

    with pytest.raises(FieldHarnessError,
                       match=r"lightning\.ckpt' contains Python objects other than tensors"):
        load_weights(mlp(), path, weights_only=True)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FieldHarnessError, match=r"checkpoint '.*nothing\.pt' not found"):
        load_weights(mlp(), tmp_path / "nothing.pt")


@pytest.mark.parametrize("content", [b"hello world\n", b"", b"PK\x03\x04broken zip"])
def test_load_not_a_checkpoint(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.pt"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=r"notes\.pt: not a PyTorch checkpoint"):
        load_weights(mlp(), path)


def test_load_without_weights(tmp_path: Path) -> None:
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 3, "note": "no weights"}, path)
    with pytest.raises(DataFormatError,
                       match=r"meta\.pt: the checkpoint has no model weights; its keys are "
                             r"epoch, note"):
        load_weights(mlp(), path)


def test_load_key_mismatch(tmp_path: Path) -> None:
    state = mlp().state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["3.bias"]
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    with pytest.raises(FieldHarnessError,
                       match=r"weights\.pt' does not match the model: 1 missing keys \(first: "
                             r"3\.bias\) and 1 unexpected keys \(first: extra\.weight\)"):
        load_weights(mlp(), path)


def test_load_not_strict(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = mlp().state_dict()
    del state["3.bias"]
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    target = mlp()
    with caplog.at_level(logging.WARNING, logger="harness.training"):
        load_weights(target, path, strict=False)
    assert torch.equal(target.state_dict()["3.weight"], state["3.weight"])
    assert "1 missing and 0 unexpected keys" in caplog.text


def test_load_shape_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "wide.pt"
    wide = nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), nn.Dropout(0.0), nn.Linear(32, 1))
    torch.save(wide.state_dict(), path)
    with pytest.raises(FieldHarnessError,
                       match=r"wide\.pt' does not match the model: .* size mismatch for 0\.weight"):
        load_weights(mlp(), path)


def test_load_prefix_not_found(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(mlp().state_dict(), path)
    with pytest.raises(FieldHarnessError,
                       match=r"no key of checkpoint '.*weights\.pt' starts with prefix 'model\.'; "
                             r"its first keys are 0\.weight"):
        load_weights(mlp(), path, prefix="model.")


def test_checkpoint_settings_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(mlp().state_dict(), path)
    with pytest.raises(DataFormatError,
                       match=r"weights\.pt: not a checkpoint written by harness\.training\.fit"):
        checkpoint_settings(path)


# --- distributed ---------------------------------------------------------------------------

DDP_SCRIPT = textwrap.dedent(
    """
    import json
    import os
    import sys
    from pathlib import Path

    import torch
    from torch import nn

    from harness import training

    replaced = []
    real_replace = os.replace

    def counting_replace(source, target):
        replaced.append(str(target))
        return real_replace(source, target)

    os.replace = counting_replace

    class Data(torch.utils.data.Dataset):
        def __init__(self, size, seed):
            generator = torch.Generator().manual_seed(seed)
            self.x = torch.randn(size, 4, generator=generator)
            self.y = self.x.sum(dim=1, keepdim=True)

        def __len__(self):
            return len(self.x)

        def __getitem__(self, index):
            return {"image": self.x[index], "target": self.y[index]}

    def loss_fn(outputs, batch):
        return nn.functional.mse_loss(outputs, batch["target"])

    out = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    settings = training.TrainSettings(epochs=2, batch_size=4, lr=0.05, device="cpu")
    torch.manual_seed(rank)  # DDP must broadcast rank 0's initial weights
    model = nn.Linear(4, 1)
    val = Data(15, seed=1)
    result = training.fit(model, Data(20, seed=0), val, loss_fn, settings, out / "run",
                          progress=False)
    with torch.no_grad():
        full_val_loss = float(loss_fn(model(val.x), {"target": val.y}))

    # fit destroyed the process group it created, so predict runs without a barrier.
    group_left = torch.distributed.is_initialized()
    predictions = training.predict(model, val, settings, progress=False)

    # A second fit in the same processes (fine-tuning after pretraining) creates a new group.
    second = training.fit(nn.Linear(4, 1), Data(12, seed=2), None, loss_fn, settings,
                          out / "second", progress=False)

    record = {
        "val_losses": [row["val_loss"] for row in result.history],
        "full_val_loss": full_val_loss,
        "replaced": replaced,
        "weights": model.weight.flatten().tolist(),
        "group_left": group_left,
        "predictions": None if predictions is None else predictions.tolist(),
        "second_epochs": [row["epoch"] for row in second.history],
    }
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    """
)


@pytest.mark.slow
def test_ddp_two_processes(tmp_path: Path) -> None:
    script = tmp_path / "ddp_fit.py"
    script.write_text(DDP_SCRIPT)
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", str(script), str(tmp_path)]
    completed = run_process_group(command, env=env, timeout=120)
    assert completed.returncode == 0, completed.stderr[-4000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["group_left"] is False
    assert ranks[0]["second_epochs"] == ranks[1]["second_epochs"] == [1, 2]
    assert ranks[0]["val_losses"] == ranks[1]["val_losses"]
    assert ranks[0]["weights"] == ranks[1]["weights"]
    # The shards hold each validation sample once, so the all-reduced loss is the full mean.
    assert ranks[0]["val_losses"][-1] == pytest.approx(ranks[0]["full_val_loss"], rel=1e-5)

    run = tmp_path / "run"
    written = {Path(target).relative_to(run).as_posix() for target in ranks[0]["replaced"]
               if Path(target).is_relative_to(run)}
    assert written == {"checkpoints/last.pt", "checkpoints/best.pt", "history.csv", "loss.png"}
    assert ranks[1]["replaced"] == []
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert len(read_history(run / "history.csv")) == 2

    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert set(checkpoint["model"]) == {"weight", "bias"}
    assert checkpoint["world_size"] == 2

    assert ranks[1]["predictions"] is None
    assert len(ranks[0]["predictions"]) == 15


def test_fit_moves_loss_module(tmp_path):
    calls = []

    class RecordingLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("weight", torch.ones(1))

        def to(self, *args, **kwargs):
            calls.append(args)
            return super().to(*args, **kwargs)

        def forward(self, outputs, batch):
            return ((outputs - batch["target"]) ** 2 * self.weight).mean()

    settings = TrainSettings(epochs=1, batch_size=4, device="cpu")
    fit(mlp(), VectorData(8), None, RecordingLoss(), settings, tmp_path, progress=False)

    assert calls == [(torch.device("cpu"),)]


def test_load_weights_skips_classifier(tmp_path):
    source = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, 1000))
    path = tmp_path / "pretrained.pt"
    torch.save(source.state_dict(), path)
    target = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, 3))
    head_before = target[2].weight.clone()

    load_weights(target, path, skip=("2.",))

    assert torch.equal(target[0].weight, source[0].weight)
    assert torch.equal(target[2].weight, head_before)
