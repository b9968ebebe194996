"""The four CT-GNN tasks on Sewer-ML images: class lists and the water-level bins.

The class lists and the water-level edges come from the CT-GNN code (Haurum, Madadi, Escalera &
Moeslund, "Multi-Task Classification of Sewer Pipe Defects and Properties using a Cross-Task
Graph Neural Network Decoder", WACV 2022). The ``Shape`` and ``Material`` CSV columns hold the
integer index of a class in ``SHAPE_CLASSES`` and ``MATERIAL_CLASSES``.

This module needs no torch, so it can be imported by evaluation code;
:mod:`sewerml.torchdata` re-exports everything in it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from harness.errors import DataFormatError
from sewerml.classes import DEFECT_CODES

__all__ = [
    "IGNORE_INDEX",
    "MATERIAL_CLASSES",
    "SHAPE_CLASSES",
    "TASK_CLASSES",
    "WATER_LEVEL_CLASSES",
    "WATER_LEVEL_EDGES",
    "bin_water_level",
]

WATER_LEVEL_EDGES: tuple[float, ...] = (5.0, 15.0, 30.0)
"""Bin edges of the water-level task in percent. Each edge belongs to the bin above it."""

WATER_LEVEL_CLASSES: tuple[str, ...] = ("0%<5%", "5-15%", "15-30%", "30%<=")

SHAPE_CLASSES: tuple[str, ...] = (
    "Circular", "Conical", "Egg shaped", "Eye shaped", "Rectangular", "Other",
)  # fmt: skip

MATERIAL_CLASSES: tuple[str, ...] = (
    "Unknown", "Concrete", "Plastic", "Lining", "Vitrified clay", "Iron", "Brickwork", "Other",
)  # fmt: skip

TASK_CLASSES: dict[str, tuple[str, ...]] = {
    "defect": DEFECT_CODES,
    "water": WATER_LEVEL_CLASSES,
    "shape": SHAPE_CLASSES,
    "material": MATERIAL_CLASSES,
}
"""Class names of each task, in the order of the model outputs."""

IGNORE_INDEX = -100
"""Target of a missing multi-class label, the default ``ignore_index`` of torch's
cross-entropy."""


def bin_water_level(values: ArrayLike) -> np.ndarray:
    """Bin water levels in percent into the four CT-GNN classes.

    Below 5 gives 0, 5 up to 15 gives 1, 15 up to 30 gives 2, and 30 and above gives 3.

    Args:
        values: One water level or an array of them, in percent of the pipe height.

    Returns:
        The class indices as int64, with the shape of ``values`` (0-d for a scalar).

    Raises:
        DataFormatError: A value is NaN, negative or above 100. The message names the first
            such value and its position.
    """
    levels = np.asarray(values, dtype=np.float64)
    invalid = ~((levels >= 0) & (levels <= 100))
    if invalid.any():
        position = tuple(int(i) for i in np.argwhere(invalid)[0])
        where = f" at index {position[0] if len(position) == 1 else position}" if position else ""
        raise DataFormatError(f"invalid water level{where}", field="WaterLevel",
                              value=float(levels[invalid].flat[0]),
                              expected="a percentage from 0 to 100")
    return np.digitize(levels, WATER_LEVEL_EDGES, right=False).astype(np.int64)
