"""Dataset spec of Sewer-ML: release, splits, the ``labels`` table, licence and citation.

Counts come from the Sewer-ML paper (Haurum & Moeslund, "Sewer-ML: A Multi-Label Sewer Defect
Classification Dataset and Benchmark", CVPR 2021): images per split from Table 2 and the
per-class image counts from Table 7 of its supplementary material (arXiv 2103.10895v1).
"""

from __future__ import annotations

import pyarrow as pa

from harness.spec import ConfigSpec, DatasetSpec, DatasetVersion, SplitSpec
from sewerml.classes import DEFECT_CODES, NORMAL

LICENSE = "CC BY-NC-SA 4.0"
"""Licence of the Sewer-ML images and annotations. Non-commercial use only, and access is gated
by the authors' request form, so copies may not be redistributed."""

HOMEPAGE = "https://vap.aau.dk/sewer-ml/"

SPLIT_FILES = {"train": "Train", "val": "Val", "test": "Test"}
"""Split name in fieldharness -> split name in the official CSV file names (``SewerML_Val.csv``)."""

IMAGE_COUNTS = {"train": 1_040_129, "val": 130_046, "test": 130_026}
"""Images per split, Sewer-ML paper Table 2."""

PUBLISHED_CLASS_COUNTS: dict[str, dict[str, int]] = {
    "train": dict(zip((*DEFECT_CODES, NORMAL), (
        45_821, 184_379, 16_254, 19_084, 283_983, 6_271, 22_637, 23_782, 74_856,
        66_499, 5_010, 53_986, 23_685, 6_746, 4_625, 5_325, 154_624, 552_820,
    ), strict=True)),
    "val": dict(zip((*DEFECT_CODES, NORMAL), (
        5_538, 23_624, 2_021, 2_038, 36_218, 881, 2_917, 2_812, 9_059,
        7_929, 597, 6_889, 3_432, 765, 457, 612, 19_655, 68_681,
    ), strict=True)),
}  # fmt: skip
"""Images with each label per labelled split, supplementary Table 7 of the Sewer-ML paper.

``Normal`` counts images without any of the 17 defect labels. The test counts of Table 7 are
left out because the public test CSV has no labels to compare them with.
"""

LABELS_SCHEMA = pa.schema([
    ("split", pa.string()),
    ("Filename", pa.string()),
    ("image", pa.string()),
    *[(code, pa.int8()) for code in DEFECT_CODES],
    ("Defect", pa.int8()),
    ("VA", pa.int8()),
    ("ND", pa.int8()),
    ("WaterLevel", pa.float64()),
    ("Shape", pa.int8()),
    ("Material", pa.int8()),
])
"""Schema of the ``labels`` config. Label columns are null on the test split, and ``Shape`` and
``Material`` are null where the CSV has no such column."""

SPLITS = (
    SplitSpec("train", "Training images with labels (SewerML_Train.csv)."),
    SplitSpec("val", "Validation images with labels (SewerML_Val.csv); the split scored "
              "locally."),
    SplitSpec("test", "Test images (SewerML_Test.csv lists file names only); the labels are "
              "kept by the dataset authors.", has_labels=False),
)

CONFIGS = (
    ConfigSpec(
        "labels",
        "One row per image: the split, Filename, the image (its file, or 'archive.zip::member' "
        "for an image read in place from an official zip archive; stored relative to the "
        "source root, loaded as an absolute path), the 17 defect labels, Defect, VA, ND, "
        "WaterLevel (percent), and Shape and Material where the CSV has them.",
        LABELS_SCHEMA,
        default=True,
        image_columns=("image",),
    ),
)

CITATION = """\
@inproceedings{haurum2021sewerml,
  author    = {Haurum, Joakim Bruslund and Moeslund, Thomas B.},
  title     = {Sewer-ML: A Multi-Label Sewer Defect Classification Dataset and Benchmark},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern
               Recognition (CVPR)},
  year      = {2021}
}
"""

# The authors publish no checksums for the CSVs or the zip archives, so no RemoteFile is listed.
SEWERML_SPEC = DatasetSpec(
    name="sewerml",
    title="Sewer-ML",
    description="Multi-label sewer defect classification: 1.3 million CCTV frames from Danish "
                "sewer inspections with 17 defect classes (DANVA codes), scored with F2_CIW "
                "and F1_Normal.",
    homepage=HOMEPAGE,
    license=LICENSE + " (non-commercial; access by request form)",
    redistributable=False,
    citation=CITATION,
    versions=(
        DatasetVersion(
            "2021",
            "The CVPR 2021 release: Train, Val and Test CSVs and 18 zip archives of PNG frames.",
            row_counts={f"labels/{split}": count for split, count in IMAGE_COUNTS.items()},
        ),
    ),
    splits=SPLITS,
    configs=CONFIGS,
    default_version="2021",
)
