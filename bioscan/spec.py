"""Dataset spec of BIOSCAN-5M: the 2024 release, its files, splits, metadata table and citation.

Sources: the BIOSCAN-5M repository (``bioscan-ml/BIOSCAN-5M``: README, ``BIOSCAN_metadata``,
``BIOSCAN_images`` and ``BIOSCAN_DATASET`` READMEs) for the columns, partitions and counts, and
``bioscan-dataset`` 1.3.0 (``bioscan_dataset/bioscan5m.py``, ``BIOSCAN5M.meta`` and
``zip_files``) for the published MD5s. The file sizes are the Zenodo record's listing as a
third-party catalogue shows it, consistent with the rounded sizes on Hugging Face.
"""

from __future__ import annotations

import pyarrow as pa

from bioscan.splits import ALIASES, METASPLITS, SPLITS
from harness.spec import ConfigSpec, DatasetSpec, DatasetVersion, RemoteFile, SplitSpec

__all__ = [
    "BIOSCAN5M_SPEC",
    "CSV_NAME",
    "CSV_RELATIVE_PATH",
    "FLOAT_COLUMNS",
    "INT_COLUMNS",
    "METADATA_COLUMNS",
    "METADATA_CSV_MD5",
    "METADATA_SCHEMA",
    "METADATA_ZIP_NAME",
    "SPLIT_ROWS",
    "STRING_COLUMNS",
    "TOTAL_ROWS",
]

HOMEPAGE = "https://biodiversitygenomics.net/5M-insects/"
LICENSE = "CC BY 3.0"

ZENODO_RECORD = "11973457"
ZENODO_FILES = f"https://zenodo.org/records/{ZENODO_RECORD}/files/"
HF_FILES = "https://huggingface.co/datasets/bioscan-ml/BIOSCAN-5M/resolve/main/"
# NOTE: These URLs follow the standard Zenodo and Hugging Face file-URL forms and the file names
# of bioscan-dataset 1.3.0; they were not fetched while writing this spec.

CSV_NAME = "BIOSCAN_5M_Insect_Dataset_metadata.csv"
CSV_RELATIVE_PATH = f"bioscan5m/metadata/csv/{CSV_NAME}"
"""Where the metadata zip puts the CSV, relative to the folder it is extracted in."""

METADATA_ZIP_NAME = "BIOSCAN_5M_Insect_Dataset_metadata_MultiTypes.zip"

METADATA_CSV_MD5 = "603020b433ef566946efba7a08dbb23d"
"""MD5 of the extracted metadata CSV of the 2024 release (bioscan-dataset ``meta["csv_md5"]``);
the only published handle on the release's content."""

SPLIT_ROWS: dict[str, int] = {
    "pretrain": 4_677_756,
    "train": 289_203,
    "val": 14_757,
    "test": 39_373,
    "key_unseen": 36_465,
    "val_unseen": 8_819,
    "test_unseen": 7_887,
    "other_heldout": 76_590,
}
"""Records per partition: the BIOSCAN-5M README and the bioscan-dataset README agree."""

TOTAL_ROWS = sum(SPLIT_ROWS.values())  # 5,150,850

STRING_COLUMNS: tuple[str, ...] = (
    "processid", "sampleid", "taxon", "phylum", "class", "order", "family", "subfamily",
    "genus", "species", "dna_bin", "dna_barcode", "country", "province_state", "split", "chunk",
)
FLOAT_COLUMNS: tuple[str, ...] = (
    "coord-lat", "coord-lon", "image_measurement_value", "area_fraction", "scale_factor",
)
INT_COLUMNS: dict[str, pa.DataType] = {
    # bioscan-dataset reads inferred_ranks as uint8; int16 can store every uint8 value.
    "inferred_ranks": pa.int16(),
    "index_bioscan_1M_insect": pa.int64(),
}

METADATA_COLUMNS: tuple[str, ...] = (
    "processid", "sampleid", "taxon", "phylum", "class", "order", "family", "subfamily",
    "genus", "species", "dna_bin", "dna_barcode", "country", "province_state", "coord-lat",
    "coord-lon", "image_measurement_value", "area_fraction", "scale_factor", "inferred_ranks",
    "split", "index_bioscan_1M_insect", "chunk",
)
"""The 23 columns of the metadata CSV, in the file's order."""


def _column_type(name: str) -> pa.DataType:
    if name in FLOAT_COLUMNS:
        return pa.float64()
    return INT_COLUMNS.get(name, pa.string())


METADATA_SCHEMA = pa.schema(
    [(name, _column_type(name)) for name in METADATA_COLUMNS] + [("image", pa.string())]
)
"""Schema of the ``metadata`` config: the 23 CSV columns, then ``image``. Every column is
nullable; an empty field or ``no_data`` in the CSV is null."""


IMAGE_PACKAGES = ("cropped_256", "original_256", "cropped", "original_full")
"""The four image packages, in the order prepare looks for them."""


