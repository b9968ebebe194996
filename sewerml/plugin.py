"""The Sewer-ML dataset plugin and its evaluator.

Registered as ``sewerml`` in the entry-point group ``fieldharness.datasets``. Its evaluator runs
as ``python -m harness eval sewerml --predictions FILE --split val``.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from harness import atomic
from harness.errors import EvaluationError
from harness.plugin import (
    DatasetPlugin,
    EvalOutcome,
    Evaluator,
    PreparedData,
    PublishedResult,
    RunContext,
)
from harness.spec import DatasetSpec
from sewerml.classes import COLUMNS, DEFECT_CODES
from sewerml.metrics import COUNT_METRICS, SCORE_METRICS, evaluate
from sewerml.multiclass import multiclass_metrics
from sewerml.prepare import read_sewerml_source
from sewerml.sample import write_sewerml_sample
from sewerml.spec import SEWERML_SPEC, SPLIT_FILES
from sewerml.tasks import IGNORE_INDEX, TASK_CLASSES, bin_water_level

__all__ = ["SewerMLEvaluator", "SewerMLPlugin", "read_predictions"]

logger = logging.getLogger(__name__)

SAMPLE_IMAGES_PER_SPLIT = 24
METRICS_FILE = "metrics.json"
ROWS_LISTED = 5
"""Rows or file names listed in a prediction error message; the rest are only counted."""

HEADLINE_METRICS = (*COUNT_METRICS, *SCORE_METRICS)
SCORED_TASKS = ("defect", "water", "shape", "material")
TASK_COLUMNS = {"water": "WaterLevel", "shape": "Shape", "material": "Material"}
"""CSV column behind each multi-class task."""
TASK_PREFIX = {"water": "W", "shape": "S", "material": "M"}
"""Prefix of a multi-class task's metrics, as in the CT-GNN paper's tables (``W-MF1``)."""
TASK_METRICS = ("MF1", "mF1", "MP", "MR")
PER_CLASS_METRICS = ("precision", "recall", "F1", "F2")

# The Codalab leaderboard that the official repository (bitbucket.org/aauvap/sewer-ml) links
# was not carried over when Codalab moved servers in 2023, by user reports.
TEST_NOTE = (
    "Sewer-ML test labels are withheld: test scores come only from the dataset authors. Email "
    "the written predictions CSV to them (contact on https://vap.aau.dk/sewer-ml/), and they "
    "score it on request."
)


def listed_names(items: list[str]) -> str:
    """Join the first ROWS_LISTED names with commas, and count the rest."""
    text = ", ".join(items[:ROWS_LISTED])
    if len(items) > ROWS_LISTED:
        text += f", ... ({len(items)} in all)"
    return text


def read_predictions(path: str | PathLike[str], columns: Sequence[str] = DEFECT_CODES,
                     *, probabilities: bool = True) -> pl.DataFrame:
    """Read a prediction CSV: ``Filename`` and one score per class, columns in any order.

    For the defect task this is the format the official ``inference.py`` writes (sigmoid
    probabilities). Other columns, such as a pandas index, are ignored.

    Args:
        path: The CSV file.
        columns: The class columns: the 17 defect codes, or the class names of a multi-class
            task (``sewerml.tasks.TASK_CLASSES``).
        probabilities: Require scores in [0, 1]; otherwise any finite number (scores that are
            only compared by argmax) is accepted.

    Returns:
        ``Filename`` (string) and the class columns (Float64) in ``columns`` order.

    Raises:
        EvaluationError: The file is missing or unreadable, a column is missing, a file name is
            empty or repeated, or a score is not a number, NaN or out of range. The message
            names the file lines (the header is line 1).
    """
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"predictions file {path} not found; pass --predictions the CSV "
                              "with Filename and one score per class")
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")
    try:
        frame = pl.read_csv(raw, infer_schema=False)
    except pl.exceptions.PolarsError as err:
        raise EvaluationError(f"{path}: unreadable CSV file: {err}") from err
    frame = frame.rename({name: name.strip() for name in frame.columns})

    missing = [name for name in ("Filename", *columns) if name not in frame.columns]
    if missing:
        wanted = (f"the {len(columns)} class columns {', '.join(columns)}" if len(columns) > 1
                  else columns[0])
        raise EvaluationError(
            f"{path}: missing column(s) {', '.join(missing)}; expected Filename and {wanted} "
            f"(found: {', '.join(frame.columns)})"
        )
    frame = frame.select("Filename", *columns)
    frame = frame.with_columns(pl.col("Filename").str.strip_chars())

    lines = pl.Series("line", np.arange(2, frame.height + 2))
    names = frame["Filename"]
    empty = names.is_null() | (names == "")
    if empty.any():
        raise EvaluationError(f"{path}: empty Filename on line(s) "
                              f"{listed_names([str(n) for n in lines.filter(empty)])}")
    duplicated = names.is_duplicated()
    if duplicated.any():
        rows = [f"{name} (line {line})" for name, line in
                zip(names.filter(duplicated), lines.filter(duplicated), strict=True)]
        raise EvaluationError(f"{path}: duplicate Filename in {listed_names(rows)}; expected "
                              "one row per image")

    problems = []
    for code in columns:
        text = frame[code].str.strip_chars()
        scores = text.cast(pl.Float64, strict=False)
        invalid = scores.is_null() | scores.is_nan() | scores.is_infinite()
        if probabilities:
            invalid = invalid | (scores < 0) | (scores > 1)
        for line, value in zip(lines.filter(invalid.fill_null(True)),
                               text.filter(invalid.fill_null(True)), strict=True):
            cell = "empty" if value is None or value == "" else f"value {value!r}"
            problems.append(f"line {line} column {code} {cell}")
        frame = frame.with_columns(scores.alias(code))
    if problems:
        expected = ("probabilities from 0 to 1 (sigmoid outputs)" if probabilities
                    else "finite numbers (probabilities or logits)")
        raise EvaluationError(f"{path}: invalid score(s): {listed_names(problems)}; expected "
                              f"{expected}")
    return frame


def _join(predictions: pl.DataFrame, labels: pl.DataFrame, split: str, path: Path) -> pl.DataFrame:
    """Join predictions and labels on Filename and raise for any unmatched name.

    NOTE: The official ``calculate_results.py`` sorts both files by Filename and matches rows
    by position, so a prediction file with other images of the same count is misaligned
    silently. Here every name must match.
    """
    label_names = set(labels["Filename"].to_list())
    predicted_names = set(predictions["Filename"].to_list())
    missing = sorted(label_names - predicted_names)
    extra = sorted(predicted_names - label_names)
    if missing:
        raise EvaluationError(
            f"{path}: no prediction for {len(missing)} of the {len(label_names)} {split} images: "
            f"{listed_names(missing)}; expected one row per image of the split"
            f"{_mismatch_hint(predicted_names, label_names, split)}")
    if extra:
        raise EvaluationError(
            f"{path}: {len(extra)} prediction row(s) for images not in the {split} split: "
            f"{listed_names(extra)}; remove them or pass the --split they belong to")
    return labels.join(predictions, on="Filename", how="left", suffix="_score").sort("Filename")


def _mismatch_hint(predicted: set[str], expected: set[str], split: str) -> str:
    """Suggest the likely cause when the predicted file names miss the split's images."""
    if predicted & expected:
        return ""
    if {f"{name}.png" for name in predicted} & expected:
        return " (the predictions name images without the .png extension)"
    return (f" (none of the predicted file names is a {split} image: are these predictions for "
            "another --split?)")


