"""The BIOSCAN-1M image classifier baseline: ``python -m harness run bioscan-1m classifier``.

It trains a torchvision model on the images of one of the six BIOSCAN-1M partitionings: the
16 insect orders or the 40 Diptera families, each in a large, medium and small size. The loss is
cross-entropy or focal loss, and the default config has the settings of the official code
(``bioscan/configs/classifier.toml``). The validation and test partitions are then scored with
the official metrics: top-k accuracy for k = 1, 3, 5 and 10, macro top-k accuracy, per-class
accuracy and F1 micro and macro. The run folder receives the prediction CSVs, ``metrics.json``,
``metrics.csv``, ``per_class.csv`` and per-class accuracy and confusion-matrix plots.

Class indices are contiguous over the labels of the training partition. Records of the
evaluated partitions whose label is missing or absent from training are predicted and written
but left out of the scores.

This module imports nothing heavy at import time: the CLI builds its parser from it on machines
without torch, and torch is needed only when the baseline runs.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
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

__all__ = ["PRESETS", "TASKS", "ClassifierBaseline", "partition_column", "target_rank_warning"]

logger = logging.getLogger(__name__)

DATASET = "bioscan-1m"

PRESETS = {"paper": "classifier.toml", "sample": "classifier-sample.toml"}
"""Config presets: ``paper`` is the default, ``sample`` the short schedule used on generated
sample data."""

TASKS = {"order": ("insect_order", "order"), "diptera_family": ("diptera_family", "family")}
"""Task -> (suffix of its partitioning columns, the label column it predicts)."""

SIZES = ("large", "medium", "small")
LOSSES = ("ce", "focal")
TARGET_RANKS = ("order", "family", "subfamily", "tribe", "genus", "species", "uri")
EVAL_PARTITIONS = ("validation", "test")

TOO_FINE = {
    "order": ("family", "subfamily", "tribe", "genus", "species", "uri"),
    "diptera_family": ("subfamily", "tribe", "genus", "species", "uri"),
}
"""Ranks finer than a task's partitionings were stratified by, as ``bioscan-dataset`` 1.3.0
lists them (``BIOSCAN1M.__init__``), plus the BIN ``uri``."""

METRICS_FILE = "metrics.json"
RUNTIME_KEYS = ("device", "workers")
"""Config keys that choose hardware, not the method: left out of the run record's configuration
so that runs on different machines count as one configuration."""


def partition_column(task: str, size: str) -> str:
    """Return the partitioning column of a task and size, e.g. ``small_insect_order``.

    Raises:
        UnknownNameError: An unknown task or size.
    """
    if task not in TASKS:
        raise UnknownNameError("BIOSCAN-1M classifier task", task, TASKS)
    if size not in SIZES:
        raise UnknownNameError("BIOSCAN-1M partitioning size", size, SIZES)
    return f"{size}_{TASKS[task][0]}"


def target_rank_warning(task: str, rank: str) -> str | None:
    """Return a warning when ``rank`` does not fit the partitionings of ``task``, else ``None``.

    The partitionings are stratified by order (and by family for the Diptera families), so
    finer labels of the validation and test partitions can be absent from training. On the
    Diptera-family partitionings every record is a Diptera, so ``order`` has a single class.
    """
    if rank in TOO_FINE[task]:
        return (f"target rank {rank!r} is finer than the {task} partitionings were designed for, "
                "so the validation and test partitions contain classes that the training "
                "partition lacks; their records are left out of the scores")
    if task == "diptera_family" and rank == "order":
        return ("target rank 'order' does not fit the diptera_family partitionings: every "
                "record is a Diptera, so there is a single class")
    return None


def _resolve_config(args: argparse.Namespace, data_kind: str) -> dict[str, Any]:
    """Return the default config (official settings), or the sample preset on sample data, with
    the user's changes.

    The options ``--model``, ``--loss``, ``--task``, ``--size``, ``--device`` and ``--workers``
    override the config keys of the same name.
    """
    config = load_preset_config("bioscan", PRESETS, args.config, args.overrides,
                                data_kind=data_kind, run_name="the BIOSCAN-1M classifier")
    for key in ("model", "loss", "task", "size", "device", "workers"):
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    config.setdefault("device", "auto")

    if config["loss"] not in LOSSES:
        raise UnknownNameError("loss", config["loss"], LOSSES)
    partition_column(config["task"], config["size"])
    if config["target_rank"] != "auto" and config["target_rank"] not in TARGET_RANKS:
        raise UnknownNameError("target_rank", config["target_rank"], ("auto", *TARGET_RANKS))
    return config


def _target_rank(config: Mapping[str, Any]) -> str:
    rank = config["target_rank"]
    return TASKS[config["task"]][1] if rank == "auto" else rank


def _train_settings(config: Mapping[str, Any], seed: int):
    from harness.training import TrainSettings

    values = {key: value for key, value in config.items() if not isinstance(value, dict)}
    values["seed"] = seed
    return TrainSettings.from_config(values)


def _percent(value: float) -> float:
    return round(float(value) * 100.0, 10)


def _recorded_config(config: Mapping[str, Any], args: argparse.Namespace,
                     rank: str) -> dict[str, Any]:
    recorded = recorded_config(config, RUNTIME_KEYS, args.weights)
    recorded["target_rank"] = rank
    recorded["partition"] = partition_column(config["task"], config["size"])
    return recorded


def _top1_correct(outputs: Any, batch: Mapping[str, Any]) -> Any:
    """Return 1.0 per sample whose highest score is its target, else 0.0 (for ``fit``)."""
    return (outputs.argmax(dim=1) == batch["target"]).float()


def _loss_module(config: Mapping[str, Any]):
    """Return cross-entropy or the focal loss as ``loss_fn(outputs, batch)`` for ``fit``.

    The loss is a module, built here so that torch is imported only when a run starts.
    """
    import torch

    from bioscan.classifier import FocalLoss

    if config["loss"] == "focal":
        criterion: torch.nn.Module = FocalLoss(gamma=float(config["focal_gamma"]))
    else:
        criterion = torch.nn.CrossEntropyLoss()

    class TargetLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.criterion = criterion

        def forward(self, outputs, batch):
            return self.criterion(outputs.float(), batch["target"])

    return TargetLoss()


def _initialise(model, path: Path, name: str, num_classes: int):
    """Load ``--weights``: a whole classifier of this size, else a backbone (e.g. ImageNet).

    Returns:
        The model to train: ``model`` with the file loaded, or a new model whose backbone comes
        from the file and whose head is new.
    """
    from bioscan.classifier import build_model
    from harness.training import load_weights

    try:
        load_weights(model, path)
    except FieldHarnessError:
        logger.info("%s does not match a %d-class %s; loading it as the backbone", path,
                    num_classes, name)
        return build_model(name, num_classes, weights=path)
    logger.info("%s matches the whole %d-class %s, head included", path, num_classes, name)
    return model


class ClassifierBaseline(Baseline):
    """The BIOSCAN-1M image classifier (ResNet-50 or ViT-B/16, cross-entropy or focal loss).

    Gharaee et al., "A Step Towards Worldwide Biodiversity Assessment: The BIOSCAN-1M Insect
    Dataset", NeurIPS 2023 Datasets and Benchmarks.
    """

    dataset: ClassVar[str] = DATASET
    name: ClassVar[str] = "classifier"
    description: ClassVar[str] = (
        "BIOSCAN-1M image classifier (NeurIPS 2023): a torchvision model (ResNet-50, ViT-B/16, "
        "...) with cross-entropy or focal loss on the insect-order or Diptera-family "
        "partitionings, scored by top-k, macro top-k, per-class accuracy and F1")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the training options and ``--model``, ``--loss``, ``--task``, ``--size``."""
        add_training_arguments(parser, presets=tuple(PRESETS))
        parser.add_argument("--version", default=None, dest="dataset_version", metavar="VERSION",
                            help="prepared BIOSCAN-1M version (default: the dataset's default)")
        parser.add_argument(
            "--model", default=None, metavar="NAME",
            help="torchvision classification model, e.g. resnet50 or vit_b_16 (the paper's two), "
                 "resnet18, convnext_tiny (default: the config's model, resnet50)")
        parser.add_argument("--loss", choices=LOSSES, default=None,
                            help="training loss: ce (cross-entropy) or focal (gamma from the "
                                 "config's focal_gamma, 2.0) (default: the config's, ce)")
        parser.add_argument("--task", choices=tuple(TASKS), default=None,
                            help="order: classify the 16 insect orders; diptera_family: the 40 "
                                 "Diptera families (default: the config's, order)")
        parser.add_argument("--size", choices=SIZES, default=None,
                            help="partitioning size: large (all records of the task), medium "
                                 "(about 200,000) or small (about 50,000) (default: the "
                                 "config's, small)")

    def run(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome | None:
        """Train the classifier, predict the validation and test partitions and score them.

        Raises:
            MissingDependencyError: PyTorch is not installed.
            NotPreparedError: BIOSCAN-1M is not prepared.
            UnknownNameError: An unknown model, loss, task, size or target rank.
            FieldHarnessError: An invalid config value, a training partition with fewer than
                two classes, or ``--weights`` that do not match the model.
        """
        require_torch("training the BIOSCAN-1M classifier", "torch", "torchvision")
        from harness.storage import read_manifest

        manifest = read_manifest(DATASET, version=args.dataset_version, data_dir=ctx.data_dir)
        config = _resolve_config(args, manifest.data_kind)
        rank = _target_rank(config)
        partition = partition_column(config["task"], config["size"])
        message = target_rank_warning(config["task"], rank)
        if message is not None:
            logger.warning("%s", message)

        from bioscan.classifier import model_names

        valid_models = model_names()
        if config["model"] not in valid_models:
            raise UnknownNameError("torchvision classification model", config["model"],
                                   valid_models)
        logger.info("BIOSCAN-1M classifier: %s on %s, predicting %s", config["model"], partition,
                    rank)

        from harness.training import fit, is_main_process, load_weights, predict, seed_everything

        data = self._datasets(config, args, ctx, partition, rank)
        train = data["train"]
        vocabulary = train.vocabularies[rank]
        if vocabulary.num_classes < 2:
            raise FieldHarnessError(
                f"the training partition of {partition} has {vocabulary.num_classes} {rank} "
                "class(es) with images; a classifier needs at least 2, so choose another task, "
                "size or target_rank")
        logger.info("%d training images in %d classes", len(train), vocabulary.num_classes)

        from bioscan.classifier import build_model

        seed_everything(ctx.seed)  # the new head's initial weights come from the seed too
        model = build_model(config["model"], vocabulary.num_classes)
        fixed_size = getattr(model, "image_size", None)  # a ViT's positional embedding size
        if fixed_size is not None and fixed_size != int(config["crop_size"]):
            raise FieldHarnessError(
                f"{config['model']} takes {fixed_size} px images but crop_size is "
                f"{config['crop_size']}; pass --set crop_size={fixed_size} (and an image_size "
                "of at least that)")
        if args.weights is not None:
            model = _initialise(model, Path(args.weights), config["model"],
                                vocabulary.num_classes)

        settings = _train_settings(config, ctx.seed)
        optimizer = self._optimizer(model, config)
        # best.pt is the epoch with the highest validation top-1 accuracy, as in the official
        # code, not the one with the lowest validation loss.
        result = fit(model, train, data["validation_fit"], _loss_module(config), settings,
                     ctx.output_dir, resume=args.resume, optimizer=optimizer,
                     val_metric=_top1_correct)
        if not is_main_process():
            return None
        load_weights(model, result.best_checkpoint)

        files: list[Path] = list(result.files)
        scored: dict[str, dict[str, Any]] = {}
        for split in EVAL_PARTITIONS:
            dataset = data[split]
            logits = predict(model, dataset, settings)
            files.append(self._write_predictions(ctx.output_dir, split, dataset, logits,
                                                 vocabulary))
            scored[split], plots = self._score(split, dataset, logits, vocabulary, config,
                                               ctx.output_dir, partition)
            files += plots

        files += self._write_metrics(ctx.output_dir, scored, vocabulary, config, rank, partition,
                                     result)
        test = scored["test"]
        return EvalOutcome(dataset=DATASET, method=self.name, metrics=_headline(test),
                           version=manifest.version, split="test",
                           per_item=_per_class(test, vocabulary.labels),
                           data_kind=manifest.data_kind, files=files,
                           config=_recorded_config(config, args, rank))

    # --- steps -------------------------------------------------------------------------------

    @staticmethod
    def _datasets(config: Mapping[str, Any], args: argparse.Namespace, ctx: RunContext,
                  partition: str, rank: str) -> dict[str, Any]:
        """Open the training partition with augmentation and the evaluated ones without.

        ``validation_fit`` is the validation partition without the records that have no
        training label, for the validation loss during training.
        """
        from bioscan.classifier import classifier_transform
        from bioscan.torchdata import BIOSCANDataset
        from harness.loading import load_dataset

        # Only the columns that the datasets and the prediction CSVs read. The 1.1 million DNA
        # barcodes of the release alone are about 0.75 GB of text (658 nucleotides each).
        columns = list(dict.fromkeys(["processid", "sampleid", "image_file", "image", rank,
                                      partition]))
        loaded = load_dataset(DATASET, format="polars", columns=columns,
                              version=args.dataset_version, data_dir=ctx.data_dir)
        records = (pl.concat(list(loaded.values()), how="vertical_relaxed")
                   if isinstance(loaded, dict) else loaded)
        sizes = {"resize": int(config["image_size"]), "crop": int(config["crop_size"]),
                 "normalize": bool(config["normalize"])}
        common = {"modalities": ("image",), "target_rank": rank, "index": "contiguous",
                  "vocab_split": "train", "partition": partition, "frame": records}

        evaluation = classifier_transform("eval", **sizes)
        requests = {
            "train": ("train", classifier_transform("train", **sizes), True),
            "validation": ("validation", evaluation, False),
            "test": ("test", evaluation, False),
            "validation_fit": ("validation", evaluation, True),
        }
        opened = {}
        for name, (split, transform, drop_missing) in requests.items():
            try:
                opened[name] = BIOSCANDataset(DATASET, split, transform=transform,
                                              drop_missing_target=drop_missing, **common)
            except FieldHarnessError as error:
                raise FieldHarnessError(
                    f"partitioning {partition}: {error}; choose a larger --size or prepare a "
                    "copy with more images") from None
        return opened

    @staticmethod
    def _optimizer(model, config: Mapping[str, Any]):
        """Return SGD with the config's momentum, Nesterov flag and weight decay."""
        import torch

        return torch.optim.SGD(model.parameters(), lr=float(config["lr"]),
                               momentum=float(config["momentum"]),
                               weight_decay=float(config["weight_decay"]),
                               nesterov=bool(config["nesterov"]))

    @staticmethod
    def _write_predictions(output_dir: Path, split: str, dataset, logits: np.ndarray,
                           vocabulary) -> Path:
        """Write one row per record: ids, true and predicted label, softmax per class."""
        probabilities = _softmax(logits)
        predicted = np.argmax(logits, axis=1)
        frame = dataset.frame
        columns = {
            "processid": frame["processid"],
            "sampleid": frame["sampleid"],
            "image_file": frame["image_file"],
            "label": pl.Series(vocabulary.index2label(dataset.targets), dtype=pl.String),
            "target": pl.Series(dataset.targets.astype(np.int64)),
            "predicted_label": pl.Series(vocabulary.index2label(predicted), dtype=pl.String),
            "predicted": pl.Series(predicted.astype(np.int64)),
        }
        table = pl.DataFrame(columns).with_columns(
            [pl.Series(f"p_{name}", probabilities[:, k].astype(np.float64))
             for k, name in enumerate(vocabulary.labels)])
        path = output_dir / f"predictions_{split}.csv"
        with atomic.atomic_path(path) as tmp:
            table.write_csv(tmp, float_precision=6)
        return path

    @staticmethod
    def _score(split: str, dataset, logits: np.ndarray, vocabulary, config: Mapping[str, Any],
               output_dir: Path, partition: str) -> tuple[dict[str, Any], list[Path]]:
        """Score the records with a training label and plot per-class accuracy and confusion."""
        from bioscan.classifier import (
            classification_metrics,
            plot_confusion_matrix,
            plot_per_class_accuracy,
        )

        targets = np.asarray(dataset.targets, dtype=np.int64)
        labelled = targets >= 0
        left_out = int((~labelled).sum())
        if left_out:
            logger.warning("%s: %d of %d records have no label in the training vocabulary "
                           "(missing or absent from training) and are left out of the scores",
                           split, left_out, len(targets))
        if not labelled.any():
            raise FieldHarnessError(f"the {split} partition of {partition} has no record with "
                                    "a training label and an image to score")
        metrics = classification_metrics(targets[labelled], logits[labelled],
                                         num_classes=vocabulary.num_classes,
                                         ks=[int(k) for k in config["top_k"]])
        metrics["left_out"] = left_out

        names = vocabulary.labels
        counts = np.bincount(targets[labelled], minlength=len(names))
        accuracy = {names[c]: value for c, value in metrics["per_class_accuracy"].items()}
        title = f"{config['model']} on BIOSCAN-1M {partition} {split}"
        class_counts = {name: int(counts[names.index(name)]) for name in accuracy}
        plots = [
            plot_per_class_accuracy(accuracy, class_counts,
                                    output_dir / f"per_class_accuracy_{split}.png", title=title),
            plot_confusion_matrix(metrics["confusion"], names,
                                  output_dir / f"confusion_{split}.png", title=title),
        ]
        return metrics, plots

    @staticmethod
    def _write_metrics(output_dir: Path, scored: Mapping[str, Mapping[str, Any]], vocabulary,
                       config: Mapping[str, Any], rank: str, partition: str, result) -> list[Path]:
        """Write metrics.json (all scores, in percent), metrics.csv and per_class.csv."""
        names = vocabulary.labels
        summary: dict[str, Any] = {
            "partition": partition, "target_rank": rank, "classes": list(names),
            "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
            "best_val_top1": (None if result.best_val_metric is None
                              else _percent(result.best_val_metric)),
            "unit": "percent",
        }
        rows: list[tuple[str, str, float]] = []
        class_rows: list[dict[str, Any]] = []
        for split, metrics in scored.items():
            headline = _headline(metrics)
            rows += [(split, name, value) for name, value in headline.items()]
            summary[split] = {
                "samples": metrics["samples"],
                "left_out": metrics["left_out"],
                "metrics": headline,
                "per_class_accuracy": {names[c]: _percent(v)
                                       for c, v in metrics["per_class_accuracy"].items()},
                "per_class_top_k": {str(k): {names[c]: _percent(v) for c, v in values.items()}
                                    for k, values in metrics["per_class_top_k"].items()},
                "confusion": metrics["confusion"].tolist(),
            }
            counts = metrics["confusion"].sum(axis=1)
            for c, value in metrics["per_class_accuracy"].items():
                row = {"split": split, "class": names[c], "samples": int(counts[c]),
                       "accuracy": _percent(value)}
                for k, values in metrics["per_class_top_k"].items():
                    if k != 1:
                        row[f"top-{k}"] = _percent(values[c])
                class_rows.append(row)

        metrics_json = output_dir / METRICS_FILE
        atomic.write_json(metrics_json, summary)
        metrics_csv = output_dir / "metrics.csv"
        atomic.write_text(metrics_csv, _csv_text(["split", "metric", "value"],
                                                 [dict(zip(("split", "metric", "value"), row,
                                                           strict=True)) for row in rows]))
        per_class_csv = output_dir / "per_class.csv"
        header = list(dict.fromkeys(key for row in class_rows for key in row))
        atomic.write_text(per_class_csv, _csv_text(header, class_rows))
        return [metrics_json, metrics_csv, per_class_csv]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def _headline(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Return the run record's metrics of one split, in percent."""
    headline: dict[str, float] = {}
    for k, value in metrics["top_k"].items():
        headline[f"top-{k}"] = _percent(value)
    for k, value in metrics["macro_top_k"].items():
        headline[f"macro-top-{k}"] = _percent(value)
    headline["F1-micro"] = _percent(metrics["f1_micro"])
    headline["F1-macro"] = _percent(metrics["f1_macro"])
    return headline


def _per_class(metrics: Mapping[str, Any], names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Return the accuracy (percent) and sample count of each class with samples in one split."""
    counts = metrics["confusion"].sum(axis=1)
    return {names[c]: {"accuracy": _percent(value), "samples": float(counts[c])}
            for c, value in metrics["per_class_accuracy"].items()}


def _csv_text(header: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(header), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
