"""Zero-shot clustering of frozen embeddings, scored by AMI at every taxonomic rank.

The pipeline follows the zero-shot clustering benchmark of BIOSCAN-5M (Gharaee et al., 2024),
whose code is ``zs-ssl-clustering`` (github.com/scottclowe/zs-ssl-clustering, ``cluster.py``):

1. optional pre-normalisation of the embeddings (none by default);
2. UMAP to 50 dimensions with 30 neighbours, ``min_dist`` 0, euclidean metric and seed 0;
3. agglomerative clustering with Ward linkage into as many clusters as there are true species;
4. scikit-learn's ``adjusted_mutual_info_score`` of that one clustering against the labels of
   every rank from class to species and the BIN.

The official code gives a missing label the code -1, so all records without a label at a rank
form one class there. ``missing="own_class"`` (the default) does the same, while
``missing="exclude"`` leaves such records out.

Nothing here imports torch. umap-learn is needed only by :func:`reduce_umap`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from harness import atomic
from harness.errors import (
    DataFormatError,
    FieldHarnessError,
    MissingDependencyError,
    UnknownNameError,
)

__all__ = [
    "MISSING_MODES",
    "PRENORMS",
    "SCORED_RANKS",
    "ClusteringResult",
    "RankScore",
    "ami_per_rank",
    "cluster_and_score",
    "cluster_ward",
    "label_codes",
    "plot_ami_per_rank",
    "prenormalize",
    "reduce_umap",
]

logger = logging.getLogger(__name__)

#: Label columns scored, from the most general rank to the BIN, as in the BIOSCAN-5M figures.
SCORED_RANKS = ("class", "order", "family", "subfamily", "genus", "species", "dna_bin")

#: Treatments of records without a label: one more class, or left out.
MISSING_MODES = ("own_class", "exclude")

#: Pre-normalisations of the embeddings before UMAP or clustering.
PRENORMS = ("none", "l2", "elementwise_zscore")

RANK_TITLES = {"dna_bin": "BIN"}
"""Axis labels of the plot where they differ from the column name."""


@dataclass(frozen=True)
class RankScore:
    """The AMI of one clustering against the labels of one rank.

    Attributes:
        rank: Label column, e.g. ``"genus"`` or ``"dna_bin"``.
        ami: Adjusted mutual information as a fraction (1 is a perfect match); NaN when no
            record has a label there with ``missing="exclude"``.
        records: Records scored.
        classes: Distinct true labels among those records; with ``missing="own_class"`` the
            missing label counts as one of them.
        missing: Records without a label at this rank, scored or not.
    """

    rank: str
    ami: float
    records: int
    classes: int
    missing: int


@dataclass
class ClusteringResult:
    """The clusters of one run and their scores.

    Attributes:
        predicted: Cluster index per clustered record, in record order.
        clustered: Boolean mask over the input records: ``True`` for the records that were
            clustered (all of them unless ``missing="exclude"`` dropped records without a target
            label).
        n_clusters: Number of clusters requested from Ward clustering.
        scores: Rank name to its score, in the order of ``ranks``.
        settings: The pipeline settings, for the run record.
    """

    predicted: np.ndarray
    clustered: np.ndarray
    n_clusters: int
    scores: dict[str, RankScore]
    settings: dict[str, Any] = field(default_factory=dict)


# --- input checks ------------------------------------------------------------------------------


def _check_embeddings(embeddings: Any, name: str = "embeddings") -> np.ndarray:
    array = np.asarray(embeddings)
    if array.ndim != 2:
        raise FieldHarnessError(f"{name} must be a 2-D array [records, dimensions], not an array "
                                f"of shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise FieldHarnessError(f"{name} must be real numbers, not dtype {array.dtype}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise FieldHarnessError(f"{name} is empty (shape {array.shape}); expected at least one "
                                "record and one dimension")
    finite = np.isfinite(array)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        count = int((~finite.all(axis=1)).sum())
        raise FieldHarnessError(
            f"{name} contains NaN or infinite values in {count} records (first: record {row}, "
            f"dimension {column}, value {array[row, column]!r}); check the encoder output")
    return array


def _check_choice(kind: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise UnknownNameError(kind, value, valid)


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise FieldHarnessError(f"{name} must be an integer >= 1, not {value!r}")
    return int(value)


# --- steps -------------------------------------------------------------------------------------


def prenormalize(embeddings: np.ndarray, method: str = "none") -> np.ndarray:
    """Normalise the embeddings before reduction and clustering.

    Args:
        embeddings: Array ``[N, D]``.
        method: ``"none"``, ``"l2"`` (each record to unit euclidean length) or
            ``"elementwise_zscore"`` (each dimension to zero mean and unit variance over the
            records, so a constant dimension becomes 0). The official code z-scores each
            modality this way before concatenating image and DNA embeddings.

    Returns:
        The input itself for ``"none"``, so UMAP gets the encoder's dtype as in the official
        code. Otherwise a new float64 array of the same shape.

    Raises:
        UnknownNameError: An unknown ``method``.
        FieldHarnessError: Invalid embeddings (see :func:`cluster_and_score`).
    """
    _check_choice("pre-normalisation", method, PRENORMS)
    array = _check_embeddings(embeddings)
    if method == "none":
        return array
    array = array.astype(np.float64)
    if method == "l2":
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        return np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)
    std = array.std(axis=0, keepdims=True)
    centred = array - array.mean(axis=0, keepdims=True)
    return np.divide(centred, std, out=np.zeros_like(array), where=std > 0)


def reduce_umap(
    embeddings: np.ndarray,
    n_components: int = 50,
    n_neighbors: int = 30,
    min_dist: float = 0.0,
    metric: str = "euclidean",
    seed: int = 0,
) -> np.ndarray:
    """Reduce the embeddings with UMAP, the settings of the BIOSCAN-5M benchmark by default.

    With a seed, umap-learn runs single-threaded, so the same input and seed give the same
    output on one machine.

    Args:
        embeddings: Array ``[N, D]``.
        n_components: Output dimensions.
        n_neighbors: Size of the local neighbourhood UMAP preserves.
        min_dist: Minimum distance of points in the output space.
        metric: Distance metric of the input space, any metric umap-learn accepts.
        seed: ``random_state`` of UMAP.

    Returns:
        float32 array ``[N, n_components]``.

    Raises:
        MissingDependencyError: umap-learn is not installed.
        FieldHarnessError: Invalid embeddings, or fewer than ``n_neighbors + 1`` or
            ``n_components + 2`` records.
    """
    array = _check_embeddings(embeddings)
    n_components = _check_positive_int("n_components", n_components)
    n_neighbors = _check_positive_int("n_neighbors", n_neighbors)
    if n_neighbors < 2:
        raise FieldHarnessError(f"n_neighbors must be at least 2, not {n_neighbors}")
    records = array.shape[0]
    needed = max(n_neighbors + 1, n_components + 2)
    if records < needed:
        raise FieldHarnessError(
            f"UMAP to {n_components} dimensions with {n_neighbors} neighbours needs at least "
            f"{needed} records, but there are {records}; cluster without UMAP, or lower the "
            "UMAP dimensions and neighbours")
    try:
        import umap
    except ImportError:
        raise MissingDependencyError(
            "UMAP reduction needs umap-learn, which is not installed; install it with: pip "
            "install 'fieldharness[train]', or cluster without UMAP") from None

    reducer = umap.UMAP(n_components=n_components, n_neighbors=n_neighbors, min_dist=min_dist,
                        metric=metric, random_state=seed, n_jobs=1)
    logger.info("UMAP: %d records, %d to %d dimensions, %d neighbours", records, array.shape[1],
                n_components, n_neighbors)
    with warnings.catch_warnings():
        # umap-learn warns on every seeded run that the seed makes it single-threaded.
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        reduced = reducer.fit_transform(array)
    return np.asarray(reduced, dtype=np.float32)


def cluster_ward(embeddings: np.ndarray, n_clusters: int) -> np.ndarray:
    """Cluster the records by agglomerative clustering with Ward linkage (euclidean).

    scikit-learn builds the full tree from all N * (N - 1) / 2 pairwise distances in float64.
    For the 47,260 records of BIOSCAN-5M test + test_unseen that is about 9 GB (an estimate
    from 8 bytes per distance).

    Args:
        embeddings: Array ``[N, D]``.
        n_clusters: Number of clusters, 1 to N.

    Returns:
        int64 cluster index per record, 0 to ``n_clusters - 1``.

    Raises:
        FieldHarnessError: Invalid embeddings, or ``n_clusters`` outside 1 to N.
    """
    from sklearn.cluster import AgglomerativeClustering

    array = _check_embeddings(embeddings)
    n_clusters = _check_positive_int("n_clusters", n_clusters)
    if n_clusters > array.shape[0]:
        raise FieldHarnessError(f"cannot make {n_clusters} clusters from {array.shape[0]} "
                                "records; expected at most one cluster per record")
    if n_clusters == array.shape[0]:
        return np.arange(n_clusters, dtype=np.int64)
    clusterer = AgglomerativeClustering(n_clusters=n_clusters, metric="euclidean",
                                        linkage="ward")
    return clusterer.fit_predict(array).astype(np.int64)


def label_codes(frame: pl.DataFrame, rank: str) -> np.ndarray:
    """Return integer codes of the labels of ``rank``: 0, 1, … in label order, -1 for missing.

    A null or empty label is missing, as in :mod:`bioscan.labels`.

    Raises:
        UnknownNameError: ``rank`` is not a column of ``frame``.
        DataFormatError: The column does not hold text labels.
    """
    if rank not in frame.columns:
        raise UnknownNameError("label column", rank, frame.columns)
    dtype = frame.schema[rank]
    if dtype not in (pl.String, pl.Categorical, pl.Enum, pl.Null):
        raise DataFormatError("label column is not a string column", field=rank,
                              value=str(dtype), expected="a string or categorical column")
    labels = frame.get_column(rank).cast(pl.String)
    labels = pl.select(pl.when(labels == "").then(None).otherwise(labels)).to_series()
    codes = labels.rank("dense").fill_null(0).cast(pl.Int64).to_numpy() - 1
    return codes.astype(np.int64)


def ami_per_rank(
    predicted: np.ndarray,
    frame: pl.DataFrame,
    ranks: Sequence[str] = SCORED_RANKS,
    missing: str = "own_class",
) -> dict[str, RankScore]:
    """Score one clustering against the labels of every rank by adjusted mutual information.

    Args:
        predicted: Cluster index per record of ``frame``, in the same order.
        frame: The records, with one label column per entry of ``ranks``.
        ranks: Label columns to score; BIOSCAN-5M's BIN is ``dna_bin``.
        missing: ``"own_class"`` scores all records, and those without a label form one class
            as in the official code. ``"exclude"`` scores each rank on the records with a label.

    Returns:
        Rank name to :class:`RankScore`, in the order of ``ranks``. AMI is a fraction.

    Raises:
        FieldHarnessError: ``predicted`` is not one value per record.
        UnknownNameError: An unknown ``missing`` mode or a rank that is not a column.
    """
    from sklearn.metrics import adjusted_mutual_info_score

    _check_choice("missing-label mode", missing, MISSING_MODES)
    predicted = np.asarray(predicted)
    if predicted.ndim != 1 or predicted.shape[0] != frame.height:
        raise FieldHarnessError(
            f"predicted clusters have shape {predicted.shape} but there are {frame.height} "
            "records; expected one cluster index per record")

    scores: dict[str, RankScore] = {}
    for rank in ranks:
        codes = label_codes(frame, rank)
        known = codes >= 0
        n_missing = int((~known).sum())
        if missing == "exclude":
            truth, clusters = codes[known], predicted[known]
        else:
            truth, clusters = codes, predicted
        if truth.size == 0:
            logger.warning("no record has a %s label, so its AMI is undefined (NaN)", rank)
            ami = float("nan")
        else:
            ami = float(adjusted_mutual_info_score(truth, clusters))
        scores[rank] = RankScore(rank=rank, ami=ami, records=int(truth.size),
                                 classes=int(np.unique(truth).size), missing=n_missing)
    return scores


def cluster_and_score(
    embeddings: np.ndarray,
    frame: pl.DataFrame,
    *,
    target_rank: str = "species",
    ranks: Sequence[str] = SCORED_RANKS,
    missing: str = "own_class",
    prenorm: str = "none",
    use_umap: bool = True,
    n_components: int = 50,
    n_neighbors: int = 30,
    min_dist: float = 0.0,
    metric: str = "euclidean",
    seed: int = 0,
) -> ClusteringResult:
    """Run the whole zero-shot clustering pipeline on one set of embeddings.

    The number of clusters is the number of distinct ``target_rank`` labels among the clustered
    records. With ``missing="own_class"`` every record is clustered and a missing target label
    counts as one label. With ``missing="exclude"`` the records without a target label are left
    out of the clustering, and each rank is scored on the records with a label there.

    Args:
        embeddings: Array ``[N, D]``, row ``i`` belonging to row ``i`` of ``frame``.
        frame: The records with their label columns.
        target_rank: Column whose number of labels sets the number of clusters.
        ranks: Label columns to score.
        missing: ``"own_class"`` or ``"exclude"``, see :func:`ami_per_rank`.
        prenorm: Pre-normalisation, see :func:`prenormalize`.
        use_umap: Reduce with :func:`reduce_umap` before clustering; ``False`` clusters the
            (pre-normalised) embeddings directly.
        n_components, n_neighbors, min_dist, metric, seed: UMAP settings.

    Returns:
        The clusters, the mask of clustered records and the score of every rank.

    Raises:
        FieldHarnessError: Embeddings and records differ in number, the embeddings contain NaN
            or infinite values, or there are fewer records than clusters.
        UnknownNameError: An unknown option value or label column.
        MissingDependencyError: ``use_umap`` without umap-learn installed.
    """
    _check_choice("missing-label mode", missing, MISSING_MODES)
    _check_choice("pre-normalisation", prenorm, PRENORMS)
    array = _check_embeddings(embeddings)
    if array.shape[0] != frame.height:
        raise FieldHarnessError(
            f"there are {array.shape[0]} embeddings but {frame.height} records; expected one "
            "embedding per record, in record order")

    target = label_codes(frame, target_rank)
    clustered = target >= 0 if missing == "exclude" else np.ones(frame.height, dtype=bool)
    if not clustered.any():
        raise FieldHarnessError(f"no record has a {target_rank} label, so the number of "
                                "clusters is undefined; keep records without labels instead "
                                "of excluding them")
    n_clusters = int(np.unique(target[clustered]).size)
    subset = array[clustered]
    if n_clusters > subset.shape[0] or n_clusters < 1:
        raise FieldHarnessError(f"cannot make {n_clusters} clusters from {subset.shape[0]} "
                                "records")

    reduced = prenormalize(subset, prenorm)
    if use_umap:
        reduced = reduce_umap(reduced, n_components=n_components, n_neighbors=n_neighbors,
                              min_dist=min_dist, metric=metric, seed=seed)
    logger.info("Ward clustering of %d records into %d clusters", subset.shape[0], n_clusters)
    predicted = cluster_ward(reduced, n_clusters)

    scores = ami_per_rank(predicted, frame.filter(pl.Series(clustered)), ranks, missing)
    settings: dict[str, Any] = {
        "target_rank": target_rank, "missing": missing, "prenorm": prenorm, "umap": use_umap,
        "clusterer": "AgglomerativeClustering(linkage='ward', metric='euclidean')",
    }
    if use_umap:
        settings.update({"umap_components": n_components, "umap_neighbors": n_neighbors,
                         "umap_min_dist": min_dist, "umap_metric": metric, "umap_seed": seed})
    return ClusteringResult(predicted=predicted, clustered=clustered, n_clusters=n_clusters,
                            scores=scores, settings=settings)


# --- plot --------------------------------------------------------------------------------------


def _scores_of(result: ClusteringResult | Mapping[str, RankScore]) -> Mapping[str, RankScore]:
    return result.scores if isinstance(result, ClusteringResult) else result


def plot_ami_per_rank(
    results: ClusteringResult | Mapping[str, RankScore]
    | Mapping[str, ClusteringResult | Mapping[str, RankScore]],
    path: str | Path,
    *,
    title: str = "Zero-shot clustering",
) -> Path:
    """Plot AMI (in %) over the taxonomic ranks, one line per encoder.

    Args:
        results: One result (a :class:`ClusteringResult` or its ``scores``), or encoder names
            mapped to results, each drawn as its own line.
        path: PNG file to write, atomically.
        title: Plot title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FieldHarnessError: ``results`` is empty.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not results:
        raise FieldHarnessError("there are no clustering results to plot")
    if isinstance(results, ClusteringResult) or all(
            isinstance(value, RankScore) for value in results.values()):
        series = {"": _scores_of(results)}
    else:
        series = {name: _scores_of(result) for name, result in results.items()}

    ranks = list(dict.fromkeys(rank for scores in series.values() for rank in scores))
    positions = np.arange(len(ranks))
    figure = Figure(figsize=(1.0 + 1.1 * max(len(ranks), 3), 4.2))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for name, scores in series.items():
        values = [100.0 * scores[r].ami if r in scores else np.nan for r in ranks]
        axes.plot(positions, values, marker="o", label=name or None)
        if len(series) == 1:
            for x, value in zip(positions, values, strict=True):
                if np.isfinite(value):
                    axes.annotate(f"{value:.1f}", (x, value), textcoords="offset points",
                                  xytext=(0, 6), ha="center", fontsize=8)
    axes.set_xticks(positions, [RANK_TITLES.get(r, r) for r in ranks])
    axes.set_ylim(0, 105)
    axes.set_ylabel("AMI (%)")
    axes.set_xlabel("rank")
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    if any(series):
        axes.legend(fontsize=8)
    figure.tight_layout()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=120, format="png")
    logger.info("wrote plot %s", path)
    return path
