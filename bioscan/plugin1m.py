"""The BIOSCAN-1M dataset plugin, ``bioscan-1m`` in the entry-point group ``fieldharness.datasets``.

Prepared tables follow the ``large_diptera_family`` partitioning and keep the other five
partitionings and ``clibd_split`` as columns; see :mod:`bioscan.spec1m` for selecting them.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from bioscan.spec1m import BIOSCAN1M_SPEC
from harness.plugin import DatasetPlugin, PreparedData
from harness.spec import DatasetSpec

__all__ = ["SAMPLE_IMAGES", "SAMPLE_ROWS", "BIOSCAN1MPlugin"]

SAMPLE_ROWS = 400
"""Records of the sample that ``generate_sample`` writes."""

SAMPLE_IMAGES = 40
"""Records with images (in cropped_256 and original_256) in that sample."""


class BIOSCAN1MPlugin(DatasetPlugin):
    """BIOSCAN-1M: 1.1 million insect images with DNA barcodes and taxonomy (NeurIPS 2023)."""

    spec: ClassVar[DatasetSpec] = BIOSCAN1M_SPEC

    leaderboard_metrics: ClassVar[tuple[str, ...]] = (
        "top-1", "top-3", "top-5", "macro-top-1", "F1-micro", "F1-macro",
    )
    """Image classifier scores on the test partition (percent)."""

    def read_source(self, source: Path, *, version: str | None = None) -> PreparedData:
        """Read the metadata TSV under ``source`` and locate the images of every record.

        Raises:
            FileNotFoundError: No metadata TSV in ``source`` or its ``bioscan1m/`` or
                ``bioscan/`` folder.
            harness.errors.DataFormatError: The TSV or a CLIBD file does not follow the format.
        """
        from bioscan.prepare1m import read_bioscan1m_source

        return read_bioscan1m_source(self.spec, source, version)

    def generate_sample(self, out_dir: Path, *, seed: int = 0) -> Path:
        """Write a synthetic copy of 400 records, 40 of them with images, and return its root."""
        from bioscan.sample1m import write_bioscan1m_sample

        return write_bioscan1m_sample(out_dir, rows=SAMPLE_ROWS, seed=seed, images=SAMPLE_IMAGES)
