"""Sewer-ML metrics: real CT-GNN counts, the Sewer-ML paper's benchmark rows, sklearn, batching."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import average_precision_score, fbeta_score

from harness.errors import EvaluationError
from sewerml import (
    CIW,
    CIW_POINTS,
    COLUMNS,
    DEFECT_CODES,
    MetricAccumulator,
    average_precision,
    evaluate,
    f2_ciw,
    metrics_from_counts,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
SEWERML_ROOT = SHARED / "realdata" / "sewerml"
CTGNN_TRAIN_JSON = SEWERML_ROOT / "ctgnn_train_defect_metrics.json"

# Per-class F2 (%) of the benchmark algorithm (Xie et al. first stage, TResNet-L second stage),
# from the supplementary tables of the Sewer-ML paper (Haurum & Moeslund, CVPR 2021), Normal last.
BENCHMARK_F2 = {
    "Val": [
        42.92, 83.56, 54.06, 39.16, 86.99, 23.89, 37.17, 50.41, 59.64,
        60.12, 11.30, 66.39, 66.40, 50.16, 37.32, 64.86, 82.88, 90.79,
    ],
    "Test": [
        43.35, 83.82, 52.94, 39.69, 86.76, 24.70, 34.96, 53.41, 59.45,
        61.05, 11.94, 66.05, 64.00, 47.39, 36.79, 65.41, 82.72, 90.35,
    ],
}  # fmt: skip
BENCHMARK_F2_CIW = {"Val": 55.36, "Test": 55.11}

SCALARS = ("F2_CIW", "F1_Normal", "MF1", "mF1", "OP", "OR", "OF1", "CP", "CR", "CF1")
ARRAYS = ("Np", "Nc", "Ng", "precision", "recall", "F1", "F2")

# Scores on a coarse grid, so that ties and scores exactly at the threshold are common.
SCORE_GRID = (0.0, 0.1, 0.25, 0.4999, 0.5, 0.5001, 0.75, 0.9, 1.0)


@st.composite
def labelled_scores(draw: st.DrawFn, max_rows: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Draw (targets, scores) of shape (n, 17) with some Normal rows and some tied scores."""
    n = draw(st.integers(min_value=1, max_value=max_rows))
    targets = draw(arrays(np.int64, (n, 17), elements=st.integers(0, 1)))
    normal_rows = draw(arrays(np.bool_, n))
    targets[normal_rows] = 0

    score_element = st.one_of(
        st.sampled_from(SCORE_GRID),
        st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
    )
    scores = draw(arrays(np.float64, (n, 17), elements=score_element))
    predicted_normal_rows = draw(arrays(np.bool_, n))
    scores[predicted_normal_rows] = np.minimum(scores[predicted_normal_rows], 0.4)
    return targets, scores


def reference_metrics(
    targets: np.ndarray, scores: np.ndarray, weights=CIW, threshold: float = 0.5
) -> dict[str, float]:
    """Compute the metrics from their definitions with plain Python loops."""
    n = len(targets)
    target_rows = [[int(v) for v in row] for row in targets]
    predicted_rows = [[float(s) >= threshold for s in row] for row in scores]
    for target_row, predicted_row in zip(target_rows, predicted_rows, strict=True):
        target_row.append(int(not any(target_row)))
        predicted_row.append(not any(predicted_row))

    precision, recall, f1, f2 = [], [], [], []
    n_predicted, n_correct, n_positive = [], [], []
    for k in range(18):
        predicted = sum(predicted_rows[i][k] for i in range(n))
        positive = sum(target_rows[i][k] for i in range(n))
        correct = sum(1 for i in range(n) if predicted_rows[i][k] and target_rows[i][k])
        p = correct / predicted if predicted else 0.0
        r = correct / positive if positive else math.nan
        n_predicted.append(predicted)
        n_correct.append(correct)
        n_positive.append(positive)
        precision.append(p)
        recall.append(r)
        f1.append(0.0 if math.isnan(r) or p + r == 0 else 2 * p * r / (p + r))
        f2.append(0.0 if math.isnan(r) or 4 * p + r == 0 else 5 * p * r / (4 * p + r))

    predicted_or_one = [max(v, 1) for v in n_predicted]
    op = sum(n_correct) / sum(predicted_or_one)
    or_ = sum(n_correct) / sum(n_positive)
    cp = sum(precision) / 18
    cr = sum(recall) / 18
    exact = sum(
        1
        for i in range(n)
        if all(predicted_rows[i][k] == bool(target_rows[i][k]) for k in range(17))
    )

    ap = []
    for k in range(17):
        column = [(float(scores[i][k]), target_rows[i][k]) for i in range(n)]
        positives = [s for s, t in column if t]
        # Precision among all images scored at least as high as the positive (ties included).
        precisions = [
            sum(1 for s, t in column if s >= cut and t) / sum(1 for s, _ in column if s >= cut)
            for cut in positives
        ]
        ap.append(sum(precisions) / len(positives) if positives else 0.0)

    return {
        "F2_CIW": sum(w * v for w, v in zip(weights, f2[:17], strict=True)) / sum(weights),
        "F1_Normal": f1[17],
        "MF1": sum(f1) / 18,
        "mF1": 2 * sum(n_correct) / (sum(predicted_or_one) + sum(n_positive)),
        "OP": op,
        "OR": or_,
        "OF1": 2 * op * or_ / (op + or_) if op + or_ > 0 else math.nan,
        "CP": cp,
        "CR": cr,
        "CF1": 2 * cp * cr / (cp + cr) if cp + cr > 0 else math.nan,
        "EMAcc": exact / n,
        "mAP": sum(ap) / 17,
        "Np": n_predicted,
        "Nc": n_correct,
        "Ng": n_positive,
        "precision": precision,
        "recall": recall,
        "F1": f1,
        "F2": f2,
        "AP": ap,
    }


