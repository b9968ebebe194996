"""The ``sewerml`` evaluator: prediction checks, scoring, test-split output and the CLI."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from harness import registry
from harness.cli import main
from harness.errors import EvaluationError
from harness.plugin import RunContext
from harness.prepare import prepare_dataset
from harness.registry import register_dataset
from harness.storage import read_prepared_table
from sewerml.classes import COLUMNS, DEFECT_CODES
from sewerml.metrics import evaluate
from sewerml.plugin import SewerMLEvaluator, SewerMLPlugin
from sewerml.sample import write_sewerml_sample

IMAGES = 20
HEADLINE = ("F2_CIW", "F1_Normal", "MF1", "mF1", "OP", "OR", "OF1", "CP", "CR", "CF1",
            "EMAcc", "mAP")


@pytest.fixture(autouse=True)
def sewerml_registered() -> Iterator[None]:
    register_dataset("sewerml", SewerMLPlugin)
    yield
    registry._extra[registry.DATASETS_GROUP].pop("sewerml", None)


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    root = write_sewerml_sample(tmp_path / "src", seed=1, images_per_split=IMAGES)
    prepare_dataset("sewerml", root, progress=False)
    return root


def labels_of(split: str) -> pl.DataFrame:
    return pl.from_arrow(read_prepared_table("sewerml", "labels", split))


def noisy_scores(split: str, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Return the split's file names and scores that agree with the labels most of the time."""
    labels = labels_of(split).sort("Filename")
    rng = np.random.default_rng(seed)
    if split == "test":
        targets = rng.integers(0, 2, size=(labels.height, len(DEFECT_CODES)))
    else:
        targets = labels.select(DEFECT_CODES).to_numpy()
    noise = rng.uniform(0.0, 0.7, size=targets.shape)
    scores = np.clip(np.abs(targets - noise), 0.0, 1.0)
    return labels["Filename"].to_list(), scores


