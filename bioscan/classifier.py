"""The BIOSCAN-1M image classifier: model builder, focal loss, metrics and plots.

The definitions follow the official code of the BIOSCAN-1M paper (Gharaee et al., NeurIPS 2023;
GitHub ``zahrag/BIOSCAN-1M``, now ``bioscan-ml/BIOSCAN-1M``: ``utils.py``, ``epoch.py``,
``test.py``, ``bioscan_dataloader.py``):

* the focal loss is ``(1 - p_t) ** gamma * CE`` per sample with ``gamma = 2`` and no class
  weight (alpha), averaged over the batch;
* top-k accuracy counts a sample as correct when its label is among the k highest scores;
* per-class top-k accuracy is that fraction within one true class, and macro top-k accuracy is
  the sum of the per-class values of the classes present in the evaluated split divided by the
  number of training classes (the classifier's head size);
* F1 micro and macro come from scikit-learn's ``f1_score`` on the arg-max prediction, so macro F1
  averages over the classes present in the labels or the predictions;
* images are resized (shorter side 256 px), randomly cropped to 224 px and flipped for training,
  centre-cropped for evaluation, and converted to tensors in [0, 1] without normalisation.

The metrics are implemented in NumPy; the tests compare them with scikit-learn. This module
imports torch and torchvision, so the command line imports it only when a run starts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.errors import EvaluationError, FieldHarnessError, UnknownNameError
from harness.plotting import new_figure, save_png

__all__ = [
    "TOP_K",
    "FocalLoss",
    "build_model",
    "classification_metrics",
    "classifier_transform",
    "classifier_head",
    "confusion_matrix",
    "f1_scores",
    "macro_top_k_accuracy",
    "model_names",
    "per_class_top_k_accuracy",
    "plot_confusion_matrix",
    "plot_per_class_accuracy",
    "top_k_accuracy",
    "top_k_values",
]

logger = logging.getLogger(__name__)

TOP_K = (1, 3, 5, 10)
"""The k of the top-k metrics, ``--k`` default of the official ``configurations.py``."""

IMAGENET_CLASSES = 1000
"""Head size of every torchvision classification model as built by default."""

AUXILIARY_HEADS = {"inception_v3": ("AuxLogits.",), "googlenet": ("aux1.", "aux2.")}
"""Auxiliary classifiers that :func:`build_model` turns off. Their keys in a checkpoint are
skipped."""

CONFUSION_TEXT_LIMIT = 20
"""Largest number of classes for which every confusion-matrix cell is labelled with its count."""


# --- model -------------------------------------------------------------------------------------


def model_names() -> list[str]:
    """Return the names of torchvision's image classification models, e.g. ``resnet50``."""
    from torchvision import models

    return sorted(models.list_models(module=models))


def classifier_head(model: nn.Module) -> tuple[str, nn.Module]:
    """Find the final classification layer of a torchvision model built with 1,000 classes.

    The head is the last ``Linear`` (or, for SqueezeNet, ``Conv2d``) layer with 1,000 outputs,
    e.g. ``fc`` of a ResNet, ``heads.head`` of a ViT or ``classifier.6`` of a VGG.

    Returns:
        The head's qualified name and the layer.

    Raises:
        FieldHarnessError: The model has no such layer.
    """
    found: tuple[str, nn.Module] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == IMAGENET_CLASSES:
            found = (name, module)
        elif isinstance(module, nn.Conv2d) and module.out_channels == IMAGENET_CLASSES:
            found = (name, module)
    if found is None:
        raise FieldHarnessError(
            f"{type(model).__name__} has no Linear or Conv2d layer with {IMAGENET_CLASSES} "
            "outputs to replace; expected a torchvision classification model")
    return found


def _replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attribute = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attribute, new)


