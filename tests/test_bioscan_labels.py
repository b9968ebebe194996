"""Tests of bioscan.labels: vocabularies (with bioscan-dataset parity), taxonomy and rank masks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from _bioscan_files import COLUMNS_5M, SPLITS_5M

from bioscan.labels import LABEL_COLUMNS, RANKS, Taxonomy, Vocabulary, ranks_present
from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:Warning")

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLE_CSV = SHARED / "realdata" / "bioscan" / "BIOSCAN_5M_sample_metadata.csv"


# Labels chosen to test the sort order: upper before lower case, accents, digits, spaces.
LABEL_POOL = {
    "phylum": ["Arthropoda", "arthropoda", "Annelida"],
    "class": ["Insecta", "Arachnida", "Collembola"],
    "order": ["Diptera", "Hymenoptera", "Lepidoptera", "Éphemeroptera", "diptera"],
    "family": ["Phoridae", "Cecidomyiidae", "Sciaridae", "Chironomidae", "Ichneumonidae"],
    "subfamily": ["Metopininae", "Phorinae", "Orthocladiinae", "Z subfam", "a subfam"],
    "genus": ["Megaselia", "Bradysia", "Anaspis", "10 genus", "9 genus", "Ëgenus"],
    "species": ["Megaselia sp. 1", "Megaselia sp. 10", "Megaselia sp. 2", "Bradysia ABC", "b x"],
    "dna_bin": ["BOLD:AAA0001", "BOLD:AAB1234", "BOLD:ACY4833", "BOLD:aaa0001"],
}


def write_metadata(path: Path, n_rows: int = 300, seed: int = 4) -> Path:
    """Write a BIOSCAN-5M metadata CSV (official 23 columns) with random labels and gaps."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS_5M)
        for i in range(n_rows):
            labels = {}
            for rank, pool in LABEL_POOL.items():
                missing = rng.random() < 0.2
                labels[rank] = "" if missing else pool[int(rng.integers(len(pool)))]
            barcode = "".join(rng.choice(list("ACGT"), size=20)) + ("ACGT" * 3 if i % 7 else "")
            writer.writerow(
                [
                    f"PID{i:05d}", f"S{i}", labels["genus"] or "x", labels["phylum"],
                    labels["class"], labels["order"], labels["family"], labels["subfamily"],
                    labels["genus"], labels["species"], labels["dna_bin"], barcode, "Canada", "",
                    "43.5", "-80.2", "1000", "0.1", "0.5", "3",
                    SPLITS_5M[int(rng.integers(len(SPLITS_5M)))], "", "",
                ]
            )  # fmt: skip
    return path


def read_all_strings(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


@pytest.fixture(scope="module")
def bioscan_dataset():
    pytest.importorskip("bioscan_dataset", reason="bioscan-dataset (reference) is not installed")
    import bioscan_dataset

    return bioscan_dataset


@pytest.fixture
def small_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "processid": ["p1", "p2", "p3", "p4", "p5", "p6"],
            "phylum": ["Arthropoda"] * 6,
            "class": ["Insecta"] * 6,
            "order": ["Diptera", "Diptera", "Diptera", "Hymenoptera", "Diptera", "Diptera"],
            "family": ["Phoridae", "Phoridae", "Phoridae", "Diapriidae", "Sciaridae", "Phoridae"],
            "subfamily": ["Metopininae", "Metopininae", None, "Diapriinae", "", "Phorinae"],
            "genus": ["Megaselia", "Megaselia", "Megaselia", None, "Bradysia", "Megaselia"],
            "species": ["Megaselia a", None, None, None, "", None],
            "dna_bin": ["BOLD:A1", "BOLD:A1", "BOLD:A2", None, "BOLD:A3", "BOLD:A4"],
            "split": ["train", "train", "val", "test", "train", "pretrain"],
        }
    )


# --- Vocabulary --------------------------------------------------------------------------------


def test_dataset_wide_sorted_codepoints(small_frame):
    vocabulary = Vocabulary.dataset_wide(small_frame, "subfamily")
    assert vocabulary.labels == ("Diapriinae", "Metopininae", "Phorinae")
    assert vocabulary.num_classes == 3
    assert vocabulary.kind == "dataset_wide"
    mixed = pl.DataFrame({"genus": ["b", "B", "é", "a b", "ab", "10", "9", None]})
    assert Vocabulary.dataset_wide(mixed, "genus").labels == ("10", "9", "B", "a b", "ab", "b", "é")


def test_dataset_wide_encode(small_frame):
    vocabulary = Vocabulary.dataset_wide(small_frame, "subfamily")
    encoded = vocabulary.encode(small_frame)
    assert encoded.name == "subfamily_index"
    assert encoded.dtype == pl.Int64
    assert encoded.to_list() == [1, 1, -1, 0, -1, 2]


