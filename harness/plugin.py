"""The interfaces a dataset package implements to plug into the core.

A dataset package exposes a :class:`DatasetPlugin` subclass through the entry-point group
``fieldharness.datasets``, standalone evaluators through ``fieldharness.evaluators`` and paper
baselines through ``fieldharness.baselines`` (entry-point name ``DATASET.METHOD``). The core never
imports a dataset package directly.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.spec import DatasetSpec

if TYPE_CHECKING:  # pyarrow is imported where tables are built, not for annotations
    import pyarrow as pa

SAMPLE_MARKER = "FIELDHARNESS_SAMPLE"
"""File name that sample generators write at the root of generated data.

``prepare`` records data under such a root as ``data_kind = "sample"``, and the leaderboard leaves
sample runs out unless asked.
"""


ARCHIVE_MEMBER_SEPARATOR = "::"
"""Separator in an image path that names a member of a zip archive: ``<archive>::<member>``.

Plugins whose images ship in zip archives (Sewer-ML) store them this way, read in place; the core
checks such members in the archive listing and decodes them from inside the archive.
"""


@dataclass
class PreparedData:
    """The tables a plugin read from the official download, ready for the core to write."""

    version: str
    tables: dict[str, dict[str, pa.Table]]
    """Prepared tables: config name -> split name -> table."""
    source_root: Path
    source_files: list[Path]
    """Every file that was read; the core records their SHA-256 in the manifest."""
    subset: bool = False
    """True when the source holds only part of the release (e.g. ground truth only)."""
    notes: list[str] = field(default_factory=list)
    """Human-readable remarks recorded in the manifest, e.g. what part is missing."""
    data_kind: str = "real"
    """``"real"``, or ``"sample"`` for data made by a sample generator."""


@dataclass
class RunContext:
    """The output folder, data home and seed of one evaluation or baseline run."""

    output_dir: Path
    data_dir: Path | None = None
    """Override of the data home (``--data-dir``); ``None`` means ``FIELDHARNESS_HOME``."""
    seed: int = 0


@dataclass
class EvalOutcome:
    """The result of one evaluation or baseline run, recorded by the core as a run record."""

    dataset: str
    method: str
    metrics: dict[str, float]
    """Headline numbers of the whole evaluated set (for MOT: the COMBINED row)."""
    version: str | None = None
    split: str | None = None
    per_item: dict[str, dict[str, float]] = field(default_factory=dict)
    """Numbers per sequence, per class or per other unit, as the dataset defines them."""
    data_kind: str = "real"
    files: list[Path] = field(default_factory=list)
    """Files the run wrote into its output folder, besides the run record."""
    config: dict[str, Any] = field(default_factory=dict)
    """Settings that define the configuration, e.g. thresholds; seeds of one configuration are
    aggregated by the leaderboard."""


@dataclass(frozen=True)
class PublishedResult:
    """A number a paper reports, shown as a reference row on the leaderboard."""

    dataset: str
    split: str
    method: str
    metric: str
    value: float
    source: str
    """Publication of the number, e.g. ``"Zhang et al., ByteTrack, ECCV 2022, Table 5"``."""


class Evaluator(ABC):
    """Scores user predictions with a dataset's official metric: ``python -m harness eval NAME``."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this evaluator's options to its ``eval`` sub-parser."""

    leaderboard_metrics: ClassVar[tuple[str, ...]] = ()
    """Metrics shown in the leaderboard's Markdown table, in this order (all, when empty)."""

    @abstractmethod
    def evaluate(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome:
        """Score the predictions named in ``args``; write result files into ``ctx.output_dir``."""

    def method_name(self, args: argparse.Namespace) -> str:
        """Return the name the run is recorded under (``--method``, else ``"predictions"``)."""
        return getattr(args, "method", None) or "predictions"


class Baseline(ABC):
    """A paper's method trained and/or evaluated by ``python -m harness run DATASET METHOD``."""

    dataset: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027
        """Add this baseline's options to its ``run`` sub-parser."""

    @abstractmethod
    def run(self, args: argparse.Namespace, ctx: RunContext) -> EvalOutcome | None:
        """Run the method and return its scores.

        In a distributed run (``torchrun``) only rank 0 returns the scores; the other processes
        return ``None`` and the CLI writes no record for them.
        """


class DatasetPlugin(ABC):
    """A dataset family member, e.g. MOT17: its spec, source reader and sample generator."""

    spec: ClassVar[DatasetSpec]

    @abstractmethod
    def read_source(self, source: Path, *, version: str | None = None) -> PreparedData:
        """Read the official download at or above the split folders in ``source``.

        Raises:
            harness.errors.DataFormatError: a file does not follow the official format.
            FileNotFoundError: nothing of the dataset was found under ``source``.
        """

    prepare_options: ClassVar[dict[str, str]] = {}
    """Options of ``prepare`` (``--option NAME=VALUE``), name -> help text; none by default."""

    def configure_prepare(self, options: dict[str, str]) -> None:  # noqa: B027
        """Apply ``prepare`` options, already checked against :attr:`prepare_options`.

        Raises:
            UnknownNameError: a value is not valid for its option.
        """

    def generate_sample(self, out_dir: Path, *, seed: int = 0) -> Path:
        """Write a small synthetic copy in the official layout and return its root folder."""
        raise NotImplementedError(f"{self.spec.name} has no sample generator")

    leaderboard_metrics: ClassVar[tuple[str, ...]] = ()
    """Metrics shown in the leaderboard's Markdown table, in this order (all, when empty)."""

    def evaluator(self) -> Evaluator | None:
        """Return the evaluator behind ``python -m harness eval NAME``, if the dataset has one."""
        return None

    def published_results(self) -> list[PublishedResult]:
        """Return the papers' numbers that the leaderboard shows as reference rows."""
        return []
