"""Probes that score frozen embeddings: k-nearest-neighbour and linear classification accuracy.

Both follow BarcodeBERT's evaluation code (GitHub ``Kari-Genomics-Lab/BarcodeBERT``):

- :func:`knn_accuracy` is ``barcodebert/knn_probing.py``: scikit-learn's
  ``KNeighborsClassifier(n_neighbors=k, metric=metric)`` fitted on the keys, scored with
  ``accuracy_score`` and ``balanced_accuracy_score``.
- :func:`linear_probe` is ``barcodebert/linear_probing.py``: embeddings standardised with the
  scalar mean and standard deviation of all training values, one ``torch.nn.Linear`` layer
  trained with SGD (lr 0.01, momentum 0.9, weight decay 1e-5, batches of 1,024, 200 epochs).

Labels may be any hashable values (strings, integers). A query or test label that no key or
training record has counts as wrong, because no prediction can equal it. Filter out records
without a label before calling.

Only :func:`linear_probe` needs torch, and imports it when called.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import FieldHarnessError

__all__ = ["ProbeScore", "knn_accuracy", "linear_probe", "score_predictions"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeScore:
    """The scores of one probe.

    Attributes:
        accuracy: Fraction of correct predictions (micro accuracy), 0 to 1.
        balanced_accuracy: Mean recall over the true classes of the scored records (macro
            accuracy, scikit-learn's ``balanced_accuracy_score``), 0 to 1.
        count: Number of scored records.
        predictions: The predicted label of every scored record.
    """

    accuracy: float
    balanced_accuracy: float
    count: int
    predictions: np.ndarray


def _as_matrix(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise FieldHarnessError(
            f"{name} has shape {array.shape}; expected a non-empty 2-D array [records, features]")
    if not np.issubdtype(array.dtype, np.number):
        raise FieldHarnessError(f"{name} has dtype {array.dtype}; expected numbers")
    if not np.isfinite(array).all():
        raise FieldHarnessError(f"{name} contains NaN or infinite values; expected finite values")
    return array


def _as_labels(values: Any, rows: int, name: str) -> np.ndarray:
    labels = np.asarray(values)
    if labels.ndim != 1 or labels.shape[0] != rows:
        raise FieldHarnessError(
            f"{name} has shape {labels.shape}; expected one label per record ({rows})")
    return labels


def score_predictions(truth: Any, predictions: Any) -> ProbeScore:
    """Score predicted labels against true labels: micro and macro (balanced) accuracy."""
    import warnings

    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    truth = np.asarray(truth)
    predictions = np.asarray(predictions)
    if truth.shape != predictions.shape or truth.ndim != 1 or truth.size == 0:
        raise FieldHarnessError(
            f"truth has shape {truth.shape} and predictions {predictions.shape}; expected two "
            "non-empty 1-D arrays of the same length")
    # balanced_accuracy_score warns when predictions hold classes absent from the truth, which
    # is expected for probes; the score itself is what the official code reports.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        balanced = float(balanced_accuracy_score(truth, predictions))
    return ProbeScore(accuracy=float(accuracy_score(truth, predictions)),
                      balanced_accuracy=balanced, count=int(truth.shape[0]),
                      predictions=predictions)


def knn_accuracy(
    query_embeddings: Any,
    query_labels: Sequence[Any] | np.ndarray,
    key_embeddings: Any,
    key_labels: Sequence[Any] | np.ndarray,
    metric: str = "cosine",
    k: int = 1,
) -> ProbeScore:
    """Classify each query by its k nearest keys and score the predicted labels.

    Args:
        query_embeddings: ``[Q, D]`` embeddings of the records to classify.
        query_labels: Their true labels.
        key_embeddings: ``[K, D]`` embeddings of the labelled reference records.
        key_labels: Their labels.
        metric: Any ``KNeighborsClassifier`` metric; BarcodeBERT uses ``"cosine"``.
        k: Neighbours per query (majority vote; ties as scikit-learn breaks them).

    Returns:
        Micro and macro (balanced) accuracy over the queries, and the predictions.

    Raises:
        FieldHarnessError: Empty or non-finite embeddings, mismatched shapes, or ``k`` outside
            1 to the number of keys.
    """
    from sklearn.neighbors import KNeighborsClassifier

    queries = _as_matrix(query_embeddings, "query_embeddings")
    keys = _as_matrix(key_embeddings, "key_embeddings")
    if queries.shape[1] != keys.shape[1]:
        raise FieldHarnessError(
            f"query_embeddings have {queries.shape[1]} features and key_embeddings "
            f"{keys.shape[1]}; expected the same embedding size")
    truth = _as_labels(query_labels, queries.shape[0], "query_labels")
    reference = _as_labels(key_labels, keys.shape[0], "key_labels")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= keys.shape[0]:
        raise FieldHarnessError(f"k is {k!r}; expected an integer from 1 to {keys.shape[0]} "
                                "(the number of keys)")

    classifier = KNeighborsClassifier(n_neighbors=int(k), metric=metric)
    classifier.fit(keys, reference)
    return score_predictions(truth, classifier.predict(queries))


def linear_probe(
    train_embeddings: Any,
    train_labels: Sequence[Any] | np.ndarray,
    test_embeddings: Any,
    test_labels: Sequence[Any] | np.ndarray,
    *,
    epochs: int = 200,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 1e-5,
    batch_size: int = 1024,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> ProbeScore:
    """Train a linear classifier on frozen embeddings and score it on the test records.

    The classes are the distinct training labels, in sorted order. The embeddings are
    standardised with the scalar mean and standard deviation of every training value, as the
    official code does (not per feature).

    Args:
        train_embeddings: ``[N, D]`` training embeddings.
        train_labels: Their labels.
        test_embeddings: ``[M, D]`` test embeddings.
        test_labels: Their labels; labels absent from training count as wrong.
        epochs: Passes over the training embeddings.
        lr: SGD learning rate.
        momentum: SGD momentum.
        weight_decay: SGD L2 penalty.
        batch_size: Embeddings per step; the training order is shuffled every epoch.
        seed: Seed of the initialisation and the shuffling.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        progress: Show a progress bar over the epochs.

    Returns:
        Micro and macro (balanced) accuracy on the test records, and the predicted labels.

    Raises:
        FieldHarnessError: Empty or non-finite embeddings, mismatched shapes, or bad settings.
    """
    import torch
    from tqdm.auto import tqdm

    from harness.training import resolve_device

    train = _as_matrix(train_embeddings, "train_embeddings").astype(np.float32)
    test = _as_matrix(test_embeddings, "test_embeddings").astype(np.float32)
    if train.shape[1] != test.shape[1]:
        raise FieldHarnessError(
            f"train_embeddings have {train.shape[1]} features and test_embeddings "
            f"{test.shape[1]}; expected the same embedding size")
    train_truth = _as_labels(train_labels, train.shape[0], "train_labels")
    test_truth = _as_labels(test_labels, test.shape[0], "test_labels")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise FieldHarnessError(f"{name} is {value!r}; expected an integer >= 1")

    classes, train_index = np.unique(train_truth, return_inverse=True)
    mean = float(train.mean())
    std = float(train.std())
    if std == 0.0:
        std = 1.0  # constant embeddings: centring alone keeps them finite
    train = (train - mean) / std
    test = (test - mean) / std

    target_device = resolve_device(device)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    classifier = torch.nn.Linear(train.shape[1], len(classes)).to(target_device)
    optimizer = torch.optim.SGD(classifier.parameters(), lr=lr, momentum=momentum,
                                weight_decay=weight_decay)
    inputs = torch.from_numpy(train).to(target_device)
    targets = torch.from_numpy(train_index.astype(np.int64)).to(target_device)

    for _ in tqdm(range(epochs), desc="linear probe", unit="epoch", disable=not progress):
        order = torch.randperm(inputs.shape[0], generator=generator).to(target_device)
        for start in range(0, inputs.shape[0], batch_size):
            rows = order[start:start + batch_size]
            loss = torch.nn.functional.cross_entropy(classifier(inputs[rows]), targets[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    logger.info("linear probe: %d classes, final batch loss %.4f", len(classes),
                float(loss.detach()))

    with torch.no_grad():
        logits = classifier(torch.from_numpy(test).to(target_device))
    predicted = classes[logits.argmax(dim=1).cpu().numpy()]
    return score_predictions(test_truth, predicted)
