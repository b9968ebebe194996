"""Sewer-ML result plots: PNG files written atomically, and every input error."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from harness.errors import EvaluationError
from sewerml.classes import DEFECT_CODES
from sewerml.metrics import evaluate
from sewerml.plots import plot_confusion_matrix, plot_per_class_f2

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WATER_BINS = ["0-<5%", "5-<15%", "15-<30%", ">=30%"]


@pytest.fixture
def random_results() -> dict:
    rng = np.random.default_rng(3)
    targets = (rng.random((300, len(DEFECT_CODES))) < 0.15).astype(int)
    scores = rng.random((300, len(DEFECT_CODES))) ** 2
    return evaluate(targets, scores)


def assert_png(path: Path) -> tuple[int, int]:
    """Check that ``path`` is a readable PNG, alone in its folder, and return its size."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        return image.size


def test_per_class_f2_written(random_results: dict, tmp_path: Path) -> None:
    path = tmp_path / "plots" / "f2.png"
    returned = plot_per_class_f2(random_results, path, title="Val, random scores")
    assert returned == path
    width, height = assert_png(path)
    assert width > 800
    assert height > 400
    assert plt.get_fignums() == []


def test_per_class_f2_replaces_file(random_results: dict, tmp_path: Path) -> None:
    path = tmp_path / "f2.png"
    path.write_bytes(b"old")
    plot_per_class_f2(random_results, path)
    assert_png(path)


def test_per_class_f2_perfect_and_empty(tmp_path: Path) -> None:
    targets = np.eye(len(DEFECT_CODES), dtype=int)
    perfect = plot_per_class_f2(evaluate(targets, targets.astype(float)), tmp_path / "a.png")
    nothing = plot_per_class_f2(evaluate(targets, np.zeros(targets.shape)), tmp_path / "b.png")
    assert perfect.stat().st_size > 0
    assert nothing.stat().st_size > 0


def test_per_class_f2_errors(random_results: dict, tmp_path: Path) -> None:
    path = tmp_path / "f2.png"
    incomplete = {key: value for key, value in random_results.items()
                  if key not in ("F2_CIW", "F1_Normal")}
    with pytest.raises(EvaluationError,
                       match=r"results is missing the key\(s\) F2_CIW, F1_Normal; expected "
                             "the dict returned by sewerml.metrics.evaluate"):
        plot_per_class_f2(incomplete, path)

    short = dict(random_results, F2=random_results["F2"][:17])
    with pytest.raises(EvaluationError,
                       match=r"results\['F2'\] is .*; expected 18 finite values, one per column "
                             "RB, OB, .*, OK, Normal"):
        plot_per_class_f2(short, path)

    with_nan = dict(random_results, F2=np.r_[np.nan, random_results["F2"][1:]])
    with pytest.raises(EvaluationError, match="expected 18 finite values"):
        plot_per_class_f2(with_nan, path)
    assert not path.exists()


def test_confusion_matrix_normalized(tmp_path: Path) -> None:
    matrix = np.array([[467532, 45314, 314, 417], [53408, 375361, 7309, 1239],
                       [2223, 20898, 30613, 3902], [0, 0, 0, 0]])
    path = plot_confusion_matrix(matrix, WATER_BINS, tmp_path / "water.png",
                                 title="water level, Train")
    assert_png(path)
    assert plt.get_fignums() == []


def test_confusion_matrix_counts_eighteen_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 5000, size=(18, 18)).astype(float)
    matrix[2, 3] = 0.5
    path = plot_confusion_matrix(matrix, [*DEFECT_CODES, "Normal"], tmp_path / "cm.png",
                                 normalize=False)
    width, height = assert_png(path)
    assert min(width, height) > 1000


def test_confusion_matrix_errors(tmp_path: Path) -> None:
    path = tmp_path / "cm.png"
    with pytest.raises(EvaluationError,
                       match=r"confusion matrix has shape \(2, 3\); expected a square array "
                             r"\(k, k\) with k >= 1"):
        plot_confusion_matrix(np.ones((2, 3)), ["a", "b"], path)
    with pytest.raises(EvaluationError, match=r"confusion matrix has shape \(0, 0\)"):
        plot_confusion_matrix(np.ones((0, 0)), [], path)
    with pytest.raises(EvaluationError,
                       match="confusion matrix has 2 rows but 3 class names were given; expected "
                             "one name per row"):
        plot_confusion_matrix(np.ones((2, 2)), ["a", "b", "c"], path)
    with pytest.raises(EvaluationError,
                       match=r"confusion matrix entry \[1, 0\] \(true b, predicted a\) is -1.0; "
                             "expected a finite count >= 0"):
        plot_confusion_matrix([[1, 2], [-1, 3]], ["a", "b"], path)
    with pytest.raises(EvaluationError, match=r"entry \[0, 1\] .* is inf"):
        plot_confusion_matrix([[1, np.inf], [0, 3]], ["a", "b"], path)
    with pytest.raises(EvaluationError,
                       match="confusion matrix is not numeric .*; expected a square array of "
                             "counts"):
        plot_confusion_matrix([["x", "y"], ["z", "w"]], ["a", "b"], path)
    assert not path.exists()
