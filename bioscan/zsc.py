"""BIOSCAN-5M zero-shot clustering: ``python -m harness run bioscan-5m zsc``.

This is task II of the BIOSCAN-5M paper (Gharaee et al., 2024). A frozen encoder embeds the
records of ``test`` and ``test_unseen``, and UMAP reduces the embeddings to 50 dimensions.
Ward's method clusters them into as many clusters as there are species, and AMI scores the
clusters against the labels of every rank from class to species and the BIN.
The pipeline is in :mod:`bioscan.clustering` and the encoders are in :mod:`bioscan.encoders`.

Scores are in percent, as the paper's figures show them. Nothing is trained, so there is no
TOML config: every setting is a command-line option and is recorded with the run.

This module imports neither torch nor umap-learn at import time: the CLI builds its parser
from it on machines without them, and the k-mer and file encoders run without torch.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from bioscan.clustering import (
    PRENORMS,
    SCORED_RANKS,
    ClusteringResult,
    cluster_and_score,
    plot_ami_per_rank,
)
from bioscan.dna import MAX_NUCLEOTIDES, deduplicate_barcodes, truncate
from bioscan.encoders import DEFAULT_K
from harness import atomic
from harness.config import non_negative_int, parse_device, positive_int
from harness.errors import FieldHarnessError
from harness.plugin import Baseline, EvalOutcome, RunContext

__all__ = ["ENCODERS", "ZeroShotClusteringBaseline", "metric_name"]

logger = logging.getLogger(__name__)

DATASET = "bioscan-5m"
ENCODERS = ("kmer", "image", "barcodebert", "file")
DEFAULT_SPLIT = "test+test_unseen"
TARGET_RANK = "species"

EMBEDDINGS_FILE = "embeddings.npz"
AMI_FILE = "ami.csv"
CLUSTERS_FILE = "clusters.csv"
PLOT_FILE = "ami_per_rank.png"


def metric_name(rank: str) -> str:
    """Return the run-record metric of a rank: ``ami_species``, …, ``ami_bin`` for dna_bin."""
    return "ami_bin" if rank == "dna_bin" else f"ami_{rank}"


def _percent(value: float) -> float:
    # Adding 0.0 turns the -0.0 of a slightly negative AMI into 0.0.
    return round(float(value) * 100.0, 10) + 0.0


class ZeroShotClusteringBaseline(Baseline):
    """Zero-shot clustering of frozen embeddings, scored by AMI per taxonomic rank."""

    dataset: ClassVar[str] = DATASET
    name: ClassVar[str] = "zsc"
    description: ClassVar[str] = (
        "zero-shot clustering (BIOSCAN-5M paper): frozen encoder, UMAP to 50 dimensions, Ward "
        "clustering into as many clusters as species, AMI in percent per rank")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the encoder, clustering and data options."""
        encoder = parser.add_argument_group("encoder")
        encoder.add_argument(
            "--encoder", choices=ENCODERS, default="kmer",
            help="kmer: k-mer frequencies of the DNA barcodes; image: a torchvision model on the "
                 "images; barcodebert: a DNA transformer checkpoint (--weights); file: "
                 "embeddings read from --embeddings (default: kmer)")
        encoder.add_argument("--model", default="resnet50", metavar="NAME",
                             help="torchvision classification model of the image encoder "
                                  "(default: resnet50)")
        encoder.add_argument(
            "--weights", default=None, metavar="PATH",
            help="image encoder: a local checkpoint (a torchvision state dict works) or a "
                 "torchvision weights name such as DEFAULT; random weights when omitted. "
                 "barcodebert: the encoder checkpoint (required)")
        encoder.add_argument("--embeddings", type=Path, default=None, metavar="FILE",
                             help="file encoder: .npz (arrays embeddings and processid), .npy in "
                                  "record order, or Parquet/CSV with a processid column")
        encoder.add_argument("--k", type=positive_int, default=DEFAULT_K,
                             help=f"k-mer length of the kmer encoder (default: {DEFAULT_K})")
        encoder.add_argument("--batch-size", type=positive_int, default=64, metavar="N",
                             help="images or barcodes per forward pass (default: 64)")
        encoder.add_argument("--device", type=parse_device, default="auto",
                             help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N "
                                  "(default: auto)")
        encoder.add_argument("--workers", type=non_negative_int, default=0, metavar="N",
                             help="DataLoader worker processes of the image encoder; 0 loads "
                                  "in the main process (default: 0)")

        clustering = parser.add_argument_group("clustering")
        clustering.add_argument("--no-umap", action="store_true",
                                help="cluster the embeddings directly, without UMAP")
        clustering.add_argument("--umap-components", type=positive_int, default=50,
                                metavar="N", help="UMAP output dimensions (default: 50)")
        clustering.add_argument("--umap-neighbors", type=positive_int, default=30,
                                metavar="N", help="UMAP neighbours (default: 30)")
        clustering.add_argument("--prenorm", choices=PRENORMS, default="none",
                                help="normalisation of the embeddings before UMAP: none, l2 "
                                     "(per record) or elementwise_zscore (per dimension) "
                                     "(default: none)")
        clustering.add_argument(
            "--exclude-missing", action="store_true",
            help="leave out records without a label: records without a species are not "
                 "clustered, and each rank is scored on its labelled records (default: a "
                 "missing label counts as one more class, as in the official code)")

        data = parser.add_argument_group("data")
        data.add_argument("--split", default=DEFAULT_SPLIT,
                          help=f"records to cluster: a split or a '+' union "
                               f"(default: {DEFAULT_SPLIT})")
        data.add_argument("--dedup-barcodes", action="store_true",
                          help="keep one record per distinct barcode (barcodes cut to 660 "
                               "nucleotides, trailing N stripped), the paper's "
                               "bioscan5m_per-barcode-dedupNs-660 variant")
        data.add_argument("--version", default=None, dest="dataset_version", metavar="VERSION",
                          help="prepared BIOSCAN-5M version (default: the dataset's default)")

    # --- run ----------------------------------------------------------------------------------

    def run(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome:
        """Embed the records, cluster them and score the clusters at every rank.

        Raises:
            NotPreparedError: BIOSCAN-5M is not prepared.
            MissingDependencyError: torch (image, barcodebert) or umap-learn (without
                ``--no-umap``) is not installed.
            FieldHarnessError: Invalid options, or too few records for the clustering.
            DataFormatError: An invalid embeddings file.
        """
        from harness.storage import read_manifest

        _check_options(args)
        manifest = read_manifest(DATASET, version=args.dataset_version, data_dir=ctx.data_dir)
        records = self._records(args, ctx)
        encoder_settings = _encoder_settings(args)
        embeddings, records = self._embeddings(args, ctx, records, encoder_settings)

        umap_components, umap_neighbors = _umap_size(args, records.height,
                                                     manifest.data_kind)
        result = cluster_and_score(
            embeddings, records, target_rank=TARGET_RANK, ranks=SCORED_RANKS,
            missing="exclude" if args.exclude_missing else "own_class", prenorm=args.prenorm,
            use_umap=not args.no_umap, n_components=umap_components,
            n_neighbors=umap_neighbors, seed=ctx.seed)

        files = [ctx.output_dir / EMBEDDINGS_FILE]
        files.append(_write_ami_csv(ctx.output_dir / AMI_FILE, result))
        files.append(_write_clusters_csv(ctx.output_dir / CLUSTERS_FILE, records, result))
        files.append(plot_ami_per_rank(
            {_encoder_label(encoder_settings): result}, ctx.output_dir / PLOT_FILE,
            title=f"Zero-shot clustering on BIOSCAN-5M {args.split}"))

        metrics = {metric_name(rank): _percent(score.ami)
                   for rank, score in result.scores.items()}
        config: dict[str, Any] = {**encoder_settings, **result.settings,
                                  "dedup_barcodes": bool(args.dedup_barcodes)}
        logger.info("clustered %d records into %d clusters", int(result.clustered.sum()),
                    result.n_clusters)
        return EvalOutcome(dataset=DATASET, method=self.name, metrics=metrics,
                           version=manifest.version, split=args.split,
                           data_kind=manifest.data_kind, files=files, config=config)

    @staticmethod
    def _records(args: argparse.Namespace, ctx: RunContext) -> pl.DataFrame:
        """Load the records of ``--split``, one per distinct barcode with ``--dedup-barcodes``.

        The records are sorted by processid, the order in which the official code embeds and
        clusters them. Seeded UMAP and ties in Ward clustering depend on the record order.
        """
        from harness.loading import load_dataset

        records = load_dataset(DATASET, split=args.split, format="polars",
                               version=args.dataset_version, data_dir=ctx.data_dir)
        if args.dedup_barcodes:
            before = records.height
            records = deduplicate_barcodes(records, max_nucleotides=MAX_NUCLEOTIDES)
            logger.info("kept %d of %d records with distinct barcodes", records.height, before)
        if records.height == 0:
            raise FieldHarnessError(f"BIOSCAN-5M split {args.split!r} has no records")
        return records.sort("processid")

    def _embeddings(self, args: argparse.Namespace, ctx: RunContext, records: pl.DataFrame,
                    settings: dict[str, Any]) -> tuple[np.ndarray, pl.DataFrame]:
        """Return the embeddings and the records they belong to, cached in the output folder.

        The image encoder leaves out records without an image, so it returns fewer records.
        """
        from bioscan import encoders

        cache = ctx.output_dir / EMBEDDINGS_FILE
        if args.encoder == "image":
            dataset = _image_dataset(records, args, ctx)
            records = dataset.frame
        processids = records["processid"].to_list()
        cached = _read_cache(cache, processids, settings)
        if cached is not None:
            return cached, records

        if args.encoder == "kmer":
            barcodes = truncate(records["dna_barcode"], MAX_NUCLEOTIDES)
            embeddings = encoders.kmer_frequency_encoder(barcodes, args.k)
        elif args.encoder == "barcodebert":
            embeddings = encoders.barcodebert_encoder(args.weights, records["dna_barcode"],
                                                      batch_size=args.batch_size,
                                                      device=args.device)
        elif args.encoder == "file":
            embeddings = encoders.read_embeddings_file(args.embeddings, processids)
        else:
            embeddings = encoders.torchvision_image_encoder(
                args.model, dataset, args.weights, batch_size=args.batch_size,
                device=args.device, workers=args.workers, seed=ctx.seed)
        _write_cache(cache, embeddings, processids, settings)
        return embeddings, records


# --- options -----------------------------------------------------------------------------------


def _check_options(args: argparse.Namespace) -> None:
    if args.encoder == "file" and args.embeddings is None:
        raise FieldHarnessError("--encoder file needs --embeddings FILE")
    if args.encoder != "file" and args.embeddings is not None:
        raise FieldHarnessError(f"--embeddings is read by --encoder file only, not by "
                                f"--encoder {args.encoder}")
    if args.encoder == "barcodebert" and args.weights is None:
        raise FieldHarnessError("--encoder barcodebert needs --weights CHECKPOINT, an encoder "
                                "checkpoint of bioscan.barcodebert")
    if args.encoder in ("kmer", "file") and args.weights is not None:
        raise FieldHarnessError(f"--weights is not used by --encoder {args.encoder}")


def _encoder_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Return the settings that define the embeddings, for the record and the cache."""
    settings: dict[str, Any] = {"encoder": args.encoder}
    if args.encoder == "kmer":
        settings.update({"k": args.k, "max_nucleotides": MAX_NUCLEOTIDES})
    elif args.encoder == "image":
        settings.update({"model": args.model, "image_size": 224,
                         "normalization": "imagenet"})
        settings["weights"] = _weights_name(args.weights)
        if args.weights is None:
            settings["random_weights_seed"] = getattr(args, "seed", 0)
    elif args.encoder == "barcodebert":
        settings["weights"] = _weights_name(args.weights)
    else:
        settings["embeddings"] = str(Path(args.embeddings).resolve())
    return settings


def _weights_name(weights: str | None) -> str | None:
    """Return a weights file as an absolute path, or a torchvision weights name as it is."""
    if weights is None:
        return None
    path = Path(weights)
    return str(path.resolve()) if path.exists() else weights


def _encoder_label(settings: dict[str, Any]) -> str:
    if settings["encoder"] == "kmer":
        return f"{settings['k']}-mer frequencies"
    if settings["encoder"] == "image":
        return settings["model"]
    if settings["encoder"] == "barcodebert":
        return "DNA transformer"
    return Path(settings["embeddings"]).name


def _umap_size(args: argparse.Namespace, records: int, data_kind: str) -> tuple[int, int]:
    """Return UMAP's dimensions and neighbours, shrunk to fit a small generated sample.

    UMAP needs more records than neighbours and than dimensions + 1; a real copy with too few
    records keeps the requested values and fails in :func:`bioscan.clustering.reduce_umap`.
    """
    components, neighbors = args.umap_components, args.umap_neighbors
    if args.no_umap or data_kind != "sample":
        return components, neighbors
    fitted_neighbors = max(2, min(neighbors, records - 1))
    fitted_components = max(1, min(components, records - 2))
    if (fitted_components, fitted_neighbors) != (components, neighbors):
        logger.warning("The prepared BIOSCAN-5M copy is generated sample data with %d records, "
                       "so UMAP uses %d dimensions and %d neighbours instead of %d and %d.",
                       records, fitted_components, fitted_neighbors, components, neighbors)
    return fitted_components, fitted_neighbors


def _image_dataset(records: pl.DataFrame, args: argparse.Namespace, ctx: RunContext):
    """Open the images of ``records`` with the zero-shot clustering transform."""
    from bioscan.encoders import _require_torch, zsc_image_transform

    _require_torch("the image encoder")
    from bioscan.torchdata import BIOSCANDataset

    return BIOSCANDataset(DATASET, split=args.split, modalities=("image",), target_rank=None,
                          transform=zsc_image_transform(DATASET), frame=records,
                          version=args.dataset_version, data_dir=ctx.data_dir)


# --- cache and result files --------------------------------------------------------------------


def _read_cache(path: Path, processids: list[str],
                settings: dict[str, Any]) -> np.ndarray | None:
    """Return cached embeddings when the file matches the records and encoder settings."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            cached_settings = json.loads(str(archive["encoder"]))
            cached_ids = archive["processid"].tolist()
            embeddings = archive["embeddings"]
    except (OSError, ValueError, KeyError) as error:
        logger.warning("ignoring the unreadable embeddings cache %s (%s)", path, error)
        return None
    if cached_settings != settings or cached_ids != processids:
        logger.info("the embeddings cache %s belongs to other records or settings; "
                    "embedding again", path)
        return None
    logger.info("using the cached embeddings in %s", path)
    return embeddings


def _write_cache(path: Path, embeddings: np.ndarray, processids: list[str],
                 settings: dict[str, Any]) -> None:
    # Through a handle, because np.savez appends ".npz" to a path that lacks it.
    with atomic.atomic_path(path, suffix=".npz") as tmp, tmp.open("wb") as handle:
        np.savez(handle, embeddings=embeddings, processid=np.asarray(processids, dtype=str),
                 encoder=np.asarray(json.dumps(settings, sort_keys=True)))


def _write_ami_csv(path: Path, result: ClusteringResult) -> Path:
    """Write one row per rank: AMI in percent, records scored, true classes, missing labels."""
    rows = [{"rank": score.rank, "ami": _percent(score.ami), "records": score.records,
             "true_classes": score.classes, "missing_labels": score.missing}
            for score in result.scores.values()]
    with atomic.atomic_path(path, suffix=".csv") as tmp:
        pl.DataFrame(rows).write_csv(tmp, float_precision=4)
    return path


def _write_clusters_csv(path: Path, records: pl.DataFrame, result: ClusteringResult) -> Path:
    """Write the cluster of every record; -1 marks a record left out of the clustering."""
    clusters = np.full(records.height, -1, dtype=np.int64)
    clusters[result.clustered] = result.predicted
    frame = records.select("processid", "split", TARGET_RANK).with_columns(
        pl.Series("cluster", clusters))
    with atomic.atomic_path(path, suffix=".csv") as tmp:
        frame.write_csv(tmp)
    return path
