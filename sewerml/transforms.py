"""Image transforms of the Sewer-ML training protocol, built from ``torchvision.transforms.v2``.

Source: Haurum & Moeslund, "Sewer-ML: A Multi-Label Sewer Defect Classification Dataset and
Benchmark" (CVPR 2021), section 4.2: training images are resized to 224×224 (299×299 for
InceptionV3), flipped horizontally with probability 0.5, colour-jittered by ±0.1 in brightness,
contrast, saturation and hue, and normalised with the mean and standard deviation of the
training split. Evaluation images are only resized and normalised. The CT-GNN code (WACV 2022)
uses the same transforms and statistics.

Resize, flip and colour jitter act on the PIL image, in the order the paper lists them, and the
tensor conversion follows them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

from harness.errors import FieldHarnessError

__all__ = ["SEWERML_MEAN", "SEWERML_STD", "eval_transform", "train_transform"]

SEWERML_MEAN: tuple[float, float, float] = (0.523, 0.453, 0.345)
"""Per-channel (RGB) mean of the Sewer-ML training images, pixel values scaled to [0, 1], as
the official Sewer-ML and CT-GNN code normalise with."""

SEWERML_STD: tuple[float, float, float] = (0.210, 0.199, 0.154)
"""Per-channel (RGB) standard deviation matching :data:`SEWERML_MEAN`."""

COLOR_JITTER = 0.1
"""Brightness, contrast, saturation and hue jitter of the training transform."""


def _check(image_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise FieldHarnessError(
            f"image_size is {image_size!r}; expected a positive number of pixels such as 224"
        )
    if len(mean) != 3 or len(std) != 3:
        raise FieldHarnessError(
            f"mean {tuple(mean)} and std {tuple(std)} must have 3 values each, one per RGB "
            "channel"
        )
    if any(value <= 0 for value in std):
        raise FieldHarnessError(f"std {tuple(std)} has a value <= 0; expected positive values")


def _to_normalised_tensor(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ]


def train_transform(
    image_size: int = 224,
    mean: Sequence[float] = SEWERML_MEAN,
    std: Sequence[float] = SEWERML_STD,
) -> v2.Compose:
    """Build the Sewer-ML training transform: resize, flip, colour jitter, normalise.

    The random choices come from torch's global generator, so ``torch.manual_seed`` (per
    DataLoader worker, as torch seeds them) makes them repeatable.

    Args:
        image_size: Side of the square output in pixels: 224, or 299 for InceptionV3.
        mean: Per-channel mean of pixel values scaled to [0, 1].
        std: Per-channel standard deviation of pixel values scaled to [0, 1].

    Returns:
        A transform from a PIL image to a float32 tensor of shape [3, image_size, image_size].

    Raises:
        FieldHarnessError: ``image_size`` is not a positive integer, or ``mean`` or ``std`` do
            not have three values, or a ``std`` value is not positive.
    """
    _check(image_size, mean, std)
    return v2.Compose([
        v2.Resize((image_size, image_size)),
        v2.RandomHorizontalFlip(p=0.5),
        v2.ColorJitter(brightness=COLOR_JITTER, contrast=COLOR_JITTER,
                       saturation=COLOR_JITTER, hue=COLOR_JITTER),
        *_to_normalised_tensor(mean, std),
    ])


def eval_transform(
    image_size: int = 224,
    mean: Sequence[float] = SEWERML_MEAN,
    std: Sequence[float] = SEWERML_STD,
) -> v2.Compose:
    """Build the Sewer-ML evaluation transform: resize and normalise, nothing random.

    Args and Returns as in :func:`train_transform`.

    Raises:
        FieldHarnessError: As in :func:`train_transform`.
    """
    _check(image_size, mean, std)
    return v2.Compose([v2.Resize((image_size, image_size)), *_to_normalised_tensor(mean, std)])
