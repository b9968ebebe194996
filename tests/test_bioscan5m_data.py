"""BIOSCAN-5M data: the metadata reader, split names, image layout, sample generator, prepare and
load, and parity with bioscan-dataset 1.3.0."""

from __future__ import annotations

import csv
import hashlib
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from bioscan.images import (
    ImageLocations,
    chunk_of,
    chunk_series,
    image_relative_path,
    locate_images,
    zip_member_names,
)
from bioscan.io5m import POLARS_TYPES, read_metadata_csv
from bioscan.plugin import BIOSCAN5MPlugin
from bioscan.prepare5m import find_metadata_csv, read_bioscan5m_source
from bioscan.sample5m import LABEL_COUNTS, split_counts, write_bioscan5m_sample
from bioscan.spec import (
    BIOSCAN5M_SPEC,
    CSV_RELATIVE_PATH,
    METADATA_COLUMNS,
    METADATA_CSV_MD5,
    METADATA_SCHEMA,
    SPLIT_ROWS,
    TOTAL_ROWS,
)
from bioscan.splits import SEEN_SPLITS, SPLITS, UNSEEN_SPLITS, resolve_split
from harness import load_dataset, registry
from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError
from harness.plugin import SAMPLE_MARKER
from harness.prepare import prepare_dataset
from harness.registry import register_dataset

NAME = "bioscan-5m"
REAL_CSV = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata" / "bioscan" / (
    "BIOSCAN_5M_sample_metadata.csv")
needs_real = pytest.mark.skipif(not REAL_CSV.is_file(),
                                reason=f"real BIOSCAN-5M sample CSV not found at {REAL_CSV}")

ROW = {
    "processid": "GMEEO6589-21", "sampleid": "BIOUG68174-B08", "taxon": "Tuta absoluta",
    "phylum": "Arthropoda", "class": "Insecta", "order": "Lepidoptera",
    "family": "Gelechiidae", "subfamily": "Gelechiinae", "genus": "Tuta",
    "species": "Tuta absoluta", "dna_bin": "BOLD:AAJ8033", "dna_barcode": "ACGTACGTNN",
    "country": "Egypt", "province_state": "Qalyubia", "coord-lat": "30.247",
    "coord-lon": "31.545", "image_measurement_value": "139744", "area_fraction": "0.3503",
    "scale_factor": "1.6328", "inferred_ranks": "0", "split": "train",
    "index_bioscan_1M_insect": "634333", "chunk": "b",
}


@pytest.fixture(autouse=True)
def bioscan_registered() -> Iterator[None]:
    register_dataset(NAME, BIOSCAN5MPlugin)
    yield
    registry._extra[registry.DATASETS_GROUP].pop(NAME, None)


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] | None = None,
              prefix: bytes = b"") -> Path:
    header = list(METADATA_COLUMNS) if header is None else header
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(name, "") for name in header])
    if prefix:
        path.write_bytes(prefix + path.read_bytes())
    return path


def row(**changes: str) -> dict[str, str]:
    return {**ROW, **changes}