def test_label2index_and_back(small_frame):
    vocabulary = Vocabulary.dataset_wide(small_frame, "genus")
    assert vocabulary.label2index("Megaselia") == 1
    assert vocabulary.label2index(None) == -1
    assert vocabulary.label2index("") == -1
    assert vocabulary.label2index(float("nan")) == -1
    indices = vocabulary.label2index(["Bradysia", None, "Megaselia"])
    assert indices.dtype == np.int64
    assert indices.tolist() == [0, -1, 1]
    assert vocabulary.label2index(pl.Series(["Megaselia"])).tolist() == [1]
    assert vocabulary.index2label(0) == "Bradysia"
    assert vocabulary.index2label(-1) is None
    assert vocabulary.index2label([1, -1, 0]) == ["Megaselia", None, "Bradysia"]
    assert "Megaselia" in vocabulary
    assert len(vocabulary) == 2


def test_vocabulary_errors(small_frame):
    vocabulary = Vocabulary.dataset_wide(small_frame, "genus")
    with pytest.raises(UnknownNameError, match=r"unknown genus label 'Apis'; valid values are: "):
        vocabulary.label2index("Apis")
    with pytest.raises(UnknownNameError, match=r"unknown genus label 'Apis'"):
        vocabulary.label2index(["Megaselia", "Apis"])
    with pytest.raises(FieldHarnessError, match=r"genus index 2 is out of range; valid .* 0 to 1"):
        vocabulary.index2label(2)
    with pytest.raises(FieldHarnessError, match=r"genus index -2 is out of range"):
        vocabulary.index2label([-2])
    with pytest.raises(UnknownNameError, match=r"unknown label column 'tribe'; valid values"):
        Vocabulary.dataset_wide(small_frame, "tribe")
    numbers = small_frame.with_columns(pl.lit(1).alias("genus"))
    with pytest.raises(
        DataFormatError, match=r"label column is not a string column \(field 'genus'"
    ):
        Vocabulary.dataset_wide(numbers, "genus")
    other = small_frame.with_columns(pl.lit("Apis").alias("genus"))
    with pytest.raises(UnknownNameError, match=r"unknown genus label 'Apis'"):
        vocabulary.encode(other)


def test_vocabulary_error_lists_few_labels():
    frame = pl.DataFrame({"species": [f"sp {i:03d}" for i in range(50)]})
    vocabulary = Vocabulary.dataset_wide(frame, "species")
    with pytest.raises(UnknownNameError, match=r"\.\.\. \(50 labels in all\)"):
        vocabulary.label2index("sp 999")


def test_contiguous_over_train(small_frame):
    vocabulary = Vocabulary.contiguous(small_frame, "genus")
    assert vocabulary.kind == "contiguous"
    assert vocabulary.labels == ("Bradysia", "Megaselia")
    bins = Vocabulary.contiguous(small_frame, "dna_bin")
    assert bins.labels == ("BOLD:A1", "BOLD:A3")
    # BOLD:A2 (val only) and BOLD:A4 (pretrain only) are outside the train vocabulary.
    assert bins.encode(small_frame).to_list() == [0, 0, -1, -1, 1, -1]
    both = Vocabulary.contiguous(small_frame, "dna_bin", split=["train", "val"])
    assert both.labels == ("BOLD:A1", "BOLD:A2", "BOLD:A3")


def test_contiguous_errors(small_frame):
    with pytest.raises(UnknownNameError, match=r"unknown split 'validation'; valid values are: "):
        Vocabulary.contiguous(small_frame, "genus", split="validation")
    with pytest.raises(UnknownNameError, match=r"unknown column 'split'"):
        Vocabulary.contiguous(small_frame.drop("split"), "genus")


def test_categorical_column(small_frame):
    frame = small_frame.with_columns(pl.col("family").cast(pl.Categorical))
    vocabulary = Vocabulary.dataset_wide(frame, "family")
    assert vocabulary.labels == ("Diapriidae", "Phoridae", "Sciaridae")
    assert vocabulary.encode(frame).to_list() == [1, 1, 1, 0, 2, 1]


def test_dataset_wide_parity(tmp_path, bioscan_dataset):
    path = write_metadata(tmp_path / "metadata.csv")
    frame = read_all_strings(path)
    reference = bioscan_dataset.load_bioscan5m_metadata(path)
    for rank in LABEL_COLUMNS:
        vocabulary = Vocabulary.dataset_wide(frame, rank)
        assert list(vocabulary.labels) == list(reference[rank].cat.categories), rank
        expected = reference[f"{rank}_index"].astype("int64").tolist()
        assert vocabulary.encode(frame).to_list() == expected, rank


def test_dataset_wide_parity_split(tmp_path, bioscan_dataset):
    # Indices stay global after split filtering and deduplication.
    path = write_metadata(tmp_path / "metadata.csv", seed=9)
    frame = read_all_strings(path)
    reference = bioscan_dataset.load_bioscan5m_metadata(
        path, split="train", reduce_repeated_barcodes=True
    )
    selected = frame.filter(pl.col("processid").is_in(reference["processid"].tolist()))
    assert selected.height == len(reference)
    for rank in LABEL_COLUMNS:
        vocabulary = Vocabulary.dataset_wide(frame, rank)
        expected = reference[f"{rank}_index"].astype("int64").tolist()
        assert vocabulary.encode(selected).to_list() == expected, rank