def assert_same_number(actual: float, expected: float, name: str) -> None:
    if math.isnan(expected):
        assert math.isnan(actual), f"{name}: {actual} != NaN"
    else:
        assert actual == pytest.approx(expected, rel=1e-12, abs=1e-12), name


@pytest.mark.realdata
@pytest.mark.skipif(
    not CTGNN_TRAIN_JSON.is_file(), reason=f"real Sewer-ML metric JSON not found at {SEWERML_ROOT}"
)
def test_real_train_counts_reproduce_json() -> None:
    expected = json.loads(CTGNN_TRAIN_JSON.read_text())
    counts = expected["Auxillary"]
    assert expected["Labels"] == list(DEFECT_CODES)
    assert expected["LabelWeights"] == list(CIW)

    results = metrics_from_counts(
        counts["Np"], counts["Nc"], counts["Ng"], weights=expected["LabelWeights"]
    )

    assert results["F2_CIW"] == pytest.approx(0.6613708038724712, abs=1e-12)
    assert results["F1_Normal"] == pytest.approx(0.930850266310634, abs=1e-12)
    assert results["F2_CIW"] == pytest.approx(expected["New"]["F2"], abs=1e-12)
    assert results["F1_Normal"] == pytest.approx(expected["New"]["F1_Normal"], abs=1e-12)
    for name in ("MF1", "mF1", "OP", "OR", "OF1", "CP", "CR", "CF1"):
        assert results[name] == pytest.approx(expected["Main"][name], abs=1e-12), name
    per_class = {
        "F2": expected["New"]["F2_class"],
        "precision": counts["P_class"],
        "recall": counts["R_class"],
        "F1": counts["F1_class"],
    }
    for name, values in per_class.items():
        np.testing.assert_allclose(results[name], values, rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("split", ["Val", "Test"])
def test_paper_benchmark_f2_ciw(split: str) -> None:
    per_class = BENCHMARK_F2[split][:17]

    assert round(f2_ciw(per_class), 2) == BENCHMARK_F2_CIW[split]
    assert round(f2_ciw(per_class, weights=CIW_POINTS), 2) == BENCHMARK_F2_CIW[split]


def test_ciw_are_rounded_points() -> None:
    assert len(DEFECT_CODES) == 17
    assert COLUMNS == (*DEFECT_CODES, "Normal")
    assert [round(points / 5.55, 4) for points in CIW_POINTS] == list(CIW)


def test_perfect_subset_keeps_missing_weights() -> None:
    present = [DEFECT_CODES.index(code) for code in ("RB", "PF", "FS")]
    targets = np.zeros((6, 17), dtype=int)
    targets[0, present[0]] = 1
    targets[1, present[1]] = 1
    targets[2, present] = 1
    targets[3, present[2]] = 1

    results = evaluate(targets, targets.astype(float))

    assert round(results["F2_CIW"], 3) == 0.288
    assert results["F2_CIW"] == pytest.approx((1.0 + 0.2896 + 0.6419) / sum(CIW), abs=1e-15)
    assert results["F1_Normal"] == 1.0
    assert results["EMAcc"] == 1.0
    assert math.isnan(results["CR"])
    assert math.isnan(results["CF1"])
    assert results["AP"][present].tolist() == [1.0, 1.0, 1.0]
    assert results["mAP"] == pytest.approx(3 / 17)


def test_threshold_is_inclusive() -> None:
    targets = np.zeros((1, 17), dtype=int)
    targets[0, 0] = 1
    scores = np.zeros((1, 17))

    scores[0, 0] = 0.5
    at_threshold = evaluate(targets, scores)
    scores[0, 0] = 0.4999
    below_threshold = evaluate(targets, scores)

    assert at_threshold["Np"][0] == 1
    assert at_threshold["Np"][17] == 0
    assert below_threshold["Np"][0] == 0
    assert below_threshold["Np"][17] == 1
    assert at_threshold["F2_CIW"] == pytest.approx(1.0 / sum(CIW))
    assert below_threshold["F2_CIW"] == 0.0


def test_no_true_positive_gives_nan_of1() -> None:
    targets = np.zeros((2, 17), dtype=int)
    targets[0, 3] = 1
    scores = np.zeros((2, 17))
    scores[1, 5] = 0.9

    results = evaluate(targets, scores)

    assert math.isnan(results["OF1"])
    assert results["mF1"] == 0.0
    assert results["F1_Normal"] == 0.0
    assert results["F2"].tolist() == [0.0] * 18


def test_average_precision_without_ties_ranks() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    targets = np.array([1, 0, 1, 0, 1])

    assert average_precision(scores, targets) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert average_precision(scores, np.zeros(5)) == 0.0


def test_average_precision_ties_count_together() -> None:
    scores = np.array([0.7, 0.7, 0.7, 0.2])
    targets = np.array([0, 1, 0, 1])

    assert average_precision(scores, targets) == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert average_precision(scores[::-1], targets[::-1]) == average_precision(scores, targets)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(data=labelled_scores())
def test_fbeta_matches_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    targets, scores = data
    predicted = scores >= 0.5
    target_columns = np.column_stack([targets, ~targets.any(axis=1)]).astype(int)
    predicted_columns = np.column_stack([predicted, ~predicted.any(axis=1)]).astype(int)

    results = evaluate(targets, scores)

    for k, code in enumerate(COLUMNS):
        for beta, name in ((1.0, "F1"), (2.0, "F2")):
            expected = fbeta_score(
                target_columns[:, k], predicted_columns[:, k], beta=beta, zero_division=0
            )
            assert results[name][k] == pytest.approx(expected, abs=1e-12), f"{name} of {code}"


@settings(derandomize=True, max_examples=60, deadline=None)
@given(data=labelled_scores())
def test_average_precision_matches_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    targets, scores = data

    for k, code in enumerate(DEFECT_CODES):
        if not targets[:, k].any():
            continue
        expected = average_precision_score(targets[:, k], scores[:, k])
        assert average_precision(scores[:, k], targets[:, k]) == pytest.approx(
            expected, abs=1e-12
        ), code


@settings(derandomize=True, max_examples=60, deadline=None)
@given(data=labelled_scores())
def test_evaluate_matches_definitions(data: tuple[np.ndarray, np.ndarray]) -> None:
    targets, scores = data

    results = evaluate(targets, scores)
    expected = reference_metrics(targets, scores)

    for name in (*SCALARS, "EMAcc", "mAP"):
        assert_same_number(results[name], expected[name], name)
    for name in (*ARRAYS, "AP"):
        assert len(results[name]) == len(expected[name]), name
        for k, (actual, wanted) in enumerate(zip(results[name], expected[name], strict=True)):
            assert_same_number(float(actual), float(wanted), f"{name}[{k}]")


@settings(derandomize=True, max_examples=40, deadline=None)
@given(data=labelled_scores(max_rows=40), cut_fractions=st.lists(st.floats(0, 1), max_size=5))
def test_accumulator_equals_one_shot(
    data: tuple[np.ndarray, np.ndarray], cut_fractions: list[float]
) -> None:
    targets, scores = data
    n = len(targets)
    cuts = sorted({int(fraction * n) for fraction in cut_fractions} | {0, n})

    accumulator = MetricAccumulator()
    for start, stop in zip(cuts[:-1], cuts[1:], strict=True):
        if stop > start:
            accumulator.update(targets[start:stop], scores[start:stop])
    batched = accumulator.compute()
    one_shot = evaluate(targets, scores)

    assert accumulator.n_rows == n
    for name in (*SCALARS, "EMAcc", "mAP"):
        assert_same_number(batched[name], one_shot[name], name)
    for name in (*ARRAYS, "AP"):
        np.testing.assert_array_equal(batched[name], one_shot[name], err_msg=name)


def test_accumulator_reset_and_invalid_batch() -> None:
    targets = np.zeros((3, 17), dtype=int)
    scores = np.full((3, 17), 0.2)
    accumulator = MetricAccumulator()
    accumulator.update(targets, scores)

    bad_scores = scores.copy()
    bad_scores[1, 4] = 1.5
    with pytest.raises(EvaluationError, match=r"scores row 4, column 4 \(FS\) is 1\.5"):
        accumulator.update(targets, bad_scores)

    assert accumulator.n_rows == 3
    assert accumulator.compute()["F1_Normal"] == 1.0
    accumulator.reset()
    with pytest.raises(EvaluationError, match=r"no images to evaluate"):
        accumulator.compute()


def _rows(n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, 17), dtype=int), np.full((n, 17), 0.3)


