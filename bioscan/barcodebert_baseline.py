"""BarcodeBERT on BIOSCAN-5M's DNA benchmarks: ``python -m harness run bioscan-5m barcodebert``.

The run mirrors BarcodeBERT's BIOSCAN-5M pipeline (GitHub ``Kari-Genomics-Lab/BarcodeBERT``:
``data/data_split.py``, ``barcodebert/pretraining.py``, ``finetuning.py``, ``knn_probing.py``,
``linear_probing.py``):

1. Data: trailing ``N`` is stripped from every barcode and only the first record of each
   distinct barcode is kept, across all partitions, as ``data_split.py`` does.
2. ``pretrain``: masked k-mer prediction on ``pretrain + other_heldout``.
3. ``finetune``: the pretrained encoder plus a linear classifier, trained end to end on the
   species of ``train`` (validation loss on ``val``), scored on ``test``.
4. ``probe``: the pretrained encoder's mean-pooled embeddings. A linear probe trained on
   ``train`` species is scored on ``test``, and 1-NN (cosine) genus classification of
   ``test_unseen`` queries against ``train`` keys is scored too.

Scoring rules: species indices are contiguous over ``train``. A ``test`` record whose species
does not occur in ``train`` counts as wrong, and so does a ``test_unseen`` record whose genus no
``train`` key has. A record without the scored label (species or genus missing) is left out of
that score. Macro accuracy is scikit-learn's ``balanced_accuracy_score``: the mean recall over
the true classes of the scored records.

This module imports nothing heavy at import time: the CLI builds its parser from it on machines
without torch.
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

from bioscan.plugin import BARCODEBERT_PUBLISHED
from harness import atomic
from harness.config import (
    add_training_arguments,
    load_preset_config,
    recorded_config,
    require_torch,
)
from harness.errors import FieldHarnessError
from harness.plugin import Baseline, EvalOutcome, RunContext

__all__ = [
    "PAPER_RESULTS",
    "PRESETS",
    "BarcodeBERTBaseline",
    "prepare_barcodes",
]

logger = logging.getLogger(__name__)

DATASET = "bioscan-5m"

PRESETS: dict[str, str] = {"paper": "barcodebert.toml", "sample": "barcodebert-sample.toml"}
"""Config presets: ``paper`` is the default, ``sample`` the short schedule used on generated
sample data."""

STAGES = ("all", "pretrain", "finetune", "probe")

DATA_SPLITS = ("pretrain", "other_heldout", "train", "val", "test", "test_unseen")
"""Partitions the run reads, in the order in which deduplication keeps the first record."""

COLUMNS = ["processid", "dna_barcode", "split", "genus", "species"]

PAPER_RESULTS: dict[str, float] = BARCODEBERT_PUBLISHED
"""BarcodeBERT "8-4-4" on BIOSCAN-5M, in percent; see
:data:`bioscan.plugin.BARCODEBERT_PUBLISHED`."""

RUNTIME_KEYS = ("device", "workers", "log_every")
"""Config keys that choose hardware or logging, left out of the recorded configuration."""

SCORES_FILE = "scores.csv"
SCORES_PLOT = "scores.png"


# --- config ------------------------------------------------------------------------------------


def _resolve_config(args: argparse.Namespace, data_kind: str) -> dict[str, Any]:
    """Return the paper config (the sample preset on sample data) with ``--set`` and device
    options applied."""
    config = load_preset_config("bioscan", PRESETS, args.config, args.overrides,
                                data_kind=data_kind, run_name="BIOSCAN-5M barcodebert")
    for key in ("device", "workers"):
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    return config


def _world_size() -> int:
    import os

    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def _stage_settings(config: Mapping[str, Any], section: str, seed: int):
    """Build the runner settings of one training stage.

    The peak learning rate is ``lr_per_64 * batch_size * world_size / 64``, the official code's
    linear scaling with the total batch size.
    """
    from harness.training import TrainSettings

    merged = {key: value for key, value in config.items() if not isinstance(value, dict)}
    merged.update(config[section])
    from bioscan.barcodebert import REFERENCE_BATCH_SIZE

    total_batch = int(merged["batch_size"]) * _world_size()
    merged["lr"] = float(merged.pop("lr_per_64")) * total_batch / REFERENCE_BATCH_SIZE
    if not merged.get("max_steps_per_epoch"):
        merged["max_steps_per_epoch"] = None
    merged["seed"] = seed
    merged["channels_last"] = False
    return TrainSettings.from_config(merged)


def _model_config(config: Mapping[str, Any]):
    from bioscan.barcodebert import BarcodeBERTConfig

    return BarcodeBERTConfig.from_mapping(config)


def _adopt_checkpoint_config(config: dict[str, Any], path: Path) -> None:
    """Set the model keys of ``config`` to those of the encoder checkpoint at ``path``.

    The official fine-tuning and probing scripts also take k, layers and heads from the
    pretrained checkpoint. A value that differs from the run's is logged.
    """
    from bioscan.barcodebert import load_encoder

    saved = load_encoder(path).config.to_dict()
    changed = {key: (config.get(key), value) for key, value in saved.items()
               if config.get(key) != value}
    if changed:
        described = ", ".join(f"{key} {old!r} -> {new!r}"
                              for key, (old, new) in changed.items())
        logger.warning("using the model settings of %s: %s", path, described)
    config.update(saved)


def _recorded_config(config: Mapping[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    recorded = recorded_config(config, RUNTIME_KEYS, args.weights)
    recorded["stage"] = args.stage
    return recorded


# --- data --------------------------------------------------------------------------------------


def prepare_barcodes(frame: pl.DataFrame) -> pl.DataFrame:
    """Strip trailing ``N`` and keep the first record of each distinct barcode.

    This is the preparation of BarcodeBERT's ``data/data_split.py``: ``str.rstrip("N")`` on
    every barcode, then ``drop_duplicates`` on the stripped barcode over all partitions at once,
    keeping the first record. Records without a barcode (null or empty) are dropped too, since
    they cannot be tokenised.

    NOTE: the official script keeps the first record in the order of the metadata CSV. The
    prepared copy stores each partition separately, so here the order is that of
    :data:`DATA_SPLITS` and, within a partition, the prepared row order. Which record of a
    duplicated barcode survives can therefore differ from the official split files.

    Args:
        frame: Records with ``dna_barcode`` and ``split`` columns.

    Returns:
        The kept records with stripped barcodes, in partition order.
    """
    from bioscan.dna import strip_trailing_n

    order = {name: position for position, name in enumerate(DATA_SPLITS)}
    ranked = frame.with_columns(
        pl.col("split").replace_strict(order, default=len(order), return_dtype=pl.Int64)
        .alias("_split_rank"))
    ranked = ranked.with_row_index("_row").sort(["_split_rank", "_row"])
    stripped = ranked.with_columns(strip_trailing_n(ranked["dna_barcode"]).alias("dna_barcode"))
    kept = stripped.filter(pl.col("dna_barcode").is_not_null() & (pl.col("dna_barcode") != ""))
    kept = kept.unique(subset="dna_barcode", keep="first", maintain_order=True)
    dropped = frame.height - kept.height
    logger.info("kept %d of %d records with a distinct barcode (%d duplicates or empty)",
                kept.height, frame.height, dropped)
    return kept.drop("_split_rank", "_row")


def _load_records(args: argparse.Namespace, ctx: RunContext) -> pl.DataFrame:
    from harness.loading import load_dataset

    frames = []
    for split in DATA_SPLITS:
        frame = load_dataset(DATASET, split=split, format="polars", columns=COLUMNS,
                             version=args.dataset_version, data_dir=ctx.data_dir)
        frames.append(frame.select(COLUMNS).with_columns(pl.col(c).cast(pl.String)
                                                         for c in COLUMNS))
    return prepare_barcodes(pl.concat(frames))


def _labelled(frame: pl.DataFrame, rank: str) -> pl.DataFrame:
    """Return the records whose ``rank`` label is present (not null, not empty)."""
    return frame.filter(pl.col(rank).is_not_null() & (pl.col(rank) != ""))


def _split(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    return frame.filter(pl.col("split") == name)


# --- outputs -----------------------------------------------------------------------------------


def _write_scores(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write one row per score: task, metric, split, value (percent), count, paper value."""
    buffer = io.StringIO()
    fields = ["metric", "task", "split", "value", "count", "paper_value"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row.get(key, "") for key in fields})
    atomic.write_text(path, buffer.getvalue())
    return path