@pytest.mark.realdata
@pytest.mark.skipif(
    not SAMPLE_CSV.exists(), reason=f"real BIOSCAN sample not found at {SAMPLE_CSV}"
)
def test_dataset_wide_parity_real_sample(bioscan_dataset):
    frame = read_all_strings(SAMPLE_CSV)
    reference = bioscan_dataset.load_bioscan5m_metadata(SAMPLE_CSV)
    for rank in LABEL_COLUMNS:
        expected = reference[f"{rank}_index"].astype("int64").tolist()
        assert Vocabulary.dataset_wide(frame, rank).encode(frame).to_list() == expected, rank


# --- Taxonomy ----------------------------------------------------------------------------------


def test_taxonomy_parent_nearest_present(small_frame):
    taxonomy = Taxonomy(small_frame)
    assert taxonomy.parent("phylum", "Arthropoda") is None
    assert taxonomy.parent("family", "Phoridae") == ("order", "Diptera")
    # Bradysia's record has an empty subfamily, so its parent is the family.
    assert taxonomy.parent("genus", "Bradysia") == ("family", "Sciaridae")
    assert taxonomy.parent("species", "Megaselia a") == ("genus", "Megaselia")
    assert taxonomy.ancestors("genus", "Bradysia") == [
        ("family", "Sciaridae"),
        ("order", "Diptera"),
        ("class", "Insecta"),
        ("phylum", "Arthropoda"),
    ]


def test_taxonomy_conflicts_majority(small_frame):
    taxonomy = Taxonomy(small_frame)
    # Megaselia: Metopininae in 2 records, Phorinae in 1, Phoridae (no subfamily) in 1.
    assert taxonomy.parent("genus", "Megaselia") == ("subfamily", "Metopininae")
    conflicts = taxonomy.conflicts
    assert conflicts["label"].to_list() == ["Megaselia"]
    row = conflicts.row(0, named=True)
    assert row["rank"] == "genus"
    assert row["parents"] == ["subfamily:Metopininae", "subfamily:Phorinae", "family:Phoridae"]
    assert row["records"] == [2, 1, 1]


def test_taxonomy_children_and_path(small_frame):
    taxonomy = Taxonomy(small_frame)
    assert taxonomy.children("order", "Diptera") == [
        ("family", "Phoridae"),
        ("family", "Sciaridae"),
    ]
    assert taxonomy.children("subfamily", "Phorinae") == []
    assert taxonomy.children("family", "Diapriidae") == [("subfamily", "Diapriinae")]
    record = next(small_frame.iter_rows(named=True))
    assert taxonomy.path(record) == [
        ("phylum", "Arthropoda"),
        ("class", "Insecta"),
        ("order", "Diptera"),
        ("family", "Phoridae"),
        ("subfamily", "Metopininae"),
        ("genus", "Megaselia"),
        ("species", "Megaselia a"),
    ]
    assert taxonomy.path({"order": "Diptera", "family": "", "genus": None}) == [
        ("order", "Diptera")
    ]


def test_taxonomy_with_dna_bin(small_frame):
    taxonomy = Taxonomy(small_frame, ranks=(*RANKS, "dna_bin"))
    # BOLD:A1: one record gives species "Megaselia a", one only genus; the tie goes to species.
    assert taxonomy.parent("dna_bin", "BOLD:A1") == ("species", "Megaselia a")
    assert taxonomy.parent("dna_bin", "BOLD:A2") == ("genus", "Megaselia")
    assert "BOLD:A1" in taxonomy.conflicts["label"].to_list()


def test_taxonomy_errors(small_frame):
    taxonomy = Taxonomy(small_frame)
    with pytest.raises(UnknownNameError, match=r"unknown rank 'tribe'; valid values are: class"):
        taxonomy.parent("tribe", "x")
    with pytest.raises(UnknownNameError, match=r"unknown genus label 'Apis'; valid .*Bradysia"):
        taxonomy.children("genus", "Apis")
    with pytest.raises(UnknownNameError, match=r"unknown rank column 'tribe'"):
        Taxonomy(small_frame, ranks=("order", "tribe"))


def test_taxonomy_real_sample():
    if not SAMPLE_CSV.exists():
        pytest.skip(f"real BIOSCAN sample not found at {SAMPLE_CSV}")
    frame = read_all_strings(SAMPLE_CSV)
    taxonomy = Taxonomy(frame)
    assert taxonomy.conflicts.height == 0
    assert taxonomy.parent("genus", "Megaselia") == ("subfamily", "Metopininae")
    for record in frame.iter_rows(named=True):
        path = taxonomy.path(record)
        for child, parent in zip(path[1:], path[:-1], strict=False):
            assert taxonomy.parent(*child) == parent


# --- ranks_present -----------------------------------------------------------------------------


def test_ranks_present(small_frame):
    present = ranks_present(small_frame)
    assert present.columns == list(LABEL_COLUMNS)
    assert all(dtype == pl.Boolean for dtype in present.dtypes)
    assert present["subfamily"].to_list() == [True, True, False, True, False, True]
    assert present["species"].to_list() == [True, False, False, False, False, False]
    assert Taxonomy.ranks_present(small_frame.select("genus")).columns == ["genus"]