def _with_value(array: np.ndarray, row: int, column: int, value: float) -> np.ndarray:
    changed = array.astype(np.float64)
    changed[row, column] = value
    return changed


@pytest.mark.parametrize(
    ("targets", "scores", "message"),
    [
        (np.zeros((2, 16)), _rows()[1], r"targets has shape \(2, 16\); expected \(n, 17\)"),
        (_rows()[0], np.zeros(17), r"scores has shape \(17,\); expected \(n, 17\)"),
        (_rows(3)[0], _rows(2)[1], r"targets has 3 rows but scores has 2"),
        (_rows(0)[0], _rows(0)[1], r"no rows; expected at least one image"),
        (_rows()[0], np.full((2, 17), "0.3"), r"scores has dtype <U3; expected real numbers"),
        (
            _rows()[0],
            _with_value(_rows()[1], 1, 2, math.nan),
            r"scores row 1, column 2 \(PF\) is nan; expected a probability in \[0, 1\]",
        ),
        (
            _rows()[0],
            _with_value(_rows()[1], 0, 16, -0.1),
            r"scores row 0, column 16 \(OK\) is -0\.1; expected a probability",
        ),
        (
            _rows()[0],
            _with_value(_rows()[1], 0, 0, math.inf),
            r"scores row 0, column 0 \(RB\) is inf; expected a probability",
        ),
        (
            _with_value(_rows()[0], 1, 6, 2),
            _rows()[1],
            r"targets row 1, column 6 \(RO\) is 2\.0; expected 0 or 1",
        ),
        (
            np.where(np.eye(2, 17, k=9, dtype=bool), -1, 0),
            _rows()[1],
            r"targets row 0, column 9 \(BE\) is -1; expected 0 or 1",
        ),
        (
            _with_value(_rows()[0], 0, 1, math.nan),
            _rows()[1],
            r"targets row 0, column 1 \(OB\) is nan; expected 0 or 1",
        ),
    ],
)
def test_evaluate_rejects_invalid_input(
    targets: np.ndarray, scores: np.ndarray, message: str
) -> None:
    with pytest.raises(EvaluationError, match=message):
        evaluate(targets, scores)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threshold": 0.0}, r"threshold is 0\.0; expected a number in \(0, 1\]"),
        ({"threshold": 1.5}, r"threshold is 1\.5; expected a number in \(0, 1\]"),
        ({"threshold": math.nan}, r"threshold is nan; expected a number in \(0, 1\]"),
        ({"weights": CIW[:16]}, r"weights has shape \(16,\); expected 17 class-importance"),
        ({"weights": (0.0,) * 17}, r"expected finite non-negative numbers with a positive sum"),
        ({"weights": (-1.0,) + CIW[1:]}, r"expected finite non-negative numbers"),
    ],
)
def test_evaluate_rejects_invalid_options(options: dict, message: str) -> None:
    targets, scores = _rows()

    with pytest.raises(EvaluationError, match=message):
        evaluate(targets, scores, **options)
    with pytest.raises(EvaluationError, match=message):
        MetricAccumulator(**options)


