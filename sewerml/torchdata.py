"""PyTorch input pipeline for prepared Sewer-ML images: a map-style dataset and helpers.

:class:`SewerMLImages` reads the prepared ``labels`` config through ``load_dataset`` and decodes
each PNG, from a file or in place from an official zip archive, when an item is requested.
Items are dicts that the default DataLoader collate function batches::

    {"image": float32 [3, H, W], "index": int,
     "defect": float32 [17] (DEFECT_CODES order), "binary": float32 [1] (the Defect column),
     "water": int64 scalar (bin 0..3), "shape": int64 scalar (0..5 or IGNORE_INDEX),
     "material": int64 scalar (0..7 or IGNORE_INDEX)}

The label keys are absent on the test split, whose labels are withheld.

The task constants and :func:`bin_water_level` live in the torch-free :mod:`sewerml.tasks` and
are re-exported here.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from typing import Any

import numpy as np
import polars as pl
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError
from harness.imagestore import ImageNotFoundError, ImageStore
from sewerml.classes import DEFECT_CODES
from sewerml.tasks import (
    IGNORE_INDEX,
    MATERIAL_CLASSES,
    SHAPE_CLASSES,
    TASK_CLASSES,
    WATER_LEVEL_CLASSES,
    WATER_LEVEL_EDGES,
    bin_water_level,
)
from sewerml.transforms import eval_transform

__all__ = [
    "IGNORE_INDEX",
    "MATERIAL_CLASSES",
    "SHAPE_CLASSES",
    "TASK_CLASSES",
    "WATER_LEVEL_CLASSES",
    "WATER_LEVEL_EDGES",
    "ImageNotFoundError",
    "SewerMLImages",
    "bin_water_level",
    "compute_mean_std",
    "hf_transform",
]

logger = logging.getLogger(__name__)

Transform = Callable[[Image.Image], Any]

PROPERTY_COLUMNS = {"shape": "Shape", "material": "Material"}
"""CSV column of each optional multi-class task."""

REQUIRED_COLUMNS = ("Filename", "image", *DEFECT_CODES, "Defect", "WaterLevel")


# --- labels -----------------------------------------------------------------------------------


def _check_water_levels(levels: np.ndarray, names: Sequence[str]) -> None:
    """Raise a DataFormatError naming the first image whose water level is not 0 to 100."""
    invalid = ~((levels >= 0) & (levels <= 100))
    if invalid.any():
        first = int(np.flatnonzero(invalid)[0])
        raise DataFormatError(f"invalid water level of image {names[first]}", field="WaterLevel",
                              value=float(levels[first]), expected="a percentage from 0 to 100")


def _class_targets(
    values: Sequence[Any] | np.ndarray, column: str, classes: tuple[str, ...],
    names: Sequence[str],
) -> np.ndarray:
    """Return int64 class indices, IGNORE_INDEX where a value is null.

    Raises:
        DataFormatError: A code is outside ``0 .. len(classes) - 1``; the message names the
            image.
    """
    codes = np.array([IGNORE_INDEX if value is None else value for value in values],
                     dtype=np.int64)
    invalid = (codes != IGNORE_INDEX) & ((codes < 0) | (codes >= len(classes)))
    if invalid.any():
        first = int(np.flatnonzero(invalid)[0])
        raise DataFormatError(f"invalid {column} code of image {names[first]}", field=column,
                              value=int(codes[first]),
                              expected=f"an integer from 0 to {len(classes) - 1}")
    return codes


def _labelled_rows(defect: Sequence[Any], names: Sequence[str]) -> bool:
    """Return whether every row has labels; raise when only some rows have them."""
    missing = [value is None for value in defect]
    if not any(missing):
        return True
    if all(missing):
        return False
    first = names[missing.index(True)]
    raise DataFormatError(
        f"{sum(missing)} of {len(missing)} images have no labels, the first is {first}",
        field="Defect", expected="labels on every image or on none; load a labelled split "
        "(train, val) and the test split separately",
    )


# --- dataset ----------------------------------------------------------------------------------


class SewerMLImages(Dataset):
    """Sewer-ML images of one prepared split with their labels, as a map-style dataset.

    Zip archives are opened on first use in each process, once per archive, so a member read
    does not parse the central directory again. A forked DataLoader worker opens its own
    handles, because a handle shared with the parent would share its file offset, and open
    handles are left out when the dataset is pickled for spawned workers.

    Rows whose image was not found at prepare time (a null ``image``) are left out with a
    warning.

    Attributes:
        split: The split name passed in.
        filenames: ``Filename`` of each image, in item order.
        has_labels: Whether the split has labels; false on the test split.
        tasks: Tasks with labels: ``"defect"``, ``"water"``, and ``"shape"`` and
            ``"material"`` when that CSV column has any value. Empty without labels.
        targets: Per-image labels: ``"defect"`` int8 [N, 17], ``"binary"`` int8 [N] (the
            Defect column), ``"water"`` int64 [N] (bins 0..3), ``"shape"`` and
            ``"material"`` int64 [N] with IGNORE_INDEX where missing. Empty without labels.
        transform: Applied to the decoded RGB PIL image.
    """

    def __init__(
        self,
        split: str = "train",
        *,
        transform: Transform | None = None,
        version: str | None = None,
        data_dir: str | PathLike[str] | None = None,
        defect_only: bool = False,
        frame: pl.DataFrame | None = None,
    ):
        """Load the image locations and labels of ``split``.

        Args:
            split: Prepared split, or several joined with ``+`` (all labelled or all not).
            transform: Applied to each RGB PIL image; :func:`eval_transform` for ``None``.
            version: Prepared version; as in ``load_dataset``.
            data_dir: Override of the data home; as in ``load_dataset``.
            defect_only: Keep only images with ``Defect == 1``, the training set of the
                Sewer-ML benchmark's second stage.
            frame: An already loaded ``labels`` polars frame (``load_dataset(...,
                format="polars")``) to use in place of loading ``split``. Its ``image`` column
                must contain absolute paths or ``/abs/archive.zip::member``.

        Raises:
            NotPreparedError, UnknownNameError: As ``load_dataset`` raises them.
            DataFormatError: ``frame`` lacks a column, some images have labels and others
                not, a water level is not 0 to 100, or a Shape or Material code is outside its
                class list.
            FieldHarnessError: ``defect_only`` on a split without labels, or no image is left.
        """
        if frame is None:
            from harness.loading import load_dataset

            frame = load_dataset("sewerml", split=split, version=version, data_dir=data_dir,
                                 format="polars")
        missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
        if missing:
            raise DataFormatError(
                f"missing column(s) in the labels frame: {', '.join(missing)}",
                expected="the columns of the prepared sewerml labels config",
            )

        absent = frame.filter(pl.col("image").is_null())
        if absent.height:
            logger.warning("%s: %d images were not found at prepare time and are left out "
                           "(first: %s)", split, absent.height, absent["Filename"][0])
            frame = frame.filter(pl.col("image").is_not_null())

        self.split = split
        self.transform: Transform = transform if transform is not None else eval_transform()
        self.has_labels = _labelled_rows(frame["Defect"].to_list(), frame["Filename"])
        if defect_only:
            if not self.has_labels:
                raise FieldHarnessError(
                    f"defect_only=True needs labels, but split {split!r} has none; use it "
                    "with train or val"
                )
            frame = frame.filter(pl.col("Defect") == 1)
        if frame.height == 0:
            raise FieldHarnessError(f"split {split!r} has no images to load"
                                    + (" with Defect == 1" if defect_only else ""))

        self.filenames: list[str] = frame["Filename"].to_list()
        self._images = ImageStore(frame["image"], self.filenames, dataset="sewerml",
                                  image_format="a PNG image")
        self.tasks: tuple[str, ...] = ()
        self.targets: dict[str, np.ndarray] = {}
        if self.has_labels:
            self._read_targets(frame)

    def _read_targets(self, frame: pl.DataFrame) -> None:
        names = self.filenames
        defect = frame.select(DEFECT_CODES)
        if any(count for count in defect.null_count().row(0)):
            raise DataFormatError("defect labels are null on some images that have a Defect "
                                  "value", field="Defect", expected="0 or 1 in every column")
        levels = frame["WaterLevel"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        _check_water_levels(levels, names)

        self.targets = {
            "defect": defect.to_numpy().astype(np.int8),
            "binary": frame["Defect"].to_numpy().astype(np.int8),
            "water": bin_water_level(levels),
        }
        tasks = ["defect", "water"]
        for task, column in PROPERTY_COLUMNS.items():
            values = frame[column].to_list() if column in frame.columns else [None] * len(names)
            self.targets[task] = _class_targets(values, column, TASK_CLASSES[task], names)
            if any(value is not None for value in values):
                tasks.append(task)
        self.tasks = tuple(tasks)

    def __len__(self) -> int:
        return len(self.filenames)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = operator.index(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} images")

        item: dict[str, Any] = {"image": self.transform(self.load_image(index)), "index": index}
        if self.has_labels:
            targets = self.targets
            item["defect"] = torch.from_numpy(targets["defect"][index].astype(np.float32))
            item["binary"] = torch.tensor([targets["binary"][index]], dtype=torch.float32)
            for task in ("water", "shape", "material"):
                item[task] = torch.tensor(targets[task][index], dtype=torch.int64)
        return item

    def location(self, index: int) -> str:
        """Return where image ``index`` is stored: a file path or ``archive.zip::member``."""
        return self._images.location(index)

    def load_image(self, index: int) -> Image.Image:
        """Decode image ``index`` into an RGB PIL image, without the transform.

        Raises:
            ImageNotFoundError: The file, the archive or the member is missing; the message
                names it and the image's ``Filename``.
            DataFormatError: The file is not a readable PNG, or the archive is not a zip file.
        """
        return self._images.load(index)

    def close(self) -> None:
        """Close the zip archives this process opened. The next read reopens them."""
        self._images.close()

    def label_counts(self) -> dict[str, np.ndarray]:
        """Count the images with each class, per task, on this split.

        Returns:
            int64 arrays: ``"defect"`` [17] positives per defect class, ``"binary"`` [1]
            images with Defect == 1, ``"water"`` [4] images per bin, and ``"shape"`` [6] and
            ``"material"`` [8] images per class (missing labels not counted) for the tasks in
            :attr:`tasks`.

        Raises:
            FieldHarnessError: The split has no labels.
        """
        if not self.has_labels:
            raise FieldHarnessError(f"split {self.split!r} has no labels to count")
        counts = {
            "defect": self.targets["defect"].sum(axis=0, dtype=np.int64),
            "binary": np.array([self.targets["binary"].sum(dtype=np.int64)]),
        }
        for task in self.tasks:
            if task == "defect":
                continue
            values = self.targets[task]
            counts[task] = np.bincount(values[values != IGNORE_INDEX],
                                       minlength=len(TASK_CLASSES[task])).astype(np.int64)
        return counts


# --- Hugging Face datasets --------------------------------------------------------------------


def hf_transform(
    transform: Transform | None = None, *, tasks: Sequence[str] | None = None
) -> Callable[[Mapping[str, list[Any]]], dict[str, list[Any]]]:
    """Build a ``datasets.Dataset.set_transform`` function that yields the SewerMLImages fields.

    The returned function takes a batch of rows of ``load_dataset("sewerml", split=...,
    format="hf")`` and returns ``"image"`` tensors, ``"Filename"`` strings and, on labelled
    rows, the label tensors of :class:`SewerMLImages` items. ``"index"`` is absent because a
    batch does not carry row numbers.

    Args:
        transform: Applied to each RGB PIL image; :func:`eval_transform` for ``None``.
        tasks: Label tasks to return, from ``TASK_CLASSES``; ``"binary"`` comes with
            ``"defect"``. ``None`` returns every task on labelled rows and none on the test
            split.

    Raises:
        UnknownNameError: A name in ``tasks`` is not a task.

    The returned function raises DataFormatError when ``tasks`` is given but the rows have no
    labels, when only some rows have labels, or on an invalid water level, Shape or Material.
    """
    image_transform = transform if transform is not None else eval_transform()
    if tasks is not None:
        for task in tasks:
            if task not in TASK_CLASSES:
                raise UnknownNameError("task", task, TASK_CLASSES)
    selected_tasks = tuple(TASK_CLASSES) if tasks is None else tuple(tasks)

    def apply(batch: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
        names = list(batch["Filename"])
        output: dict[str, list[Any]] = {
            "image": [image_transform(image.convert("RGB")) for image in batch["image"]],
            "Filename": names,
        }
        labelled = "Defect" in batch and _labelled_rows(batch["Defect"], names)
        if not labelled:
            if tasks is not None:
                raise DataFormatError(f"image {names[0]} has no labels", field="Defect",
                                      expected="a labelled split (train, val) for tasks="
                                      f"{list(tasks)}")
            return output

        if "defect" in selected_tasks:
            defect = np.array([batch[code] for code in DEFECT_CODES], dtype=np.float32).T
            output["defect"] = list(torch.from_numpy(defect))
            binary = np.array(batch["Defect"], dtype=np.float32)[:, None]
            output["binary"] = list(torch.from_numpy(binary))
        if "water" in selected_tasks:
            levels = np.array([np.nan if value is None else value
                               for value in batch["WaterLevel"]], dtype=np.float64)
            _check_water_levels(levels, names)
            output["water"] = list(torch.from_numpy(bin_water_level(levels)))
        for task, column in PROPERTY_COLUMNS.items():
            if task in selected_tasks:
                values = batch.get(column, [None] * len(names))
                codes = _class_targets(values, column, TASK_CLASSES[task], names)
                output[task] = list(torch.from_numpy(codes))
        return output

    return apply


# --- normalisation statistics -----------------------------------------------------------------


def compute_mean_std(
    dataset: SewerMLImages, *, max_images: int | None = None, progress: bool = True
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Compute the per-channel mean and standard deviation of the pixels of ``dataset``.

    Pixel values are scaled to [0, 1]; every pixel of every image counts once, so larger frames
    weigh more. The standard deviation is the population one (ddof 0). Sums run over 8-bit
    histograms in int64, so they are exact for any number of images.

    NOTE: The official ``calculate_normalization.py`` was not available to compare with. If it
    averages per-image statistics instead, its numbers differ slightly where frame sizes differ.

    Args:
        dataset: A :class:`SewerMLImages`, or any sized object with ``load_image(index)``
            returning an RGB PIL image. The transform is not applied.
        max_images: Use this many images spread evenly over the dataset; every image for
            ``None``.
        progress: Show a tqdm progress bar.

    Returns:
        ``(mean, std)``, each three floats in RGB order, comparable with ``SEWERML_MEAN`` and
        ``SEWERML_STD``.

    Raises:
        FieldHarnessError: ``dataset`` has no ``load_image`` or no images, or ``max_images``
            is below 1.
    """
    if not hasattr(dataset, "load_image"):
        raise FieldHarnessError(
            f"compute_mean_std needs a dataset with load_image(index), such as SewerMLImages; "
            f"got {type(dataset).__name__}"
        )
    count = len(dataset)
    if count == 0:
        raise FieldHarnessError("compute_mean_std got a dataset without images")
    if max_images is not None and max_images < 1:
        raise FieldHarnessError(f"max_images is {max_images}; expected at least 1 or None")
    if max_images is None or max_images >= count:
        indices = np.arange(count)
    else:
        indices = np.unique(np.linspace(0, count - 1, max_images).round().astype(np.int64))

    offsets = np.array([0, 256, 512], dtype=np.intp)
    histogram = np.zeros(3 * 256, dtype=np.int64)
    for index in tqdm(indices, desc="mean and std", unit="image", disable=not progress):
        pixels = np.asarray(dataset.load_image(int(index)).convert("RGB"), dtype=np.intp)
        histogram += np.bincount((pixels.reshape(-1, 3) + offsets).ravel(), minlength=3 * 256)

    histogram = histogram.reshape(3, 256)
    levels = np.arange(256, dtype=np.int64)
    pixels_per_channel = histogram.sum(axis=1)
    sums = histogram @ levels
    squares = histogram @ (levels * levels)
    mean = sums / pixels_per_channel / 255.0
    variance = np.maximum(squares / pixels_per_channel / 255.0**2 - mean * mean, 0.0)
    std = np.sqrt(variance)
    return (tuple(float(value) for value in mean),  # type: ignore[return-value]
            tuple(float(value) for value in std))