def csv_of(root: Path) -> Path:
    return root / CSV_RELATIVE_PATH


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400-record sample with images for 300 of them, in folders."""
    return write_bioscan5m_sample(tmp_path_factory.mktemp("bioscan") / "sample", rows=400,
                                  seed=3, images=300)


@pytest.fixture(scope="module")
def sample_frame(sample_root: Path) -> pl.DataFrame:
    return read_metadata_csv(csv_of(sample_root))


# --- the real sample CSV ----------------------------------------------------------------------


@needs_real
@pytest.mark.realdata
def test_real_sample_csv_types_and_values() -> None:
    frame = read_metadata_csv(REAL_CSV)
    assert frame.columns == list(METADATA_COLUMNS)
    assert dict(frame.schema) == POLARS_TYPES
    assert frame.height == 25
    assert dict(frame.group_by("split").len().iter_rows()) == {
        "pretrain": 21, "train": 3, "test": 1}

    first = frame.row(0, named=True)
    assert first["processid"] == "GMMVA27218-22"
    assert first["coord-lat"] == 20.032
    assert first["coord-lon"] == -97.106
    assert first["image_measurement_value"] == 11204.0
    assert first["species"] is None
    assert first["index_bioscan_1M_insect"] is None
    by_id = {r["processid"]: r for r in frame.iter_rows(named=True)}
    assert by_id["GMPPO5563-21"]["index_bioscan_1M_insect"] == 150502
    assert by_id["GMPPO5563-21"]["subfamily"] == "unassigned Sciaridae"
    assert by_id["GMLCL2156-23"]["province_state"] is None
    assert by_id["CRATC20925-23"]["inferred_ranks"] == 2
    assert by_id["CRATC20925-23"]["chunk"] is None
    assert frame["index_bioscan_1M_insect"].drop_nulls().len() == 4
    assert (frame.filter(pl.col("split") == "pretrain")["species"].null_count() == 21)


@needs_real
@pytest.mark.realdata
def test_real_sample_chunks_follow_the_md5_rule() -> None:
    frame = read_metadata_csv(REAL_CSV)
    assert frame["chunk"].to_list() == chunk_series(frame["processid"], frame["split"]).to_list()
    for processid, split, chunk in frame.select("processid", "split", "chunk").iter_rows():
        assert chunk_of(processid, split) == (chunk or "")


@needs_real
@pytest.mark.realdata
def test_real_sample_header_is_the_official_order() -> None:
    with REAL_CSV.open(newline="") as handle:
        assert next(csv.reader(handle)) == list(METADATA_COLUMNS)


# --- reader: nulls, columns, errors -----------------------------------------------------------


def test_no_data_and_empty_fields_are_null_in_every_column(tmp_path: Path) -> None:
    blank = {name: "no_data" for name in METADATA_COLUMNS if name not in ("processid", "split")}
    empty = {name: "" for name in blank}
    path = write_csv(tmp_path / "m.csv", [row(**blank), row(**empty), row()])
    frame = read_metadata_csv(path)
    for name in blank:
        assert frame[name].to_list()[:2] == [None, None], name
    assert frame.row(2, named=True)["index_bioscan_1M_insect"] == 634333

    quoted = tmp_path / "quoted.csv"
    text = write_csv(tmp_path / "q.csv", [row()]).read_text().replace(',"",', ",,")
    quoted.write_text(text.replace(",Qalyubia,", ',"",').replace(",BOLD:AAJ8033,", ",no_data,"))
    values = read_metadata_csv(quoted).row(0, named=True)
    assert values["province_state"] is None
    assert values["dna_bin"] is None


def test_columns_are_selected_by_name(tmp_path: Path) -> None:
    header = ["extra", *reversed(METADATA_COLUMNS)]
    path = write_csv(tmp_path / "m.csv", [row(extra="x")], header=header, prefix=b"\xef\xbb\xbf")
    frame = read_metadata_csv(path)
    assert frame.columns == list(METADATA_COLUMNS)
    assert frame.row(0, named=True)["processid"] == "GMEEO6589-21"
    assert frame["scale_factor"].to_list() == [1.6328]


def test_integral_decimals_are_accepted_in_integer_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", [row(index_bioscan_1M_insect="150502.0",
                                              inferred_ranks="4.0")])
    values = read_metadata_csv(path).row(0, named=True)
    assert values["index_bioscan_1M_insect"] == 150502
    assert values["inferred_ranks"] == 4


def test_missing_column(tmp_path: Path) -> None:
    header = [name for name in METADATA_COLUMNS if name not in ("chunk", "dna_bin")]
    path = write_csv(tmp_path / "m.csv", [row()], header=header)
    with pytest.raises(DataFormatError, match=r"m\.csv:1: missing column\(s\) 'dna_bin', "
                                              r"'chunk' in the header"):
        read_metadata_csv(path)


def test_repeated_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", [row()], header=[*METADATA_COLUMNS, "split"])
    with pytest.raises(DataFormatError, match=r"m\.csv:1: column\(s\) 'split' appear more "
                                              "than once"):
        read_metadata_csv(path)


@pytest.mark.parametrize(("column", "value", "problem", "expected"), [
    ("coord-lat", "north", "not a number", "a decimal number or an empty field"),
    ("area_fraction", "0,5", "not a number", "a decimal number or an empty field"),
    ("inferred_ranks", "2.5", "not an integer", "an integer or an empty field"),
    ("inferred_ranks", "40000", "integer out of range", "an integer that fits Int16"),
    ("index_bioscan_1M_insect", "x1", "not an integer", "an integer or an empty field"),
    ("split", "validation", "unknown split name", "one of pretrain, train, val, test"),
    ("split", "", "empty value", "one of pretrain"),
    ("processid", "", "empty value", "the specimen's BOLD process ID"),
])
def test_bad_value_names_file_line_column_value(
    tmp_path: Path, column: str, value: str, problem: str, expected: str
) -> None:
    path = write_csv(tmp_path / "m.csv", [row(), row(), row(**{column: value})])
    with pytest.raises(DataFormatError) as info:
        read_metadata_csv(path)
    message = str(info.value)
    assert message.startswith(f"{path}:4: {problem} (field {column!r}")
    shown = None if value == "" else value
    assert info.value.value == shown
    assert expected in message


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="metadata CSV .*absent.csv not found"):
        read_metadata_csv(tmp_path / "absent.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataFormatError, match=r"empty\.csv:1: empty file"):
        read_metadata_csv(tmp_path / "empty.csv")


def test_crlf_line_ends(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", [row(), row(chunk="")])
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    frame = read_metadata_csv(path)
    assert frame["chunk"].to_list() == ["b", None]
    assert frame["dna_barcode"].to_list() == ["ACGTACGTNN"] * 2


def test_unreadable_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "latin1.csv", [row()])
    path.write_bytes(path.read_bytes().replace(b"Qalyubia", "Qalyubi\xe9".encode("latin-1")))
    with pytest.raises(DataFormatError, match=r"latin1\.csv: unreadable CSV file: invalid utf-8"):
        read_metadata_csv(path)
    path = write_csv(tmp_path / "ragged.csv", [row()])
    path.write_text(path.read_text().rstrip("\n") + ",extra\n")
    with pytest.raises(DataFormatError, match=r"ragged\.csv: unreadable CSV file: found more "
                                              "fields"):
        read_metadata_csv(path)


def test_header_only_file_reads_as_empty_frame(tmp_path: Path) -> None:
    frame = read_metadata_csv(write_csv(tmp_path / "m.csv", []))
    assert frame.height == 0
    assert dict(frame.schema) == POLARS_TYPES


# --- split names ------------------------------------------------------------------------------

SPLIT_EXPRESSIONS = [
    *SPLITS, "validation", "all", "seen", "unseen", "train+val", "seen+pretrain",
    "unseen+other_heldout", "validation+test", " train + val ", "train+train", "all+seen",
]


@pytest.mark.parametrize("text", SPLIT_EXPRESSIONS)
def test_resolve_split(text: str) -> None:
    resolved = resolve_split(text)
    assert resolved == [s for s in SPLITS if s in resolved]
    assert len(set(resolved)) == len(resolved)


def test_resolve_split_values() -> None:
    assert resolve_split("validation") == ["val"]
    assert resolve_split("seen") == ["train", "val", "test"]
    assert resolve_split("unseen") == ["key_unseen", "val_unseen", "test_unseen"]
    assert resolve_split("all") == list(SPLITS)
    assert resolve_split("test+train") == ["train", "test"]
    assert "other_heldout" not in resolve_split("seen+unseen")


@pytest.mark.parametrize("text", ["Train", "heldout", "train+", "", "valid", "train+bogus"])
def test_resolve_split_unknown(text: str) -> None:
    with pytest.raises(UnknownNameError, match="unknown split of bioscan-5m .*valid values are: "
                                               "all, key_unseen, other_heldout, pretrain, seen"):
        resolve_split(text)


def test_split_names_match_bioscan_dataset() -> None:
    module = pytest.importorskip("bioscan_dataset.bioscan5m")
    assert tuple(module.VALID_SPLITS) == SPLITS
    assert tuple(module.SEEN_SPLITS) == SEEN_SPLITS
    assert tuple(module.UNSEEN_SPLITS) == UNSEEN_SPLITS
    assert module.SPLIT_ALIASES == {"validation": "val"}
    for text in SPLIT_EXPRESSIONS:
        assert set(resolve_split(text)) == module.explode_metasplit(text, verify=True), text
    for text in ["Train", "heldout", "train+bogus", "valid"]:
        with pytest.raises(ValueError):
            module.explode_metasplit(text, verify=True)
        with pytest.raises(UnknownNameError):
            resolve_split(text)


# --- image layout -----------------------------------------------------------------------------

# Sentinel images of bioscan-dataset 1.3.0 (BIOSCAN5M.image_files): real file names and chunks.
SENTINELS = [
    "pretrain/00/AACTA1040-20.jpg", "pretrain/ff/YGEN686-22.jpg", "pretrain/fe/YGEN2059-22.jpg",
    "train/0/AACTA1026-20.jpg", "train/f/YGEN986-22.jpg", "val/AACTA161-20.jpg",
    "test/YGEN995-22.jpg", "key_unseen/AACTA5263-20.jpg", "test_unseen/YDBB974-21.jpg",
    "other_heldout/0/ABSSI1639-22.jpg", "other_heldout/f/YDBB6502-21.jpg",
]


@pytest.mark.parametrize("path", SENTINELS)
def test_chunk_rule_on_bioscan_dataset_sentinels(path: str) -> None:
    parts = path.removesuffix(".jpg").split("/")
    split, processid = parts[0], parts[-1]
    chunk = parts[1] if len(parts) == 3 else ""
    assert chunk_of(processid, split) == chunk
    assert image_relative_path("cropped_256", split, chunk, processid) == (
        f"bioscan5m/images/cropped_256/{path}")


def test_chunk_rule_on_every_bioscan_dataset_sentinel() -> None:
    module = pytest.importorskip("bioscan_dataset.bioscan5m")
    for split, entries in module.BIOSCAN5M.image_files.items():
        for path, _ in entries:
            parts = path.removesuffix(".jpg").split("/")
            assert parts[0] == split
            assert chunk_of(parts[-1], split) == (parts[1] if len(parts) == 3 else "")


def test_chunk_series_matches_chunk_of() -> None:
    ids = [f"ABCDE{i}-22" for i in range(200)]
    splits = [SPLITS[i % len(SPLITS)] for i in range(200)]
    series = chunk_series(pl.Series(ids), pl.Series(splits)).to_list()
    assert series == [chunk_of(p, s) or None for p, s in zip(ids, splits, strict=True)]
    assert {len(c) for c, s in zip(series, splits, strict=True) if s == "pretrain"} == {2}


def test_image_relative_path_without_chunk_and_bad_package() -> None:
    assert image_relative_path("original_full", "test", None, "X-1") == (
        "bioscan5m/images/original_full/test/X-1.jpg")
    with pytest.raises(UnknownNameError, match="image package 'cropped_full'"):
        image_relative_path("cropped_full", "test", "", "X-1")


def _zip(path: Path, names: list[str], **kwargs: object) -> Path:
    with zipfile.ZipFile(path, "w", **kwargs) as archive:
        for name in names:
            archive.writestr(name, b"")
    return path


def test_zip_member_names_equal_zipfile(tmp_path: Path) -> None:
    names = ["bioscan5m/images/cropped_256/val/A-1.jpg", "dir/", "ünïcode/ß.jpg"]
    path = _zip(tmp_path / "a.zip", names, compression=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(path, "a") as archive:
        archive.comment = b"a comment"
    assert zip_member_names(path) == names

    prefixed = tmp_path / "prefixed.zip"
    prefixed.write_bytes(b"#!junk\n" * 10 + path.read_bytes())
    assert zip_member_names(prefixed) == zipfile.ZipFile(prefixed).namelist()

    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(zipfile.BadZipFile):
        zip_member_names(tmp_path / "bad.zip")


@pytest.mark.slow
def test_zip_member_names_zip64(tmp_path: Path) -> None:
    names = [f"p/{i:05x}.jpg" for i in range(70_000)]  # over 65,535 members: zip64 records
    path = _zip(tmp_path / "big.zip", names)
    assert zip_member_names(path) == names


# --- sample generator -------------------------------------------------------------------------


def test_split_counts_proportions() -> None:
    assert split_counts(TOTAL_ROWS) == SPLIT_ROWS
    assert sum(split_counts(1_000_000).values()) == 1_000_000
    for split, count in split_counts(1_000_000).items():
        assert abs(count - SPLIT_ROWS[split] * 1_000_000 / TOTAL_ROWS) < 1
    small = split_counts(8)
    assert small == {split: 1 for split in SPLITS}
    assert min(split_counts(200).values()) == 1
    assert sum(split_counts(200).values()) == 200
    with pytest.raises(ValueError, match="rows is 7; a sample needs at least 8"):
        split_counts(7)


def test_sample_format(sample_root: Path, sample_frame: pl.DataFrame) -> None:
    assert (sample_root / SAMPLE_MARKER).is_file()
    with csv_of(sample_root).open(newline="") as handle:
        assert next(csv.reader(handle)) == list(METADATA_COLUMNS)
    raw = csv_of(sample_root).read_text()
    assert "no_data" not in raw
    assert ",," in raw  # missing values are empty fields

    frame = sample_frame
    assert frame.height == 400
    assert dict(frame.group_by("split").len().iter_rows()) == split_counts(400)
    assert frame["processid"].is_unique().all()
    assert all(re.fullmatch(r"[A-Z]{4,5}\d+-(19|2[0-3])", p) for p in frame["processid"])
    assert all(re.fullmatch(r"(BIOUG|CBG-A)\d{5}-[A-H](0[1-9]|1[0-2])", s)
               for s in frame["sampleid"])
    assert frame["chunk"].to_list() == chunk_series(frame["processid"], frame["split"]).to_list()
    assert set(frame["phylum"]) == {"Arthropoda"}
    pretrain = frame.filter(pl.col("split") == "pretrain")
    labelled = frame.filter(pl.col("split") != "pretrain")
    assert pretrain["species"].null_count() == pretrain.height
    assert labelled["species"].null_count() == 0
    assert labelled["genus"].null_count() == 0
    assert all(re.fullmatch(r"[A-Z][a-z]+ [a-z]+", s)
               for s in labelled.filter(pl.col("split").is_in(SEEN_SPLITS))["species"])
    assert all(" sp. " in s for s in labelled.filter(
        pl.col("split").is_in([*UNSEEN_SPLITS, "other_heldout"]))["species"])
    taxon = frame.select(pl.coalesce("species", "genus", "subfamily", "family", "order",
                                     "class", "phylum")).to_series()
    assert frame["taxon"].to_list() == taxon.to_list()
    assert all(re.fullmatch(r"BOLD:A[A-F][A-Z]\d{4}", b) for b in frame["dna_bin"].drop_nulls())


def test_sample_barcodes(tmp_path: Path) -> None:
    frame = read_metadata_csv(csv_of(write_bioscan5m_sample(tmp_path, rows=20_000, images=0)))
    barcodes = frame["dna_barcode"]
    lengths = barcodes.str.len_chars()
    assert 640 <= lengths.median() <= 660
    assert lengths.min() >= 500
    assert lengths.max() <= 720
    assert (lengths > 660).any()
    assert barcodes.str.contains("^[ACGTN]+$").all()
    assert 0.02 < barcodes.str.ends_with("N").mean() < 0.12
    assert 0.3 < barcodes.n_unique() / frame.height < 0.75  # repeated across records


def test_sample_label_coverage(tmp_path: Path) -> None:
    frame = read_metadata_csv(csv_of(write_bioscan5m_sample(tmp_path, rows=50_000, images=0)))
    for column, count in LABEL_COUNTS.items():
        coverage = 1 - frame[column].null_count() / frame.height
        assert abs(coverage - count / TOTAL_ROWS) < 0.015, column
    orders = frame["order"].value_counts(sort=True)
    assert orders["order"][0] == "Diptera"
    assert 0.6 < orders["count"][0] / frame.height < 0.8
    assert (frame["class"] == "Insecta").mean() > 0.95


def test_sample_is_deterministic(tmp_path: Path) -> None:
    a = write_bioscan5m_sample(tmp_path / "a", rows=60, seed=5, images=10)
    b = write_bioscan5m_sample(tmp_path / "b", rows=60, seed=5, images=10)
    c = write_bioscan5m_sample(tmp_path / "c", rows=60, seed=6, images=0)
    d = write_bioscan5m_sample(tmp_path / "d", rows=60, seed=5, images=0, layout="zip")
    assert csv_of(a).read_bytes() == csv_of(b).read_bytes() == csv_of(d).read_bytes()
    assert csv_of(a).read_bytes() != csv_of(c).read_bytes()
    images_a = sorted(p.relative_to(a) for p in a.rglob("*.jpg"))
    assert images_a == sorted(p.relative_to(b) for p in b.rglob("*.jpg"))
    assert len(images_a) == 10
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in images_a)
    assert not list(c.rglob("*.jpg"))


def test_sample_images_and_zip_layout(tmp_path: Path) -> None:
    root = write_bioscan5m_sample(tmp_path, rows=120, seed=1, images=40, layout="zip",
                                  image_size=256)
    zips = sorted(p.name for p in root.glob("*.zip"))
    assert set(zips) <= {"BIOSCAN_5M_cropped_256_eval.zip", "BIOSCAN_5M_cropped_256_train.zip",
                         "BIOSCAN_5M_cropped_256_pretrain.01.zip",
                         "BIOSCAN_5M_cropped_256_pretrain.02.zip"}
    members = [m for z in root.glob("*.zip") for m in zip_member_names(z)]
    assert len(members) == 40
    frame = read_metadata_csv(csv_of(root))
    expected = {image_relative_path("cropped_256", s, c, p)
                for p, s, c in frame.select("processid", "split", "chunk").iter_rows()}
    assert set(members) <= expected
    assert {m.split("/")[3] for m in members} == set(SPLITS)  # one of each partition
    eval_members = zip_member_names(root / "BIOSCAN_5M_cropped_256_eval.zip")
    assert not any("/train/" in m or "/pretrain/" in m for m in eval_members)

    from PIL import Image

    with zipfile.ZipFile(root / "BIOSCAN_5M_cropped_256_train.zip") as archive:
        with archive.open(archive.namelist()[0]) as handle:
            image = Image.open(handle)
            assert image.format == "JPEG"
            assert min(image.size) == 256


def test_sample_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="sample layout 'flat'"):
        write_bioscan5m_sample(tmp_path, layout="flat")
    with pytest.raises(UnknownNameError, match="image package 'full'"):
        write_bioscan5m_sample(tmp_path, package="full")
    with pytest.raises(ValueError, match="images is 11; expected 0 to rows"):
        write_bioscan5m_sample(tmp_path, rows=10, images=11)
    with pytest.raises(ValueError, match="at least 8"):
        write_bioscan5m_sample(tmp_path, rows=3)


# --- locating images --------------------------------------------------------------------------


def test_locate_images_counts_missing_per_split(
    sample_root: Path, sample_frame: pl.DataFrame
) -> None:
    found = locate_images(sample_frame, sample_root)
    assert isinstance(found, ImageLocations)
    assert (found.package, found.layout) == ("cropped_256", "folders")
    on_disk = {p.relative_to(sample_root).as_posix()
               for p in sample_root.rglob("*.jpg")}
    assert set(found.paths.drop_nulls()) == on_disk
    missing = sample_frame.with_columns(found.paths).filter(pl.col("image").is_null())
    assert found.missing == {s: int((missing["split"] == s).sum()) for s in SPLITS}
    assert sum(found.missing.values()) == 100
    assert found.records == split_counts(400)
    for split, examples in found.missing_examples.items():
        assert 0 < len(examples) <= 3
        assert all(e.startswith(f"{split}/") for e in examples)


def test_locate_images_prefers_folders_then_zips(tmp_path: Path) -> None:
    root = write_bioscan5m_sample(tmp_path, rows=30, images=30, layout="zip")
    frame = read_metadata_csv(csv_of(root))
    first = frame.row(0, named=True)
    relative = image_relative_path("cropped_256", first["split"], first["chunk"],
                                   first["processid"])
    (root / relative).parent.mkdir(parents=True)
    (root / relative).write_bytes(b"jpeg")
    found = locate_images(frame, root)
    assert found.layout == "folders+zips"
    assert found.paths.null_count() == 0
    assert found.paths[0] == relative
    assert all("::bioscan5m/images/cropped_256/" in p for p in found.paths[1:])

    nothing = locate_images(frame, root, package="original_256")
    assert (nothing.package, nothing.layout) == ("original_256", "none")
    assert nothing.paths.null_count() == 30
    assert sum(nothing.missing.values()) == 30


# --- prepare and load -------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["folders", "zip"])
def test_prepare_and_load(tmp_path: Path, layout: str) -> None:
    root = write_bioscan5m_sample(tmp_path / "src", rows=150, seed=2, layout=layout)
    manifest = prepare_dataset(NAME, root, progress=False)
    assert (manifest.version, manifest.data_kind, manifest.subset) == ("2024", "sample", True)
    assert manifest.row_counts == {f"metadata/{s}": n for s, n in split_counts(150).items()}
    assert list(manifest.source_files) == [CSV_RELATIVE_PATH]
    kind = "folders" if layout == "folders" else "zips"
    assert f"images: package cropped_256, read from {kind}" in " ".join(manifest.notes)
    assert not any("images not found" in note for note in manifest.notes)

    train = load_dataset(NAME, split="train")
    assert train.num_rows == split_counts(150)["train"]
    assert train.column_names == METADATA_SCHEMA.names
    record = train[0]
    assert record["image"].size == (32, 32)
    assert record["species"]
    assert record["image"].format == "JPEG"

    frame = load_dataset(NAME, split="train+val", format="polars")
    prefix = str(root) + "/" if layout == "folders" else f"{root}/BIOSCAN_5M_cropped_256_"
    assert frame["image"].str.starts_with(prefix).all()
    expected = read_metadata_csv(csv_of(root)).filter(pl.col("split").is_in(["train", "val"]))
    assert frame.drop("image").sort("processid").equals(expected.sort("processid"))


def test_prepare_reports_missing_images_per_split(sample_root: Path) -> None:
    manifest = prepare_dataset(NAME, sample_root, progress=False)
    frame = load_dataset(NAME, format="polars")
    notes = {note.split(":")[0]: note for note in manifest.notes}
    for split in SPLITS:
        missing = frame[split]["image"].null_count()
        if missing:
            assert f"{split}: {missing} of {frame[split].height} images not found in " \
                   "cropped_256 (" in notes[split]
        else:
            assert split not in notes
    assert manifest.subset


def test_prepare_md5_mismatch_note(sample_root: Path) -> None:
    manifest = prepare_dataset(NAME, sample_root, progress=False)
    md5 = hashlib.md5(csv_of(sample_root).read_bytes()).hexdigest()
    assert manifest.notes[0] == (
        f"{CSV_RELATIVE_PATH} has MD5 {md5}, not the published MD5 {METADATA_CSV_MD5} of "
        "version 2024: 400 rows against the release's 5,150,850; every partition's row count "
        "differs (one note each below)")
    train = split_counts(400)["train"]
    assert f"metadata/train: {train} rows, full release has 289203" in manifest.notes


def test_read_source_with_release_counts_or_md5(
    sample_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bioscan.prepare5m as prepare5m

    counts = split_counts(400)
    monkeypatch.setattr(prepare5m, "SPLIT_ROWS", counts)
    data = read_bioscan5m_source(BIOSCAN5M_SPEC, sample_root)
    assert data.notes[0].endswith("the same rows per partition as the release, so its content "
                                  "was changed")

    md5 = hashlib.md5(csv_of(sample_root).read_bytes()).hexdigest()
    monkeypatch.setattr(prepare5m, "METADATA_CSV_MD5", md5)
    data = read_bioscan5m_source(BIOSCAN5M_SPEC, sample_root)
    assert not any("MD5" in note for note in data.notes)
    assert data.subset  # images are missing
    assert sum(t.num_rows for t in data.tables["metadata"].values()) == 400
    assert data.tables["metadata"]["train"].schema == METADATA_SCHEMA


def test_prepare_chunk_mismatch_note(tmp_path: Path) -> None:
    root = write_bioscan5m_sample(tmp_path, rows=40, images=0)
    frame = read_metadata_csv(csv_of(root))
    pretrain = frame.filter(pl.col("split") == "pretrain").row(0, named=True)
    text = csv_of(root).read_text().replace(
        f"pretrain,{pretrain['index_bioscan_1M_insect'] or ''},{pretrain['chunk']}\n",
        f"pretrain,{pretrain['index_bioscan_1M_insect'] or ''},zz\n", 1)
    csv_of(root).write_text(text)
    data = read_bioscan5m_source(BIOSCAN5M_SPEC, root)
    note = next(n for n in data.notes if n.startswith("chunk differs"))
    assert note.startswith("chunk differs from the first hex digits of md5(processid) in 1 of 40 "
                           f"records ({pretrain['processid']} (pretrain: chunk 'zz', rule "
                           f"'{pretrain['chunk']}'))")


def test_prepare_without_images(tmp_path: Path) -> None:
    root = write_bioscan5m_sample(tmp_path, rows=30, images=0)
    data = read_bioscan5m_source(BIOSCAN5M_SPEC, root)
    assert data.subset
    assert any(n.startswith("no images of cropped_256 or original_256 or cropped or "
                            "original_full under") for n in data.notes)
    assert all(t["image"].null_count == t.num_rows for t in data.tables["metadata"].values())


def test_prepare_with_a_chosen_package(tmp_path: Path) -> None:
    root = write_bioscan5m_sample(tmp_path, rows=30, package="original_256")
    write_bioscan5m_sample(tmp_path / "other", rows=30, package="cropped_256")
    data = read_bioscan5m_source(BIOSCAN5M_SPEC, root)
    assert data.notes[1].startswith("images: package original_256, read from folders")
    # A package asked for by name must be there; without a name, none is a note.
    with pytest.raises(FieldHarnessError, match="image package cropped_256 was requested but is "
                                                "not under"):
        read_bioscan5m_source(BIOSCAN5M_SPEC, root, package="cropped_256")
    bare = write_bioscan5m_sample(tmp_path / "bare", rows=30, images=0)
    assert read_bioscan5m_source(BIOSCAN5M_SPEC, bare).notes[1].startswith("no images of "
                                                                          "cropped_256 or")


def test_find_metadata_csv_places(tmp_path: Path) -> None:
    root = write_bioscan5m_sample(tmp_path / "data" / "b5m", rows=20, images=0)
    path = csv_of(root)
    assert find_metadata_csv(path) == path
    assert find_metadata_csv(path.parent) == path
    assert find_metadata_csv(root) == path
    assert find_metadata_csv(tmp_path) == path

    flat = write_csv(tmp_path / "flat" / "BIOSCAN_5M_Insect_Dataset_metadata.csv", [row()])
    data = read_bioscan5m_source(BIOSCAN5M_SPEC, flat.parent)
    assert data.source_root == flat.parent
    assert data.data_kind == "real"

    data = read_bioscan5m_source(BIOSCAN5M_SPEC, path.parent)  # below the source root
    assert data.source_root == root
    assert data.data_kind == "sample"


def test_metadata_zip_only_names_the_file_to_extract(tmp_path: Path) -> None:
    _zip(tmp_path / "BIOSCAN_5M_Insect_Dataset_metadata_MultiTypes.zip", [CSV_RELATIVE_PATH])
    with pytest.raises(FileNotFoundError, match="BIOSCAN_5M_Insect_Dataset_metadata.csv was "
                                                "not found, but .*MultiTypes.zip contains it"):
        find_metadata_csv(tmp_path)
    with pytest.raises(FieldHarnessError, match="no bioscan-5m data found under"):
        prepare_dataset(NAME, tmp_path, progress=False)


def test_bad_csv_fails_prepare(tmp_path: Path) -> None:
    write_csv(tmp_path / "BIOSCAN_5M_Insect_Dataset_metadata.csv", [row(split="seen")])
    with pytest.raises(DataFormatError, match="unknown split name"):
        prepare_dataset(NAME, tmp_path, progress=False)


def test_plugin_sample(tmp_path: Path) -> None:
    plugin = BIOSCAN5MPlugin()
    root = plugin.generate_sample(tmp_path / "s", seed=0)
    assert len(list(root.rglob("*.jpg"))) == 200
    manifest = prepare_dataset(NAME, root, progress=False)
    assert sum(manifest.row_counts.values()) == 200
    assert not any("images not found" in note for note in manifest.notes)
    assert plugin.evaluator() is None


def test_spec() -> None:
    spec = BIOSCAN5M_SPEC
    assert [s.name for s in spec.splits] == list(SPLITS)
    version = spec.version()
    assert version.name == "2024"
    assert sum(version.row_counts.values()) == 5_150_850
    assert METADATA_CSV_MD5 in version.description
    config = spec.config()
    assert config.name == "metadata"
    assert config.image_columns == ("image",)
    assert config.schema.names == [*METADATA_COLUMNS, "image"]
    for remote in version.files:
        assert remote.urls[0] == f"https://zenodo.org/records/11973457/files/{remote.name}"
        assert remote.urls[1].startswith("https://huggingface.co/datasets/bioscan-ml/BIOSCAN-5M/")
        assert len(remote.md5) == 32
        assert remote.size
    assert spec.redistributable
    assert spec.license == "CC BY 3.0"
    assert "2406.12723" in spec.citation


def test_spec_md5s_match_bioscan_dataset() -> None:
    module = pytest.importorskip("bioscan_dataset.bioscan5m")
    meta, zips = module.BIOSCAN5M.meta, module.BIOSCAN5M.zip_files
    assert meta["csv_md5"] == METADATA_CSV_MD5
    published = {meta["urls"][0].rsplit("/", 1)[1]: meta["archive_md5"]}
    for entry in zips.values():
        data = entry["cropped_256"]
        published[data["url"].rsplit("/", 1)[1]] = data["md5"]
    files = {remote.name: remote for remote in BIOSCAN5M_SPEC.version().files}
    assert {name: remote.md5 for name, remote in files.items()} == published
    assert {remote.urls[0] for remote in files.values()} == (
        {meta["urls"][0]} | {e["cropped_256"]["url"] for e in zips.values()})


# --- parity with bioscan-dataset --------------------------------------------------------------


def _assert_same_values(ours: pl.DataFrame, theirs, image_keys: list[str]) -> None:
    """Compare our frame with bioscan-dataset's pandas frame, value by value."""
    import pandas

    assert ours["processid"].to_list() == theirs["processid"].tolist()
    for column in METADATA_COLUMNS:
        expected = [None if pandas.isna(v) else v for v in theirs[column].astype(object)]
        actual = ours[column].to_list()
        if ours[column].dtype.is_integer():
            expected = [None if v is None else int(v) for v in expected]
        assert actual == expected, column
    assert image_keys == theirs["image_path"].tolist()