def build_model(name: str, num_classes: int, *, weights: str | PathLike[str] | None = None
                ) -> nn.Module:
    """Build a torchvision classification model with a new head of ``num_classes`` outputs.

    The model is built with torchvision's 1,000-class head. When ``weights`` is given, that
    local file (an ImageNet checkpoint from torchvision, or any state dict of the same
    architecture) is loaded first, without the keys of the head and of auxiliary classifiers.
    Then the head is replaced by a freshly initialised layer, as the official code does for its
    ImageNet-pretrained torchvision models. Nothing is downloaded.

    Args:
        name: A torchvision model name (:func:`model_names`), e.g. ``resnet50`` or ``vit_b_16``.
        num_classes: Outputs of the new head, at least 1.
        weights: Local checkpoint file; ``None`` keeps torchvision's random initialisation.

    Raises:
        UnknownNameError: ``name`` is not a torchvision classification model.
        FieldHarnessError: ``num_classes`` is below 1, or the file does not match the
            architecture (the message names the first mismatching keys).
        DataFormatError: ``weights`` is not a PyTorch checkpoint.
    """
    from torchvision import models

    from harness.training import load_weights

    valid = model_names()
    if name not in valid:
        raise UnknownNameError("torchvision classification model", name, valid)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise FieldHarnessError(f"invalid num_classes {num_classes!r}; expected an integer >= 1")

    options: dict[str, Any] = {"weights": None}
    auxiliary = AUXILIARY_HEADS.get(name, ())
    if auxiliary:
        options.update(aux_logits=False, init_weights=True)
    model = models.get_model(name, **options)
    head_name, head = classifier_head(model)

    if weights is not None:
        load_weights(model, weights, skip=(f"{head_name}.", *auxiliary))
        logger.info("initialised %s from %s (head %s left out)", name, weights, head_name)

    if isinstance(head, nn.Conv2d):
        new_head: nn.Module = nn.Conv2d(head.in_channels, num_classes,
                                        kernel_size=head.kernel_size, stride=head.stride)
        if hasattr(model, "num_classes"):
            model.num_classes = num_classes
    else:
        new_head = nn.Linear(head.in_features, num_classes)
    _replace_module(model, head_name, new_head)
    return model


def classifier_transform(stage: str, *, resize: int = 256, crop: int = 224,
                         normalize: bool = False):
    """Return the image transform of the official BIOSCAN-1M classifier for one stage.

    ``train``: resize the shorter side to ``resize`` px, crop ``crop`` px at a random position,
    flip horizontally with probability 0.5, convert to a float tensor in [0, 1]. ``eval``: the
    same with a centre crop and no flip.

    Args:
        stage: ``"train"`` or ``"eval"``.
        resize: Shorter side after resizing, in pixels.
        crop: Side of the square crop, in pixels; at most ``resize``.
        normalize: Also subtract the ImageNet mean and divide by its standard deviation. The
            official code does not normalise.

    Raises:
        UnknownNameError: ``stage`` is not ``train`` or ``eval``.
        FieldHarnessError: a size below 1, or ``crop`` larger than ``resize``.
    """
    from torchvision import transforms

    if stage not in ("train", "eval"):
        raise UnknownNameError("transform stage", stage, ("train", "eval"))
    for key, value in (("resize", resize), ("crop", crop)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise FieldHarnessError(f"invalid {key} {value!r}; expected a size in pixels >= 1")
    if crop > resize:
        raise FieldHarnessError(f"crop size {crop} px is larger than the resize size {resize} px;"
                                " expected crop <= resize")

    steps: list[Any] = [transforms.Resize(resize)]
    if stage == "train":
        steps += [transforms.RandomCrop(crop), transforms.RandomHorizontalFlip()]
    else:
        steps.append(transforms.CenterCrop(crop))
    steps.append(transforms.ToTensor())
    if normalize:
        steps.append(transforms.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)))
    return transforms.Compose(steps)


# --- loss --------------------------------------------------------------------------------------


