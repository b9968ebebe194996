"""The VIRADA 3D CNN rain detector: ``python -m harness run virada c3d``.

It trains C3D with the fully convolutional head (:mod:`virada.c3d`) from scratch on 16-frame
clips of the ``train`` videos, with random 112 x 112 crops and flips. It keeps the epoch with the
highest clip accuracy on the ``val`` videos and classifies every clip of the ``test`` videos on
full frames. The default config (``virada/configs/c3d.toml``) has the settings of the authors'
``3DCNN/run_network.sh`` (github.com/chrisbahnsen/aau-virada): SGD with learning rate 0.01,
momentum 0.9 and weight decay 1e-4, the rate times 0.1 every 5 epochs, 90 epochs, batch 128,
validation and test batch 4.

The run folder receives ``test_predictions.csv`` in the authors' test output format
(``pred;logsoftmax;filename;frameStart``, one row per clip, which their
``Analysis/evaluate3DCNN.py`` reads), ``test_clips.csv`` with the labels and minutes, the
per-clip and per-minute scores of :func:`virada.metrics.evaluate_detections` in
``metrics.json`` and ``per_minute_sweep.csv``, and plots.

This module imports nothing heavy at import time: the CLI builds its parser from it on machines
without torch.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness import atomic
from harness.config import (
    add_training_arguments,
    load_preset_config,
    positive_int,
    recorded_config,
    require_torch,
)
from harness.errors import FieldHarnessError, UnknownNameError
from harness.plugin import Baseline, EvalOutcome, RunContext

__all__ = ["EVAL_MODES", "PRESETS", "C3DBaseline", "write_test_predictions"]

logger = logging.getLogger(__name__)

DATASET = "virada"

PRESETS = {"paper": "c3d.toml", "c3d": "c3d.toml", "sample": "c3d-sample.toml",
           "c3d-sample": "c3d-sample.toml"}
"""Config presets: ``paper`` (alias ``c3d``) is the default, ``sample`` (alias ``c3d-sample``)
the short run used on generated sample data."""

EVAL_MODES = ("fcn", "center_crop")
"""Input modes of validation and test clips: full frames, or the 112 x 112 centre."""

PREDICTION_HEADER = ("pred", "logsoftmax", "filename", "frameStart")
"""Header of the test output; ``Analysis/evaluate3DCNN.py`` reads these column names."""

RUNTIME_KEYS = ("device", "workers")
"""Config keys that choose hardware, not the method: left out of the run record."""


def _resolve_config(args: argparse.Namespace, data_kind: str) -> dict[str, Any]:
    """Return the published config, or the sample preset on sample data, with the user's
    changes from ``--config``, ``--set``, ``--device``, ``--workers`` and ``--epochs``."""
    config = load_preset_config("virada", PRESETS, args.config, args.overrides,
                                data_kind=data_kind, run_name="VIRADA c3d")
    for key in ("device", "workers", "epochs"):
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    config.setdefault("device", "auto")
    for key in ("val_mode", "test_mode"):
        if config[key] not in EVAL_MODES:
            raise UnknownNameError(key, config[key], EVAL_MODES)
    for key in ("eval_batch_size", "clip_stride", "crop_size", "epochs", "batch_size",
                "step_size"):
        if int(config[key]) < 1:
            raise FieldHarnessError(f"invalid config value {key}={config[key]!r}; expected an "
                                    "integer >= 1")
    if not 0 < float(config["width"]) <= 1:
        raise FieldHarnessError(f"invalid config value width={config['width']!r}; expected a "
                                "number in (0, 1], where 1 is the published network")
    if not 0 <= float(config["dropout"]) < 1:
        raise FieldHarnessError(f"invalid config value dropout={config['dropout']!r}; expected "
                                "a number in [0, 1)")
    if int(config["clip_length"]) not in range(16, 32):
        # The pooling reduces 16 to 31 frames to the one time step that the 2-D head takes.
        raise FieldHarnessError(f"invalid config value clip_length={config['clip_length']!r}; "
                                "expected 16 to 31 frames (the authors use 16)")
    if int(config["clip_length"]) != 16:
        logger.warning("clip_length=%s differs from the authors' 16 frames", config["clip_length"])
    return config


def _train_settings(config: Mapping[str, Any], seed: int):
    from harness.training import TrainSettings

    values = {key: value for key, value in config.items() if not isinstance(value, dict)}
    values["seed"] = seed
    # channels_last is a 4-D memory format and the network's convolutions are 3-D.
    values["channels_last"] = False
    values["milestones"] = ()
    steps = int(values.pop("max_steps_per_epoch", 0))
    values["max_steps_per_epoch"] = steps if steps > 0 else None
    return TrainSettings.from_config(values)


def _nll_loss():
    """Return the negative log-likelihood of the log-softmax outputs as ``loss_fn`` for fit."""
    import torch

    class ClipLoss(torch.nn.Module):
        def forward(self, outputs, batch):
            return torch.nn.functional.nll_loss(outputs.float(), batch["target"])

    return ClipLoss()


def _clip_correct(outputs: Any, batch: Mapping[str, Any]) -> Any:
    """Return 1.0 per clip whose most probable class is its label (fit's ``val_metric``)."""
    return (outputs.argmax(dim=1) == batch["target"]).float()


def _recorded_config(config: Mapping[str, Any], args: argparse.Namespace,
                     ctx: RunContext) -> dict[str, Any]:
    """Return the run's configuration: the settings, the weights and where the labels came from.

    Labels made from the rain gauges (``prepare --gauges``) and the shipped label JSON are
    different ground truths, so they are different configurations on the leaderboard.
    """
    from harness.loading import load_dataset

    recorded = recorded_config(config, RUNTIME_KEYS, args.weights)
    splits = load_dataset(DATASET, split=None, format="polars", columns=["label_source"],
                          version=args.dataset_version, data_dir=ctx.data_dir)
    sources = {source for frame in splits.values() for source in frame["label_source"]}
    recorded["label_source"] = ",".join(sorted(sources))
    return recorded


def write_test_predictions(path: Path, predicted: np.ndarray, log_probabilities: np.ndarray,
                           file_names: list[str], starts: np.ndarray) -> Path:
    """Write the per-clip test output in the authors' format, atomically.

    One row per clip: the predicted class, the log-softmax of that class, the video file name
    and the clip's first frame, separated by semicolons, under the header
    ``pred;logsoftmax;filename;frameStart``.
    """
    lines = [";".join(PREDICTION_HEADER)]
    for pred, scores, name, start in zip(predicted, log_probabilities, file_names, starts,
                                         strict=True):
        lines.append(f"{int(pred)};{float(scores[int(pred)]):.6f};{name};{int(start)}")
    atomic.write_text(path, "\n".join(lines) + "\n")
    return path


class C3DBaseline(Baseline):
    """The 3D CNN rain detector of VIRADA (C3D with a fully convolutional head).

    Haurum, Bahnsen and Moeslund, "Is it Raining Outside? Detection of Rainfall using
    General-Purpose Surveillance Cameras", CVPR Workshops 2019.
    """

    dataset: ClassVar[str] = DATASET
    name: ClassVar[str] = "c3d"
    description: ClassVar[str] = (
        "VIRADA 3D CNN (CVPRW 2019): C3D with a fully convolutional head trained from scratch "
        "on 16-frame clips, tested on full frames, scored per clip and per minute")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the training options and ``--epochs`` and ``--version``."""
        add_training_arguments(parser, presets=tuple(PRESETS))
        parser.add_argument("--version", default=None, dest="dataset_version", metavar="VERSION",
                            help="prepared VIRADA version (default: the dataset's default)")
        parser.add_argument("--epochs", type=positive_int, default=None, metavar="N",
                            help="training epochs (default: the config's, 90 for the paper)")

    def run(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome | None:
        """Train C3D, classify the test clips and score them per clip and per minute.

        Raises:
            MissingDependencyError: PyTorch or PyAV is not installed.
            NotPreparedError: VIRADA is not prepared.
            FieldHarnessError: No training or test clips, an invalid config value or
                ``--weights`` that do not match the network.
        """
        require_torch("training the VIRADA 3D CNN", "torch", "av")
        from harness.storage import read_manifest

        manifest = read_manifest(DATASET, version=args.dataset_version, data_dir=ctx.data_dir)
        config = _resolve_config(args, manifest.data_kind)

        from harness.training import fit, is_main_process, load_weights, seed_everything
        from virada.c3d import C3D

        data = _datasets(config, args, ctx)
        logger.info("VIRADA c3d: %d training clips, %s validation clips, %d test clips",
                    len(data["train"]), "no" if data["val"] is None else len(data["val"]),
                    len(data["test"]))

        seed_everything(ctx.seed)  # the initial weights come from the seed
        model = C3D(num_classes=2, width=float(config["width"]),
                    dropout=float(config["dropout"]),
                    eval_batch_size=int(config["eval_batch_size"]))
        if args.weights is not None:
            try:
                load_weights(model, args.weights)
            except FieldHarnessError as error:
                raise FieldHarnessError(
                    f"--weights {args.weights} do not fit a C3D of width {config['width']:g}; "
                    "pass --set width=W with the width they were trained with "
                    f"({str(error)[:300]} ...)") from None

        settings = _train_settings(config, ctx.seed)
        optimizer, scheduler = _optimizer(model, config)
        # best.pt is the epoch with the highest validation clip accuracy, as in the authors'
        # main.py, not the one with the lowest validation loss.
        result = fit(model, data["train"], data["val"], _nll_loss(), settings, ctx.output_dir,
                     resume=args.resume, input_key="clip", optimizer=optimizer,
                     scheduler=scheduler, val_metric=_clip_correct)
        if not is_main_process():
            return None
        load_weights(model, result.best_checkpoint)

        files: list[Path] = list(result.files)
        scored, test_files = _test(model, data["test"], settings, config, ctx.output_dir)
        files += test_files
        files.append(_write_metrics(ctx.output_dir, scored, result))
        return EvalOutcome(dataset=DATASET, method=self.name, metrics=_headline(scored),
                           version=manifest.version, split="test",
                           per_item=scored["per_video"], data_kind=manifest.data_kind,
                           files=files, config=_recorded_config(config, args, ctx))


# --- steps -------------------------------------------------------------------------------------


def _datasets(config: Mapping[str, Any], args: argparse.Namespace,
              ctx: RunContext) -> dict[str, Any]:
    """Open the training clips with augmentation and the validation and test clips without.

    A prepared copy without a ``val`` split trains without validation, and the last epoch's
    weights are tested.
    """
    from harness.loading import load_dataset
    from virada.torchdata import VIDEO_COLUMNS, ViradaClips

    frames = load_dataset(DATASET, split=None, format="polars", columns=list(VIDEO_COLUMNS),
                          version=args.dataset_version, data_dir=ctx.data_dir)
    common = {"length": int(config["clip_length"]), "stride": int(config["clip_stride"]),
              "crop_size": int(config["crop_size"])}
    opened: dict[str, Any] = {}
    for split, mode in (("train", "train"), ("val", config["val_mode"]),
                        ("test", config["test_mode"])):
        frame = frames.get(split)
        if frame is None or frame.height == 0:
            opened[split] = None
            continue
        opened[split] = ViradaClips.from_frame(
            frame, mode=mode, random_flip=bool(config["random_flip"]),
            trim_width=int(config["trim_width"]), **common)

    for split in ("train", "test"):
        if opened[split] is None or len(opened[split]) == 0:
            raise FieldHarnessError(
                f"the prepared VIRADA copy has no {split} clips (prepared splits: "
                f"{', '.join(sorted(frames)) or 'none'}); the 3D CNN needs videos of at least "
                f"{config['clip_length']} frames in the {split} split, so prepare a copy with "
                f"a {'tst/' if split == 'test' else 'train/'} folder")
    if opened["val"] is None or len(opened["val"]) == 0:
        logger.warning("the prepared VIRADA copy has no val clips, so training runs without "
                       "validation and the last epoch's weights are tested")
        opened["val"] = None
    _check_input_sizes(opened, config)
    return opened


def _check_input_sizes(opened: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Check that the network takes the validation and test clips, and that the validation
    clips can share batches (the training runner batches them like training clips)."""
    from virada.c3d import MIN_FRAME_SIZE

    for split in ("val", "test"):
        data = opened[split]
        if data is None:
            continue
        sizes = data.clips_by_input_size()
        small = [size for size in sizes if min(size) < MIN_FRAME_SIZE]
        if small:
            raise FieldHarnessError(
                f"the {split} clips of {small[0][0]} x {small[0][1]} pixels (height x width) are "
                f"smaller than the {MIN_FRAME_SIZE} x {MIN_FRAME_SIZE} pixels that the network "
                "needs; use videos with larger frames")
        if split == "val" and len(sizes) > 1:
            listed = ", ".join(f"{height} x {width}" for height, width in sorted(sizes))
            raise FieldHarnessError(
                f"the val videos have frames of several sizes ({listed}), so full-frame val "
                f"clips cannot share a batch; pass --set val_mode=center_crop, or prepare one "
                f"crossing and side at a time (val_mode is {config['val_mode']!r})")


def _optimizer(model, config: Mapping[str, Any]):
    """Return SGD and StepLR with the config's settings (stepped once per epoch by fit)."""
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=float(config["lr"]),
                                momentum=float(config["momentum"]),
                                weight_decay=float(config["weight_decay"]),
                                nesterov=bool(config["nesterov"]))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(config["step_size"]),
                                                gamma=float(config["gamma"]))
    return optimizer, scheduler


