"""VIRADA rain-detection metrics: hand-computed confusion matrices, the official conventions,
scikit-learn where the definitions agree, and the per-minute aggregation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
)

from harness.errors import EvaluationError
from virada.metrics import (
    SWEEP_COLUMNS,
    THRESHOLDS,
    area_under_curves,
    confusion_counts,
    confusion_sweep,
    evaluate_detections,
    metrics_from_counts,
    per_minute_scores,
    plot_curves,
    sweep_from_counts,
)


def _row(sweep, threshold: float) -> dict:
    index = int(np.argmin(np.abs(sweep["threshold"].to_numpy() - threshold)))
    return sweep.row(index, named=True)


def test_thresholds_equal_official_linspace():
    assert THRESHOLDS.size == 101
    assert np.array_equal(THRESHOLDS, np.linspace(0, 1, 101))
    assert THRESHOLDS[35] > 0.35  # one ULP above the decimal, as in the official scripts


def test_confusion_counts_hand_computed():
    predictions = np.array([1, 1, 0, 0, 1, 0, 0])
    labels = np.array([1, 0, 1, 0, 1, 0, 0])
    assert confusion_counts(predictions, labels) == (2, 3, 1, 1)


def test_metrics_hand_computed():
    rates = metrics_from_counts(6, 3, 2, 1)
    assert float(rates["accuracy"]) == pytest.approx(9 / 12)
    assert float(rates["precision"]) == pytest.approx(6 / 8)
    assert float(rates["recall"]) == pytest.approx(6 / 7)
    assert float(rates["f1_rain"]) == pytest.approx(2 * 6 / (2 * 6 + 2 + 1))
    npv, tnr = 3 / 4, 3 / 5
    assert float(rates["f1_norain"]) == pytest.approx(2 * npv * tnr / (npv + tnr))
    assert float(rates["informedness"]) == pytest.approx(6 / 7 + 3 / 5 - 1)
    assert float(rates["markedness"]) == pytest.approx(6 / 8 + 3 / 4 - 1)
    assert float(rates["mcc"]) == pytest.approx((6 * 3 - 2 * 1) / np.sqrt(8 * 7 * 5 * 4))


def test_zero_denominator_conventions():
    # Nothing predicted as rain: precision 0/0 is 1, recall 0/2 is 0.
    no_positive_predictions = metrics_from_counts(0, 5, 0, 2)
    assert float(no_positive_predictions["precision"]) == 1.0
    assert float(no_positive_predictions["recall"]) == 0.0
    assert float(no_positive_predictions["mcc"]) == 0.0

    # No rain in the labels: recall 0/0 is 1.
    no_rain_labels = metrics_from_counts(0, 4, 3, 0)
    assert float(no_rain_labels["recall"]) == 1.0
    assert float(no_rain_labels["precision"]) == 0.0
    assert float(no_rain_labels["mcc"]) == 0.0

    # P = R = 0 gives F1 0, not NaN.
    wrong = metrics_from_counts(0, 0, 3, 2)
    assert float(wrong["f1_rain"]) == 0.0
    assert float(wrong["f1_norain"]) == 0.0
    assert float(wrong["mcc"]) == -1.0


def test_all_zero_counts_raise():
    with pytest.raises(EvaluationError, match="zero samples"):
        metrics_from_counts(0, 0, 0, 0)


def test_sweep_matches_sklearn():
    rng = np.random.default_rng(7)
    scores = rng.random(500)
    labels = rng.random(500) < 0.4
    sweep = confusion_sweep(scores, labels)
    assert tuple(sweep.columns) == SWEEP_COLUMNS
    assert sweep.height == 101
    for threshold in (0.1, 0.37, 0.5, 0.83):
        predicted = scores >= THRESHOLDS[int(round(threshold * 100))]
        row = _row(sweep, threshold)
        assert row["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
        assert row["precision"] == pytest.approx(precision_score(labels, predicted))
        assert row["recall"] == pytest.approx(recall_score(labels, predicted))
        assert row["f1_rain"] == pytest.approx(f1_score(labels, predicted))
        assert row["f1_norain"] == pytest.approx(f1_score(~labels, ~predicted))
        assert row["mcc"] == pytest.approx(matthews_corrcoef(labels, predicted))


def test_threshold_comparison_is_greater_or_equal():
    sweep = confusion_sweep(np.array([0.5, 0.49]), np.array([1, 0]))
    at_half = _row(sweep, 0.5)
    assert (at_half["TP"], at_half["FP"]) == (1, 0)
    at_049 = _row(sweep, 0.49)
    assert (at_049["TP"], at_049["FP"]) == (1, 1)


def test_threshold_0_35_uses_linspace_value():
    # 7/20 is the double nearest 0.35, which is below linspace's 0.35000000000000003.
    sweep = confusion_sweep(np.array([7 / 20]), np.array([1]))
    assert _row(sweep, 0.35)["TP"] == 0
    assert _row(sweep, 0.34)["TP"] == 1


def test_auc_hand_computed():
    sweep = confusion_sweep(np.array([0.3, 0.3, 0.7]), np.array([1, 0, 1]))
    areas = area_under_curves(sweep)
    # ROC points (1, 1), (0, 0.5), (0, 0); PR points (1, 2/3), (0.5, 1), (0, 1).
    assert areas["AUROC"] == pytest.approx(0.75)
    assert areas["AUPR"] == pytest.approx(0.5 * (2 / 3 + 1) / 2 + 0.5)


def test_auc_rejects_unsorted_thresholds():
    sweep = confusion_sweep(np.array([0.3, 0.7]), np.array([0, 1]), thresholds=[0.5, 0.0, 1.0])
    with pytest.raises(EvaluationError, match="not monotonic"):
        area_under_curves(sweep)


def test_sweep_from_counts_sums_videos():
    rng = np.random.default_rng(3)
    first = (rng.random(40), rng.random(40) < 0.5)
    second = (rng.random(25), rng.random(25) < 0.3)
    counts = np.zeros((101, 4), dtype=np.int64)
    for scores, labels in (first, second):
        part = confusion_sweep(scores, labels)
        counts += part.select("TP", "TN", "FP", "FN").to_numpy()
    combined = confusion_sweep(
        np.concatenate([first[0], second[0]]), np.concatenate([first[1], second[1]])
    )
    assert sweep_from_counts(counts).equals(combined)


def test_per_minute_scores_mean():
    minute_ids, means = per_minute_scores(
        np.array([1, 0, 1, 1, 0, 0]), np.array([4, 4, 4, 7, 7, 9])
    )
    assert minute_ids.tolist() == [4, 7, 9]
    assert means == pytest.approx([2 / 3, 1 / 2, 0.0])


def test_evaluate_detections_hand_computed():
    # Minute 0: rain label, 3 of 4 frames detect rain. Minute 1: dry, 1 of 4. Minute 2: rain,
    # 0 of 2.
    detections = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0, 0])
    minutes = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    minute_labels = np.array([1.0, 0.0, 0.4])
    result = evaluate_detections(detections, minute_labels[minutes] > 0, minutes, minute_labels)

    per_frame = result["per_frame"]
    assert (per_frame["TP"], per_frame["TN"], per_frame["FP"], per_frame["FN"]) == (3, 3, 1, 3)
    assert per_frame["accuracy"] == pytest.approx(0.6)

    per_minute = result["per_minute"]
    assert (per_minute["TP"], per_minute["TN"], per_minute["FP"], per_minute["FN"]) == (1, 1, 0, 1)
    assert per_minute["f1_rain"] == pytest.approx(2 / 3)
    assert per_minute["mcc"] == pytest.approx(0.5)
    assert result["minute_scores"] == pytest.approx([0.75, 0.25, 0.0])
    assert result["per_minute_sweep"].height == 101


def test_evaluate_detections_rejects_bad_input():
    with pytest.raises(EvaluationError, match="differ in length"):
        evaluate_detections(np.ones(3), np.ones(2), np.zeros(3, int), np.ones(1))
    with pytest.raises(EvaluationError, match="minute_labels has 1 entries"):
        evaluate_detections(np.ones(2), np.ones(2), np.array([0, 1]), np.ones(1))
    with pytest.raises(EvaluationError, match="score 1 is nan"):
        evaluate_detections(np.array([1.0, np.nan]), np.ones(2), np.zeros(2, int), np.ones(1))
    with pytest.raises(EvaluationError, match="not one of the sweep thresholds"):
        evaluate_detections(
            np.ones(2), np.ones(2), np.zeros(2, int), np.ones(1), decision_threshold=0.505
        )


def test_plot_curves_writes_png(tmp_path):
    sweep = confusion_sweep(np.array([0.2, 0.6, 0.9, 0.1]), np.array([0, 1, 1, 0]))
    path = plot_curves(sweep, tmp_path / "curves.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
