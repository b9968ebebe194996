"""BIOSCAN-1M reading: the TSV reader, CLIBD files, image layouts, prepare, the sample, and
parity with bioscan-dataset 1.3.0's ``load_bioscan1m_metadata``."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import bioscan.prepare1m as prepare1m
from bioscan.io1m import apply_bioscan_dataset_fixes, read_clibd_partitioning, read_metadata_tsv
from bioscan.plugin1m import BIOSCAN1MPlugin
from bioscan.sample1m import write_bioscan1m_sample
from bioscan.spec1m import (
    BIOSCAN1M_SPEC,
    CLIBD_SPLITS,
    PARTITION_VALUES,
    PARTITIONING_COLUMNS,
    RELEASE_MD5,
    TSV_COLUMNS,
    TSV_NAMES,
)
from harness import registry
from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError
from harness.loading import load_dataset
from harness.plugin import ARCHIVE_MEMBER_SEPARATOR
from harness.prepare import prepare_dataset
from harness.registry import register_dataset
from harness.storage import read_prepared_table

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_IMAGES = SHARED / "realdata" / "bioscan" / "bioscan1m_images"
TSV = Path("bioscan1m") / TSV_NAMES[0]
HEADER = list(TSV_COLUMNS)


@pytest.fixture(autouse=True)
def bioscan1m_registered() -> Iterator[None]:
    register_dataset("bioscan-1m", BIOSCAN1MPlugin)
    yield
    registry._extra[registry.DATASETS_GROUP].pop("bioscan-1m", None)


def tsv_line(**values: str) -> str:
    row = {"sampleid": "BIOUG1-A01", "processid": "BSCAN1-21", "uri": "BOLD:AAA0001",
           "name": "Sciaridae", "phylum": "Arthropoda", "class": "Insecta", "order": "Diptera",
           "family": "Sciaridae", "subfamily": "not_classified", "tribe": "not_classified",
           "genus": "not_classified", "species": "not_classified",
           "subspecies": "not_classified", "nucraw": "ACGTN", "image_file": "BIOUG1-A01.jpg",
           "chunk_number": "1", "copyright_license": "CC", "copyright_holder": "CBG",
           "copyright_institution": "CBG", "copyright_contact": "", "photographer": "CBG",
           "author": "CBG", **{column: "train" for column in PARTITIONING_COLUMNS}}
    row.update(values)
    return "\t".join(row[column] for column in HEADER)


def write_tsv(path: Path, lines: list[str], header: list[str] = HEADER) -> Path:
    path.write_text("\n".join(["\t".join(header), *lines]) + "\n")
    return path


# --- TSV reader -------------------------------------------------------------------------------


def test_reader_types_and_missing_labels(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / TSV_NAMES[0], [
        tsv_line(),
        tsv_line(sampleid="BIOUG1-A02", image_file="5351601.jpg", chunk_number="113",
                 genus="Bradysia", species="Bradysia ocellaris", uri="not_classified",
                 family=""),
    ])
    frame = read_metadata_tsv(path)
    assert frame.columns == HEADER
    assert frame["chunk_number"].dtype == pl.Int16
    assert frame["chunk_number"].to_list() == [1, 113]
    assert frame["genus"].to_list() == [None, "Bradysia"]
    assert frame["uri"].to_list() == ["BOLD:AAA0001", None]
    assert frame["family"].to_list() == ["Sciaridae", None]
    assert frame["subspecies"].null_count() == 2
    assert frame["copyright_contact"].null_count() == 2
    assert frame["name"].to_list() == ["Sciaridae", "Sciaridae"]
    assert frame["image_file"].to_list() == ["BIOUG1-A01.jpg", "5351601.jpg"]


@pytest.mark.parametrize(("lines", "message"), [
    ([tsv_line(chunk_number="x")],
     r"metadata\.tsv:2: invalid chunk number \(field 'chunk_number', value 'x'\); expected an "
     r"integer >= 1"),
    ([tsv_line(), tsv_line(chunk_number="0")],
     r"metadata\.tsv:3: invalid chunk number \(field 'chunk_number', value '0'\)"),
    ([tsv_line(), tsv_line(small_insect_order="val")],
     r"metadata\.tsv:3: invalid partition \(field 'small_insect_order', value 'val'\); "
     r"expected train or validation or test or no_split"),
    ([tsv_line(sampleid="")],
     r"metadata\.tsv:2: empty value \(field 'sampleid', value ''\)"),
    ([tsv_line(), tsv_line() + "\textra"],
     r"metadata\.tsv: unreadable tab-separated file"),
])
def test_reader_errors(tmp_path: Path, lines: list[str], message: str) -> None:
    path = write_tsv(tmp_path / TSV_NAMES[0], lines)
    with pytest.raises(DataFormatError, match=message):
        read_metadata_tsv(path)


def test_reader_missing_column_and_empty_file(tmp_path: Path) -> None:
    header = [column for column in HEADER if column != "large_insect_order"]
    line = "\t".join(tsv_line().split("\t")[:len(header)])
    path = write_tsv(tmp_path / "a.tsv", [line], header=header)
    with pytest.raises(DataFormatError, match=r"a\.tsv:1: missing column 'large_insect_order'"):
        read_metadata_tsv(path)
    empty = tmp_path / "b.tsv"
    empty.write_text("")
    with pytest.raises(DataFormatError, match=r"b\.tsv:1: empty metadata file"):
        read_metadata_tsv(empty)


def test_clibd_errors(tmp_path: Path) -> None:
    for split in CLIBD_SPLITS:
        (tmp_path / f"{split}.txt").write_text("")
    (tmp_path / "val_seen.txt").write_text("A\nB\n")
    (tmp_path / "test_seen.txt").write_text("C\nB\n")
    with pytest.raises(DataFormatError,
                       match=r"test_seen\.txt:2: sampleid listed twice, first in .*val_seen\.txt "
                             r"line 2 \(field 'sampleid', value 'B'\)"):
        read_clibd_partitioning(tmp_path)
    (tmp_path / "no_split.txt").unlink()
    with pytest.raises(DataFormatError, match=r"no_split\.txt: missing CLIBD partition file"):
        read_clibd_partitioning(tmp_path)


# --- sample -----------------------------------------------------------------------------------


def test_sample_partitionings_and_chunks(tmp_path: Path) -> None:
    root = write_bioscan1m_sample(tmp_path / "s", rows=25_000, images=0, packages=())
    frame = read_metadata_tsv(root / TSV)
    assert frame.height == 25_000
    assert frame.group_by("chunk_number").len().sort("chunk_number")["len"].to_list() == [
        10_000, 10_000, 5_000]
    assert frame["order"].value_counts().sort("count")["order"][-1] == "Diptera"
    assert frame["order"].n_unique() >= 12

    large = frame["large_diptera_family"]
    assert set(frame.filter(large != "no_split")["order"].unique()) == {"Diptera"}
    in_split = frame.filter(large != "no_split")
    fractions = in_split["large_diptera_family"].value_counts(normalize=True)
    share = dict(zip(fractions["large_diptera_family"], fractions["proportion"], strict=True))
    assert share["train"] == pytest.approx(0.7, abs=0.03)
    assert share["validation"] == pytest.approx(0.1, abs=0.03)
    for parent, child in (("large_diptera_family", "medium_diptera_family"),
                          ("medium_diptera_family", "small_diptera_family"),
                          ("large_insect_order", "medium_insect_order"),
                          ("medium_insect_order", "small_insect_order")):
        kept = frame.filter(pl.col(child) != "no_split")
        assert 0 < kept.height < frame.filter(pl.col(parent) != "no_split").height
        assert (kept[child] == kept[parent]).all(), child
    diptera = frame.filter(large != "no_split")
    assert (diptera["large_insect_order"] == diptera["large_diptera_family"]).all()
    assert (frame.filter(pl.col("order") != "Diptera")["large_insect_order"] != "no_split").all()


def test_sample_is_deterministic_and_checks_layout(tmp_path: Path) -> None:
    first = write_bioscan1m_sample(tmp_path / "a", rows=50, images=3)
    second = write_bioscan1m_sample(tmp_path / "b", rows=50, images=3)
    assert (first / TSV).read_bytes() == (second / TSV).read_bytes()
    with pytest.raises(UnknownNameError, match="unknown sample layout 'tar'; valid values are: "
                                               "folders, zip"):
        write_bioscan1m_sample(tmp_path / "c", layout="tar")


# --- prepare and load -------------------------------------------------------------------------


def image_exists(root: Path, image: str) -> bool:
    if ARCHIVE_MEMBER_SEPARATOR in image:
        archive, member = image.split(ARCHIVE_MEMBER_SEPARATOR, 1)
        with zipfile.ZipFile(root / archive) as handle:
            return member in handle.namelist()
    return (root / image).is_file()


@pytest.mark.parametrize("layout", ["folders", "zip"])
def test_prepare_and_load(tmp_path: Path, layout: str) -> None:
    root = write_bioscan1m_sample(tmp_path / "src", rows=300, images=30, layout=layout)
    manifest = prepare_dataset("bioscan-1m", root, progress=False)
    assert manifest.version == "2023"
    assert manifest.data_kind == "sample"
    assert manifest.subset

    source = read_metadata_tsv(root / TSV)
    counts = source["large_diptera_family"].value_counts()
    expected = {f"metadata/{value}": count for value, count in counts.iter_rows()}
    assert manifest.row_counts == expected

    prepared = pl.concat([pl.from_arrow(read_prepared_table("bioscan-1m", "metadata", split))
                          for split in PARTITION_VALUES])
    assert prepared.height == 300
    with_image = prepared.filter(pl.col("image").is_not_null())
    assert with_image.height == 30
    assert set(with_image["image_package"]) == {"cropped_256"}
    assert all(image_exists(root, image) for image in with_image["image"])
    joined = source.join(prepared, on="sampleid", suffix="_prepared")
    for column in HEADER:
        if column != "sampleid":
            assert joined[column].equals(joined[f"{column}_prepared"], check_names=False), column
    assert prepared["clibd_split"].null_count() == 300

    train = load_dataset("bioscan-1m", split="train")
    assert len(train) == expected["metadata/train"]
    images = [row["image"] for row in train if row["image"] is not None]
    assert images and all(image.size == (291, 256) for image in images)
    missing = 300 - 30
    notes = " ".join(manifest.notes)
    assert "records have no image in any package found" in notes
    assert sum(int(note.split(": ")[1].split(" of ")[0]) for note in manifest.notes
               if "have no image" in note) == missing


def test_prepare_md5_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_bioscan1m_sample(tmp_path / "src", rows=40, images=40, packages=("original_256",))
    manifest = prepare_dataset("bioscan-1m", root, progress=False)
    actual = hashlib.md5((root / TSV).read_bytes()).hexdigest()
    assert (f"{TSV_NAMES[0]} has MD5 {actual}, not the published {RELEASE_MD5} of version 2023; "
            "prepared as a modified copy (40 rows, the release has 1,128,313)") in manifest.notes
    assert not any("have no image" in note for note in manifest.notes)

    monkeypatch.setattr(prepare1m, "RELEASE_MD5", actual)
    manifest = prepare_dataset("bioscan-1m", root, progress=False)
    assert manifest.notes == [f"{TSV_NAMES[0]}: 40 rows, the release has 1,128,313"]


def test_prepare_old_layout_readme_name_and_no_images(tmp_path: Path) -> None:
    root = write_bioscan1m_sample(tmp_path / "src", rows=20, images=0, packages=())
    old = root / "bioscan"
    (root / "bioscan1m").rename(old)
    (old / TSV_NAMES[0]).rename(old / TSV_NAMES[1])
    data = BIOSCAN1MPlugin().read_source(root)
    assert data.source_files == [old / TSV_NAMES[1]]
    assert sum(table.num_rows for table in data.tables["metadata"].values()) == 20
    assert any("no image folder or archive of the packages cropped_256, original_256, "
               "cropped, original_full found" in note for note in data.notes)


def test_prepare_without_metadata(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no BIOSCAN_Insect_Dataset_metadata\.tsv or "
                                                r"BIOSCAN_1M_Insect_Dataset_metadata\.tsv in"):
        BIOSCAN1MPlugin().read_source(tmp_path)
    with pytest.raises(FieldHarnessError, match="no bioscan-1m data found under"):
        prepare_dataset("bioscan-1m", tmp_path, progress=False)


@pytest.mark.skipif(not REAL_IMAGES.is_dir(), reason=f"real BIOSCAN-1M images not at "
                    f"{REAL_IMAGES} (the shared fixtures folder is absent)")
def test_real_images_load(tmp_path: Path) -> None:
    root = write_bioscan1m_sample(tmp_path / "src", rows=12, images=0, packages=())
    names = sorted(p.name for p in REAL_IMAGES.glob("BIOUG*.jpg"))
    assert len(names) == 5
    images = root / "bioscan1m" / "images"
    for name in names:
        for package, file in (("original_256", name), ("cropped_256", f"cropped_resized_{name}")):
            (images / package / "part7").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REAL_IMAGES / file, images / package / "part7" / name)
    frame = pl.read_csv(root / TSV, separator="\t", infer_schema=False)
    real = pl.Series(names + frame["image_file"].to_list()[5:])
    frame = frame.with_columns(
        image_file=real, sampleid=real.str.replace(r"\.jpg$", ""),
        chunk_number=pl.when(pl.int_range(pl.len()) < 5).then(pl.lit("7"))
        .otherwise(pl.col("chunk_number")),
        large_diptera_family=pl.when(pl.int_range(pl.len()) < 5).then(pl.lit("train"))
        .otherwise(pl.col("large_diptera_family")))
    frame.write_csv(root / TSV, separator="\t", quote_style="never")

    prepare_dataset("bioscan-1m", root, progress=False)
    train = load_dataset("bioscan-1m", split="train").filter(
        lambda row: row["image"] is not None)
    assert sorted(train["image_file"]) == names
    for row in train:
        assert row["image_package"] == "cropped_256"
        assert row["image"].height == 256
        assert 270 <= row["image"].width <= 380

    shutil.rmtree(images / "cropped_256")
    prepare_dataset("bioscan-1m", root, progress=False)
    train = load_dataset("bioscan-1m", split="train").filter(
        lambda row: row["image"] is not None)
    assert [row["image"].size for row in train] == [(341, 256)] * 5
    assert set(train["image_package"]) == {"original_256"}


# --- parity with bioscan-dataset 1.3.0 ----------------------------------------------------------


def pandas_values(series) -> list:
    return [None if value is None or (isinstance(value, float) and np.isnan(value)) else value
            for value in series.astype(object).tolist()]


@pytest.fixture(scope="module")
def parity_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bioscan1m_sample(tmp_path_factory.mktemp("parity"), rows=3000, seed=3, images=0,
                                  packages=(), clibd=True)


def test_parity_partitions_and_label_fixes(parity_source: Path) -> None:
    load_bioscan1m_metadata = pytest.importorskip("bioscan_dataset").load_bioscan1m_metadata
    path = parity_source / TSV
    ours = apply_bioscan_dataset_fixes(read_metadata_tsv(path))
    assert ours.filter(pl.col("genus") == "Asteia")["tribe"].unique().to_list() == ["Asteiini"]
    columns = ["phylum", "class", "order", "family", "subfamily", "tribe", "genus", "species",
               "uri", "nucraw", "image_file", "chunk_number"]
    for partitioning in PARTITIONING_COLUMNS:
        for split in PARTITION_VALUES:
            theirs = load_bioscan1m_metadata(str(path), max_nucleotides=None, split=split,
                                             partitioning_version=partitioning)
            mine = ours.filter(pl.col(partitioning) == split)
            assert mine["sampleid"].to_list() == theirs["sampleid"].tolist(), (partitioning, split)
            for column in columns:
                assert mine[column].to_list() == pandas_values(theirs[column]), column


def test_parity_clibd(parity_source: Path) -> None:
    load_bioscan1m_metadata = pytest.importorskip("bioscan_dataset").load_bioscan1m_metadata
    path = parity_source / TSV
    prepare_dataset("bioscan-1m", parity_source, progress=False)
    prepared = pl.concat([pl.from_arrow(read_prepared_table("bioscan-1m", "metadata", split))
                          for split in PARTITION_VALUES])
    theirs = load_bioscan1m_metadata(str(path), max_nucleotides=None)
    mapping = dict(zip(theirs["sampleid"], theirs["clibd_split"], strict=True))
    assert dict(prepared.select("sampleid", "clibd_split").iter_rows()) == mapping
    for split in ("train_seen", "test_unseen_keys", "no_split"):
        selected = load_bioscan1m_metadata(str(path), max_nucleotides=None, split=split,
                                           partitioning_version="clibd")
        expected = prepared.filter(pl.col("clibd_split") == split)["sampleid"]
        assert sorted(selected["sampleid"]) == sorted(expected)


def test_spec() -> None:
    assert BIOSCAN1M_SPEC.version().name == "2023"
    assert BIOSCAN1M_SPEC.version().files[0].md5 == RELEASE_MD5
    assert [s.name for s in BIOSCAN1M_SPEC.splits] == list(PARTITION_VALUES)
    assert BIOSCAN1M_SPEC.config().image_columns == ("image",)