class FocalLoss(nn.Module):
    """Multiclass focal loss ``(1 - p_t) ** gamma * CE``, without a class weight (alpha).

    ``p_t`` is the softmax probability of the true class, recovered as ``exp(-CE)``. With
    ``gamma = 0`` the loss equals cross-entropy. The official BIOSCAN-1M code
    (``MulticlassFocalLoss``) uses ``gamma = 2`` and the batch mean.

    Args:
        gamma: Focusing parameter, at least 0.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one loss per sample).
    """

    def __init__(self, gamma: float = 2.0, reduction: str = "mean"):
        super().__init__()
        if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not gamma >= 0:
            raise FieldHarnessError(f"invalid focal loss gamma {gamma!r}; expected a number >= 0")
        if reduction not in ("mean", "sum", "none"):
            raise UnknownNameError("loss reduction", reduction, ("mean", "sum", "none"))
        self.gamma = float(gamma)
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Return the focal loss of ``logits`` [N, C] against class indices ``targets`` [N]."""
        cross_entropy = nn.functional.cross_entropy(logits, targets, reduction="none")
        p_true = torch.exp(-cross_entropy)
        loss = (1.0 - p_true) ** self.gamma * cross_entropy
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss


# --- metrics -----------------------------------------------------------------------------------


def _check_scores(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(y_true)
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 1:
        raise EvaluationError(f"scores have shape {values.shape}; expected (samples, classes)")
    if labels.ndim != 1 or labels.shape[0] != values.shape[0]:
        raise EvaluationError(
            f"labels have shape {labels.shape} for scores of shape {values.shape}; expected one "
            "label per row of scores")
    if labels.shape[0] == 0:
        raise EvaluationError("no samples to score; expected at least one labelled sample")
    if not np.issubdtype(labels.dtype, np.integer):
        raise EvaluationError(f"labels have dtype {labels.dtype}; expected integer class indices")
    outside = (labels < 0) | (labels >= values.shape[1])
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise EvaluationError(
            f"label {int(labels[first])} of sample {first} is outside the {values.shape[1]} "
            f"score columns; expected class indices 0 to {values.shape[1] - 1}")
    if not np.all(np.isfinite(values)):
        row = int(np.flatnonzero(~np.all(np.isfinite(values), axis=1))[0])
        raise EvaluationError(f"scores of sample {row} are not all finite; expected finite "
                              "logits or probabilities")
    return labels.astype(np.int64), values


def _hits(labels: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Return whether each label is among its row's ``k`` highest scores.

    Ties are broken towards the lower class index (a stable sort of the negated scores).
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise EvaluationError(f"invalid k {k!r}; expected an integer >= 1")
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (top == labels[:, None]).any(axis=1)


def top_k_values(num_classes: int, ks: Sequence[int] = TOP_K) -> list[int]:
    """Return the k values of ``ks`` capped at ``num_classes``, without repeats, in order."""
    return list(dict.fromkeys(min(int(k), num_classes) for k in ks))


def top_k_accuracy(y_true: Any, scores: Any, k: int = 1) -> float:
    """Return the fraction of samples whose label is among their ``k`` highest scores.

    Args:
        y_true: Class indices, shape (n,).
        scores: Logits or probabilities, shape (n, classes).
        k: Number of top-scoring classes that count. A k above the class count counts all.

    Raises:
        EvaluationError: Mismatching shapes, labels outside the score columns, non-finite
            scores, no samples or ``k < 1``.
    """
    labels, values = _check_scores(y_true, scores)
    return float(_hits(labels, values, k).mean())


def per_class_top_k_accuracy(y_true: Any, scores: Any, k: int = 1) -> dict[int, float]:
    """Return the top-k accuracy within each true class present in ``y_true``.

    With ``k = 1`` this is the per-class accuracy (the recall of each class).

    Returns:
        Class index -> accuracy, in increasing class order, for the classes with samples.

    Raises:
        EvaluationError: As :func:`top_k_accuracy`.
    """
    labels, values = _check_scores(y_true, scores)
    hits = _hits(labels, values, k)
    counts = np.bincount(labels, minlength=values.shape[1])
    correct = np.bincount(labels, weights=hits, minlength=values.shape[1])
    return {int(c): float(correct[c] / counts[c]) for c in np.flatnonzero(counts)}


def macro_top_k_accuracy(y_true: Any, scores: Any, k: int = 1, *,
                         num_classes: int | None = None) -> float:
    """Return the macro-averaged top-k accuracy.

    Args:
        y_true: Class indices, shape (n,).
        scores: Logits or probabilities, shape (n, classes).
        k: Number of top-scoring classes that count.
        num_classes: Denominator of the average. The official BIOSCAN-1M code divides the sum of
            the per-class values of the classes present in ``y_true`` by the number of training
            classes, so a class without samples counts as 0; pass that number for its
            definition. ``None`` averages over the present classes only, which for ``k = 1``
            is scikit-learn's ``balanced_accuracy_score``.

    Raises:
        EvaluationError: As :func:`top_k_accuracy`, or ``num_classes`` below the number of
            classes present.
    """
    per_class = per_class_top_k_accuracy(y_true, scores, k)
    denominator = len(per_class) if num_classes is None else num_classes
    if denominator < len(per_class):
        raise EvaluationError(f"num_classes is {num_classes} but {len(per_class)} classes have "
                              "samples; expected at least the number of classes present")
    return float(sum(per_class.values()) / denominator)


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """Return the ``num_classes`` × ``num_classes`` counts, true classes on rows.

    Raises:
        EvaluationError: Labels of different lengths, or outside 0 to ``num_classes - 1``.
    """
    truth = np.asarray(y_true, dtype=np.int64)
    predicted = np.asarray(y_pred, dtype=np.int64)
    if truth.shape != predicted.shape or truth.ndim != 1:
        raise EvaluationError(f"labels have shapes {truth.shape} and {predicted.shape}; expected "
                              "two 1-D arrays of the same length")
    for name, values in (("true", truth), ("predicted", predicted)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise EvaluationError(f"a {name} label is outside 0 to {num_classes - 1}; expected "
                                  f"class indices of the {num_classes} classes")
    flat = np.bincount(truth * num_classes + predicted, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def f1_scores(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Return F1 micro and macro as scikit-learn's ``f1_score`` computes them by default.

    The classes are those present in ``y_true`` or ``y_pred``. A class without true and
    predicted samples has F1 0 (scikit-learn's ``zero_division`` default). For single-label
    predictions F1 micro equals accuracy.

    Returns:
        ``{"f1_micro": ..., "f1_macro": ...}``.

    Raises:
        EvaluationError: Labels of different lengths or no samples.
    """
    truth = np.asarray(y_true, dtype=np.int64)
    predicted = np.asarray(y_pred, dtype=np.int64)
    if truth.shape != predicted.shape or truth.ndim != 1 or truth.size == 0:
        raise EvaluationError(f"labels have shapes {truth.shape} and {predicted.shape}; expected "
                              "two non-empty 1-D arrays of the same length")
    classes = np.union1d(truth, predicted)
    true_positive = np.array([np.sum((truth == c) & (predicted == c)) for c in classes])
    predicted_count = np.array([np.sum(predicted == c) for c in classes])
    true_count = np.array([np.sum(truth == c) for c in classes])
    denominator = predicted_count + true_count
    per_class = np.divide(2.0 * true_positive, denominator, out=np.zeros(len(classes)),
                          where=denominator > 0)
    micro = 2.0 * true_positive.sum() / denominator.sum()
    return {"f1_micro": float(micro), "f1_macro": float(per_class.mean())}


