"""The BIOSCAN-5M dataset plugin, registered as ``bioscan-5m``.

``python -m harness prepare bioscan-5m --source DIR`` reads the metadata CSV and the images of
one package. The core's ``prepare`` passes no options to a plugin, so the package is the first
of cropped_256, original_256, cropped and original_full found under the source; prepare's
notes name it. A subclass (or an instance) with ``image_package`` set uses that package only.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from bioscan.prepare5m import read_bioscan5m_source
from bioscan.sample5m import write_bioscan5m_sample
from bioscan.spec import BIOSCAN5M_SPEC
from harness.plugin import DatasetPlugin, PreparedData
from harness.spec import DatasetSpec

__all__ = ["BIOSCAN5MPlugin"]

SAMPLE_ROWS = 200
"""Records of the sample that ``python -m harness sample bioscan-5m`` writes, each with an
image (32×32 JPEG) in the cropped_256 folder layout."""


class BIOSCAN5MPlugin(DatasetPlugin):
    """BIOSCAN-5M: metadata of 5,150,850 specimens with images, DNA barcodes and taxonomy."""

    spec: ClassVar[DatasetSpec] = BIOSCAN5M_SPEC

    image_package: str | None = None
    """Image package to prepare (``cropped_256``, ``original_256``, ``cropped``,
    ``original_full``); ``None`` takes the first present, in that order."""

    def read_source(self, source: Path, *, version: str | None = None) -> PreparedData:
        return read_bioscan5m_source(self.spec, source, version, package=self.image_package)

    def generate_sample(self, out_dir: Path, *, seed: int = 0) -> Path:
        return write_bioscan5m_sample(out_dir, rows=SAMPLE_ROWS, seed=seed)
