"""Dataset spec of BIOSCAN-1M: the 2023 release, its splits, the ``metadata`` table and citation.

Sources: the BIOSCAN-1M paper (Gharaee et al., "A Step Towards Worldwide Biodiversity
Assessment: The BIOSCAN-1M Insect Dataset", NeurIPS 2023 Datasets and Benchmarks,
arXiv 2307.10455), the metadata README of GitHub ``bioscan-ml/BIOSCAN-1M`` and the constants of
``bioscan-dataset`` 1.3.0 (``bioscan_dataset/bioscan1m.py``: file names, MD5s, column types).

The release partitions the records six times, once per experiment of the paper: the columns
``large_diptera_family``, ``medium_diptera_family``, ``small_diptera_family``,
``large_insect_order``, ``medium_insect_order`` and ``small_insect_order`` each hold ``train``,
``validation``, ``test`` or ``no_split``. The prepared splits follow the default partitioning,
``large_diptera_family`` (as in ``bioscan-dataset``), and every table keeps all six columns, so
another partitioning is a filter over all splits, for example::

    frame = load_dataset("bioscan-1m", format="polars")  # every split, concatenated
    train = frame.filter(pl.col("small_insect_order") == "train")

or with ``datasets``: ``load_dataset("bioscan-1m", split="train+validation+test+no_split")
.filter(lambda row: row["small_insect_order"] == "train")``. The CLIBD partitioning, when its
files are given, is the column ``clibd_split``.
"""

from __future__ import annotations

import pyarrow as pa

from harness.spec import ConfigSpec, DatasetSpec, DatasetVersion, RemoteFile, SplitSpec

__all__ = [
    "BIOSCAN1M_SPEC",
    "CLIBD_SPLITS",
    "DEFAULT_PARTITIONING",
    "IMAGE_PACKAGES",
    "METADATA_SCHEMA",
    "PARTITION_VALUES",
    "PARTITIONING_COLUMNS",
    "RELEASE_MD5",
    "RELEASE_ROWS",
    "TAXONOMY_COLUMNS",
    "TSV_COLUMNS",
    "TSV_NAMES",
]

LICENSE = "CC BY 3.0"
HOMEPAGE = "https://github.com/bioscan-ml/BIOSCAN-1M"
ZENODO_RECORD = "https://zenodo.org/records/8030065"

TSV_NAMES = ("BIOSCAN_Insect_Dataset_metadata.tsv", "BIOSCAN_1M_Insect_Dataset_metadata.tsv")
"""Metadata file names, in order of preference: the Zenodo and ``bioscan-dataset`` name, then the
name the BIOSCAN-1M README uses."""

RELEASE_MD5 = "dec3bb23870a35e2e13bc17a5809c901"
"""Published MD5 of ``BIOSCAN_Insect_Dataset_metadata.tsv`` (``bioscan-dataset`` 1.3.0)."""

RELEASE_ROWS = 1_128_313
"""Records (and images) of the 2023 release, BIOSCAN-1M paper and README."""

TAXONOMY_COLUMNS = ("phylum", "class", "order", "family", "subfamily", "tribe", "genus",
                    "species", "subspecies", "uri")
"""Columns where the TSV writes ``not_classified`` for a missing label; the reader makes it null.
``uri`` is the BOLD BIN."""

PARTITIONING_COLUMNS = ("large_diptera_family", "medium_diptera_family", "small_diptera_family",
                        "large_insect_order", "medium_insect_order", "small_insect_order")
"""The six partitionings of the BIOSCAN-1M paper, one TSV column each."""

DEFAULT_PARTITIONING = "large_diptera_family"
"""The partitioning the prepared splits follow (the default of ``bioscan-dataset``)."""

PARTITION_VALUES = ("train", "validation", "test", "no_split")
"""Values of a partitioning column: 70/10/20 % stratified per class, ``no_split`` for records
left out of that experiment."""

CLIBD_SPLITS = ("no_split", "train_seen", "seen_keys", "single_species", "val_seen",
                "val_unseen", "val_unseen_keys", "test_seen", "test_unseen", "test_unseen_keys")
"""The disjoint CLIBD partitions of BIOSCAN-1M, one ``<name>.txt`` file of sampleids each
(CLIBD, Gong et al., ICLR 2025; files from HF ``bioscan-ml/clibd`` rev ``335f24b``). The two
union files ``all_keys.txt`` and ``no_split_and_seen_train.txt`` are not read."""

IMAGE_PACKAGES = ("cropped_256", "original_256", "cropped", "original_full")
"""Image packages, in the order prepare picks the ``image`` of a record: ``cropped_256`` (the
default of ``bioscan-dataset``), ``original_256`` (shorter side 256 px), ``cropped`` and
``original_full`` (2880×2160 px)."""

