"""CT-GNN multi-class metrics: hand cases, scikit-learn on random input, batching, a real result."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from harness.errors import EvaluationError
from sewerml.multiclass import (
    IGNORE_INDEX,
    MulticlassAccumulator,
    metrics_from_confusion,
    multiclass_metrics,
)

WATER = ["0%<5%", "5-15%", "15-30%", "30%<="]


def test_hand_case_with_unsupported_class() -> None:
    # Class 3 has no targets and is predicted once; class 2 has targets but is never predicted.
    targets = np.array([0, 0, 1, 1, 2, IGNORE_INDEX])
    predictions = np.array([0, 1, 1, 1, 3, 2])

    results = multiclass_metrics(targets, predictions, WATER)

    assert results["CM"].tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert results["Ng"].tolist() == [2, 2, 1, 0]
    assert results["Np"].tolist() == [1, 3, 0, 1]
    assert results["Nc"].tolist() == [1, 2, 0, 0]
    np.testing.assert_allclose(results["precision"], [1.0, 2 / 3, 0.0, 0.0])
    np.testing.assert_allclose(results["recall"], [0.5, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(results["F1"], [2 / 3, 0.8, 0.0, 0.0])
    # Macro over the three classes with support; class 3 is left out.
    assert results["MF1"] == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)
    assert results["MP"] == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)
    assert results["MR"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert results["mF1"] == pytest.approx(3 / 5)
    assert results["mP"] == results["mR"] == results["accuracy"] == results["mF1"]
    assert results["class_names"] == WATER


def test_scores_use_argmax_first_on_ties() -> None:
    scores = np.array([[0.2, 0.5, 0.5], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])

    results = multiclass_metrics([1, 0, 0], scores, ["a", "b", "c"])

    assert results["CM"].tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]


def test_perfect_predictions() -> None:
    results = multiclass_metrics([0, 1, 2, 2], [0, 1, 2, 2], ["a", "b", "c"])

    for name in ("MF1", "MP", "MR", "mF1", "mP", "mR"):
        assert results[name] == 1.0, name


# scikit-learn warns about a one-class confusion matrix even when ``labels`` is given.
@pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")
@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=6).flatmap(
        lambda classes: st.tuples(
            st.just(classes),
            st.lists(
                st.tuples(
                    st.one_of(st.integers(0, classes - 1), st.just(IGNORE_INDEX)),
                    st.integers(0, classes - 1),
                ),
                min_size=1,
                max_size=40,
            ),
        )
    )
)
def test_matches_sklearn(case: tuple[int, list[tuple[int, int]]]) -> None:
    classes, pairs = case
    targets = np.array([t for t, _ in pairs])
    predictions = np.array([p for _, p in pairs])
    kept = targets != IGNORE_INDEX
    if not kept.any():
        with pytest.raises(EvaluationError, match="no images to score"):
            multiclass_metrics(targets, predictions, [str(k) for k in range(classes)])
        return

    results = multiclass_metrics(targets, predictions, [str(k) for k in range(classes)])

    y_true, y_pred = targets[kept], predictions[kept]
    supported = np.unique(y_true)
    macro = precision_recall_fscore_support(
        y_true, y_pred, labels=supported, average="macro", zero_division=0
    )
    assert results["MP"] == pytest.approx(macro[0], abs=1e-12)
    assert results["MR"] == pytest.approx(macro[1], abs=1e-12)
    assert results["MF1"] == pytest.approx(macro[2], abs=1e-12)
    micro = precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(classes), average="micro", zero_division=0
    )
    assert results["mP"] == pytest.approx(micro[0], abs=1e-12)
    assert results["mR"] == pytest.approx(micro[1], abs=1e-12)
    assert results["mF1"] == pytest.approx(micro[2], abs=1e-12)
    assert results["accuracy"] == pytest.approx(np.mean(y_true == y_pred), abs=1e-12)
    per_class = precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(classes), average=None, zero_division=0
    )
    np.testing.assert_allclose(results["precision"], per_class[0], atol=1e-12)
    np.testing.assert_allclose(results["recall"], per_class[1], atol=1e-12)
    np.testing.assert_allclose(results["F1"], per_class[2], atol=1e-12)
    assert results["Ng"].tolist() == per_class[3].tolist()
    expected_cm = confusion_matrix(y_true, y_pred, labels=np.arange(classes))
    assert results["CM"].tolist() == expected_cm.tolist()


def test_accumulator_equals_one_shot() -> None:
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 6, size=200)
    targets[rng.random(200) < 0.1] = IGNORE_INDEX
    scores = rng.random((200, 6))

    accumulator = MulticlassAccumulator(6)
    for start in range(0, 200, 64):
        accumulator.update(targets[start:start + 64], scores[start:start + 64])
    batched = accumulator.compute()
    whole = multiclass_metrics(targets, scores, [str(k) for k in range(6)])

    assert batched["CM"].tolist() == whole["CM"].tolist()
    for name in ("MF1", "MP", "MR", "mF1"):
        assert batched[name] == whole[name], name
    accumulator.reset()
    accumulator.update([0], [0])
    assert accumulator.compute()["CM"].sum() == 1


def test_error_rows_count_across_updates() -> None:
    accumulator = MulticlassAccumulator(3)
    accumulator.update([0, 1], [0, 1])

    with pytest.raises(EvaluationError, match=r"target in row 3 is 5; expected a class index"):
        accumulator.update([0, 5], [0, 1])
    assert accumulator.confusion.sum() == 2


@pytest.mark.parametrize(
    ("targets", "values", "message"),
    [
        ([0, 1], np.zeros((3, 3)), r"scores have shape \(3, 3\); expected \(2, 3\)"),
        ([0, 1], np.zeros((2, 2)), r"scores have shape \(2, 2\); expected \(2, 3\)"),
        ([0, 1], [0, 1, 2], r"predictions have shape \(3,\); expected scores"),
        ([0, 3], [0, 1], r"target in row 1 is 3; expected a class index in 0..2 or -100"),
        ([0, -1], [0, 1], r"target in row 1 is -1"),
        ([0, 1], [0, 7], r"prediction in row 1 is 7; expected a class index in 0..2"),
        ([0, 1], [[0.1, 0.2, 0.3], [0.1, np.nan, 0.3]], r"score in row 1, column 1 is NaN"),
        ([0, 1.5], [0, 1], r"targets in row 1 is 1.5; expected an integer class index"),
        ([[0, 1]], [0, 1], r"targets have shape \(1, 2\); expected \[N\]"),
        (["a", "b"], [0, 1], r"targets have dtype <U1; expected integer class indices"),
        ([0, 1], np.array([["a"] * 3] * 2), r"scores have dtype <U1; expected real numbers"),
    ],
)
def test_invalid_input_names_row_and_value(targets: object, values: object, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        multiclass_metrics(targets, values, ["a", "b", "c"])


def test_all_ignored_raises() -> None:
    with pytest.raises(EvaluationError, match="no images to score"):
        multiclass_metrics([IGNORE_INDEX, IGNORE_INDEX], [0, 1], ["a", "b"])


def test_confusion_and_accumulator_checks() -> None:
    with pytest.raises(EvaluationError, match=r"confusion matrix has shape \(2, 2\); expected"):
        metrics_from_confusion(np.eye(2), ["a", "b", "c"])
    with pytest.raises(EvaluationError, match="negative or fractional count"):
        metrics_from_confusion([[1, -1], [0, 1]], ["a", "b"])
    with pytest.raises(EvaluationError, match="num_classes is 0; expected at least 1"):
        MulticlassAccumulator(0)
    with pytest.raises(EvaluationError, match="got 1 class names for 2 classes"):
        MulticlassAccumulator(2, class_names=["a"])


def test_rows_equal_confusion_matrix() -> None:
    confusion = np.array([[5, 2, 0, 1], [1, 7, 1, 0], [0, 2, 3, 1], [0, 0, 1, 4]])
    targets = np.repeat(np.arange(4), confusion.sum(axis=1))
    predictions = np.concatenate([np.repeat(np.arange(4), row) for row in confusion])

    from_rows = multiclass_metrics(targets, predictions, WATER)
    from_matrix = metrics_from_confusion(confusion, WATER)

    assert from_rows["CM"].tolist() == confusion.tolist()
    for name in ("MF1", "MP", "MR", "mF1"):
        assert from_rows[name] == pytest.approx(from_matrix[name], abs=1e-15), name


# Water-level output of the CT-GNN metric code for a CT-GAT model on the full Sewer-ML Train
# split: GitHub shikong100/ctgnn, commit c485241, resultsMetrics/
# Train_resnet50_ResNetBackbone_CTGNN_GAT_Fixed-Effective-MTL-version_1_water.json.
CTGNN_TRAIN_WATER = {
    "labels": ["0%<5%", "5-15%", "15-30%", "30%<="],
    "CM": [[467532, 45314, 314, 417], [53408, 375361, 7309, 1239],
           [2223, 20898, 30613, 3902], [1210, 3254, 4592, 22543]],
    "MF1": 0.7791342918869483, "mF1": 0.8614787204279469, "MP": 0.8131101807666425,
    "mP": 0.8614787204279469, "MR": 0.7533059782555271, "mR": 0.8614787204279469,
    "precision": [0.8916019703531647, 0.8438359182333807, 0.714789390118614, 0.8022134443614106],
    "recall": [0.9103445053030023, 0.8583270259331331, 0.531143729613436, 0.7134086521725371],
    "F1": [0.9008757647285515, 0.8510197881525012, 0.6094322344322345, 0.7552093802345058],
    "Np": [524373, 444827, 42828, 28101],
    "Ng": [513577, 437317, 57636, 31599],
}


def test_real_water_metrics_reproduce_ctgnn() -> None:
    expected = CTGNN_TRAIN_WATER

    results = metrics_from_confusion(expected["CM"], expected["labels"])

    for name in ("MF1", "mF1", "MP", "mP", "MR", "mR"):
        assert results[name] == pytest.approx(expected[name], abs=1e-12), name
    np.testing.assert_allclose(results["precision"], expected["precision"], atol=1e-12)
    np.testing.assert_allclose(results["recall"], expected["recall"], atol=1e-12)
    np.testing.assert_allclose(results["F1"], expected["F1"], atol=1e-12)
    assert results["Ng"].tolist() == expected["Ng"]
    assert results["Np"].tolist() == expected["Np"]