@pytest.mark.parametrize("split", ["train", "pretrain", "seen", "unseen+other_heldout", None])
def test_parity_with_bioscan_dataset(sample_root: Path, split: str | None) -> None:
    module = pytest.importorskip("bioscan_dataset.bioscan5m")
    theirs = module.load_bioscan5m_metadata(csv_of(sample_root), max_nucleotides=None,
                                            split=split)
    ours = read_metadata_csv(csv_of(sample_root))
    if split is not None:
        ours = ours.filter(pl.col("split").is_in(resolve_split(split)))
    keys = ours.select(pl.col("split") + "/" + pl.when(pl.col("chunk").is_null()).then(
        pl.lit("")).otherwise(pl.col("chunk") + "/") + pl.col("processid") + ".jpg"
    ).to_series().to_list()
    _assert_same_values(ours, theirs, keys)


@needs_real
@pytest.mark.realdata
def test_parity_with_bioscan_dataset_on_real_records() -> None:
    module = pytest.importorskip("bioscan_dataset.bioscan5m")
    theirs = module.load_bioscan5m_metadata(REAL_CSV, max_nucleotides=None)
    ours = read_metadata_csv(REAL_CSV)
    keys = [image_relative_path("cropped_256", s, c, p).split("cropped_256/", 1)[1]
            for p, s, c in ours.select("processid", "split", "chunk").iter_rows()]
    _assert_same_values(ours, theirs, keys)


