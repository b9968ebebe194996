"""The networks of the Sewer-ML benchmark, built untrained for training from scratch.

The Sewer-ML benchmark (Haurum & Moeslund, "Sewer-ML: A Multi-Label Sewer Defect Classification
Dataset and Benchmark", CVPR 2021) pairs the binary first stage of Xie et al. (2019) with a
TResNet-L multi-label second stage. The paper trains every network from scratch, without
ImageNet weights, at 224 x 224 px. This module builds those networks and the other single-stage
networks of its Table 4 that share the 224 px input (ResNet-101, TResNet-M and TResNet-XL).

Every model takes an image batch of shape [B, 3, H, W] and returns logits of shape
[B, num_classes]. Apply a sigmoid to get the probabilities that the official metrics read.

This module imports torch at its top and is meant for training code only. ``timm`` and
``torchvision`` are imported when a model that needs them is built.

NOTE: Chen et al.'s InceptionV3 second stage, the only benchmark network trained at 299 x 299
px, is not included here.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

import torch
from torch import nn

from harness.errors import FieldHarnessError, MissingDependencyError, UnknownNameError

__all__ = [
    "INPUT_SIZE_MULTIPLE",
    "MIN_INPUT_SIZE",
    "MODEL_INPUT_SIZE",
    "MODEL_NAMES",
    "Xie2019",
    "build_model",
    "check_input_size",
    "smallest_input_size",
]

logger = logging.getLogger(__name__)

MODEL_NAMES: tuple[str, ...] = ("resnet101", "tresnet_l", "tresnet_m", "tresnet_xl", "xie2019")
TIMM_MODELS: tuple[str, ...] = ("tresnet_l", "tresnet_m", "tresnet_xl")

# Training and evaluation input side in pixels, from the Sewer-ML paper's training protocol:
# every image is resized to 224 x 224 px (299 x 299 px only for InceptionV3, not included).
MODEL_INPUT_SIZE: dict[str, int] = {name: 224 for name in MODEL_NAMES}

# Smallest square input side in pixels that runs a training step (forward and backward, batch
# of 2), measured with torch 2.14.1, torchvision 0.29.1 and timm 1.0.31. Meant for smoke runs
# and tests on small images.
# - TResNet: the space-to-depth stem folds 4 x 4 pixel blocks into channels, so the side must
#   be a multiple of 4. The anti-aliased stride-2 blocks pad by reflection, which needs a
#   feature map wider than 1 px, so 16 px fails and 20 px is the minimum. With a batch of 1 in
#   training mode, sides up to 32 px leave a 1 x 1 final feature map that BatchNorm rejects, so
#   there the minimum is 36 px.
# - Xie2019: two stride-2 convolutions and three 2 x 2 max pools reduce the side about 32-fold,
#   and 22 px is the smallest side that leaves a 1 x 1 map before the adaptive pool.
# - ResNet-101: padding lets even 1 px run, but 32 px, its total stride, is the smallest side
#   with one whole cell in the final feature map.
MIN_INPUT_SIZE: dict[str, int] = {
    "resnet101": 32,
    "tresnet_l": 20,
    "tresnet_m": 20,
    "tresnet_xl": 20,
    "xie2019": 22,
}

# Every valid input side is a multiple of this, in pixels.
INPUT_SIZE_MULTIPLE: dict[str, int] = {
    "resnet101": 1,
    "tresnet_l": 4,
    "tresnet_m": 4,
    "tresnet_xl": 4,
    "xie2019": 1,
}

TRAIN_EXTRA_HINT = "install it with: pip install 'fieldharness[train]'"


class Xie2019(nn.Module):
    """The small CNN of Xie et al. (2019), as the Sewer-ML code base defines it.

    The layers follow ``sewer_models.py`` of the official Sewer-ML repository
    (bitbucket.org/aauvap/sewer-ml), where this network is the benchmark's binary first stage.
    Three convolution blocks each end in ReLU and a 2 x 2 max pool: an 11 x 11 conv with 64
    channels, then two 3 x 3 stride-2 convs with 128 channels. An 8 x 8 adaptive average pool
    feeds a classifier of three linear layers (1024, 512 and num_classes outputs), with ReLU
    and dropout after each hidden layer.

    With ``num_classes=1`` it has 9,159,681 parameters, 8,389,632 of them in the first linear
    layer. The adaptive pool accepts any input side of at least 22 px.

    Args:
        num_classes: Number of output logits; 1 for the binary first stage, 17 for a
            multi-label model.
        dropout: Dropout probability after each hidden linear layer.

    Raises:
        FieldHarnessError: If ``num_classes`` < 1 or ``dropout`` is outside [0, 1).
    """

    def __init__(self, num_classes: int = 1, dropout: float = 0.6):
        super().__init__()
        _check_num_classes(num_classes)
        if not 0.0 <= dropout < 1.0:
            raise FieldHarnessError(f"dropout is {dropout!r}; expected a probability in [0, 1)")
        self.num_classes = num_classes

        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=1, padding=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2),
            nn.Conv2d(64, 128, kernel_size=3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2),
            nn.Conv2d(128, 128, kernel_size=3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((8, 8))
        self.classifier = nn.Sequential(
            nn.Linear(128 * 8 * 8, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(1024, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(512, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map images [B, 3, H, W] to logits [B, num_classes]."""
        features = self.avgpool(self.features(images))
        return self.classifier(torch.flatten(features, 1))


