"""Zero-shot clustering core: AMI per rank against scikit-learn, the missing-label modes, input
checks, the plot, and the golden numbers of 4-mer frequencies of real CanInv barcodes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_mutual_info_score

from bioscan.clustering import (
    SCORED_RANKS,
    ClusteringResult,
    RankScore,
    ami_per_rank,
    cluster_and_score,
    cluster_ward,
    label_codes,
    plot_ami_per_rank,
    prenormalize,
    reduce_umap,
)
from bioscan.encoders import kmer_frequency_encoder
from harness.errors import (
    DataFormatError,
    FieldHarnessError,
    MissingDependencyError,
    UnknownNameError,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
CANINV = SHARED / "realdata" / "bioscan" / "dna" / "caninv_unseen.tsv"
needs_caninv = pytest.mark.skipif(
    not CANINV.is_file(), reason=f"real CanInv barcodes not found at {CANINV} (../shared absent)")

# Species AMI of 4-mer frequencies of the 4,278 CanInv barcodes (1,826 species), measured with
# this implementation (scikit-learn 1.x, umap-learn 0.5.12, seed 0).
CANINV_WARD_SPECIES_AMI = 0.9182
CANINV_UMAP_SPECIES_AMI = 0.7477
TOLERANCE = 0.03

CANINV_COLUMNS = {"class_name": "class", "order_name": "order", "family_name": "family",
                  "genus_name": "genus", "species_name": "species", "bin_uri": "dna_bin"}


def random_labels(rng: np.random.Generator, size: int, classes: int,
                  missing: float) -> list[str | None]:
    values = rng.integers(0, classes, size=size)
    return [None if rng.random() < missing else f"label {v}" for v in values]


def random_frame(seed: int, size: int = 120) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    columns = {rank: random_labels(rng, size, 3 + 2 * i, 0.15)
               for i, rank in enumerate(SCORED_RANKS)}
    return pl.DataFrame(columns, schema={rank: pl.String for rank in SCORED_RANKS})


def sklearn_codes(labels: list[str | None]) -> np.ndarray:
    """Code the labels as the official code does: -1 for a missing label."""
    index = {label: i for i, label in enumerate(sorted({x for x in labels if x is not None}))}
    return np.array([-1 if label is None else index[label] for label in labels])


@pytest.fixture(scope="module")
def caninv() -> tuple[np.ndarray, pl.DataFrame]:
    frame = pl.read_csv(CANINV, separator="\t", infer_schema_length=0).rename(CANINV_COLUMNS)
    return kmer_frequency_encoder(frame["nucleotides"], 4), frame


# --- labels and AMI ----------------------------------------------------------------------------


def test_label_codes_missing_values():
    frame = pl.DataFrame({"species": ["b", None, "a", "", "b"]})
    codes = label_codes(frame, "species")
    assert codes.tolist() == [1, -1, 0, -1, 1]


def test_label_codes_rejects_numbers():
    with pytest.raises(DataFormatError, match="'species'.*Int64"):
        label_codes(pl.DataFrame({"species": [1, 2]}), "species")


def test_label_codes_unknown_column():
    with pytest.raises(UnknownNameError, match="unknown label column 'genus'"):
        label_codes(pl.DataFrame({"species": ["a"]}), "genus")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ami_own_class_matches_sklearn(seed):
    frame = random_frame(seed)
    predicted = np.random.default_rng(100 + seed).integers(0, 9, size=frame.height)
    scores = ami_per_rank(predicted, frame, missing="own_class")

    assert list(scores) == list(SCORED_RANKS)
    for rank in SCORED_RANKS:
        labels = frame[rank].to_list()
        expected = adjusted_mutual_info_score(sklearn_codes(labels), predicted)
        assert scores[rank].ami == pytest.approx(expected, abs=1e-12), rank
        assert scores[rank].records == frame.height
        assert scores[rank].classes == len(set(labels)), rank  # None counts as one class
        assert scores[rank].missing == labels.count(None)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ami_exclude_matches_sklearn(seed):
    frame = random_frame(seed)
    predicted = np.random.default_rng(200 + seed).integers(0, 9, size=frame.height)
    scores = ami_per_rank(predicted, frame, missing="exclude")

    for rank in SCORED_RANKS:
        labels = frame[rank].to_list()
        known = np.array([label is not None for label in labels])
        truth = sklearn_codes(labels)[known]
        expected = adjusted_mutual_info_score(truth, predicted[known])
        assert scores[rank].ami == pytest.approx(expected, abs=1e-12), rank
        assert scores[rank].records == int(known.sum())
        assert scores[rank].classes == len(set(truth.tolist()))


def test_ami_missing_modes_differ():
    frame = pl.DataFrame({"species": ["a", "a", None, None, "b", "b"]})
    predicted = np.array([0, 0, 1, 2, 3, 3])
    own = ami_per_rank(predicted, frame, ranks=("species",), missing="own_class")["species"]
    excluded = ami_per_rank(predicted, frame, ranks=("species",), missing="exclude")["species"]
    assert excluded.ami == pytest.approx(1.0)
    assert own.ami < 1.0
    assert (own.records, own.classes) == (6, 3)
    assert (excluded.records, excluded.classes) == (4, 2)


def test_ami_bin_uses_dna_bin():
    frame = pl.DataFrame({"species": ["s1", "s1", "s1", "s2", "s2", "s2"],
                          "dna_bin": ["BOLD:A", "BOLD:A", "BOLD:B", "BOLD:B", "BOLD:C", "BOLD:C"]})
    predicted = np.array([0, 0, 1, 1, 2, 2])
    scores = ami_per_rank(predicted, frame, ranks=("species", "dna_bin"))
    assert scores["dna_bin"].ami == pytest.approx(1.0)
    assert scores["dna_bin"].classes == 3
    assert scores["species"].ami < 1.0


def test_ami_all_missing_is_nan():
    frame = pl.DataFrame({"subfamily": [None, None, None]}, schema={"subfamily": pl.String})
    score = ami_per_rank(np.array([0, 1, 1]), frame, ranks=("subfamily",), missing="exclude")
    assert np.isnan(score["subfamily"].ami)
    assert score["subfamily"].records == 0


def test_ami_length_mismatch():
    frame = pl.DataFrame({"species": ["a", "b", "c"]})
    with pytest.raises(FieldHarnessError, match=r"shape \(2,\) but there are 3 records"):
        ami_per_rank(np.array([0, 1]), frame, ranks=("species",))


def test_ami_unknown_missing_mode():
    frame = pl.DataFrame({"species": ["a"]})
    with pytest.raises(UnknownNameError, match="'drop'.*exclude, own_class"):
        ami_per_rank(np.array([0]), frame, ranks=("species",), missing="drop")


# --- steps and input checks --------------------------------------------------------------------


def test_prenormalize_l2_rows_unit_length():
    data = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    normalised = prenormalize(data, "l2")
    assert normalised.tolist() == [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]]


def test_prenormalize_zscore_columns():
    data = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    normalised = prenormalize(data, "elementwise_zscore")
    assert normalised[:, 0].mean() == pytest.approx(0.0)
    assert normalised[:, 0].std() == pytest.approx(1.0)
    assert normalised[:, 1].tolist() == [0.0, 0.0, 0.0]  # a constant dimension


def test_prenormalize_unknown_method():
    with pytest.raises(UnknownNameError, match="'l1'"):
        prenormalize(np.ones((2, 2)), "l1")


def test_ward_separates_blobs():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = np.repeat(np.arange(3), 20)
    points = centres[truth] + rng.normal(scale=0.5, size=(60, 2))
    predicted = cluster_ward(points, 3)
    assert adjusted_mutual_info_score(truth, predicted) == pytest.approx(1.0)


def test_ward_one_cluster_per_record():
    assert cluster_ward(np.random.default_rng(0).normal(size=(4, 2)), 4).tolist() == [0, 1, 2, 3]


def test_ward_more_clusters_than_records():
    with pytest.raises(FieldHarnessError, match="cannot make 5 clusters from 4 records"):
        cluster_ward(np.zeros((4, 2)), 5)


def test_ward_rejects_nan():
    data = np.zeros((4, 2))
    data[2, 1] = np.nan
    with pytest.raises(FieldHarnessError, match=r"NaN or infinite values in 1 records \(first: "
                                                r"record 2, dimension 1"):
        cluster_ward(data, 2)


def test_ward_rejects_1d_input():
    with pytest.raises(FieldHarnessError, match=r"2-D array.*shape \(4,\)"):
        cluster_ward(np.zeros(4), 2)


def test_pipeline_length_mismatch():
    frame = pl.DataFrame({"species": ["a", "b", "c"]})
    with pytest.raises(FieldHarnessError, match="2 embeddings but 3 records"):
        cluster_and_score(np.zeros((2, 3)), frame, ranks=("species",), use_umap=False)


def test_pipeline_clusters_per_species():
    frame = pl.DataFrame({"species": ["a", "a", "b", None, "c", "c"],
                          "genus": ["g", "g", "g", "h", "h", "h"]})
    points = np.array([[0.0], [0.1], [5.0], [10.0], [20.0], [20.1]])
    own = cluster_and_score(points, frame, ranks=("species", "genus"), use_umap=False)
    assert own.n_clusters == 4  # a, b, c and the missing species
    assert own.clustered.all()
    assert own.scores["species"].ami == pytest.approx(1.0)
    assert own.settings["umap"] is False

    excluded = cluster_and_score(points, frame, ranks=("species", "genus"), use_umap=False,
                                 missing="exclude")
    assert excluded.n_clusters == 3
    assert excluded.clustered.tolist() == [True, True, True, False, True, True]
    assert excluded.predicted.shape == (5,)
    assert excluded.scores["genus"].records == 5


def test_pipeline_all_targets_missing_excluded():
    frame = pl.DataFrame({"species": [None, None]}, schema={"species": pl.String})
    with pytest.raises(FieldHarnessError, match="no record has a species label"):
        cluster_and_score(np.zeros((2, 2)), frame, ranks=("species",), use_umap=False,
                          missing="exclude")


def test_umap_too_few_records():
    with pytest.raises(FieldHarnessError, match="needs at least 52 records, but there are 40"):
        reduce_umap(np.zeros((40, 8)))


def test_umap_missing_dependency(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # makes ``import umap`` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"fieldharness\[train\]"):
        reduce_umap(np.random.default_rng(0).normal(size=(60, 4)), n_components=2)


# --- plot --------------------------------------------------------------------------------------


def test_plot_one_result(tmp_path):
    scores = {"species": RankScore("species", 0.5, 10, 4, 0),
              "dna_bin": RankScore("dna_bin", 0.4, 10, 5, 0)}
    result = ClusteringResult(predicted=np.zeros(10, dtype=np.int64),
                              clustered=np.ones(10, dtype=bool), n_clusters=4, scores=scores)
    path = plot_ami_per_rank(result, tmp_path / "ami.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_plot_empty_results(tmp_path):
    with pytest.raises(FieldHarnessError, match="no clustering results to plot"):
        plot_ami_per_rank({}, tmp_path / "ami.png")


def test_plot_several_encoders(tmp_path):
    first = {"genus": RankScore("genus", 0.9, 10, 3, 0)}
    second = {"genus": RankScore("genus", 0.2, 10, 3, 0),
              "species": RankScore("species", 0.1, 10, 4, 0)}
    path = plot_ami_per_rank({"4-mer": first, "resnet50": second}, tmp_path / "ami.png")
    assert path.stat().st_size > 1000


# --- real CanInv barcodes ----------------------------------------------------------------------


@needs_caninv
@pytest.mark.realdata
def test_caninv_ward_species_ami(caninv):
    embeddings, frame = caninv
    assert frame.height == 4278
    result = cluster_and_score(embeddings, frame, ranks=("genus", "species", "dna_bin"),
                               use_umap=False)
    assert result.n_clusters == frame["species"].n_unique()
    assert result.scores["species"].ami == pytest.approx(CANINV_WARD_SPECIES_AMI, abs=TOLERANCE)
    assert result.scores["genus"].ami < result.scores["species"].ami


@pytest.mark.slow  # numba compiles UMAP on its first call in a process (tens of seconds)
@needs_caninv
@pytest.mark.realdata
def test_caninv_umap_species_ami(caninv):
    embeddings, frame = caninv
    result = cluster_and_score(embeddings, frame, ranks=("species",), seed=0)
    assert result.settings["umap_components"] == 50
    assert result.scores["species"].ami == pytest.approx(CANINV_UMAP_SPECIES_AMI, abs=TOLERANCE)

    subset = embeddings[:200]
    first = reduce_umap(subset, n_components=10, seed=0)
    second = reduce_umap(subset, n_components=10, seed=0)
    assert first.shape == (200, 10)
    assert first.dtype == np.float32
    assert np.array_equal(first, second)