def test_parity_of_prepared_records_per_split(sample_root: Path) -> None:
    module = pytest.importorskip("bioscan_dataset.bioscan5m")
    prepare_dataset(NAME, sample_root, progress=False)
    prepared = load_dataset(NAME, format="polars")
    for split in SPLITS:
        theirs = module.load_bioscan5m_metadata(csv_of(sample_root), max_nucleotides=None,
                                                split=split)
        frame = prepared[split]
        assert frame["processid"].to_list() == theirs["processid"].tolist()
        found = frame.filter(pl.col("image").is_not_null())
        paths = theirs.set_index("processid")["image_path"]
        for processid, image in found.select("processid", "image").iter_rows():
            assert image.endswith("/cropped_256/" + paths[processid])


def test_load_split_aliases(tmp_path):
    from bioscan.plugin import BIOSCAN5MPlugin
    from bioscan.sample5m import write_bioscan5m_sample
    from harness import load_dataset, registry
    from harness.prepare import prepare_dataset

    registry.register_dataset("bioscan-5m", BIOSCAN5MPlugin)
    try:
        root = write_bioscan5m_sample(tmp_path / "src", rows=400, images=0)
        prepare_dataset("bioscan-5m", root, progress=False)
        counts = {split: load_dataset("bioscan-5m", split=split, format="polars").height
                  for split in ("train", "val", "test", "key_unseen", "val_unseen",
                                "test_unseen", "seen", "unseen", "all", "validation")}
    finally:
        registry._extra[registry.DATASETS_GROUP].pop("bioscan-5m", None)

    assert counts["seen"] == counts["train"] + counts["val"] + counts["test"]
    assert counts["unseen"] == counts["key_unseen"] + counts["val_unseen"] + counts["test_unseen"]
    assert counts["all"] == 400
    assert counts["validation"] == counts["val"]