def _plot_scores(path: Path, metrics: Mapping[str, float], title: str) -> Path:
    """Draw the run's accuracies next to the published BarcodeBERT 8-4-4 values."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(metrics)
    ours = [metrics[name] for name in names]
    paper = [PAPER_RESULTS.get(name, np.nan) for name in names]
    figure = Figure(figsize=(8, 0.6 * len(names) + 2.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = np.arange(len(names))
    axes.barh(positions - 0.2, ours, height=0.4, label="this run")
    axes.barh(positions + 0.2, paper, height=0.4, label="BarcodeBERT 8-4-4 (published)")
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("accuracy (%)")
    axes.set_title(title)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2)
    figure.tight_layout()
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def _percent(value: float) -> float:
    return round(float(value) * 100.0, 6)


# --- the baseline ------------------------------------------------------------------------------


class BarcodeBERTBaseline(Baseline):
    """BarcodeBERT: a BERT encoder over non-overlapping DNA k-mers, pretrained by masking.

    Millan Arias et al., "BarcodeBERT: Transformers for Biodiversity Analysis",
    *Bioinformatics Advances* 2026; the BIOSCAN-5M "8-4-4" model (k-mer 8, 4 layers, 4 heads).
    """

    dataset: ClassVar[str] = DATASET
    name: ClassVar[str] = "barcodebert"
    description: ClassVar[str] = (
        "BarcodeBERT 8-4-4: masked k-mer pretraining on pretrain+other_heldout, species "
        "fine-tuning and linear probe on train/test, 1-NN genus accuracy on test_unseen")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the training options, ``--stage`` and ``--version``."""
        add_training_arguments(parser, presets=tuple(PRESETS))
        parser.add_argument(
            "--stage", choices=STAGES, default="all",
            help="all (default): pretrain, then fine-tune and probe the pretrained encoder; "
                 "pretrain: pretraining only; finetune or probe: that stage alone, from the "
                 "encoder checkpoint given with --weights")
        parser.add_argument("--version", default=None, dest="dataset_version", metavar="VERSION",
                            help="prepared BIOSCAN-5M version (default: the dataset's default)")

    def run(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome | None:
        """Run the chosen stages and score them.

        ``--weights`` names an encoder checkpoint (``encoder.pt``, see
        :func:`bioscan.barcodebert.save_encoder`). With ``--stage all`` or ``pretrain`` it is
        the starting point of pretraining; ``finetune`` and ``probe`` need it and use it as the
        pretrained encoder.

        Raises:
            MissingDependencyError: PyTorch is not installed.
            NotPreparedError: BIOSCAN-5M is not prepared.
            FieldHarnessError: ``--stage finetune`` or ``probe`` without ``--weights``, or a
                ``--resume`` that names a file while several stages train.
        """
        require_torch("training BarcodeBERT")
        from harness.storage import read_manifest
        from harness.training import is_main_process

        if args.stage in ("finetune", "probe") and args.weights is None:
            raise FieldHarnessError(
                f"--stage {args.stage} needs --weights PATH, an encoder.pt written by a "
                "pretraining run (for example RUN/pretrain/encoder.pt)")
        if args.stage == "all" and args.resume not in (None, "last"):
            raise FieldHarnessError("--stage all resumes each stage from its own folder: pass "
                                    "--resume without a file, or --stage with one stage")
        manifest = read_manifest(DATASET, version=args.dataset_version, data_dir=ctx.data_dir)
        config = _resolve_config(args, manifest.data_kind)
        if args.weights is not None:
            _adopt_checkpoint_config(config, Path(args.weights))
        model_config = _model_config(config)
        records = _load_records(args, ctx)

        files: list[Path] = []
        encoder_path = None if args.weights is None else Path(args.weights)
        # Fine-tuning starts from the pretrained encoder in memory, so that every process of a
        # distributed run has it without waiting for rank 0 to write encoder.pt.
        encoder = encoder_path
        if args.stage in ("all", "pretrain"):
            encoder, encoder_path, stage_files = self._pretrain(records, config, model_config,
                                                                args, ctx, encoder_path)
            files += stage_files
        finetuned = None
        if args.stage in ("all", "finetune"):
            finetuned, stage_files = self._finetune(records, config, model_config, args, ctx,
                                                    encoder)
            files += stage_files
        if not is_main_process():
            return None  # a secondary process of a distributed run: rank 0 scores

        rows: list[dict[str, Any]] = []
        if finetuned is not None:
            rows += self._score_finetuned(records, config, finetuned, ctx, files)
        if args.stage in ("all", "probe"):
            rows += self._probe(records, config, encoder_path, ctx)
        return self._outcome(rows, config, args, ctx, manifest, files)

    # --- stages ---

    @staticmethod
    def _stage_dir(ctx: RunContext, stage: str) -> Path:
        folder = ctx.output_dir / stage
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @staticmethod
    def _resume(args: argparse.Namespace, folder: Path, stage: str):
        resume = args.resume
        if resume == "last" and not (folder / "checkpoints" / "last.pt").is_file():
            logger.info("%s stage has no checkpoint in %s yet; training it from the start",
                        stage, folder)
            return None
        return resume

    def _pretrain(self, records, config, model_config, args, ctx, init_encoder):
        from bioscan.barcodebert import pretrain

        sequences = records.filter(pl.col("split").is_in(["pretrain", "other_heldout"]))
        if sequences.height == 0:
            raise FieldHarnessError("the prepared BIOSCAN-5M copy has no pretrain or "
                                    "other_heldout barcode; prepare the full metadata file")
        folder = self._stage_dir(ctx, "pretrain")
        settings = _stage_settings(config, "pretrain", ctx.seed)
        model, result, encoder_path = pretrain(
            sequences["dna_barcode"], model_config, settings, folder,
            mask_ratio=float(config["mask_ratio"]), resume=self._resume(args, folder, "pretrain"),
            init_encoder=init_encoder, seed=ctx.seed)
        return model.encoder, encoder_path, [*result.files, encoder_path]

    def _finetune(self, records, config, model_config, args, ctx, encoder):
        from bioscan.barcodebert import finetune
        from bioscan.labels import Vocabulary

        train = _labelled(_split(records, "train"), "species")
        if train.height == 0:
            raise FieldHarnessError("the prepared BIOSCAN-5M copy has no train barcode with a "
                                    "species label; fine-tuning needs some")
        vocabulary = Vocabulary.contiguous(train, "species", "train")
        val = _split(records, "val").filter(pl.col("species").is_in(list(vocabulary.labels)))
        folder = self._stage_dir(ctx, "finetune")
        settings = _stage_settings(config, "finetune", ctx.seed)
        model, result = finetune(
            train["dna_barcode"], vocabulary.encode(train).to_numpy(), vocabulary.num_classes,
            model_config, settings, folder, init_encoder=encoder,
            val_sequences=val["dna_barcode"], val_targets=vocabulary.encode(val).to_numpy(),
            resume=self._resume(args, folder, "finetune"), seed=ctx.seed)
        return (model, vocabulary, settings), list(result.files)

    def _score_finetuned(self, records, config, finetuned, ctx, files) -> list[dict[str, Any]]:
        from bioscan.barcodebert import predict_classes
        from bioscan.probes import score_predictions

        model, vocabulary, settings = finetuned
        test = _labelled(_split(records, "test"), "species")
        if test.height == 0:
            logger.warning("no test barcode has a species label, so the fine-tuned model is not "
                           "scored")
            return []
        predicted = np.asarray(vocabulary.index2label(
            predict_classes(model, test["dna_barcode"], settings)), dtype=object)
        truth = test["species"].to_numpy().astype(object)
        score = score_predictions(truth, predicted)
        unseen = int((~test["species"].is_in(list(vocabulary.labels))).sum())
        if unseen:
            logger.warning("%d test records have a species absent from train; they count as "
                           "wrong", unseen)
        path = ctx.output_dir / "finetune" / "test_species_predictions.csv"
        frame = pl.DataFrame({"processid": test["processid"], "species": test["species"],
                              "predicted_species": pl.Series(list(predicted), dtype=pl.String)})
        atomic.write_text(path, frame.write_csv())
        files.append(path)
        task = "fine-tuned species classification"
        return [
            {"metric": "species_accuracy_finetuned", "task": task, "split": "test",
             "value": _percent(score.accuracy), "count": score.count},
            {"metric": "species_balanced_accuracy_finetuned", "task": task, "split": "test",
             "value": _percent(score.balanced_accuracy), "count": score.count},
        ]

    def _probe(self, records, config, encoder_path, ctx) -> list[dict[str, Any]]:
        from bioscan.barcodebert import embed, load_encoder
        from bioscan.probes import knn_accuracy, linear_probe
        from harness.training import TrainSettings

        probe = config["probe"]
        encoder = load_encoder(encoder_path)
        settings = TrainSettings(batch_size=int(probe["embed_batch_size"]),
                                 device=config["device"], workers=int(config["workers"]),
                                 precision="fp32", channels_last=False)
        train = _split(records, "train")
        test = _labelled(_split(records, "test"), "species")
        unseen = _labelled(_split(records, "test_unseen"), "genus")
        rows: list[dict[str, Any]] = []
        if train.height == 0:
            logger.warning("no train barcode, so the probes are not scored")
            return rows
        train_embeddings = embed(encoder, train["dna_barcode"], settings)

        train_species = train["species"].is_not_null() & (train["species"] != "")
        if test.height and bool(train_species.any()):
            embeddings = embed(encoder, test["dna_barcode"], settings)
            score = linear_probe(
                train_embeddings[train_species.to_numpy()],
                train.filter(train_species)["species"].to_numpy().astype(object),
                embeddings, test["species"].to_numpy().astype(object),
                epochs=int(probe["linear_epochs"]), lr=float(probe["linear_lr"]),
                momentum=float(probe["linear_momentum"]),
                weight_decay=float(probe["linear_weight_decay"]),
                batch_size=int(probe["linear_batch_size"]), seed=ctx.seed,
                device=config["device"])
            task = "linear probe, species"
            rows += [
                {"metric": "species_accuracy_linear_probe", "task": task, "split": "test",
                 "value": _percent(score.accuracy), "count": score.count},
                {"metric": "species_balanced_accuracy_linear_probe", "task": task,
                 "split": "test", "value": _percent(score.balanced_accuracy),
                 "count": score.count},
            ]

        train_genus = train["genus"].is_not_null() & (train["genus"] != "")
        if unseen.height and bool(train_genus.any()):
            embeddings = embed(encoder, unseen["dna_barcode"], settings)
            score = knn_accuracy(
                embeddings, unseen["genus"].to_numpy().astype(object),
                train_embeddings[train_genus.to_numpy()],
                train.filter(train_genus)["genus"].to_numpy().astype(object),
                metric=str(probe["knn_metric"]), k=int(probe["knn_neighbors"]))
            task = f"{int(probe['knn_neighbors'])}-NN genus of unseen species"
            rows += [
                {"metric": "genus_accuracy_1nn_unseen", "task": task, "split": "test_unseen",
                 "value": _percent(score.accuracy), "count": score.count},
                {"metric": "genus_balanced_accuracy_1nn_unseen", "task": task,
                 "split": "test_unseen", "value": _percent(score.balanced_accuracy),
                 "count": score.count},
            ]
        return rows

    def _outcome(self, rows, config, args, ctx, manifest, files) -> EvalOutcome:
        for row in rows:
            row["paper_value"] = PAPER_RESULTS.get(row["metric"], "")
        metrics = {row["metric"]: float(row["value"]) for row in rows}
        per_item = {row["metric"]: {"count": float(row["count"])} for row in rows}
        files.append(_write_scores(ctx.output_dir / SCORES_FILE, rows))
        if metrics:
            files.append(_plot_scores(ctx.output_dir / SCORES_PLOT, metrics,
                                      f"BarcodeBERT on BIOSCAN-5M ({manifest.data_kind} data)"))
        method = self.name if args.stage == "all" else f"{self.name}-{args.stage}"
        return EvalOutcome(dataset=DATASET, method=method, metrics=metrics,
                           version=manifest.version, split="test", per_item=per_item,
                           data_kind=manifest.data_kind, files=files,
                           config=_recorded_config(config, args))