def classification_metrics(y_true: Any, scores: Any, *, num_classes: int | None = None,
                           ks: Sequence[int] = TOP_K) -> dict[str, Any]:
    """Compute every metric of the official BIOSCAN-1M evaluation on one split.

    Args:
        y_true: Class indices, shape (n,).
        scores: Logits or probabilities, shape (n, classes).
        num_classes: Number of training classes for the macro average; default: the number of
            score columns.
        ks: The k values; each is capped at the number of score columns.

    Returns:
        ``top_k`` and ``macro_top_k`` (dicts k -> value), ``per_class_accuracy`` and
        ``per_class_top_k`` (class index -> value, for the classes with samples), ``f1_micro``,
        ``f1_macro``, ``accuracy``, ``confusion`` (counts) and ``samples``.

    Raises:
        EvaluationError: As :func:`top_k_accuracy`.
    """
    labels, values = _check_scores(y_true, scores)
    classes = values.shape[1]
    denominator = classes if num_classes is None else num_classes
    predicted = np.argmax(values, axis=1)
    top_k: dict[int, float] = {}
    macro: dict[int, float] = {}
    per_class_top_k: dict[int, dict[int, float]] = {}
    for k in top_k_values(classes, ks):
        top_k[k] = top_k_accuracy(labels, values, k)
        per_class_top_k[k] = per_class_top_k_accuracy(labels, values, k)
        macro[k] = macro_top_k_accuracy(labels, values, k, num_classes=denominator)
    return {
        "samples": int(labels.shape[0]),
        "accuracy": float(np.mean(predicted == labels)),
        "top_k": top_k,
        "macro_top_k": macro,
        "per_class_accuracy": per_class_top_k_accuracy(labels, values, 1),
        "per_class_top_k": per_class_top_k,
        **f1_scores(labels, predicted),
        "confusion": confusion_matrix(labels, predicted, classes),
    }