TSV_COLUMNS: dict[str, pa.DataType] = {
    "sampleid": pa.string(),
    "processid": pa.string(),
    "uri": pa.string(),
    "name": pa.string(),
    "phylum": pa.string(),
    "class": pa.string(),
    "order": pa.string(),
    "family": pa.string(),
    "subfamily": pa.string(),
    "tribe": pa.string(),
    "genus": pa.string(),
    "species": pa.string(),
    "subspecies": pa.string(),
    "nucraw": pa.string(),
    "image_file": pa.string(),
    **{column: pa.string() for column in PARTITIONING_COLUMNS},
    "chunk_number": pa.int16(),
    "copyright_license": pa.string(),
    "copyright_holder": pa.string(),
    "copyright_institution": pa.string(),
    "copyright_contact": pa.string(),
    "photographer": pa.string(),
    "author": pa.string(),
}
"""The TSV's columns and their prepared types, in the order ``bioscan-dataset`` lists them
(``COLUMN_DTYPES``). The reader selects columns by name."""

METADATA_SCHEMA = pa.schema([
    *TSV_COLUMNS.items(),
    ("clibd_split", pa.string()),
    ("image", pa.string()),
    ("image_package", pa.string()),
])
"""Schema of the ``metadata`` config: the TSV's columns, ``clibd_split`` (null without the CLIBD
files), ``image`` (a path relative to the source root, or ``archive.zip::member``; null when no
package contains the image) and ``image_package`` (the package ``image`` comes from)."""

SPLITS = tuple(
    SplitSpec(name, f"Records whose {DEFAULT_PARTITIONING} partition is {name!r}.")
    for name in PARTITION_VALUES
)

CONFIGS = (
    ConfigSpec(
        "metadata",
        "One row per specimen: the TSV's columns as published (taxonomy with null for "
        "not_classified, the DNA barcode nucraw, image_file, chunk_number, the six "
        "partitioning columns, copyright), clibd_split, and the image with its package.",
        METADATA_SCHEMA,
        default=True,
        image_columns=("image",),
    ),
)

CITATION = """\
@inproceedings{gharaee2023bioscan1m,
  title     = {A Step Towards Worldwide Biodiversity Assessment: The {BIOSCAN-1M} Insect
               Dataset},
  author    = {Gharaee, Zahra and Gong, ZeMing and Pellegrino, Nicholas and Zarubiieva,
               Iuliia and Haurum, Joakim Bruslund and Lowe, Scott C. and McKeown, Jaclyn T. A.
               and Ho, Chris C. Y. and McLeod, Joschka and Wei, Yi-Yun C. and Agda, Jireh and
               Ratnasingham, Sujeevan and Steinke, Dirk and Chang, Angel X. and Taylor,
               Graham W. and Fieguth, Paul},
  booktitle = {Advances in Neural Information Processing Systems},
  volume    = {36},
  pages     = {43593--43619},
  year      = {2023},
  eprint    = {2307.10455},
  archivePrefix = {arXiv}
}
"""

# The Zenodo URLs follow Zenodo's standard form and the names bioscan-dataset 1.3.0 uses; they
# were not fetched here.
FILES = (
    RemoteFile(TSV_NAMES[0], (f"{ZENODO_RECORD}/files/{TSV_NAMES[0]}",), md5=RELEASE_MD5),
    RemoteFile("cropped_256.zip", (f"{ZENODO_RECORD}/files/cropped_256.zip",),
               md5="fe1175815742db14f7372d505345284a"),
    RemoteFile("original_256.zip", (f"{ZENODO_RECORD}/files/original_256.zip",),
               md5="9729fc1c49d84e7f1bfc6f5a0916d72b"),
)

BIOSCAN1M_SPEC = DatasetSpec(
    name="bioscan-1m",
    title="BIOSCAN-1M Insect Dataset",
    description="1,128,313 insect specimens photographed and DNA-barcoded by the Centre for "
                "Biodiversity Genomics: images in four packages, COI barcodes, BOLD BINs and "
                "taxonomy from phylum to subspecies, with six classification partitionings "
                "(Diptera families and insect orders at three sizes).",
    homepage=HOMEPAGE,
    license=LICENSE,
    redistributable=True,
    citation=CITATION,
    versions=(
        DatasetVersion(
            "2023",
            f"The NeurIPS 2023 release on Zenodo (record 8030065): the metadata TSV (MD5 "
            f"{RELEASE_MD5}, {RELEASE_ROWS:,} rows) and the image packages.",
            files=FILES,
        ),
    ),
    splits=SPLITS,
    configs=CONFIGS,
    default_version="2023",
    # The names BIOSCAN-5M users know: val for validation, all for every record.
    split_aliases={"val": ("validation",), "all": PARTITION_VALUES},
)
"""The BIOSCAN-1M spec. Rows per split of the release are not published, so the version lists
no ``row_counts``; prepare compares the total with :data:`RELEASE_ROWS` instead."""