def _test(model, data, settings, config: Mapping[str, Any],
          output_dir: Path) -> tuple[dict[str, Any], list[Path]]:
    """Classify every test clip, write the outputs and score them per clip and per minute."""
    import dataclasses

    import polars as pl
    import torch

    from harness.training import predict
    from virada.metrics import evaluate_detections, plot_curves

    # The authors test with batch 4; a batch of full frames is much larger than a crop batch.
    test_settings = dataclasses.replace(settings, batch_size=int(config["eval_batch_size"]))
    log_probabilities = np.zeros((len(data), 2), dtype=np.float32)
    for size, indices in data.clips_by_input_size().items():
        logger.info("classifying %d test clips of %d x %d pixels", indices.size, *size)
        subset = torch.utils.data.Subset(data, indices.tolist())
        log_probabilities[indices] = predict(model, subset, test_settings, input_key="clip")
    predicted = np.argmax(log_probabilities, axis=1)
    rows = data.clip_rows()

    files = [write_test_predictions(output_dir / "test_predictions.csv", predicted,
                                    log_probabilities, rows["file_name"], rows["start"])]
    clips = pl.DataFrame({
        "file_name": rows["file_name"], "start": rows["start"], "minute": rows["minute"],
        "minute_id": rows["minute_id"], "label": rows["label"], "pred": predicted,
        "logsoftmax_norain": log_probabilities[:, 0],
        "logsoftmax_rain": log_probabilities[:, 1],
    })
    clips_path = output_dir / "test_clips.csv"
    with atomic.atomic_path(clips_path) as tmp:
        clips.write_csv(tmp, float_precision=6)
    files.append(clips_path)

    scores = evaluate_detections(predicted.astype(np.float64), rows["label"], rows["minute_id"],
                                 data.table.minute_labels)
    sweep_path = output_dir / "per_minute_sweep.csv"
    with atomic.atomic_path(sweep_path) as tmp:
        scores["per_minute_sweep"].write_csv(tmp)
    files.append(sweep_path)
    files.append(plot_curves(scores["per_minute_sweep"], output_dir / "per_minute_curves.png",
                             title="VIRADA c3d, test, per minute"))
    files.append(_plot_timeline(clips, output_dir / "test_timeline.png"))

    scores["per_video"] = _per_video(clips)
    return scores, files


