"""The Sewer-ML paper baselines: ``python -m harness run sewerml ctgnn`` and ``... benchmark``.

Both train through the shared runner in :mod:`harness.training` with the published settings as
their default config (``sewerml/configs/*.toml``), write the prediction CSVs of each split in the
official format, score the validation split with the official metrics, and plot the results.
The test split's labels are withheld, so its predictions are only written, ready to send to the
dataset authors.

This module imports nothing heavy at import time: the CLI builds its parser from it on machines
without torch, and torch is needed only when a baseline runs.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from harness import atomic
from harness.config import (
    add_training_arguments,
    load_preset_config,
    recorded_config,
    require_torch,
)
from harness.errors import FieldHarnessError, UnknownNameError
from harness.plugin import Baseline, EvalOutcome, RunContext
from sewerml.classes import DEFECT_CODES
from sewerml.plugin import TASK_PREFIX
from sewerml.spec import SPLIT_FILES

__all__ = ["BenchmarkBaseline", "CTGNNBaseline", "PRESETS"]

logger = logging.getLogger(__name__)

PRESETS: dict[str, dict[str, str]] = {
    "ctgnn": {"paper": "ctgnn.toml", "sample": "ctgnn-sample.toml"},
    "benchmark": {"paper": "benchmark.toml", "sample": "benchmark-sample.toml"},
}
"""Config presets per baseline: ``paper`` is the default, ``sample`` the short schedule used on
generated sample data."""

METRICS_FILE = "metrics.json"
STAGES = ("both", "binary", "multilabel")


def _manifest(args: argparse.Namespace, ctx: RunContext):
    from harness.storage import read_manifest

    return read_manifest("sewerml", version=args.dataset_version, data_dir=ctx.data_dir)


def _resolve_config(method: str, args: argparse.Namespace, data_kind: str) -> dict[str, Any]:
    """Return the paper config, or the sample preset on sample data, with the user's changes."""
    config = load_preset_config("sewerml", PRESETS[method], args.config, args.overrides,
                                data_kind=data_kind, run_name=f"Sewer-ML {method}")
    for key in ("device", "workers"):
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    config.setdefault("device", "auto")
    return config


def _stage_settings(config: Mapping[str, Any], section: str | None, seed: int):
    """Build the runner settings of one training stage from the shared and the stage's keys."""
    from harness.training import TrainSettings

    merged = {key: value for key, value in config.items() if not isinstance(value, dict)}
    if section is not None:
        merged.update(config[section])
    merged["seed"] = seed
    return TrainSettings.from_config(merged)


def _check_splits(splits: Sequence[str]) -> list[str]:
    for split in splits:
        if split not in SPLIT_FILES:
            raise UnknownNameError("split in predict_splits", split, tuple(SPLIT_FILES))
    return list(splits)


def _percent(value: float) -> float:
    return round(float(value) * 100.0, 10)


def _write_defect_csv(path: Path, filenames: Sequence[str], scores: np.ndarray) -> Path:
    """Write ``Filename`` and the 17 class probabilities, the format ``eval sewerml`` reads."""
    frame = pl.DataFrame({"Filename": list(filenames)}).with_columns(
        [pl.Series(code, scores[:, k].astype(np.float64)) for k, code in enumerate(DEFECT_CODES)]
    )
    with atomic.atomic_path(path) as tmp:
        frame.write_csv(tmp, float_precision=8)
    return path


def _write_task_csv(path: Path, filenames: Sequence[str], scores: np.ndarray,
                    class_names: Sequence[str]) -> Path:
    """Write ``Filename`` and one probability column per class of a multi-class task."""
    frame = pl.DataFrame({"Filename": list(filenames)}).with_columns(
        [pl.Series(name, scores[:, k].astype(np.float64)) for k, name in enumerate(class_names)]
    )
    with atomic.atomic_path(path) as tmp:
        frame.write_csv(tmp, float_precision=8)
    return path


def _score_defects(targets: np.ndarray, scores: np.ndarray, threshold: float,
                   output_dir: Path, title: str) -> tuple[dict[str, float], dict[str, Any], Path]:
    """Score 17-class probabilities with the official metrics and plot the per-class F2."""
    from sewerml.metrics import COUNT_METRICS, SCORE_METRICS, evaluate
    from sewerml.plots import plot_per_class_f2

    results = evaluate(targets, scores, threshold=threshold)
    metrics = {name: _percent(results[name]) for name in (*COUNT_METRICS, *SCORE_METRICS)}
    plot = plot_per_class_f2(results, output_dir / "per_class_f2.png", title=title)
    return metrics, results, plot