def _json_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    return value


def _percent(value: float) -> float:
    return float(value) * 100.0


def _write_official_csv(predictions: pl.DataFrame, path: Path) -> None:
    """Write ``Filename`` and the 17 scores in the official column order, sorted by Filename."""
    rows = predictions.sort("Filename")
    lines = [",".join(("Filename", *DEFECT_CODES))]
    columns = [rows[code].to_list() for code in DEFECT_CODES]
    for index, name in enumerate(rows["Filename"].to_list()):
        lines.append(",".join([name, *(repr(float(column[index])) for column in columns)]))
    atomic.write_text(path, "\n".join(lines) + "\n")


class SewerMLEvaluator(Evaluator):
    """``eval sewerml``: score a prediction CSV against the prepared Sewer-ML labels."""

    name: ClassVar[str] = "sewerml"
    description: ClassVar[str] = (
        "score Sewer-ML predictions (Filename + 17 class probabilities) with F2_CIW, F1_Normal "
        "and the other official metrics")
    leaderboard_metrics: ClassVar[tuple[str, ...]] = ("F2_CIW", "F1_Normal", "mAP", "MF1",
                                                      "EMAcc")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add ``--predictions``, ``--split``, ``--threshold``, ``--method`` and ``--version``."""
        parser.add_argument("--predictions", type=Path, required=True, metavar="FILE",
                            help="CSV with Filename and the 17 class probabilities, as the "
                                 "official inference.py writes it")
        parser.add_argument("--split", choices=tuple(SPLIT_FILES), default="val",
                            type=lambda name: "val" if name.lower() == "valid" else name,
                            help="split the predictions are for (default: val; 'valid' is "
                                 "accepted as in SewerML_Valid.csv); test labels are withheld, "
                                 "so test predictions are only written out")
        parser.add_argument("--threshold", type=float, default=0.5,
                            help="a class is predicted when its score is >= this value "
                                 "(default: 0.5, as in the benchmark)")
        parser.add_argument("--task", choices=SCORED_TASKS, default="defect",
                            help="task the predictions are for (default: defect, the 17 "
                                 "classes); water, shape or material take a CSV with Filename "
                                 "and one score per class of that task, as `run sewerml ctgnn` "
                                 "writes it, scored by macro and micro F1")
        parser.add_argument("--method", default=None, metavar="NAME",
                            help="name of the method in the run record (default: the "
                                 "predictions file's name without extension)")
        parser.add_argument("--version", default=None, dest="dataset_version",
                            metavar="VERSION",
                            help="dataset version (default: the dataset's default version)")

    def method_name(self, args: argparse.Namespace) -> str:
        """Return ``--method``, else the predictions file's name without extension."""
        return args.method or Path(args.predictions).stem

    def evaluate(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome:
        """Score ``--predictions`` on ``--split`` and write ``metrics.json``.

        For ``--split test`` no scores are computed: the checked predictions are written as
        ``sewerml_Test_sigmoid.csv`` for the dataset authors to score.

        Raises:
            EvaluationError: The predictions do not follow the format, or their file names do
                not match the split's images one to one.
            NotPreparedError: Sewer-ML is not prepared.
        """
        from harness.storage import read_manifest, read_prepared_table

        split = args.split
        path = Path(args.predictions)
        manifest = read_manifest("sewerml", version=getattr(args, "dataset_version", None),
                                 data_dir=ctx.data_dir)
        task = getattr(args, "task", "defect")
        if task != "defect":
            return self._evaluate_task(task, args, ctx, manifest)
        labels = pl.from_arrow(read_prepared_table(
            "sewerml", "labels", split, version=manifest.version, data_dir=ctx.data_dir,
            columns=["Filename", *DEFECT_CODES]))
        predictions = read_predictions(path)
        joined = _join(predictions, labels, split, path)
        config = {"threshold": float(args.threshold), "split": split}
        common = {"dataset": "sewerml", "method": self.method_name(args),
                  "version": manifest.version, "split": split, "data_kind": manifest.data_kind}
        ctx.output_dir.mkdir(parents=True, exist_ok=True)

        if split == "test":
            out = ctx.output_dir / f"sewerml_{SPLIT_FILES[split]}_sigmoid.csv"
            _write_official_csv(predictions, out)
            logger.warning("%s Wrote %s.", TEST_NOTE, out)
            return EvalOutcome(metrics={}, files=[out],
                               config={**config, "note": TEST_NOTE}, **common)

        targets = joined.select(DEFECT_CODES).to_numpy()
        scores = joined.select([f"{code}_score" for code in DEFECT_CODES]).to_numpy()
        results = evaluate(targets, scores, threshold=args.threshold)

        metrics_path = ctx.output_dir / METRICS_FILE
        atomic.write_json(metrics_path, {
            "split": split, "threshold": float(args.threshold), "images": joined.height,
            "columns": list(COLUMNS),
            **{key: _json_value(value) for key, value in results.items()},
        })
        from sewerml.plots import plot_per_class_f2

        plot = plot_per_class_f2(results, ctx.output_dir / "per_class_f2.png",
                                 title=f"{self.method_name(args)} on Sewer-ML {split}")
        return EvalOutcome(
            metrics={name: _percent(results[name]) for name in HEADLINE_METRICS},
            per_item=_per_class(results),
            files=[metrics_path, plot],
            config=config,
            **common,
        )

    def _evaluate_task(self, task: str, args: argparse.Namespace, ctx: RunContext,
                       manifest) -> EvalOutcome:
        """Score water-level, shape or material predictions by argmax against the labels."""
        from harness.storage import read_prepared_table

        split = args.split
        path = Path(args.predictions)
        if split == "test":
            raise EvaluationError(f"{path}: Sewer-ML test labels are withheld, so {task} "
                                  "predictions can only be scored on val or train")
        column = TASK_COLUMNS[task]
        labels = pl.from_arrow(read_prepared_table(
            "sewerml", "labels", split, version=manifest.version, data_dir=ctx.data_dir,
            columns=["Filename", column]))
        if labels[column].null_count() == labels.height:
            raise EvaluationError(f"the prepared {split} split has no {column} labels (the "
                                  f"CSVs had no {column} column), so {task} cannot be scored")
        names = TASK_CLASSES[task]
        predictions = read_predictions(path, names, probabilities=False)
        joined = _join(predictions, labels, split, path)

        values = joined[column]
        if task == "water":
            targets = bin_water_level(values.cast(pl.Float64).to_numpy())
        else:
            targets = values.cast(pl.Int64).fill_null(IGNORE_INDEX).to_numpy()
        results = multiclass_metrics(targets, joined.select(names).to_numpy(), names)

        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        metrics_path = ctx.output_dir / METRICS_FILE
        atomic.write_json(metrics_path, {"split": split, "task": task,
                                         "images": joined.height,
                                         **{key: _json_value(value)
                                            for key, value in results.items()}})
        from sewerml.plots import plot_confusion_matrix

        plot = plot_confusion_matrix(np.asarray(results["CM"]), names,
                                     ctx.output_dir / f"confusion_{task}.png",
                                     title=f"{self.method_name(args)}: {task} on {split}")
        prefix = TASK_PREFIX[task]
        per_item = {name: {"precision": _percent(results["precision"][k]),
                           "recall": _percent(results["recall"][k]),
                           "F1": _percent(results["F1"][k]),
                           "Ng": float(results["Ng"][k])}
                    for k, name in enumerate(names)}
        return EvalOutcome(
            dataset="sewerml", method=self.method_name(args),
            metrics={f"{prefix}-{name}": _percent(results[name]) for name in TASK_METRICS},
            version=manifest.version, split=split, per_item=per_item,
            data_kind=manifest.data_kind, files=[metrics_path, plot],
            config={"task": task, "split": split},
        )


def _per_class(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Return precision, recall, F1, F2 and AP (percent) and the counts of each column."""
    per_item: dict[str, dict[str, float]] = {}
    for k, column in enumerate(COLUMNS):
        values = {name: _percent(results[name][k]) for name in PER_CLASS_METRICS}
        if k < len(DEFECT_CODES):
            values["AP"] = _percent(results["AP"][k])
        for count in ("Ng", "Np", "Nc"):
            values[count] = float(results[count][k])
        per_item[column] = values
    return per_item


BENCHMARK_SOURCE = ("Haurum & Moeslund, Sewer-ML, CVPR 2021, Table 5 (Xie et al. first stage + "
                    "TResNet-L second stage)")
CTGNN_SOURCE = ("Haurum et al., CT-GNN, WACV 2022, results tables of the authors' code release "
                "(CT-GAT)")
PUBLISHED: tuple[tuple[str, str, str, dict[str, float]], ...] = (
    ("benchmark", "val", BENCHMARK_SOURCE, {"F2_CIW": 55.36, "F1_Normal": 91.32}),
    ("benchmark", "test", BENCHMARK_SOURCE, {"F2_CIW": 55.11, "F1_Normal": 90.94}),
    ("ctgnn", "val", CTGNN_SOURCE, {"F2_CIW": 61.70, "F1_Normal": 91.94, "W-MF1": 70.57,
                                    "W-mF1": 80.43}),
    ("ctgnn", "test", CTGNN_SOURCE, {"F2_CIW": 60.57, "F1_Normal": 91.61, "W-MF1": 71.30,
                                     "W-mF1": 80.91}),
)
"""Published headline numbers (percent) of the two baselines, by method and split. The CT-GNN
shape and material scores are left out: the public CSVs may not carry those labels."""


class SewerMLPlugin(DatasetPlugin):
    """Sewer-ML: 1.3 million sewer CCTV frames with 17 multi-label defect classes."""

    spec: ClassVar[DatasetSpec] = SEWERML_SPEC
    leaderboard_metrics: ClassVar[tuple[str, ...]] = (
        *SewerMLEvaluator.leaderboard_metrics, "W-MF1", "W-mF1", "S-MF1", "M-MF1", "Defect-F1")

    def read_source(self, source: Path, *, version: str | None = None) -> PreparedData:
        """Read the annotation CSVs at, below or above ``source`` and locate the images.

        Images may be in ``Train/``, ``Val/`` and ``Test/`` folders, in one flat folder or in
        the official zip archives; see :mod:`sewerml.prepare`.

        Raises:
            FileNotFoundError: No Sewer-ML annotation CSV was found.
            harness.errors.DataFormatError: A CSV does not follow the official format.
        """
        return read_sewerml_source(self.spec, source, version)

    def generate_sample(self, out_dir: Path, *, seed: int = 0) -> Path:
        """Write a small synthetic copy with ``Train/``, ``Val/`` and ``Test/`` image folders."""
        return write_sewerml_sample(out_dir, seed=seed, images_per_split=SAMPLE_IMAGES_PER_SPLIT)

    def evaluator(self) -> Evaluator:
        """Return the evaluator behind ``python -m harness eval sewerml``."""
        return SewerMLEvaluator()

    def published_results(self) -> list[PublishedResult]:
        """Return the benchmark's and CT-GAT's published scores as leaderboard reference rows."""
        return [PublishedResult(dataset="sewerml", split=split, method=method, metric=metric,
                                value=value, source=source)
                for method, split, source, numbers in PUBLISHED
                for metric, value in numbers.items()]