def _per_video(clips) -> dict[str, dict[str, float]]:
    """Return the clip count, rainy-clip share and clip accuracy of every test video."""
    import polars as pl

    summary = clips.group_by("file_name", maintain_order=True).agg(
        pl.len().alias("clips"),
        pl.col("label").mean().alias("rain_share"),
        (pl.col("pred") == pl.col("label")).mean().alias("clip_accuracy"),
        pl.col("pred").mean().alias("detected_share"),
    )
    return {row["file_name"]: {key: float(value) for key, value in row.items()
                               if key != "file_name"}
            for row in summary.iter_rows(named=True)}


def _plot_timeline(clips, path: Path) -> Path:
    """Plot the rain score and the label of every test clip, the videos one after another.

    The score is exp of the rain log-softmax. On full frames the network averages the
    log-softmax over positions, so the two classes' scores need not sum to 1.
    """
    from harness.plotting import new_figure, save_png

    figure = new_figure(12, 3.5)
    axes = figure.subplots()
    positions = np.arange(clips.height)
    axes.step(positions, clips["label"].to_numpy(), where="post", label="label of the minute")
    axes.plot(positions, np.exp(clips["logsoftmax_rain"].to_numpy()), ".", markersize=3,
              label="exp(log-softmax of rain)")
    names = clips["file_name"].to_numpy()
    boundaries = np.flatnonzero(names[1:] != names[:-1]) + 0.5
    for boundary in boundaries:
        axes.axvline(boundary, color="grey", linewidth=0.5)
    axes.set(xlabel=f"test clip (grey lines separate the {len(boundaries) + 1} videos)",
             ylabel="rain", ylim=(-0.05, 1.05), title="VIRADA c3d, test clips")
    axes.legend(loc="upper right", fontsize="small")
    return save_png(figure, path)


