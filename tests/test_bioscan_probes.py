"""The embedding probes: k-NN accuracy against scikit-learn, the linear probe, real barcodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.neighbors import KNeighborsClassifier

from bioscan.dna import kmer_frequencies
from bioscan.probes import knn_accuracy, linear_probe, score_predictions
from harness.errors import FieldHarnessError

SHARED = Path(__file__).resolve().parents[2] / "shared"
CANINV_TSV = SHARED / "realdata" / "bioscan" / "dna" / "caninv_unseen.tsv"

# 1-NN cosine genus accuracy of held-out species with 4-mer frequency embeddings on the CanInv
# barcodes, measured independently of this module before it was written.
CANINV_HOLDOUT_GENUS_ACCURACY = 0.46


def clustered(rng: np.random.Generator, n_classes: int, per_class: int, dim: int = 8,
              spread: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(size=(n_classes, dim)) * 3
    labels = np.repeat(np.arange(n_classes), per_class)
    points = centres[labels] + rng.normal(scale=spread, size=(labels.size, dim))
    return points, labels


@pytest.mark.parametrize(("metric", "k"), [("cosine", 1), ("euclidean", 3), ("manhattan", 5)])
def test_knn_matches_sklearn(metric, k):
    rng = np.random.default_rng(3)
    keys = rng.normal(size=(120, 6))
    key_labels = rng.integers(0, 7, size=120)
    queries = rng.normal(size=(40, 6))
    query_labels = rng.integers(0, 7, size=40)

    expected = KNeighborsClassifier(n_neighbors=k, metric=metric).fit(keys, key_labels)
    predicted = expected.predict(queries)
    score = knn_accuracy(queries, query_labels, keys, key_labels, metric=metric, k=k)

    assert np.array_equal(score.predictions, predicted)
    assert score.accuracy == pytest.approx(accuracy_score(query_labels, predicted))
    assert score.balanced_accuracy == pytest.approx(
        balanced_accuracy_score(query_labels, predicted))
    assert score.count == 40


def test_knn_string_labels_and_unknown_query_label():
    keys = np.array([[1.0, 0.0], [0.0, 1.0]])
    key_labels = np.array(["Aedes", "Culex"], dtype=object)
    queries = np.array([[2.0, 0.1], [0.1, 3.0], [1.0, 0.2]])
    query_labels = np.array(["Aedes", "Culex", "Anopheles"], dtype=object)

    score = knn_accuracy(queries, query_labels, keys, key_labels)

    assert score.predictions.tolist() == ["Aedes", "Culex", "Aedes"]
    assert score.accuracy == pytest.approx(2 / 3)
    # Three true classes with recalls 1, 1 and 0.
    assert score.balanced_accuracy == pytest.approx(2 / 3)


def test_knn_rejects_feature_mismatch():
    with pytest.raises(FieldHarnessError, match="query_embeddings have 3 features"):
        knn_accuracy(np.zeros((2, 3)), [0, 1], np.zeros((2, 4)), [0, 1])


def test_knn_rejects_label_count_mismatch():
    with pytest.raises(FieldHarnessError, match=r"query_labels has shape \(3,\)"):
        knn_accuracy(np.zeros((2, 3)), [0, 1, 2], np.ones((2, 3)), [0, 1])


def test_knn_rejects_k_above_keys():
    with pytest.raises(FieldHarnessError, match="k is 3; expected an integer from 1 to 2"):
        knn_accuracy(np.ones((2, 3)), [0, 1], np.ones((2, 3)), [0, 1], k=3)


def test_knn_rejects_nan_embeddings():
    queries = np.array([[np.nan, 1.0]])
    with pytest.raises(FieldHarnessError, match="query_embeddings contains NaN"):
        knn_accuracy(queries, [0], np.ones((2, 2)), [0, 1])


def test_score_predictions_rejects_length_mismatch():
    with pytest.raises(FieldHarnessError, match="truth has shape"):
        score_predictions(["a", "b"], ["a"])


def test_linear_probe_separates_clusters():
    rng = np.random.default_rng(0)
    train, train_labels = clustered(rng, 4, 30)
    test, test_labels = clustered(np.random.default_rng(0), 4, 10)

    score = linear_probe(train, train_labels, test, test_labels, epochs=30, batch_size=32,
                         device="cpu", progress=False)

    assert score.accuracy == 1.0
    assert score.balanced_accuracy == 1.0
    assert score.count == 40


def test_linear_probe_unknown_test_label_wrong():
    rng = np.random.default_rng(1)
    train, train_labels = clustered(rng, 2, 20)
    test = train[:4]
    test_labels = np.array([train_labels[0], train_labels[1], 99, 99])

    score = linear_probe(train, train_labels, test, test_labels, epochs=30, device="cpu",
                         progress=False)

    assert score.accuracy == pytest.approx(0.5)
    assert 99 not in score.predictions.tolist()


def test_linear_probe_same_seed_same_predictions():
    rng = np.random.default_rng(2)
    train, train_labels = clustered(rng, 5, 8, spread=3.0)
    test, test_labels = clustered(rng, 5, 4, spread=3.0)

    first = linear_probe(train, train_labels, test, test_labels, epochs=5, seed=4,
                         device="cpu", progress=False)
    second = linear_probe(train, train_labels, test, test_labels, epochs=5, seed=4,
                          device="cpu", progress=False)

    assert np.array_equal(first.predictions, second.predictions)


def test_linear_probe_rejects_zero_epochs():
    with pytest.raises(FieldHarnessError, match="epochs is 0"):
        linear_probe(np.ones((2, 2)), [0, 1], np.ones((1, 2)), [0], epochs=0, device="cpu")


@pytest.mark.realdata
@pytest.mark.skipif(not CANINV_TSV.exists(),
                    reason=f"real CanInv barcodes not found at {CANINV_TSV}")
def test_knn_genus_of_held_out_species_caninv():
    frame = pl.read_csv(CANINV_TSV, separator="\t", infer_schema_length=0)
    embeddings = kmer_frequencies(frame["nucleotides"], 4)
    species = frame["species_name"].to_numpy()
    genus = frame["genus_name"].to_numpy()
    all_species = np.unique(species)
    rng = np.random.default_rng(0)

    accuracies = []
    for _ in range(10):
        held_out = rng.choice(all_species, size=round(0.2 * all_species.size), replace=False)
        query = np.isin(species, held_out)
        score = knn_accuracy(embeddings[query], genus[query], embeddings[~query], genus[~query],
                             metric="cosine", k=1)
        accuracies.append(score.accuracy)

    assert abs(float(np.mean(accuracies)) - CANINV_HOLDOUT_GENUS_ACCURACY) <= 0.03
