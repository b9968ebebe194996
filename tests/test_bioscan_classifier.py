"""The BIOSCAN-1M image classifier: metrics against scikit-learn, the focal loss against its
formula, the model builder with local weights, and ``python -m harness run bioscan-1m
classifier`` end to end on the generated sample."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image
from sklearn.metrics import (
    balanced_accuracy_score,
    f1_score,
    top_k_accuracy_score,
)
from sklearn.metrics import (
    confusion_matrix as sklearn_confusion_matrix,
)
from torchvision import models

from bioscan.classifier import (
    FocalLoss,
    build_model,
    classification_metrics,
    classifier_transform,
    confusion_matrix,
    f1_scores,
    macro_top_k_accuracy,
    per_class_top_k_accuracy,
    top_k_accuracy,
    top_k_values,
)
from bioscan.classifier_baseline import (
    ClassifierBaseline,
    partition_column,
    target_rank_warning,
)
from harness import registry
from harness.cli import main
from harness.errors import EvaluationError, FieldHarnessError, UnknownNameError

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_IMAGES = SHARED / "realdata" / "bioscan" / "bioscan1m_images"
TINY = ("--set", "epochs=1", "--set", "image_size=40", "--set", "crop_size=32",
        "--set", "batch_size=32")


@pytest.fixture(autouse=True)
def classifier_registered() -> Iterator[None]:
    registry.register_baseline("bioscan-1m", "classifier", ClassifierBaseline)
    yield
    registry._extra[registry.BASELINES_GROUP].pop("bioscan-1m.classifier", None)


def random_scores(seed: int, samples: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, samples)
    scores = rng.normal(size=(samples, classes))
    return labels, scores


# --- metrics against scikit-learn ----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
# k >= the class count (a perfect score) is one of the cases compared; sklearn warns about it.
@pytest.mark.filterwarnings("ignore:'k' .* greater than or equal to 'n_classes'")
def test_top_k_matches_sklearn(seed: int) -> None:
    labels, scores = random_scores(seed, 200, 3 + seed * 3)
    for k in (1, 3, 5, 10):
        expected = top_k_accuracy_score(labels, scores, k=k, labels=np.arange(scores.shape[1]))
        assert top_k_accuracy(labels, scores, k) == pytest.approx(expected, abs=1e-12), k


@pytest.mark.parametrize("seed", range(6))
def test_per_class_top_k_matches_sklearn(seed: int) -> None:
    labels, scores = random_scores(100 + seed, 150, 8)
    for k in (1, 3, 5):
        per_class = per_class_top_k_accuracy(labels, scores, k)
        assert sorted(per_class) == sorted(set(labels.tolist()))
        for c, value in per_class.items():
            mask = labels == c
            expected = top_k_accuracy_score(labels[mask], scores[mask], k=k, labels=np.arange(8))
            assert value == pytest.approx(expected, abs=1e-12), (k, c)


@pytest.mark.parametrize("seed", range(6))
def test_macro_top1_matches_balanced_accuracy(seed: int) -> None:
    # 12 score columns but labels from the first 7 only, so some classes have no samples.
    rng = np.random.default_rng(200 + seed)
    labels = rng.integers(0, 7, 60)
    scores = rng.normal(size=(60, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about predicted classes without samples
        expected = balanced_accuracy_score(labels, scores.argmax(axis=1))
    assert macro_top_k_accuracy(labels, scores, 1) == pytest.approx(expected, abs=1e-12)


def test_macro_top_k_official_denominator() -> None:
    # Class 0: 1 of 2 correct, class 2: 1 of 1 correct; class 1 has no samples.
    labels = np.array([0, 0, 2])
    scores = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.0, 0.1, 0.9]])
    assert macro_top_k_accuracy(labels, scores, 1) == pytest.approx(0.75)
    assert macro_top_k_accuracy(labels, scores, 1, num_classes=3) == pytest.approx(0.5)
    assert macro_top_k_accuracy(labels, scores, 2, num_classes=3) == pytest.approx(2 / 3)
    with pytest.raises(EvaluationError, match="num_classes is 1 but 2 classes have samples"):
        macro_top_k_accuracy(labels, scores, 1, num_classes=1)


@pytest.mark.parametrize("seed", range(6))
def test_f1_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    truth = rng.integers(0, 6, 80)
    predicted = rng.integers(0, 9, 80)  # includes classes absent from the labels
    scores = f1_scores(truth, predicted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        micro = f1_score(truth, predicted, average="micro")
        macro = f1_score(truth, predicted, average="macro")
    assert scores["f1_micro"] == pytest.approx(micro, abs=1e-12)
    assert scores["f1_macro"] == pytest.approx(macro, abs=1e-12)


def test_confusion_matches_sklearn() -> None:
    labels, scores = random_scores(7, 90, 5)
    predicted = scores.argmax(axis=1)
    expected = sklearn_confusion_matrix(labels, predicted, labels=np.arange(5))
    np.testing.assert_array_equal(confusion_matrix(labels, predicted, 5), expected)


def test_metrics_cap_k_at_classes() -> None:
    labels, scores = random_scores(8, 40, 4)
    assert top_k_values(4) == [1, 3, 4]
    assert top_k_values(40) == [1, 3, 5, 10]
    metrics = classification_metrics(labels, scores)
    assert sorted(metrics["top_k"]) == [1, 3, 4]
    assert metrics["top_k"][4] == 1.0
    assert metrics["accuracy"] == pytest.approx(metrics["top_k"][1])
    assert metrics["f1_micro"] == pytest.approx(metrics["accuracy"])
    assert metrics["confusion"].sum() == 40


def test_metrics_reject_bad_input() -> None:
    scores = np.zeros((3, 4))
    with pytest.raises(EvaluationError, match="label 4 of sample 2 is outside the 4 score"):
        top_k_accuracy(np.array([0, 1, 4]), scores)
    with pytest.raises(EvaluationError, match=r"labels have shape \(2,\) for scores of shape"):
        top_k_accuracy(np.array([0, 1]), scores)
    with pytest.raises(EvaluationError, match="invalid k 0; expected an integer >= 1"):
        top_k_accuracy(np.array([0, 1, 2]), scores, 0)
    with pytest.raises(EvaluationError, match="scores of sample 1 are not all finite"):
        top_k_accuracy(np.array([0, 1, 2]), np.array([[0.0] * 4, [np.nan] * 4, [0.0] * 4]))


# --- focal loss --------------------------------------------------------------------------------


def test_focal_loss_matches_formula() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 7, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 7, (32,), generator=generator)
    probabilities = torch.softmax(logits, dim=1).numpy()
    p_true = probabilities[np.arange(32), targets.numpy()]
    for gamma in (0.5, 2.0, 5.0):
        expected = -((1.0 - p_true) ** gamma) * np.log(p_true)
        per_sample = FocalLoss(gamma, reduction="none")(logits, targets).numpy()
        np.testing.assert_allclose(per_sample, expected, rtol=1e-10)
        mean = FocalLoss(gamma)(logits, targets).item()
        assert mean == pytest.approx(expected.mean(), rel=1e-10)
        total = FocalLoss(gamma, reduction="sum")(logits, targets).item()
        assert total == pytest.approx(expected.sum(), rel=1e-10)


def test_focal_loss_gamma_zero_is_ce() -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(16, 5, generator=generator)
    targets = torch.randint(0, 5, (16,), generator=generator)
    expected = torch.nn.functional.cross_entropy(logits, targets)
    assert torch.allclose(FocalLoss(0.0)(logits, targets), expected, atol=1e-7)
    assert FocalLoss()(logits, targets) < expected


def test_focal_loss_rejects_bad_settings() -> None:
    with pytest.raises(FieldHarnessError, match="invalid focal loss gamma -1"):
        FocalLoss(-1)
    with pytest.raises(UnknownNameError, match="unknown loss reduction 'max'"):
        FocalLoss(2.0, reduction="max")


# --- model builder -----------------------------------------------------------------------------


def test_build_model_loads_weights(tmp_path: Path) -> None:
    torch.manual_seed(3)
    reference = models.resnet18()
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(reference.state_dict(), path)

    model = build_model("resnet18", 5, weights=path)
    assert isinstance(model.fc, torch.nn.Linear)
    assert (model.fc.in_features, model.fc.out_features) == (512, 5)
    loaded = model.state_dict()
    for key, value in reference.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 5)


def test_build_model_conv_head(tmp_path: Path) -> None:
    torch.manual_seed(4)
    reference = models.squeezenet1_1()
    path = tmp_path / "squeezenet.pth"
    torch.save(reference.state_dict(), path)
    model = build_model("squeezenet1_1", 3, weights=path)
    assert model.classifier[1].out_channels == 3
    assert torch.equal(model.features[0].weight, reference.features[0].weight)
    assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 3)


def test_build_model_rejects_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "resnet34.pth"
    torch.save(models.resnet34().state_dict(), path)
    with pytest.raises(FieldHarnessError, match=r"resnet34\.pth' does not match the model"):
        build_model("resnet18", 5, weights=path)
    with pytest.raises(UnknownNameError, match="unknown torchvision classification model "
                                               "'resnet5'"):
        build_model("resnet5", 5)
    with pytest.raises(FieldHarnessError, match="invalid num_classes 0"):
        build_model("resnet18", 0)


def test_vit_head_replaced() -> None:
    model = build_model("vit_b_16", 16)
    assert model.heads.head.out_features == 16
    assert model.heads.head.in_features == 768


# --- transforms and options --------------------------------------------------------------------


def test_transform_sizes_and_range() -> None:
    image = Image.new("RGB", (291, 256), (200, 100, 50))
    for stage in ("train", "eval"):
        tensor = classifier_transform(stage)(image)
        assert tensor.shape == (3, 224, 224)
        assert float(tensor.min()) >= 0.0
        assert float(tensor.max()) <= 1.0
    with pytest.raises(FieldHarnessError, match="crop size 300 px is larger than the resize"):
        classifier_transform("eval", resize=256, crop=300)
    with pytest.raises(UnknownNameError, match="unknown transform stage 'test'"):
        classifier_transform("test")


@pytest.mark.skipif(not REAL_IMAGES.is_dir(), reason=f"real BIOSCAN-1M images not at "
                    f"{REAL_IMAGES} (the shared fixtures folder is absent)")
def test_transform_real_cropped_images() -> None:
    files = sorted(REAL_IMAGES.glob("cropped_resized_*.jpg"))
    assert len(files) == 5
    transform = classifier_transform("eval")
    for file in files:
        with Image.open(file) as image:
            tensor = transform(image.convert("RGB"))
        assert tensor.shape == (3, 224, 224)
        assert float(tensor.std()) > 0.01, file.name


def test_partition_and_rank_checks() -> None:
    assert partition_column("order", "small") == "small_insect_order"
    assert partition_column("diptera_family", "large") == "large_diptera_family"
    with pytest.raises(UnknownNameError, match="unknown BIOSCAN-1M partitioning size 'tiny'"):
        partition_column("order", "tiny")
    assert target_rank_warning("order", "order") is None
    assert target_rank_warning("diptera_family", "family") is None
    assert "finer than the order partitionings" in target_rank_warning("order", "family")
    assert "single class" in target_rank_warning("diptera_family", "order")


def test_baseline_module_without_torch_import() -> None:
    code = ("import sys, bioscan.classifier_baseline; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- end to end on the generated sample ---------------------------------------------------------


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bioscan1m-classifier")
    home = root / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDHARNESS_HOME", str(home))
        assert main(["-q", "sample", "bioscan-1m", "--output", str(root / "source")]) == 0
        assert main(["-q", "prepare", "bioscan-1m", "--source", str(root / "source"),
                     "--data-dir", str(home)]) == 0
    return home


def run_classifier(home: Path, output: Path, *argv: str) -> dict:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDHARNESS_HOME", str(home))
        registry.register_baseline("bioscan-1m", "classifier", ClassifierBaseline)
        status = main(["-q", "run", "bioscan-1m", "classifier", "--output", str(output),
                       "--data-dir", str(home), *TINY, *argv])
    assert status == 0
    return json.loads((output / "record.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def order_run(sample_home, tmp_path_factory) -> Path:
    """A cross-entropy run on the insect orders from a saved ResNet-18 state dict."""
    root = tmp_path_factory.mktemp("order-run")
    torch.manual_seed(5)
    weights = root / "resnet18.pth"
    torch.save(models.resnet18().state_dict(), weights)
    run_classifier(sample_home, root / "run", "--weights", str(weights))
    return root / "run"


def read_record(run_dir: Path) -> dict:
    return json.loads((run_dir / "record.json").read_text(encoding="utf-8"))


def test_order_run_record(order_run: Path) -> None:
    record = read_record(order_run)
    assert record["dataset"] == "bioscan-1m"
    assert record["method"] == "classifier"
    assert record["split"] == "test"
    assert record["data_kind"] == "sample"
    config = record["config"]
    assert config["model"] == "resnet18"  # the sample preset
    assert config["partition"] == "large_insect_order"
    assert config["target_rank"] == "order"
    assert config["loss"] == "ce"
    assert config["epochs"] == 1
    assert config["weights"].endswith("resnet18.pth")
    assert "workers" not in config


def test_order_run_scores_valid(order_run: Path) -> None:
    metrics = read_record(order_run)["metrics"]
    assert {"top-1", "top-3", "top-5", "macro-top-1", "F1-micro", "F1-macro"} <= set(metrics)
    for name, value in metrics.items():
        assert 0.0 <= value <= 100.0, (name, value)
    assert metrics["top-1"] <= metrics["top-3"] <= metrics["top-5"]
    assert metrics["F1-micro"] == pytest.approx(metrics["top-1"])


def test_order_run_files_written(order_run: Path) -> None:
    names = ["predictions_validation.csv", "predictions_test.csv", "metrics.json",
             "metrics.csv", "per_class.csv", "per_class_accuracy_test.png",
             "per_class_accuracy_validation.png", "confusion_test.png",
             "confusion_validation.png", "history.csv", "loss.png", "checkpoints/best.pt"]
    for name in names:
        assert (order_run / name).is_file(), name
    for plot in order_run.glob("*.png"):
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot.name
    assert not list(order_run.glob("*.tmp*"))


def test_order_run_keeps_best_validation_top1(order_run: Path) -> None:
    summary = json.loads((order_run / "metrics.json").read_text(encoding="utf-8"))
    history = pl.read_csv(order_run / "history.csv")
    assert "val_metric" in history.columns
    best = history.filter(pl.col("epoch") == summary["best_epoch"])
    # metrics.json is in percent; the history keeps the runner's fraction.
    assert summary["best_val_top1"] == pytest.approx(100.0 * best["val_metric"][0])
    assert summary["best_val_top1"] == pytest.approx(100.0 * history["val_metric"].max())


def test_order_run_matches_predictions(order_run: Path) -> None:
    # The record's top-1 and per-class numbers follow from the written prediction CSV.
    record = read_record(order_run)
    summary = json.loads((order_run / "metrics.json").read_text(encoding="utf-8"))
    predictions = pl.read_csv(order_run / "predictions_test.csv")
    scored = predictions.filter(pl.col("target") >= 0)
    assert scored.height == summary["test"]["samples"]
    assert predictions.height - scored.height == summary["test"]["left_out"]
    top1 = float((scored["target"] == scored["predicted"]).mean()) * 100.0
    assert record["metrics"]["top-1"] == pytest.approx(top1)

    classes = summary["classes"]
    probabilities = scored.select([f"p_{name}" for name in classes]).to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert set(scored["label"].to_list()) <= set(classes)
    for name, item in record["per_item"].items():
        rows = scored.filter(pl.col("label") == name)
        assert item["samples"] == rows.height
        expected = float((rows["target"] == rows["predicted"]).mean()) * 100.0
        assert item["accuracy"] == pytest.approx(expected)


def test_focal_diptera_family_run(sample_home, tmp_path: Path) -> None:
    record = run_classifier(sample_home, tmp_path / "run", "--loss", "focal", "--task",
                            "diptera_family")
    assert record["config"]["loss"] == "focal"
    assert record["config"]["partition"] == "large_diptera_family"
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    assert summary["target_rank"] == "family"
    assert all(name.endswith("idae") for name in summary["classes"])
    for value in record["metrics"].values():
        assert 0.0 <= value <= 100.0


def test_finer_rank_warns(sample_home, tmp_path: Path, capsys) -> None:
    # The warning comes before any data is loaded; the unknown model then stops the run.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDHARNESS_HOME", str(sample_home))
        status = main(["run", "bioscan-1m", "classifier", "--output", str(tmp_path / "run"),
                       "--data-dir", str(sample_home), "--set", "target_rank=family",
                       "--model", "resnet5"])
    assert status == 2
    err = capsys.readouterr().err
    assert "target rank 'family' is finer than the order partitionings" in err
    assert "unknown torchvision classification model 'resnet5'" in err
    assert not (tmp_path / "run" / "record.json").exists()


def test_run_rejects_bad_options(sample_home, tmp_path: Path, capsys) -> None:
    cases = [(("--set", "target_rank=kingdom"), "unknown target_rank 'kingdom'"),
             (("--set", "size=huge"), "unknown BIOSCAN-1M partitioning size 'huge'"),
             (("--set", "loss=hinge"), "unknown loss 'hinge'"),
             (("--size", "small"), "partitioning small_insect_order: bioscan-1m split")]
    for options, message in cases:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("FIELDHARNESS_HOME", str(sample_home))
            status = main(["run", "bioscan-1m", "classifier", "--output",
                           str(tmp_path / "run"), "--data-dir", str(sample_home), *options])
        assert status == 2, options
        assert message in capsys.readouterr().err, options


@pytest.mark.slow
def test_classifier_torchrun_two_processes(sample_home: Path, tmp_path: Path) -> None:
    import os

    from _processes import run_process_group

    output = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "harness", "run", "bioscan-1m", "classifier",
               "--output", str(output), "--data-dir", str(sample_home), *TINY]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = run_process_group(command, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]

    # Rank 0 alone scores and records; the predictions cover each test record once.
    assert [p.relative_to(output) for p in output.rglob("record.json")] == [Path("record.json")]
    record = read_record(output)
    assert 0.0 <= record["metrics"]["top-1"] <= 100.0
    predictions = pl.read_csv(output / "predictions_test.csv")
    assert predictions["processid"].n_unique() == predictions.height
    summary = json.loads((output / "metrics.json").read_text(encoding="utf-8"))
    assert predictions.height == summary["test"]["samples"] + summary["test"]["left_out"]
