"""The two-stage "replace" rule: arrays, CSV files, metrics on the result and every error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from harness.errors import EvaluationError
from sewerml.classes import CIW, DEFECT_CODES
from sewerml.metrics import evaluate
from sewerml.plugin import read_predictions
from sewerml.two_stage import (
    combine_prediction_csvs,
    combine_replace,
    read_binary_predictions,
    write_binary_predictions,
)

RB, OB, FS = DEFECT_CODES.index("RB"), DEFECT_CODES.index("OB"), DEFECT_CODES.index("FS")


def class_scores(rows: int, value: float = 0.9) -> np.ndarray:
    return np.full((rows, len(DEFECT_CODES)), value)


def write_multilabel_csv(path: Path, names: list[str], scores: np.ndarray) -> Path:
    frame = pl.DataFrame({"Filename": names,
                          **{code: scores[:, k] for k, code in enumerate(DEFECT_CODES)}})
    # A leading index column and reversed class columns, as a pandas export may have them.
    frame = frame.with_row_index("index").select("index", "Filename", *reversed(DEFECT_CODES))
    frame.write_csv(path)
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- combine_replace -----------------------------------------------------------------------


def test_replace_below_threshold() -> None:
    second = np.linspace(0.0, 1.0, len(DEFECT_CODES))[None, :]
    combined = combine_replace([0.3], second)
    assert combined.shape == (1, len(DEFECT_CODES))
    assert np.all(combined == 0.3)


def test_keep_at_threshold() -> None:
    second = np.linspace(0.0, 1.0, len(DEFECT_CODES))[None, :]
    assert np.array_equal(combine_replace([0.5], second), second)
    assert np.array_equal(combine_replace([0.97], second), second)


def test_threshold_boundary() -> None:
    second = class_scores(3, 0.8)
    combined = combine_replace([0.49999, 0.5, 0.50001], second)
    assert np.all(combined[0] == 0.49999)
    assert np.array_equal(combined[1:], second[1:])

    custom = combine_replace([0.29, 0.3], class_scores(2, 0.8), threshold=0.3)
    assert np.all(custom[0] == 0.29)
    assert np.all(custom[1] == 0.8)


def test_threshold_extremes() -> None:
    second = class_scores(2, 0.7)
    assert np.array_equal(combine_replace([0.0, 0.2], second, threshold=0.0), second)
    assert np.all(combine_replace([0.0, 0.99], second, threshold=1.0) == [[0.0], [0.99]])


def test_column_vector_and_inputs_unchanged() -> None:
    binary = np.array([[0.1], [0.9]])
    second = class_scores(2, 0.6)
    combined = combine_replace(binary, second)
    assert np.all(combined[0] == 0.1)
    assert np.all(combined[1] == 0.6)
    assert np.all(second == 0.6)
    assert combined.dtype == np.float64


def test_empty_input() -> None:
    assert combine_replace(np.zeros(0), np.zeros((0, 17))).shape == (0, 17)


def test_replace_makes_image_normal_in_metrics() -> None:
    # Image 0 has RB, image 1 is Normal, image 2 has FS. The second stage predicts RB on the
    # Normal image and a false OB on image 2. The first stage then sets image 1 to Normal.
    targets = np.zeros((3, 17), dtype=int)
    targets[0, RB] = 1
    targets[2, FS] = 1
    second = np.full((3, 17), 0.1)
    second[0, RB] = 0.9
    second[1, RB] = 0.8
    second[2, FS] = 0.7
    second[2, OB] = 0.6
    binary = np.array([0.9, 0.2, 0.6])

    combined = combine_replace(binary, second)
    results = evaluate(targets, combined)
    assert results["F2_CIW"] == pytest.approx((CIW[RB] + CIW[FS]) / sum(CIW), abs=1e-12)
    assert results["F1_Normal"] == 1.0

    # Without the first stage RB has P = 1/2 and R = 1, so F2 = 5/6, and nothing is Normal.
    alone = evaluate(targets, second)
    expected = (CIW[RB] * 5 / 6 + CIW[FS]) / sum(CIW)
    assert alone["F2_CIW"] == pytest.approx(expected, abs=1e-12)
    assert alone["F1_Normal"] == 0.0


def test_combine_replace_shape_errors() -> None:
    with pytest.raises(EvaluationError,
                       match=r"binary_scores has shape \(3, 2\); expected \(n,\) or \(n, 1\)"):
        combine_replace(np.zeros((3, 2)), class_scores(3))
    with pytest.raises(EvaluationError,
                       match=r"multilabel_scores has shape \(3, 16\); expected \(n, 17\), one "
                             r"column per class RB, OB"):
        combine_replace(np.zeros(3), np.zeros((3, 16)))
    with pytest.raises(EvaluationError, match=r"multilabel_scores has shape \(17,\)"):
        combine_replace(np.zeros(1), np.zeros(17))
    with pytest.raises(EvaluationError,
                       match="binary_scores has 2 rows but multilabel_scores has 3; expected one "
                             "row per image in both"):
        combine_replace(np.zeros(2), class_scores(3))


def test_combine_replace_value_errors() -> None:
    with pytest.raises(EvaluationError,
                       match=r"binary_scores has 1 invalid value\(s\), the first at row 2: nan; "
                             r"expected probabilities in \[0, 1\]"):
        combine_replace([0.1, 0.2, np.nan], class_scores(3))
    with pytest.raises(EvaluationError,
                       match=r"binary_scores has 2 invalid value\(s\), the first at row 0: -0.1"):
        combine_replace([-0.1, 1.2], class_scores(2))
    second = class_scores(4)
    second[3, OB] = 1.5
    with pytest.raises(EvaluationError,
                       match=r"multilabel_scores has 1 invalid value\(s\), the first at row 3, "
                             r"column OB: 1.5"):
        combine_replace(np.full(4, 0.7), second)
    with pytest.raises(EvaluationError, match="binary_scores is not a numeric array"):
        combine_replace(["high"], class_scores(1))


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan"), "0.5", True])
def test_invalid_threshold(threshold: object, tmp_path: Path) -> None:
    message = r"threshold is .*; expected a number in \[0, 1\], such as the benchmark's 0.5"
    with pytest.raises(EvaluationError, match=message):
        combine_replace([0.5], class_scores(1), threshold=threshold)  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match=message):
        combine_prediction_csvs(tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv",
                                threshold=threshold)  # type: ignore[arg-type]


# --- CSV files -----------------------------------------------------------------------------


def test_csv_combine_matches_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 40
    names = [f"{index:08d}.png" for index in rng.choice(10**6, size=n, replace=False)]
    binary = rng.random(n)
    binary[:3] = [0.5, 0.49999, 0.0]
    second = rng.random((n, len(DEFECT_CODES)))

    first_order = rng.permutation(n)
    second_order = rng.permutation(n)
    binary_csv = write_binary_predictions([names[i] for i in first_order], binary[first_order],
                                          tmp_path / "stage1.csv")
    multilabel_csv = write_multilabel_csv(tmp_path / "stage2.csv",
                                          [names[i] for i in second_order], second[second_order])
    output = tmp_path / "out" / "combined.csv"
    combined = combine_prediction_csvs(binary_csv, multilabel_csv, output)

    by_name = np.argsort(names)
    expected = combine_replace(binary[by_name], second[by_name])
    assert combined["Filename"].to_list() == sorted(names)
    assert np.array_equal(combined.select(DEFECT_CODES).to_numpy(), expected)

    assert output.read_text().splitlines()[0] == ",".join(("Filename", *DEFECT_CODES))
    written = read_predictions(output)
    assert written["Filename"].to_list() == sorted(names)
    assert np.array_equal(written.select(DEFECT_CODES).to_numpy(), expected)
    assert sorted(path.name for path in output.parent.iterdir()) == ["combined.csv"]


def test_binary_round_trip(tmp_path: Path) -> None:
    scores = np.array([0.0, 1.0, 1 / 3, 1e-300, 0.5])
    names = ["e.png", "a.png", "c.png", "b.png", "d.png"]
    path = write_binary_predictions(names, scores[:, None], tmp_path / "binary.csv")
    frame = read_binary_predictions(path)
    assert frame.columns == ["Filename", "Defect"]
    assert frame["Filename"].to_list() == names
    assert np.array_equal(frame["Defect"].to_numpy(), scores)
    assert [p.name for p in tmp_path.iterdir()] == ["binary.csv"]


def test_read_binary_bom_crlf_and_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xef\xbb\xbf,Filename , Defect\r\n0, a.png ,0.25\r\n1,b.png, 1\r\n")
    frame = read_binary_predictions(path)
    assert frame["Filename"].to_list() == ["a.png", "b.png"]
    assert frame["Defect"].to_list() == [0.25, 1.0]


def test_combine_name_mismatch_errors(tmp_path: Path) -> None:
    binary_csv = write_binary_predictions(["a.png", "b.png", "c.png"], [0.1, 0.6, 0.9],
                                          tmp_path / "stage1.csv")
    fewer = write_multilabel_csv(tmp_path / "fewer.csv", ["a.png", "c.png"], class_scores(2))
    with pytest.raises(EvaluationError,
                       match=r"1 image\(s\) of the first-stage file .*stage1.csv have no row in "
                             r"the second-stage file .*fewer.csv: b.png; expected the same "
                             "images in both files"):
        combine_prediction_csvs(binary_csv, fewer, tmp_path / "out.csv")

    more = write_multilabel_csv(tmp_path / "more.csv", ["a.png", "b.png", "c.png", "x.png"],
                                class_scores(4))
    with pytest.raises(EvaluationError,
                       match=r"1 image\(s\) of the second-stage file .*more.csv have no row in "
                             r"the first-stage file .*stage1.csv: x.png"):
        combine_prediction_csvs(binary_csv, more, tmp_path / "out.csv")

    many = write_multilabel_csv(tmp_path / "many.csv", [f"{i}.png" for i in range(8)],
                                class_scores(8))
    with pytest.raises(EvaluationError, match=r"a.png, b.png, c.png; expected"):
        combine_prediction_csvs(binary_csv, many, tmp_path / "out.csv")
    only_first = write_binary_predictions(["0.png"], [0.3], tmp_path / "only_first.csv")
    with pytest.raises(EvaluationError, match=r"1.png, 2.png, 3.png, 4.png, 5.png, \.\.\. "
                                              r"\(7 in all\); expected"):
        combine_prediction_csvs(only_first, many, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_combine_duplicate_errors(tmp_path: Path) -> None:
    binary_csv = write_text(tmp_path / "stage1.csv",
                            "Filename,Defect\na.png,0.1\nb.png,0.2\na.png,0.3\n")
    multilabel_csv = write_multilabel_csv(tmp_path / "stage2.csv", ["a.png", "b.png"],
                                          class_scores(2))
    with pytest.raises(EvaluationError,
                       match=r"stage1.csv: duplicate Filename in a.png \(line 2\), a.png "
                             r"\(line 4\); expected one row per image"):
        combine_prediction_csvs(binary_csv, multilabel_csv, tmp_path / "out.csv")

    good_binary = write_binary_predictions(["a.png", "b.png"], [0.1, 0.2], tmp_path / "ok.csv")
    repeated = write_multilabel_csv(tmp_path / "repeated.csv", ["a.png", "b.png", "b.png"],
                                    class_scores(3))
    with pytest.raises(EvaluationError, match=r"repeated.csv: duplicate Filename in b.png"):
        combine_prediction_csvs(good_binary, repeated, tmp_path / "out.csv")


def test_read_binary_errors(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError,
                       match="predictions file .*absent.csv not found; pass --predictions the "
                             "CSV with Filename and one score per class"):
        read_binary_predictions(tmp_path / "absent.csv")

    no_defect = write_text(tmp_path / "no_defect.csv", "Filename,RB\na.png,0.1\n")
    with pytest.raises(EvaluationError,
                       match=r"no_defect.csv: missing column\(s\) Defect; expected Filename and "
                             r"Defect \(found: Filename, RB\)"):
        read_binary_predictions(no_defect)

    empty_name = write_text(tmp_path / "empty_name.csv", "Filename,Defect\na.png,0.1\n,0.2\n")
    with pytest.raises(EvaluationError, match=r"empty_name.csv: empty Filename on line\(s\) 3"):
        read_binary_predictions(empty_name)

    bad_values = write_text(tmp_path / "bad.csv",
                            "Filename,Defect\na.png,0.1\nb.png,1.5\nc.png,abc\nd.png,NaN\n"
                            "e.png,\n")
    with pytest.raises(EvaluationError,
                       match=r"bad.csv: invalid score\(s\): line 3 column Defect value '1.5', "
                             r"line 4 column Defect value 'abc', line 5 column Defect value "
                             r"'NaN', line 6 column Defect empty; expected probabilities from 0 "
                             r"to 1"):
        read_binary_predictions(bad_values)

    ragged = write_text(tmp_path / "ragged.csv", 'Filename,Defect\na.png,0.1\n"b.png,0.2\n')
    with pytest.raises(EvaluationError, match="ragged.csv: unreadable CSV file"):
        read_binary_predictions(ragged)


def test_write_binary_errors(tmp_path: Path) -> None:
    target = tmp_path / "binary.csv"
    with pytest.raises(EvaluationError,
                       match=r"scores has shape \(3,\) for 2 file names; expected \(2,\), one "
                             "defect probability per file name"):
        write_binary_predictions(["a.png", "b.png"], [0.1, 0.2, 0.3], target)
    with pytest.raises(EvaluationError,
                       match="file name in row 1 is empty; expected an image file name"):
        write_binary_predictions(["a.png", " "], [0.1, 0.2], target)
    with pytest.raises(EvaluationError,
                       match="file name 'a.png' appears in rows 0 and 2; expected one row per "
                             "image"):
        write_binary_predictions(["a.png", "b.png", "a.png"], [0.1, 0.2, 0.3], target)
    with pytest.raises(EvaluationError,
                       match=r"scores has 1 invalid value\(s\), the first at row 1: 2.0"):
        write_binary_predictions(["a.png", "b.png"], [0.1, 2.0], target)
    with pytest.raises(EvaluationError, match="scores is not a numeric array"):
        write_binary_predictions(["a.png"], [object()], target)
    assert list(tmp_path.iterdir()) == []


def test_modules_do_not_import_torch() -> None:
    script = ("import sys, sewerml.two_stage, sewerml.plots; "
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'timm')))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
