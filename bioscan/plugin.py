"""The BIOSCAN-5M dataset plugin, registered as ``bioscan-5m``.

``python -m harness prepare bioscan-5m --source DIR`` reads the metadata CSV and the images of
one package: the one named by ``--option image_package=NAME``, else the first of cropped_256,
original_256, cropped and original_full found under the source; prepare's notes name it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from bioscan.spec import BIOSCAN5M_SPEC, IMAGE_PACKAGES
from harness.errors import UnknownNameError
from harness.plugin import DatasetPlugin, PreparedData, PublishedResult
from harness.spec import DatasetSpec

__all__ = ["BIOSCAN5MPlugin"]

BARCODEBERT_PUBLISHED: dict[str, float] = {
    "species_accuracy_finetuned": 99.28,
    "species_accuracy_linear_probe": 94.47,
    "genus_accuracy_1nn_unseen": 47.03,
}
"""BarcodeBERT "8-4-4" on BIOSCAN-5M, in percent: fine-tuned and linear-probe species accuracy
on ``test`` and 1-NN genus accuracy on ``test_unseen`` (BIOSCAN-5M paper's DNA table, also in
the README of BarcodeBERT's BIOSCAN-5M branch). All three are micro accuracies."""

SAMPLE_ROWS = 200
"""Records of the sample that ``python -m harness sample bioscan-5m`` writes, each with an
image (32×32 JPEG) in the cropped_256 folder layout."""


class BIOSCAN5MPlugin(DatasetPlugin):
    """BIOSCAN-5M: metadata of 5,150,850 specimens with images, DNA barcodes and taxonomy."""

    spec: ClassVar[DatasetSpec] = BIOSCAN5M_SPEC

    leaderboard_metrics: ClassVar[tuple[str, ...]] = (
        "ami_species", "ami_bin", "ami_genus", "ami_subfamily", "ami_family", "ami_order",
        "ami_class", "species_accuracy_finetuned", "species_accuracy_linear_probe",
        "genus_accuracy_1nn_unseen",
    )
    """Zero-shot clustering AMI per rank from species up (the leaderboard plot shows the first),
    then the BarcodeBERT accuracies, all in percent."""

    def published_results(self) -> list[PublishedResult]:
        """Return BarcodeBERT's published BIOSCAN-5M accuracies (the 8-4-4 model)."""
        source = ("Millan Arias et al., BarcodeBERT, Bioinformatics Advances 2026; BIOSCAN-5M "
                  "repository README, DNA-based classification table")
        return [PublishedResult("bioscan-5m", "test", "BarcodeBERT 8-4-4", metric, value, source)
                for metric, value in BARCODEBERT_PUBLISHED.items()]

    image_package: str | None = None
    """Image package to prepare (``cropped_256``, ``original_256``, ``cropped``,
    ``original_full``); ``None`` takes the first present, in that order."""

    prepare_options: ClassVar[dict[str, str]] = {
        "image_package": "image package to read: " + ", ".join(IMAGE_PACKAGES)
                         + " (default: the first of these found under the source)",
    }

    def configure_prepare(self, options: dict[str, str]) -> None:
        package = options.get("image_package")
        if package is not None:
            if package not in IMAGE_PACKAGES:
                raise UnknownNameError("BIOSCAN-5M image package", package, IMAGE_PACKAGES)
            self.image_package = package

    # The reader and the generator are imported when used, so that a load imports neither.
    def read_source(self, source: Path, *, version: str | None = None) -> PreparedData:
        from bioscan.prepare5m import read_bioscan5m_source

        return read_bioscan5m_source(self.spec, source, version, package=self.image_package)

    def generate_sample(self, out_dir: Path, *, seed: int = 0) -> Path:
        from bioscan.sample5m import write_bioscan5m_sample

        return write_bioscan5m_sample(out_dir, rows=SAMPLE_ROWS, seed=seed)