# --- prepare options ----------------------------------------------------------------------------


def test_prepare_option_chooses_the_image_package(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    root = tmp_path / "two"
    write_bioscan5m_sample(root, rows=40, seed=1, package="cropped_256")
    write_bioscan5m_sample(root, rows=40, seed=1, package="original_256")
    manifest = prepare_dataset(NAME, root, progress=False)
    assert any("package cropped_256" in note for note in manifest.notes)

    assert main(["prepare", NAME, "--source", str(root),
                 "--option", "image_package=original_256"]) == 0
    assert "images: package original_256" in capsys.readouterr().out
    frame = load_dataset(NAME, split="train", format="polars")
    assert frame["image"].str.contains("/original_256/").all()

    assert main(["info", NAME]) == 0
    assert "image_package: image package to read: cropped_256" in capsys.readouterr().out

    with pytest.raises(UnknownNameError, match="unknown prepare option of bioscan-5m 'package'"):
        prepare_dataset(NAME, root, progress=False, options={"package": "cropped"})
    with pytest.raises(UnknownNameError, match="unknown BIOSCAN-5M image package 'cropped_512'"):
        prepare_dataset(NAME, root, progress=False, options={"image_package": "cropped_512"})
    with pytest.raises(FieldHarnessError, match=r"image package cropped was requested but is "
                                                r"not under .*packages found: original_256, "
                                                r"cropped_256\)"):
        prepare_dataset(NAME, root, progress=False, options={"image_package": "cropped"})
    assert main(["prepare", NAME, "--source", str(root), "--option", "image_package"]) != 0
    assert "--option 'image_package' is not NAME=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["folders", "zip"])
def test_polars_load_equals_parquet_scan(tmp_path: Path, layout: str) -> None:
    # An eager polars load reads the Arrow file, a streaming one the Parquet file.
    root = write_bioscan5m_sample(tmp_path / layout, rows=60, seed=4, images=40, layout=layout)
    prepare_dataset(NAME, root, progress=False)
    for split in ("train", "pretrain+test", None):
        eager = load_dataset(NAME, split=split, format="polars")
        scanned = load_dataset(NAME, split=split, format="polars", streaming=True)
        if split is None:
            assert eager.keys() == scanned.keys()
            pairs = [(eager[name], scanned[name].collect()) for name in eager]
        else:
            pairs = [(eager, scanned.collect())]
        for first, second in pairs:
            assert first.schema == second.schema
            assert first.equals(second)
    images = load_dataset(NAME, split="train", format="polars", columns=["image"])["image"]
    assert images.null_count() < images.len()
    if layout == "zip":
        assert images.drop_nulls().str.contains(r"\.zip::bioscan5m/images/").all()


def test_prepare_option_as_a_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    root = tmp_path / "two"
    write_bioscan5m_sample(root, rows=30, seed=2, package="cropped_256")
    write_bioscan5m_sample(root, rows=30, seed=2, package="original_256")
    assert main(["prepare", NAME, "--source", str(root), "--image-package", "original_256"]) == 0
    assert "images: package original_256" in capsys.readouterr().out

    assert main(["prepare", NAME, "--source", str(root), "--image-package", "original_256",
                 "--option", "image_package=cropped_256"]) != 0
    assert "disagree; give the option once" in capsys.readouterr().err