def _remote(name: str, md5: str, size: int) -> RemoteFile:
    return RemoteFile(name, (ZENODO_FILES + name, HF_FILES + name), md5=md5, size=size)


FILES = (
    _remote(METADATA_ZIP_NAME, "ac381b69fafdbaedc2f9cfb89e3571f7", 2_065_075_527),
    _remote("BIOSCAN_5M_cropped_256_train.zip", "3f170db5d95610644883dafc73389049",
            2_224_548_648),
    _remote("BIOSCAN_5M_cropped_256_eval.zip", "16a997f72a8cd08cbcf7becafe2dda50",
            1_467_020_347),
    _remote("BIOSCAN_5M_cropped_256_pretrain.01.zip", "0e1cfa86dc7fa4d9c10036990992a2dd",
            17_914_051_002),
    _remote("BIOSCAN_5M_cropped_256_pretrain.02.zip", "ca3191d307957732e8108121b20a2059",
            17_702_405_477),
)
"""The metadata zip and the four cropped_256 image zips of Zenodo record 11973457, with the
Hugging Face copy as the mirror. The other image packages are on Google Drive (original_256
also on Hugging Face) without published checksums."""

_SPLIT_DESCRIPTIONS = {
    "pretrain": "Specimens without a species label, for self- and semi-supervised training.",
    "train": "Seen species (scientific names): supervised training and retrieval keys.",
    "val": "Seen species: model development and retrieval queries.",
    "test": "Seen species: final evaluation and retrieval queries; no DNA barcode is shared "
            "with train.",
    "key_unseen": "Unseen species (placeholder names, genus seen): retrieval keys.",
    "val_unseen": "Unseen species: model development and retrieval queries.",
    "test_unseen": "Unseen species: final evaluation and retrieval queries.",
    "other_heldout": "Other species-labelled specimens (placeholder species of unseen genera or "
                     "with too few samples), for novelty-detector training.",
}

SPLIT_SPECS = tuple(SplitSpec(name, _SPLIT_DESCRIPTIONS[name]) for name in SPLITS)

CONFIGS = (
    ConfigSpec(
        "metadata",
        "One row per specimen: the 23 columns of BIOSCAN_5M_Insect_Dataset_metadata.csv "
        "(processid, sampleid, taxon, the seven ranks phylum to species, dna_bin, dna_barcode, "
        "country, province_state, coord-lat, coord-lon, image_measurement_value, "
        "area_fraction, scale_factor, inferred_ranks, split, index_bioscan_1M_insect, chunk), "
        "with empty fields and 'no_data' as null, and 'image': the specimen's JPEG in one "
        "image package (stored relative to the source root, loaded as an absolute path, or "
        "'archive.zip::member' read in place from an official zip), null when prepare did not "
        "find it.",
        METADATA_SCHEMA,
        default=True,
        image_columns=("image",),
    ),
)

CITATION = """\
@inproceedings{gharaee2024bioscan5m,
  author        = {Gharaee, Zahra and Lowe, Scott C. and Gong, ZeMing and Millan Arias, Pablo
                   and Pellegrino, Nicholas and Wang, Austin T. and Haurum, Joakim Bruslund
                   and Zarubiieva, Iuliia and Kari, Lila and Steinke, Dirk and Taylor, Graham W.
                   and Fieguth, Paul and Chang, Angel X.},
  title         = {{BIOSCAN-5M}: A Multimodal Dataset for Insect Biodiversity},
  booktitle     = {Advances in Neural Information Processing Systems (NeurIPS), Datasets and
                   Benchmarks Track},
  year          = {2024},
  eprint        = {2406.12723},
  archivePrefix = {arXiv}
}
"""

BIOSCAN5M_SPEC = DatasetSpec(
    name="bioscan-5m",
    title="BIOSCAN-5M",
    description="5,150,850 arthropod specimens (98 % insects) from the BIOSCAN project, each "
                "with a microscope image, a COI DNA barcode, a BOLD BIN, a taxonomic label "
                "down to as far as species (species for 9 %), collection place and size, in "
                "eight partitions for pretraining, seen- and unseen-species evaluation.",
    homepage=HOMEPAGE,
    license=LICENSE,
    redistributable=True,
    citation=CITATION,
    versions=(
        DatasetVersion(
            "2024",
            "The 2024 release on Zenodo (record 11973457) and Hugging Face "
            f"(bioscan-ml/BIOSCAN-5M): {CSV_NAME} with MD5 {METADATA_CSV_MD5}, and the image "
            "packages original_full, cropped, original_256 and cropped_256.",
            files=FILES,
            row_counts={f"metadata/{split}": rows for split, rows in SPLIT_ROWS.items()},
        ),
    ),
    splits=SPLIT_SPECS,
    configs=CONFIGS,
    default_version="2024",
    # The split names bioscan-dataset 1.3.0 accepts besides the eight partitions.
    split_aliases={**METASPLITS, **{alias: (name,) for alias, name in ALIASES.items()}},
)