def build_model(name: str, num_classes: int) -> nn.Module:
    """Build an untrained benchmark network with ``num_classes`` output logits.

    The weights are randomly initialised, as in the Sewer-ML paper, which trains every network
    from scratch. Nothing is downloaded.

    Args:
        name: One of ``MODEL_NAMES``: ``xie2019`` (:class:`Xie2019`), ``tresnet_m``,
            ``tresnet_l``, ``tresnet_xl`` (timm) or ``resnet101`` (torchvision).
        num_classes: Number of output logits, e.g. 1 for a binary stage or 17 for the
            multi-label classes.

    Returns:
        The model. It maps images [B, 3, H, W] to logits [B, num_classes].

    Raises:
        UnknownNameError: If ``name`` is not in ``MODEL_NAMES``.
        MissingDependencyError: If timm (for TResNet) or torchvision (for ResNet-101) is not
            installed.
        FieldHarnessError: If ``num_classes`` < 1.
    """
    if name not in MODEL_NAMES:
        raise UnknownNameError("model", name, MODEL_NAMES)
    _check_num_classes(num_classes)

    if name == "xie2019":
        model: nn.Module = Xie2019(num_classes=num_classes)
    elif name in TIMM_MODELS:
        timm = _import_optional("timm", name)
        model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    else:
        models = _import_optional("torchvision.models", name)
        model = models.resnet101(weights=None, num_classes=num_classes)

    n_parameters = sum(parameter.numel() for parameter in model.parameters())
    logger.info("built %s with %d outputs and %d parameters", name, num_classes, n_parameters)
    return model


def smallest_input_size(name: str) -> int:
    """Return the smallest square input side, in pixels, that the model ``name`` trains on.

    See ``MIN_INPUT_SIZE`` for how the values were measured. Any side from this value up that is
    a multiple of ``INPUT_SIZE_MULTIPLE[name]`` is valid with a batch of at least 2.

    Raises:
        UnknownNameError: If ``name`` is not in ``MODEL_NAMES``.
    """
    if name not in MODEL_NAMES:
        raise UnknownNameError("model", name, MODEL_NAMES)
    return MIN_INPUT_SIZE[name]


def check_input_size(name: str, height: int, width: int) -> None:
    """Raise unless the model ``name`` accepts images of ``height`` x ``width`` pixels.

    Raises:
        UnknownNameError: If ``name`` is not in ``MODEL_NAMES``.
        FieldHarnessError: If a side is below ``MIN_INPUT_SIZE[name]`` or not a multiple of
            ``INPUT_SIZE_MULTIPLE[name]``. The message names the nearest valid side.
    """
    smallest = smallest_input_size(name)
    multiple = INPUT_SIZE_MULTIPLE[name]
    for side_name, side in (("height", height), ("width", width)):
        if side < smallest or side % multiple:
            valid = max(smallest, -(-side // multiple) * multiple)
            raise FieldHarnessError(
                f"input {side_name} {side} px is invalid for {name}; expected a multiple of "
                f"{multiple} px that is at least {smallest} px, such as {valid}"
            )


def _check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise FieldHarnessError(f"num_classes is {num_classes!r}; expected an integer >= 1")


def _import_optional(module: str, model_name: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package = module.split(".")[0]
        raise MissingDependencyError(
            f"model {model_name!r} needs {package}, which is not installed; {TRAIN_EXTRA_HINT}"
        ) from err