def test_metrics_from_counts_rejects_invalid_counts() -> None:
    counts = [2] * 18
    ones = [1] * 18

    with pytest.raises(EvaluationError, match=r"Np has shape \(17,\); expected 18 counts"):
        metrics_from_counts([1] * 17, counts, counts)
    with pytest.raises(EvaluationError, match=r"Nc of column 17 \(Normal\) is -1\.0; expected"):
        metrics_from_counts(counts, [*ones[:17], -1], counts)
    with pytest.raises(EvaluationError, match=r"Ng of column 0 \(RB\) is 1\.5; expected a whole"):
        metrics_from_counts(counts, counts, [1.5, *counts[1:]])
    with pytest.raises(EvaluationError, match=r"Nc of column 4 \(FS\) is 3, more than its Np 2"):
        metrics_from_counts(counts, [*counts[:4], 3, *counts[5:]], [5] * 18)
    with pytest.raises(EvaluationError, match=r"Nc of column 0 \(RB\) is 2, more than its Ng 1"):
        metrics_from_counts(counts, counts, ones)
    with pytest.raises(EvaluationError, match=r"f2 is \[1\.0\]; expected 17 finite values"):
        f2_ciw([1.0])


def test_metrics_from_counts_zero_predictions() -> None:
    results = metrics_from_counts([0] * 18, [0] * 18, [1] * 18, weights=CIW)

    assert results["Np"].tolist() == [0] * 18
    assert results["precision"].tolist() == [0.0] * 18
    assert results["OP"] == 0.0
    assert results["F2_CIW"] == 0.0
    assert math.isnan(results["CF1"])