def _write_metrics(output_dir: Path, scored: Mapping[str, Any], result) -> Path:
    """Write ``metrics.json``: per-clip and per-minute numbers and the selected epoch."""
    summary = {
        "per_clip": scored["per_frame"],
        "per_minute": scored["per_minute"],
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "best_val_accuracy": result.best_val_metric,
        "minutes": int(len(scored["minute_ids"])),
    }
    path = output_dir / "metrics.json"
    atomic.write_json(path, summary)
    return path


def _headline(scored: Mapping[str, Any]) -> dict[str, float]:
    """Return the run record's metrics: per clip (``frame_``, the official name) and per minute.

    The authors' scripts call the per-clip numbers "per frame": each clip stands for its first
    frame.
    """
    metrics: dict[str, float] = {}
    for key in ("accuracy", "f1_rain", "f1_norain", "mcc", "precision", "recall"):
        metrics[f"frame_{key}"] = float(scored["per_frame"][key])
    for key in ("accuracy", "f1_rain", "f1_norain", "mcc", "precision", "recall"):
        metrics[f"minute_{key}"] = float(scored["per_minute"][key])
    # Lower case, as the Bossu run records them, so the leaderboard compares the two methods.
    metrics["minute_auroc"] = float(scored["per_minute"]["AUROC"])
    metrics["minute_aupr"] = float(scored["per_minute"]["AUPR"])
    return metrics
