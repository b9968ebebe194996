"""Image transforms for BIOSCAN-5M and BIOSCAN-1M images, built from ``torchvision.transforms.v2``.

The normalisation constants are the per-channel statistics ``bioscan-dataset`` 1.3.0 publishes
for each release (``RGB_MEAN`` and ``RGB_STDEV`` of ``bioscan5m.py`` and ``bioscan1m.py``);
ImageNet's are there for encoders pretrained on ImageNet, as the zero-shot clustering pipeline
of the BIOSCAN-5M paper uses them.

Evaluation resizes the shorter side and takes the centre crop. Training resizes the shorter side,
takes a random crop of the same size and flips horizontally with probability 0.5, the recipe of
the BIOSCAN-1M classifier (resize 256, crop 224). Both end in a float32 tensor normalised with
the chosen statistics.

This module imports torchvision only when a transform is built, so its constants are usable
without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.errors import FieldHarnessError, UnknownNameError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "NORMALIZATIONS", "image_transform"]

BIOSCAN5M_MEAN = (0.76281859, 0.76503749, 0.76373138)
BIOSCAN5M_STD = (0.14205404, 0.15642502, 0.17309470)
BIOSCAN1M_MEAN = (0.72510918, 0.72891550, 0.72956181)
BIOSCAN1M_STD = (0.12654378, 0.14301962, 0.16103319)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "bioscan-5m": (BIOSCAN5M_MEAN, BIOSCAN5M_STD),
    "bioscan-1m": (BIOSCAN1M_MEAN, BIOSCAN1M_STD),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
}
"""Per-channel RGB (mean, std) of pixel values scaled to [0, 1], by name."""

KINDS = ("train", "eval")


def _check_pixels(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FieldHarnessError(f"{name} is {value!r}; expected a positive number of pixels "
                                "such as 224")
    return value


def _statistics(
    normalization: str | tuple[Sequence[float], Sequence[float]],
) -> tuple[list[float], list[float]]:
    if isinstance(normalization, str):
        if normalization not in NORMALIZATIONS:
            raise UnknownNameError("normalization", normalization, NORMALIZATIONS)
        mean, std = NORMALIZATIONS[normalization]
    else:
        mean, std = normalization
    if len(mean) != 3 or len(std) != 3 or any(value <= 0 for value in std):
        raise FieldHarnessError(f"normalization mean {tuple(mean)} and std {tuple(std)} must have "
                                "3 values each, one per RGB channel, and std must be positive")
    return [float(value) for value in mean], [float(value) for value in std]


def image_transform(
    kind: str = "eval",
    *,
    dataset: str = "bioscan-5m",
    size: int = 224,
    resize: int | None = None,
    normalization: str | tuple[Sequence[float], Sequence[float]] | None = None,
):
    """Build the transform from a PIL image to a normalised float32 tensor [3, size, size].

    Args:
        kind: ``"train"`` (resize, random crop, horizontal flip) or ``"eval"`` (resize, centre
            crop). Random choices come from torch's global generator, seeded per DataLoader
            worker.
        dataset: ``"bioscan-5m"`` or ``"bioscan-1m"``; picks the default normalisation.
        size: Side of the square crop in pixels.
        resize: Shorter side after resizing; ``None`` means ``size * 256 / 224`` rounded down
            (256 for 224), as the BIOSCAN-1M classifier. Pass ``resize=size`` for the zero-shot
            clustering recipe (Resize 224 then CenterCrop 224).
        normalization: A name of :data:`NORMALIZATIONS` or ``(mean, std)``; ``None`` means the
            statistics of ``dataset``.

    Raises:
        UnknownNameError: ``kind``, ``dataset`` or the normalisation name is not known.
        FieldHarnessError: ``size`` or ``resize`` is not a positive integer, ``resize`` is
            smaller than ``size``, or the statistics are not three positive values.
    """
    import torch
    from torchvision.transforms import v2

    if kind not in KINDS:
        raise UnknownNameError("transform kind", kind, KINDS)
    if dataset not in ("bioscan-5m", "bioscan-1m"):
        raise UnknownNameError("BIOSCAN dataset", dataset, ("bioscan-5m", "bioscan-1m"))
    size = _check_pixels("size", size)
    resize = _check_pixels("resize", size * 256 // 224 if resize is None else resize)
    if resize < size:
        raise FieldHarnessError(f"resize is {resize}, smaller than the crop size {size}; "
                                "expected resize >= size")
    mean, std = _statistics(dataset if normalization is None else normalization)

    crop: list[v2.Transform]
    if kind == "train":
        crop = [v2.RandomCrop(size), v2.RandomHorizontalFlip(0.5)]
    else:
        crop = [v2.CenterCrop(size)]
    return v2.Compose([
        v2.ToImage(),
        v2.Resize(resize, antialias=True),
        *crop,
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=mean, std=std),
    ])