def _initialise(model, path: Path, backbones: Sequence[tuple[Any, tuple[str, ...], str]]) -> None:
    """Load ``--weights`` into the whole model, else into one of its pretrained-style backbones.

    Args:
        model: The baseline's network.
        path: The local checkpoint.
        backbones: ``(module, skipped key prefixes, description)`` tried in order when the file
            does not match the whole model, e.g. the ResNet-50 of CT-GNN's encoder with its
            ImageNet classifier ``fc.`` left out.

    Raises:
        FieldHarnessError: The file matches neither the model nor a backbone; the message is
            the whole-model mismatch.
    """
    from harness.training import load_weights

    try:
        load_weights(model, path)
        return
    except FieldHarnessError as mismatch:
        for module, skip, description in backbones:
            try:
                load_weights(module, path, skip=skip)
            except FieldHarnessError:
                continue
            logger.warning("%s does not match the whole model; initialised %s from it (keys "
                           "starting with %s left as initialised)", path, description,
                           ", ".join(skip))
            return
        raise mismatch from None


def _plot_confusion(scored: Mapping[str, Any], path: Path, title: str) -> Path:
    """Plot the confusion matrix of a ``sewerml.multiclass`` result."""
    from sewerml.plots import plot_confusion_matrix

    return plot_confusion_matrix(np.asarray(scored["CM"]), scored["class_names"], path,
                                 title=title)


def _json_ready(value: Any) -> Any:
    """Convert numpy values for JSON, with NaN (an undefined metric) as ``null``."""
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


RUNTIME_KEYS = ("device", "workers", "predict_splits")
"""Config keys that choose hardware or outputs, not the method: left out of the run record's
configuration so that runs on different machines count as one configuration (the record keeps
the hardware separately)."""


