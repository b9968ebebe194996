"""The 3D-ZeF20 dataset plugin (entry point ``zef3d`` in ``fieldharness.datasets``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from harness.plugin import DatasetPlugin, PreparedData
from harness.spec import DatasetSpec
from zef3d.spec import LEADERBOARD_METRICS, ZEF3D_SPEC

if TYPE_CHECKING:
    from harness.plugin import Evaluator

__all__ = ["Zef3DPlugin"]


class Zef3DPlugin(DatasetPlugin):
    """3D-ZeF20: 3D zebrafish tracking in a top and a front view."""

    spec: ClassVar[DatasetSpec] = ZEF3D_SPEC
    leaderboard_metrics: ClassVar[tuple[str, ...]] = LEADERBOARD_METRICS

    def read_source(self, source: Path, *, version: str | None = None) -> PreparedData:
        """Read the official 3D-ZeF20 download under ``source``.

        Raises:
            FileNotFoundError: no ``ZebraFish-NN`` sequence was found under ``source``.
            harness.errors.DataFormatError: a file does not follow the official format.
        """
        from zef3d.prepare import read_source

        return read_source(self.spec, source, version)

    def generate_sample(self, out_dir: Path, *, seed: int = 0) -> Path:
        """Write a small synthetic 3DZeF20 copy: two train sequences and one test sequence."""
        from zef3d.sample import write_zef_sample

        return write_zef_sample(out_dir, seed=seed)

    def evaluator(self) -> Evaluator:
        """Return the evaluator behind ``python -m harness eval zef3d``."""
        from zef3d.evaluation import Zef3DEvaluator

        return Zef3DEvaluator()