# --- plots -------------------------------------------------------------------------------------


def plot_per_class_accuracy(accuracy: Mapping[str, float], counts: Mapping[str, int],
                            path: str | PathLike[str], *, title: str | None = None) -> Path:
    """Draw the accuracy of each class as bars, labelled with the class's sample count.

    Args:
        accuracy: Class name -> accuracy in [0, 1], in the order to draw.
        counts: Class name -> number of evaluated samples, shown under each name.
        path: Output PNG file; its folder is created if needed.
        title: First title line. The second gives the mean of the bars. It differs from the
            official macro accuracy when some training classes have no samples.

    Raises:
        EvaluationError: No classes, a value outside [0, 1], or a class without a count.
    """
    names = list(accuracy)
    if not names:
        raise EvaluationError("no per-class accuracy to plot; expected at least one class")
    values = np.array([accuracy[name] for name in names], dtype=np.float64)
    if not np.all((values >= 0.0) & (values <= 1.0)):
        raise EvaluationError(f"per-class accuracy {values.tolist()} has a value outside [0, 1]")
    missing = [name for name in names if name not in counts]
    if missing:
        raise EvaluationError(f"no sample count for class {missing[0]!r}; expected one count per "
                              "class")

    figure = new_figure(max(6.0, 0.35 * len(names) + 2.0), 4.8)
    axes = figure.add_subplot()
    positions = np.arange(len(names))
    bars = axes.bar(positions, values * 100.0, color="tab:blue")
    axes.bar_label(bars, fmt="%.0f", fontsize=6, padding=1)
    labels = [f"{name} ({counts[name]})" for name in names]
    axes.set_xticks(positions, labels, rotation=60, ha="right", fontsize=7)
    axes.set_ylim(0.0, 105.0)
    axes.set_ylabel("accuracy (%)")
    axes.set_xlabel("class (evaluated samples)")
    headline = f"mean of the {len(names)} classes shown = {values.mean() * 100.0:.2f} %"
    axes.set_title(headline if title is None else f"{title}\n{headline}")
    return save_png(figure, path)


def plot_confusion_matrix(matrix: Any, class_names: Sequence[str], path: str | PathLike[str], *,
                          title: str | None = None) -> Path:
    """Draw a row-normalised confusion matrix as a heat map, true classes on rows.

    Each cell's colour is the share of its true class predicted as the column's class. Cells
    show their counts when there are at most :data:`CONFUSION_TEXT_LIMIT` classes.

    Raises:
        EvaluationError: A matrix that is not square, has negative counts or does not match the
            number of class names.
    """
    counts = np.asarray(matrix, dtype=np.float64)
    names = [str(name) for name in class_names]
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(names):
        raise EvaluationError(f"confusion matrix has shape {counts.shape} for {len(names)} class "
                              "names; expected a square matrix with one row per class")
    if (counts < 0).any() or not np.all(np.isfinite(counts)):
        raise EvaluationError("confusion matrix has a negative or non-finite count")
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0) * 100.0

    size = len(names)
    side = max(4.0, 0.3 * size + 3.0)
    figure = new_figure(side + 1.0, side)
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=100.0)
    figure.colorbar(image, ax=axes, label="share of true class (%)")
    if size <= CONFUSION_TEXT_LIMIT:
        for i in range(size):
            for j in range(size):
                colour = "white" if share[i, j] > 50.0 else "black"
                axes.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                          color=colour)
    font_size = 8 if size <= CONFUSION_TEXT_LIMIT else 5
    axes.set_xticks(np.arange(size), names, rotation=60, ha="right", fontsize=font_size)
    axes.set_yticks(np.arange(size), names, fontsize=font_size)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if title is not None:
        axes.set_title(title)
    return save_png(figure, path)