def _recorded_config(config: Mapping[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Return the settings that define the run's configuration, including the initial weights."""
    return recorded_config(config, RUNTIME_KEYS, args.weights)


def _test_note(files: Sequence[Path]) -> str:
    from sewerml.plugin import TEST_NOTE

    return f"{TEST_NOTE} Test predictions: {', '.join(str(f) for f in files)}."


def torch_tensor(values: np.ndarray):
    """Return ``values`` as a float32 torch tensor (torch is imported only when training)."""
    import torch

    return torch.as_tensor(values, dtype=torch.float32)


def _stage_loss(target: str, pos_weight):
    """Return the BCE-with-logits loss of one benchmark stage as a module.

    A module, so that the runner moves ``pos_weight`` to the training device with the model.
    """
    import torch

    class StageLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("pos_weight", pos_weight)

        def forward(self, outputs, batch):
            targets = batch[target].float().reshape(outputs.shape)
            return torch.nn.functional.binary_cross_entropy_with_logits(
                outputs.float(), targets, pos_weight=self.pos_weight)

    return StageLoss()


class _SewerMLBaseline(Baseline):
    """Options and data loading shared by the Sewer-ML baselines."""

    dataset: ClassVar[str] = "sewerml"
    name: ClassVar[str]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the training options (``--config``, ``--set``, ``--device``, …) and ``--version``."""
        add_training_arguments(parser, presets=tuple(PRESETS[self.name]))
        parser.add_argument("--version", default=None, dest="dataset_version", metavar="VERSION",
                            help="prepared Sewer-ML version (default: the dataset's default)")

    def _datasets(self, config: Mapping[str, Any], args: argparse.Namespace, ctx: RunContext,
                  splits: Sequence[str], *, defect_only: bool = False) -> dict[str, Any]:
        """Open the training split with augmentation and the others with the eval transform."""
        from sewerml.torchdata import SewerMLImages
        from sewerml.transforms import eval_transform, train_transform

        size = int(config["image_size"])
        opened = {}
        for split in splits:
            transform = train_transform(size) if split == "train" else eval_transform(size)
            opened[split] = SewerMLImages(
                split, transform=transform, version=args.dataset_version, data_dir=ctx.data_dir,
                defect_only=defect_only and split != "test",
            )
        return opened


class CTGNNBaseline(_SewerMLBaseline):
    """CT-GNN: a ResNet-50 encoder with a cross-task graph decoder over all class nodes.

    Haurum, Madadi, Escalera & Moeslund, "Multi-Task Classification of Sewer Pipe Defects and
    Properties using a Cross-Task Graph Neural Network Decoder", WACV 2022.
    """

    name: ClassVar[str] = "ctgnn"
    description: ClassVar[str] = (
        "CT-GNN (WACV 2022): ResNet-50 trained from scratch with a cross-task graph decoder for "
        "defects, water level and, when labelled, pipe shape and material")

    def run(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome | None:
        """Train CT-GNN, predict every split in ``predict_splits`` and score the labelled ones.

        Raises:
            MissingDependencyError: PyTorch is not installed.
            NotPreparedError: Sewer-ML is not prepared.
            FieldHarnessError: An invalid config value or option.
        """
        require_torch("training a Sewer-ML baseline", "torch", "torchvision")
        manifest = _manifest(args, ctx)
        config = _resolve_config(self.name, args, manifest.data_kind)
        predict_splits = _check_splits(config["predict_splits"])
        data = self._datasets(config, args, ctx, ["train", "val", *predict_splits])
        train = data["train"]
        tasks = self._tasks(config, train)
        logger.info("CT-GNN tasks: %s", ", ".join(tasks))

        from harness.training import fit, is_main_process, load_weights, predict, seed_everything
        from sewerml.adjacency import save_adjacency_csv
        from sewerml.ctgnn import probabilities

        seed_everything(ctx.seed)  # the initial weights come from the seed too
        model, loss_fn, graph = self._build(config, train, tasks)
        if args.weights is not None:
            _initialise(model, args.weights,
                        [(model.encoder.network, ("fc.",), "the ResNet-50 encoder")])
        graph_file = ctx.output_dir / "adjacency.csv"
        save_adjacency_csv(*graph, graph_file)

        settings = _stage_settings(config, None, ctx.seed)
        result = fit(model, train, data["val"], loss_fn, settings, ctx.output_dir,
                     resume=args.resume)
        if not is_main_process():
            return None
        load_weights(model, result.best_checkpoint)

        files = [graph_file, *result.files]
        metrics: dict[str, float] = {}
        per_item: dict[str, dict[str, float]] = {}
        details: dict[str, Any] = {}
        test_files: list[Path] = []
        for split in dict.fromkeys(predict_splits):
            dataset = data[split]
            outputs = predict(model, dataset, settings,
                              output_fn=lambda out: {t: p for t, p in probabilities(out).items()
                                                     if t in tasks})
            written = self._write_predictions(ctx.output_dir, split, dataset.filenames, outputs,
                                              tasks)
            files += written
            if not dataset.has_labels:
                test_files += written
                continue
            if split == "val":
                scores, per_item, details, plots = self._score(dataset, outputs, tasks,
                                                               ctx.output_dir)
                metrics.update(scores)
                files += plots

        metrics_path = ctx.output_dir / METRICS_FILE
        atomic.write_json(metrics_path, {"split": "val", "best_epoch": result.best_epoch,
                                         "best_val_loss": result.best_val_loss,
                                         **_json_ready(details)})
        files.append(metrics_path)
        recorded = _recorded_config(config, args)
        recorded["tasks"] = list(tasks)
        if test_files:
            logger.warning("%s", _test_note(test_files))
        return EvalOutcome(dataset="sewerml", method=self.name, metrics=metrics,
                           version=manifest.version, split="val", per_item=per_item,
                           data_kind=manifest.data_kind, files=files, config=recorded)

    @staticmethod
    def _tasks(config: Mapping[str, Any], train) -> tuple[str, ...]:
        """Return the configured tasks, or with ``tasks = "auto"`` every task labelled in train."""
        requested = config["tasks"]
        if requested == "auto":
            return tuple(train.tasks)
        if isinstance(requested, str):
            requested = [part.strip() for part in requested.split(",") if part.strip()]
        valid = ("defect", "water", "shape", "material")
        for task in requested:
            if task not in valid:
                raise UnknownNameError("CT-GNN task", task, valid)
            if task not in train.tasks:
                raise FieldHarnessError(
                    f"task {task!r} has no labels in the prepared training split (labelled "
                    f"tasks: {', '.join(train.tasks)}); the public CSVs may lack the Shape and "
                    "Material columns")
        if "defect" not in requested:
            raise FieldHarnessError(f"tasks={list(requested)} must include 'defect': CT-GNN is "
                                    "scored on the defect task")
        return tuple(requested)

    @staticmethod
    def _build(config: Mapping[str, Any], train, tasks: Sequence[str]):
        """Build the model and the loss, and return the graph with its node names to save."""
        import torch

        from sewerml.adjacency import build_adjacency, node_names
        from sewerml.ctgnn import CTGNN, CTGNNLoss
        from sewerml.losses import effective_number_weights, pos_ciw_weights, task_weights
        from sewerml.torchdata import TASK_CLASSES

        task_classes = {task: len(TASK_CLASSES[task]) for task in tasks}
        labels = {task: train.targets[task] for task in tasks}
        adjacency = build_adjacency(labels, task_classes, graph=config["graph"],
                                    reweight=float(config["reweight"]) or None,
                                    normalization=config["normalization"] or None)
        names = node_names({task: TASK_CLASSES[task] for task in tasks})

        model = CTGNN(task_classes, adjacency, gnn=config["gnn"])
        counts = train.label_counts()
        class_weights = {
            task: torch.as_tensor(effective_number_weights(
                counts[task], beta=float(config["effective_number_beta"])), dtype=torch.float32)
            for task in tasks if task != "defect"
        }
        weights = task_weights(tasks, dict(config["task_weights"]))
        loss_fn = CTGNNLoss(task_classes,
                            defect_pos_weight=torch.as_tensor(pos_ciw_weights(),
                                                              dtype=torch.float32),
                            class_weights=class_weights, task_weights=weights,
                            aux_weight=float(config["aux_weight"]))
        return model, loss_fn, (adjacency, names)

    @staticmethod
    def _write_predictions(output_dir: Path, split: str, filenames: Sequence[str],
                           outputs: Mapping[str, np.ndarray], tasks: Sequence[str]) -> list[Path]:
        """Write one CSV per task; the defect CSV is the official ``Filename`` + 17 format."""
        from sewerml.torchdata import TASK_CLASSES

        official = SPLIT_FILES[split]
        written = [_write_defect_csv(output_dir / f"ctgnn_{official}_sigmoid.csv", filenames,
                                     outputs["defect"])]
        for task in tasks:
            if task != "defect":
                written.append(_write_task_csv(output_dir / f"ctgnn_{official}_{task}.csv",
                                               filenames, outputs[task], TASK_CLASSES[task]))
        return written

    @staticmethod
    def _score(dataset, outputs: Mapping[str, np.ndarray], tasks: Sequence[str],
               output_dir: Path):
        """Score the defect task officially and the other tasks by MF1, mF1 and confusion."""
        from sewerml.multiclass import multiclass_metrics
        from sewerml.torchdata import TASK_CLASSES

        metrics, results, f2_plot = _score_defects(
            dataset.targets["defect"], outputs["defect"], 0.5, output_dir,
            "CT-GNN on Sewer-ML Val")
        per_item = {code: {"F2": _percent(results["F2"][k]), "F1": _percent(results["F1"][k])}
                    for k, code in enumerate(DEFECT_CODES)}
        details: dict[str, Any] = {"defect": results}
        plots = [f2_plot]
        for task in tasks:
            if task == "defect":
                continue
            names = TASK_CLASSES[task]
            scored = multiclass_metrics(dataset.targets[task], outputs[task], names)
            details[task] = scored
            prefix = TASK_PREFIX[task]
            metrics[f"{prefix}-MF1"] = _percent(scored["MF1"])
            metrics[f"{prefix}-mF1"] = _percent(scored["mF1"])
            plots.append(_plot_confusion(scored, output_dir / f"confusion_{task}.png",
                                         f"CT-GNN {task} on Sewer-ML Val"))
        return metrics, per_item, details, plots


class BenchmarkBaseline(_SewerMLBaseline):
    """The Sewer-ML benchmark: a binary first stage and a multi-label second stage.

    Haurum & Moeslund, "Sewer-ML: A Multi-Label Sewer Defect Classification Dataset and
    Benchmark", CVPR 2021: Xie et al.'s network decides defect or normal, TResNet-L scores the
    17 classes, and the "replace" rule combines them.
    """

    name: ClassVar[str] = "benchmark"
    description: ClassVar[str] = (
        "the Sewer-ML benchmark (CVPR 2021): Xie et al. binary first stage + TResNet-L "
        "multi-label second stage, combined with the replace rule; stages also run alone")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the shared options and ``--stage``."""
        super().add_arguments(parser)
        parser.add_argument("--stage", choices=STAGES, default="both",
                            help="train and score both stages combined (default), or one stage "
                                 "alone: binary (defect or normal, every image) or multilabel "
                                 "(17 classes, trained on defective images)")

    def run(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome | None:
        """Train the chosen stages, predict ``predict_splits`` and score the validation split.

        With ``--stage both`` each stage trains in its own subfolder (``binary/``,
        ``multilabel/``) so ``--resume`` continues whichever stage was interrupted.

        Raises:
            MissingDependencyError: PyTorch, or timm for TResNet, is not installed.
            NotPreparedError: Sewer-ML is not prepared.
        """
        require_torch("training a Sewer-ML baseline", "torch", "torchvision")
        manifest = _manifest(args, ctx)
        config = _resolve_config(self.name, args, manifest.data_kind)
        predict_splits = _check_splits(config["predict_splits"])
        threshold = float(config["threshold"])
        if args.weights is not None and args.stage == "both":
            raise FieldHarnessError("--weights needs --stage binary or --stage multilabel: the "
                                    "two stages are separate networks")

        if args.stage == "both" and args.resume not in (None, "last"):
            raise FieldHarnessError("--stage both resumes each stage from its own folder: pass "
                                    "--resume without a file, or --stage with one stage")

        from harness.training import is_main_process, predict

        # Every stage trains before any predicts, so under torchrun the other processes never
        # wait in a collective while rank 0 predicts.
        stages = ("binary", "multilabel") if args.stage == "both" else (args.stage,)
        data = self._datasets(config, args, ctx, ["train", "val", *predict_splits])
        trained = {}
        files: list[Path] = []
        for stage in stages:
            stage_dir = ctx.output_dir / stage if len(stages) > 1 else ctx.output_dir
            trained[stage], stage_files = self._train_stage(stage, config, args, ctx, stage_dir,
                                                            data)
            files += stage_files
        if not is_main_process():
            return None  # a secondary process of a distributed run: rank 0 predicts and scores

        import torch

        scores: dict[str, dict[str, np.ndarray]] = {}
        for stage, (model, settings) in trained.items():
            scores[stage] = {split: predict(model, data[split], settings, output_fn=torch.sigmoid)
                             for split in dict.fromkeys(predict_splits)}

        metrics: dict[str, float] = {}
        per_item: dict[str, dict[str, float]] = {}
        details: dict[str, Any] = {"stage": args.stage, "threshold": threshold}
        test_files: list[Path] = []
        for split in dict.fromkeys(predict_splits):
            dataset = data[split]
            split_files, split_metrics, split_items, split_details = self._finish_split(
                args.stage, split, dataset, scores, threshold, ctx.output_dir)
            files += split_files
            if not dataset.has_labels:
                test_files += split_files
            elif split == "val":
                metrics, per_item = split_metrics, split_items
                details["val"] = split_details

        metrics_path = ctx.output_dir / METRICS_FILE
        atomic.write_json(metrics_path, _json_ready(details))
        files.append(metrics_path)
        recorded = _recorded_config(config, args)
        if args.stage != "both":
            # A stage alone uses only its own section of the config.
            recorded.pop("multilabel" if args.stage == "binary" else "binary")
            recorded.pop("threshold")
        recorded["stage"] = args.stage
        if test_files:
            logger.warning("%s", _test_note(test_files))
        method = self.name if args.stage == "both" else f"{self.name}-{args.stage}"
        return EvalOutcome(dataset="sewerml", method=method, metrics=metrics,
                           version=manifest.version, split="val", per_item=per_item,
                           data_kind=manifest.data_kind, files=files, config=recorded)

    def _train_stage(self, stage: str, config: Mapping[str, Any], args: argparse.Namespace,
                     ctx: RunContext, stage_dir: Path, data: Mapping[str, Any]):
        """Train one stage with BCE and the paper's positive weights.

        Returns:
            ``((model, settings), files)``: the model with its best weights loaded (on rank 0;
            as trained on the other ranks of a distributed run), its runner settings, and the
            files ``fit`` wrote.
        """
        from harness.training import fit, is_main_process, load_weights, seed_everything
        from sewerml.benchmark_models import build_model
        from sewerml.losses import positive_weights

        section = config[stage]
        train_data, val_data = data["train"], data["val"]
        if stage == "multilabel":
            # The second stage learns the classes of defective images only, as in the paper.
            train_data, val_data = self._datasets(config, args, ctx, ["train", "val"],
                                                  defect_only=True).values()
        target = "binary" if stage == "binary" else "defect"
        labels = np.asarray(train_data.targets[target]).reshape(len(train_data), -1)
        pos_weight = torch_tensor(positive_weights(labels.sum(axis=0), len(train_data)))
        logger.info("%s stage: %s on %d training images", stage, section["model"],
                    len(train_data))

        seed_everything(ctx.seed)
        model = build_model(section["model"], labels.shape[1])
        if args.weights is not None:
            head = ("head.fc.",) if section["model"].startswith("tresnet") else ("fc.",)
            _initialise(model, args.weights,
                        [(model, head, f"{section['model']} without its classifier")])
        loss_fn = _stage_loss(target, pos_weight)

        settings = _stage_settings(config, stage, ctx.seed)
        stage_dir.mkdir(parents=True, exist_ok=True)
        resume = args.resume
        both = stage_dir != ctx.output_dir
        if both and resume == "last" and not (stage_dir / "checkpoints" / "last.pt").is_file():
            # --stage both: the run stopped before this stage saved a checkpoint.
            logger.info("%s stage has no checkpoint in %s yet; training it from the start",
                        stage, stage_dir)
            resume = None
        result = fit(model, train_data, val_data, loss_fn, settings, stage_dir, resume=resume)
        if is_main_process():
            load_weights(model, result.best_checkpoint)
        return (model, settings), result.files

    @staticmethod
    def _finish_split(stage: str, split: str, dataset, scores: Mapping[str, Mapping],
                      threshold: float, output_dir: Path):
        """Write one split's prediction CSVs and score it when it has labels."""
        from sewerml.two_stage import combine_replace, write_binary_predictions

        official = SPLIT_FILES[split]
        files: list[Path] = []
        binary = scores.get("binary", {}).get(split)
        if binary is not None:
            binary = binary.reshape(-1)
            files.append(write_binary_predictions(
                dataset.filenames, binary, output_dir / f"benchmark_{official}_binary.csv"))
            if stage == "binary":
                if not dataset.has_labels:
                    return files, {}, {}, {}
                metrics, per_item, scored = BenchmarkBaseline._score_binary(dataset, binary,
                                                                            threshold)
                plot = _plot_confusion(scored, output_dir / "confusion_binary.png",
                                       f"Sewer-ML first stage on {official}")
                return [*files, plot], metrics, per_item, scored
        multilabel = scores["multilabel"][split]
        if stage == "both":
            multilabel = combine_replace(binary, multilabel, threshold=threshold)
        name = "benchmark" if stage == "both" else "benchmark-multilabel"
        files.append(_write_defect_csv(output_dir / f"{name}_{official}_sigmoid.csv",
                                       dataset.filenames, multilabel))
        if not dataset.has_labels:
            return files, {}, {}, {}
        metrics, results, plot = _score_defects(dataset.targets["defect"], multilabel, 0.5,
                                                output_dir, f"Sewer-ML {name} on {official}")
        per_item = {code: {"F2": _percent(results["F2"][k]), "F1": _percent(results["F1"][k])}
                    for k, code in enumerate(DEFECT_CODES)}
        return [*files, plot], metrics, per_item, results

    @staticmethod
    def _score_binary(dataset, binary: np.ndarray, threshold: float):
        """Score the first stage alone: defect against normal, and the binary confusion."""
        from sewerml.multiclass import multiclass_metrics

        truth = np.asarray(dataset.targets["binary"]).astype(np.int64).reshape(-1)
        predicted = (binary >= threshold).astype(np.int64)
        scored = multiclass_metrics(truth, predicted, ("Normal", "Defect"))
        metrics = {
            "Defect-F1": _percent(scored["F1"][1]),
            "Defect-recall": _percent(scored["recall"][1]),
            "Defect-precision": _percent(scored["precision"][1]),
            "Normal-F1": _percent(scored["F1"][0]),
            "accuracy": _percent(scored["accuracy"]),
        }
        return metrics, {}, scored