def write_predictions(path: Path, names: list[str], scores: np.ndarray,
                      columns: tuple[str, ...] = DEFECT_CODES) -> Path:
    lines = [",".join(("Filename", *columns))]
    for name, row in zip(names, scores, strict=True):
        lines.append(",".join([name, *(repr(float(v)) for v in row)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    SewerMLEvaluator().add_arguments(parser)
    return parser.parse_args(list(argv))


def run(tmp_path: Path, predictions: Path, *extra: str):
    args = parse("--predictions", str(predictions), *extra)
    return SewerMLEvaluator().evaluate(args, RunContext(output_dir=tmp_path / "out"))


# --- scoring ----------------------------------------------------------------------------------


def test_val_scores_match_metrics(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("val")
    predictions = write_predictions(tmp_path / "val.csv", names, scores)
    outcome = run(tmp_path, predictions, "--split", "val")

    targets = labels_of("val").sort("Filename").select(DEFECT_CODES).to_numpy()
    expected = evaluate(targets, scores)
    assert tuple(outcome.metrics) == HEADLINE
    for name in HEADLINE:
        assert outcome.metrics[name] == pytest.approx(100 * expected[name], nan_ok=True), name
    assert sorted(outcome.per_item) == sorted(COLUMNS)
    assert outcome.per_item["RB"]["F2"] == pytest.approx(100 * expected["F2"][0])
    assert outcome.per_item["RB"]["AP"] == pytest.approx(100 * expected["AP"][0])
    assert outcome.per_item["Normal"]["Ng"] == expected["Ng"][-1]
    assert "AP" not in outcome.per_item["Normal"]


def test_val_outcome_fields(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("val")
    outcome = run(tmp_path, write_predictions(tmp_path / "mymodel.csv", names, scores))
    assert outcome.dataset == "sewerml"
    assert outcome.method == "mymodel"
    assert outcome.split == "val"
    assert outcome.version == "2021"
    assert outcome.data_kind == "sample"
    assert outcome.config == {"threshold": 0.5, "split": "val"}
    assert outcome.files == [tmp_path / "out" / "metrics.json",
                             tmp_path / "out" / "per_class_f2.png"]


def test_metrics_json_contents(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("val")
    outcome = run(tmp_path, write_predictions(tmp_path / "p.csv", names, scores))
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["images"] == IMAGES
    assert saved["columns"] == list(COLUMNS)
    assert saved["F2_CIW"] * 100 == pytest.approx(outcome.metrics["F2_CIW"])
    assert len(saved["F2"]) == len(COLUMNS)
    assert len(saved["AP"]) == len(DEFECT_CODES)
    for key in ("Np", "Nc", "Ng", "precision", "recall", "F1"):
        assert len(saved[key]) == len(COLUMNS), key


def test_row_and_column_order_ignored(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("val")
    sorted_outcome = run(tmp_path / "a", write_predictions(tmp_path / "a.csv", names, scores))

    order = np.random.default_rng(4).permutation(len(names))
    columns = tuple(reversed(DEFECT_CODES))
    shuffled = scores[order][:, ::-1]
    path = write_predictions(tmp_path / "b.csv", [names[i] for i in order], shuffled, columns)
    shuffled_outcome = run(tmp_path / "b", path)
    assert shuffled_outcome.metrics == pytest.approx(sorted_outcome.metrics, nan_ok=True)


def test_train_split(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("train")
    outcome = run(tmp_path, write_predictions(tmp_path / "p.csv", names, scores),
                  "--split", "train")
    targets = labels_of("train").sort("Filename").select(DEFECT_CODES).to_numpy()
    assert outcome.split == "train"
    assert outcome.metrics["F2_CIW"] == pytest.approx(100 * evaluate(targets, scores)["F2_CIW"])


def test_threshold_option(prepared: Path, tmp_path: Path) -> None:
    names, _ = noisy_scores("val")
    targets = labels_of("val").sort("Filename").select(DEFECT_CODES).to_numpy()
    scores = np.where(targets == 1, 0.5, 0.0)
    path = write_predictions(tmp_path / "p.csv", names, scores)

    at_half = run(tmp_path / "a", path)
    above = run(tmp_path / "b", path, "--threshold", "0.6")
    assert at_half.config["threshold"] == 0.5
    assert above.config["threshold"] == 0.6
    assert at_half.metrics["EMAcc"] == pytest.approx(100.0)
    assert above.metrics["EMAcc"] < 100.0


def test_extra_columns_ignored(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("val")
    path = write_predictions(tmp_path / "p.csv", names, scores)
    lines = path.read_text().splitlines()
    indexed = [f",{lines[0]}"] + [f"{i},{line}" for i, line in enumerate(lines[1:])]
    path.write_text("\r\n".join(indexed) + "\r\n")
    assert run(tmp_path, path).metrics["F2_CIW"] > 0


# --- invalid predictions ----------------------------------------------------------------------


def test_missing_prediction_rows(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("val")
    path = write_predictions(tmp_path / "p.csv", names[2:], scores[2:])
    with pytest.raises(EvaluationError, match=rf"no prediction for 2 of the {IMAGES} val images: "
                                              rf"{names[0]}, {names[1]}"):
        run(tmp_path, path)


def test_extra_prediction_rows(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("val")
    path = write_predictions(tmp_path / "p.csv", [*names, "99999999.png"],
                             np.vstack([scores, scores[:1]]))
    with pytest.raises(EvaluationError,
                       match=r"1 prediction row\(s\) for images not in the val split: "
                             r"99999999\.png"):
        run(tmp_path, path)


def test_same_count_other_images(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("val")
    train_names, _ = noisy_scores("train")
    path = write_predictions(tmp_path / "p.csv", [train_names[0], *names[1:]], scores)
    with pytest.raises(EvaluationError, match=rf"no prediction for 1 of the {IMAGES} val images"):
        run(tmp_path, path)


def test_predictions_of_other_split(prepared: Path, tmp_path: Path) -> None:
    train_names, scores = noisy_scores("train")
    path = write_predictions(tmp_path / "p.csv", train_names[:IMAGES], scores[:IMAGES])
    with pytest.raises(EvaluationError, match=r"none of the predicted file names is a val image: "
                                              r"are these predictions for another --split\?"):
        run(tmp_path, path)


def test_predictions_without_png_suffix(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("val")
    stems = [name.removesuffix(".png") for name in names]
    path = write_predictions(tmp_path / "p.csv", stems, scores)
    with pytest.raises(EvaluationError, match=r"the predictions name images without the \.png "
                                              r"extension"):
        run(tmp_path, path)


def test_empty_score_cell(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("val")
    path = write_predictions(tmp_path / "p.csv", names, scores)
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    cells[1] = ""
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(EvaluationError, match=r"line 2 column RB empty; expected probabilities"):
        run(tmp_path, path)


def test_duplicate_prediction_rows(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("val")
    path = write_predictions(tmp_path / "p.csv", [*names, names[3]],
                             np.vstack([scores, scores[3:4]]))
    with pytest.raises(EvaluationError,
                       match=rf"duplicate Filename in {names[3]} \(line 5\), {names[3]} "
                             rf"\(line {IMAGES + 2}\)"):
        run(tmp_path, path)


@pytest.mark.parametrize(("value", "shown"), [(1.5, "'1.5'"), (-0.1, "'-0.1'"),
                                              (float("nan"), "'nan'")])
def test_score_out_of_range(prepared: Path, tmp_path: Path, value: float, shown: str) -> None:
    names, scores = noisy_scores("val")
    scores[2, 4] = value
    path = write_predictions(tmp_path / "p.csv", names, scores)
    with pytest.raises(EvaluationError,
                       match=rf"invalid score\(s\): line 4 column FS value {shown}; expected "
                             r"probabilities from 0 to 1"):
        run(tmp_path, path)


def test_score_not_a_number(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("val")
    path = write_predictions(tmp_path / "p.csv", names, scores)
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    cells[1] = "high"
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(EvaluationError, match=r"line 2 column RB value 'high'"):
        run(tmp_path, path)


def test_missing_class_column(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("val")
    columns = tuple(code for code in DEFECT_CODES if code != "OK")
    path = write_predictions(tmp_path / "p.csv", names, scores[:, :-1], columns)
    with pytest.raises(EvaluationError, match=r"missing column\(s\) OK; expected Filename"):
        run(tmp_path, path)


def test_missing_predictions_file(prepared: Path, tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match=r"predictions file .*absent\.csv not found"):
        run(tmp_path, tmp_path / "absent.csv")


# --- test split -------------------------------------------------------------------------------


def test_test_split_writes_official_csv(prepared: Path, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    names, scores = noisy_scores("test")
    order = np.random.default_rng(2).permutation(len(names))
    path = write_predictions(tmp_path / "p.csv", [names[i] for i in order], scores[order])
    with caplog.at_level(logging.WARNING, logger="sewerml.plugin"):
        outcome = run(tmp_path, path, "--split", "test")

    out = tmp_path / "out" / "sewerml_Test_sigmoid.csv"
    assert outcome.files == [out]
    assert outcome.metrics == {}
    assert outcome.split == "test"
    assert "test scores come only from the dataset authors" in outcome.config["note"]
    assert "test scores come only from the dataset authors" in caplog.text
    assert not (tmp_path / "out" / "metrics.json").exists()

    written = pl.read_csv(out)
    assert written.columns == ["Filename", *DEFECT_CODES]
    assert written["Filename"].to_list() == names
    np.testing.assert_array_equal(written.select(DEFECT_CODES).to_numpy(), scores)


def test_test_split_checks_filenames(prepared: Path, tmp_path: Path) -> None:
    names, scores = noisy_scores("test")
    path = write_predictions(tmp_path / "p.csv", names[1:], scores[1:])
    with pytest.raises(EvaluationError, match=r"no prediction for 1 of the .* test images"):
        run(tmp_path, path, "--split", "test")


# --- command line -----------------------------------------------------------------------------


def test_cli_eval_val(prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    names, scores = noisy_scores("val")
    path = write_predictions(tmp_path / "p.csv", names, scores)
    out = tmp_path / "run"
    code = main(["eval", "sewerml", "--predictions", str(path), "--split", "val",
                 "--method", "noisy", "--output", str(out)])
    assert code == 0
    record = json.loads((out / "record.json").read_text())
    assert record["dataset"] == "sewerml"
    assert record["method"] == "noisy"
    assert record["data_kind"] == "sample"
    assert record["metrics"]["F2_CIW"] == pytest.approx(
        json.loads((out / "metrics.json").read_text())["F2_CIW"] * 100)
    assert "Run record:" in capsys.readouterr().out


def test_cli_eval_test(prepared: Path, tmp_path: Path,
                      capsys: pytest.CaptureFixture) -> None:
    names, scores = noisy_scores("test")
    path = write_predictions(tmp_path / "p.csv", names, scores)
    out = tmp_path / "run"
    code = main(["eval", "sewerml", "--predictions", str(path), "--split", "test",
                 "--output", str(out)])
    assert code == 0
    assert (out / "sewerml_Test_sigmoid.csv").is_file()
    assert json.loads((out / "record.json").read_text())["metrics"] == {}
    printed = capsys.readouterr().out
    assert "No scores: the split has no labels here. Written:" in printed
    assert "COMBINED" not in printed


def test_cli_eval_rejects_bad_predictions(prepared: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    names, scores = noisy_scores("val")
    path = write_predictions(tmp_path / "p.csv", names[:-1], scores[:-1])
    code = main(["eval", "sewerml", "--predictions", str(path), "--output",
                 str(tmp_path / "run")])
    assert code == 2
    assert f"no prediction for 1 of the {IMAGES} val images" in capsys.readouterr().err


# --- water level, shape and material ----------------------------------------------------------


@pytest.fixture
def prepared_properties(tmp_path: Path) -> Path:
    root = write_sewerml_sample(tmp_path / "src", seed=2, images_per_split=IMAGES,
                                properties=True)
    prepare_dataset("sewerml", root, progress=False)
    return root


def one_hot_scores(indices: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes)[indices]


def test_water_predictions_scored(prepared: Path, tmp_path: Path) -> None:
    from sewerml.multiclass import multiclass_metrics
    from sewerml.tasks import WATER_LEVEL_CLASSES, bin_water_level

    labels = labels_of("val").sort("Filename")
    truth = bin_water_level(labels["WaterLevel"].to_numpy())
    guessed = truth.copy()
    guessed[:3] = (guessed[:3] + 1) % 4
    path = write_predictions(tmp_path / "water.csv", labels["Filename"].to_list(),
                             one_hot_scores(guessed, 4), WATER_LEVEL_CLASSES)

    outcome = run(tmp_path, path, "--task", "water")

    expected = multiclass_metrics(truth, guessed, WATER_LEVEL_CLASSES)
    assert outcome.metrics["W-MF1"] == pytest.approx(100 * expected["MF1"])
    assert outcome.metrics["W-mF1"] == pytest.approx(100 * (IMAGES - 3) / IMAGES)
    assert outcome.config == {"task": "water", "split": "val"}
    assert (tmp_path / "out" / "confusion_water.png").is_file()
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert np.asarray(saved["CM"]).sum() == IMAGES


def test_shape_predictions_scored(prepared_properties: Path, tmp_path: Path) -> None:
    from sewerml.tasks import SHAPE_CLASSES

    labels = labels_of("val").sort("Filename")
    truth = labels["Shape"].to_numpy()
    path = write_predictions(tmp_path / "shape.csv", labels["Filename"].to_list(),
                             one_hot_scores(truth, 6) * 7.5 - 2.0, SHAPE_CLASSES)

    outcome = run(tmp_path, path, "--task", "shape")

    assert outcome.metrics["S-MF1"] == pytest.approx(100.0)
    assert outcome.metrics["S-mF1"] == pytest.approx(100.0)


def test_shape_without_labels_rejected(prepared: Path, tmp_path: Path) -> None:
    from sewerml.tasks import SHAPE_CLASSES

    names = labels_of("val")["Filename"].to_list()
    path = write_predictions(tmp_path / "shape.csv", names,
                             one_hot_scores(np.zeros(len(names), int), 6), SHAPE_CLASSES)
    with pytest.raises(EvaluationError, match=r"the prepared val split has no Shape labels"):
        run(tmp_path, path, "--task", "shape")


def test_task_on_test_split_rejected(prepared: Path, tmp_path: Path) -> None:
    from sewerml.tasks import WATER_LEVEL_CLASSES

    names = labels_of("test")["Filename"].to_list()
    path = write_predictions(tmp_path / "water.csv", names,
                             one_hot_scores(np.zeros(len(names), int), 4), WATER_LEVEL_CLASSES)
    with pytest.raises(EvaluationError, match=r"test labels are withheld, so water predictions "
                                              r"can only be scored on val or train"):
        run(tmp_path, path, "--task", "water", "--split", "test")


def test_task_missing_class_column(prepared: Path, tmp_path: Path) -> None:
    names = labels_of("val")["Filename"].to_list()
    path = write_predictions(tmp_path / "water.csv", names, np.zeros((len(names), 3)),
                             ("0%<5%", "5-15%", "15-30%"))
    with pytest.raises(EvaluationError, match=r"missing column\(s\) 30%<=; expected Filename "
                                              r"and the 4 class columns"):
        run(tmp_path, path, "--task", "water")


def test_task_scores_may_be_logits(prepared: Path, tmp_path: Path) -> None:
    from sewerml.tasks import WATER_LEVEL_CLASSES

    names = labels_of("val")["Filename"].to_list()
    scores = np.full((len(names), 4), -3.0)
    scores[2, 1] = float("inf")
    path = write_predictions(tmp_path / "water.csv", names, scores, WATER_LEVEL_CLASSES)
    with pytest.raises(EvaluationError, match=r"line 4 column 5-15% value 'inf'; expected finite "
                                              r"numbers"):
        run(tmp_path, path, "--task", "water")


def test_split_valid_alias() -> None:
    assert parse("--predictions", "p.csv", "--split", "valid").split == "val"
