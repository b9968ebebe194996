"""Sewer-ML reading: the CSV reader, the three image layouts, prepare and the sample."""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import registry
from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError
from harness.plugin import SAMPLE_MARKER
from harness.prepare import prepare_dataset
from harness.registry import register_dataset
from harness.storage import read_manifest, read_prepared_table
from sewerml.classes import DEFECT_CODES
from sewerml.io import read_labels_csv, read_test_csv
from sewerml.plugin import SewerMLPlugin
from sewerml.prepare import ARCHIVE_SEPARATOR
from sewerml.sample import IMAGE_SIZES, write_sewerml_sample
from sewerml.spec import SEWERML_SPEC

IMAGES = 6
HEADER = ["Filename", "WaterLevel", "VA", *DEFECT_CODES, "ND", "Defect"]


@pytest.fixture(autouse=True)
def sewerml_registered() -> Iterator[None]:
    register_dataset("sewerml", SewerMLPlugin)
    yield
    registry._extra[registry.DATASETS_GROUP].pop("sewerml", None)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_labels(path: Path, rows: list[list[str]], header: list[str] = HEADER,
                 newline: str = "\n", bom: bool = False) -> Path:
    text = newline.join(",".join(row) for row in [header, *rows]) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def label_row(name: str, labels: tuple[int, ...] = (0,) * 17, water: str = "10") -> list[str]:
    defect = int(any(labels))
    return [name, water, "0", *map(str, labels), str(1 - defect), str(defect)]


GOOD_ROWS = [
    label_row("00000001.png"),
    label_row("00000002.png", (1,) + (0,) * 16, water="30"),
    label_row("00000003.png", (0,) * 16 + (1,), water="2.5"),
]


# --- CSV reader -------------------------------------------------------------------------------


@pytest.mark.parametrize(("newline", "bom"), [("\n", False), ("\r\n", False), ("\r\n", True)])
def test_labels_csv_line_endings_and_bom(tmp_path: Path, newline: str, bom: bool) -> None:
    path = write_labels(tmp_path / "SewerML_Train.csv", GOOD_ROWS, newline=newline, bom=bom)
    frame = read_labels_csv(path)
    assert frame["Filename"].to_list() == ["00000001.png", "00000002.png", "00000003.png"]
    assert frame["RB"].to_list() == [0, 1, 0]
    assert frame["OK"].to_list() == [0, 0, 1]
    assert frame["WaterLevel"].to_list() == [10.0, 30.0, 2.5]
    assert frame["Shape"].null_count() == 3


def test_labels_csv_selects_columns_by_name(tmp_path: Path) -> None:
    header = list(reversed(HEADER)) + ["Shape", "Material"]
    rows = [list(reversed(row)) + ["1", "4"] for row in GOOD_ROWS]
    frame = read_labels_csv(write_labels(tmp_path / "SewerML_Val.csv", rows, header=header))
    assert frame["Filename"].to_list()[1] == "00000002.png"
    assert frame["RB"].to_list() == [0, 1, 0]
    assert frame["Shape"].to_list() == [1, 1, 1]
    assert frame["Material"].to_list() == [4, 4, 4]


def test_test_csv_has_only_filenames(tmp_path: Path) -> None:
    path = tmp_path / "SewerML_Test.csv"
    path.write_bytes(b"Filename\r\n00000062.png\r\n01299556.png\r\n")
    assert read_test_csv(path)["Filename"].to_list() == ["00000062.png", "01299556.png"]


def test_labels_csv_missing_column(tmp_path: Path) -> None:
    header = [name for name in HEADER if name != "FS"]
    rows = [[v for name, v in zip(HEADER, row, strict=True) if name != "FS"] for row in GOOD_ROWS]
    path = write_labels(tmp_path / "SewerML_Train.csv", rows, header=header)
    with pytest.raises(DataFormatError, match=r"SewerML_Train\.csv:1: missing column 'FS'"):
        read_labels_csv(path)


def test_labels_csv_invalid_label(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS[:2], label_row("00000003.png", (0, 0, 2) + (0,) * 14)]
    path = write_labels(tmp_path / "SewerML_Train.csv", rows)
    with pytest.raises(DataFormatError) as info:
        read_labels_csv(path)
    message = str(info.value)
    assert "SewerML_Train.csv:4: invalid label" in message
    assert "field 'PF', value '2'" in message
    assert "expected 0 or 1" in message


def test_labels_csv_duplicate_filename(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS, label_row("00000002.png")]
    path = write_labels(tmp_path / "SewerML_Val.csv", rows)
    with pytest.raises(DataFormatError) as info:
        read_labels_csv(path)
    message = str(info.value)
    assert "SewerML_Val.csv:5: duplicate Filename, first on line 3" in message
    assert "value '00000002.png'" in message
    assert "expected each Filename on one line only" in message


@pytest.mark.parametrize("water", ["high", "101", "-5", ""])
def test_labels_csv_invalid_water_level(tmp_path: Path, water: str) -> None:
    rows = [*GOOD_ROWS, label_row("00000004.png", water=water)]
    path = write_labels(tmp_path / "SewerML_Train.csv", rows)
    with pytest.raises(DataFormatError) as info:
        read_labels_csv(path)
    message = str(info.value)
    assert "SewerML_Train.csv:5: invalid water level" in message
    assert f"field 'WaterLevel', value {water!r}" in message
    assert "expected a percentage from 0 to 100" in message


def test_labels_csv_empty_filename(tmp_path: Path) -> None:
    path = write_labels(tmp_path / "SewerML_Train.csv", [*GOOD_ROWS, label_row("")])
    with pytest.raises(DataFormatError, match=r"SewerML_Train\.csv:5: empty value .*'Filename'"):
        read_labels_csv(path)


def test_labels_csv_invalid_shape(tmp_path: Path) -> None:
    rows = [row + ["round", "1"] for row in GOOD_ROWS]
    path = write_labels(tmp_path / "SewerML_Train.csv", rows, header=HEADER + ["Shape", "Material"])
    with pytest.raises(DataFormatError,
                       match=r"SewerML_Train\.csv:2: invalid Shape code .*value 'round'"):
        read_labels_csv(path)


def test_labels_csv_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "SewerML_Train.csv"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"SewerML_Train\.csv:1: empty CSV file"):
        read_labels_csv(path)


def test_test_csv_missing_filename_column(tmp_path: Path) -> None:
    path = tmp_path / "SewerML_Test.csv"
    path.write_bytes(b"Image\n00000001.png\n")
    with pytest.raises(DataFormatError, match=r"SewerML_Test\.csv:1: missing column 'Filename'"):
        read_test_csv(path)


def test_test_csv_duplicate_filename(tmp_path: Path) -> None:
    path = tmp_path / "SewerML_Test.csv"
    path.write_bytes(b"Filename\r\n00000001.png\r\n00000001.png\r\n")
    with pytest.raises(DataFormatError,
                       match=r"SewerML_Test\.csv:3: duplicate Filename, first on line 2"):
        read_test_csv(path)


# --- prepare ----------------------------------------------------------------------------------


def image_exists(root: Path, image: str) -> bool:
    if ARCHIVE_SEPARATOR in image:
        archive, member = image.split(ARCHIVE_SEPARATOR, 1)
        with zipfile.ZipFile(root / archive) as handle:
            return member in handle.namelist()
    return (root / image).is_file()


@pytest.mark.parametrize("layout", ["folders", "flat", "zip"])
def test_prepare_round_trip(tmp_path: Path, layout: str) -> None:
    root = write_sewerml_sample(tmp_path / "src", layout=layout, images_per_split=IMAGES,
                                properties=layout == "zip")
    manifest = prepare_dataset("sewerml", root, progress=False)
    assert manifest.version == "2021"
    assert manifest.data_kind == "sample"
    assert not manifest.subset
    assert manifest.row_counts == {f"labels/{s}": IMAGES for s in ("train", "val", "test")}

    for split, csv_name in (("train", "Train"), ("val", "Val")):
        table = read_prepared_table("sewerml", "labels", split).to_pylist()
        expected = read_rows(root / f"SewerML_{csv_name}.csv")
        assert [row["Filename"] for row in table] == [row["Filename"] for row in expected]
        for row, source_row in zip(table, expected, strict=True):
            assert row["split"] == split
            assert image_exists(root, row["image"]), row["image"]
            for column in (*DEFECT_CODES, "Defect", "VA", "ND"):
                assert row[column] == int(source_row[column]), column
            assert row["WaterLevel"] == float(source_row["WaterLevel"])
            if layout == "zip":
                assert row["Shape"] == int(source_row["Shape"])
                assert row["Material"] == int(source_row["Material"])
            else:
                assert row["Shape"] is None

    test = read_prepared_table("sewerml", "labels", "test").to_pylist()
    assert len(test) == IMAGES
    assert all(row["RB"] is None and row["WaterLevel"] is None for row in test)
    assert all(image_exists(root, row["image"]) for row in test)


def test_prepare_image_paths_per_layout(tmp_path: Path) -> None:
    expected_prefix = {"folders": "Train/", "flat": "", "zip": "train0"}
    for layout, prefix in expected_prefix.items():
        root = write_sewerml_sample(tmp_path / layout, layout=layout, images_per_split=IMAGES)
        data = SewerMLPlugin().read_source(root)
        images = data.tables["labels"]["train"]["image"].to_pylist()
        assert all(image.startswith(prefix) for image in images), (layout, images[0])
        if layout == "zip":
            assert all(".zip::" in image for image in images)
        else:
            assert all(".zip" not in image for image in images)


def test_prepare_notes_class_count_differences(tmp_path: Path) -> None:
    root = write_sewerml_sample(tmp_path / "src", images_per_split=IMAGES)
    prepare_dataset("sewerml", root, progress=False)
    notes = read_manifest("sewerml").notes
    assert any(note.startswith("train: images per class differ from the published counts")
               and "(published 45821)" in note for note in notes)
    assert any(note.startswith("val: images per class differ") for note in notes)


def test_prepare_accepts_valid_spelling(tmp_path: Path) -> None:
    root = write_sewerml_sample(tmp_path / "src", images_per_split=IMAGES)
    (root / "SewerML_Val.csv").rename(root / "SewerML_Valid.csv")
    (root / "Val").rename(root / "Valid")
    data = SewerMLPlugin().read_source(root)
    images = data.tables["labels"]["val"]["image"].to_pylist()
    assert len(images) == IMAGES
    assert all(image.startswith("Valid/") for image in images)
    assert not data.subset


def test_prepare_finds_csvs_above_source(tmp_path: Path) -> None:
    root = write_sewerml_sample(tmp_path / "src", layout="flat", images_per_split=IMAGES)
    images = root / "images"
    images.mkdir()
    for png in root.glob("*.png"):
        png.rename(images / png.name)
    data = SewerMLPlugin().read_source(images)
    assert data.source_root == root
    train = data.tables["labels"]["train"]["image"].to_pylist()
    assert all(image.startswith("images/") for image in train)
    assert all((root / image).is_file() for image in train)


def test_prepare_finds_csvs_in_subfolder(tmp_path: Path) -> None:
    root = write_sewerml_sample(tmp_path / "src", images_per_split=IMAGES)
    (root / "Annotations").mkdir()
    for csv_path in root.glob("SewerML_*.csv"):
        csv_path.rename(root / "Annotations" / csv_path.name)
    data = SewerMLPlugin().read_source(root)
    assert data.source_root == root
    assert sorted(data.tables["labels"]) == ["test", "train", "val"]
    assert not data.subset


def test_prepare_missing_images_is_subset(tmp_path: Path) -> None:
    root = write_sewerml_sample(tmp_path / "src", images_per_split=IMAGES)
    removed = sorted((root / "Train").iterdir())[:2]
    for path in removed:
        path.unlink()
    manifest = prepare_dataset("sewerml", root, progress=False)
    assert manifest.subset
    assert any(note.startswith(f"train: 2 of {IMAGES} images not found ({removed[0].name}")
               for note in manifest.notes)
    table = read_prepared_table("sewerml", "labels", "train")
    assert table["image"].null_count == 2
    assert table.num_rows == IMAGES


def test_prepare_missing_csv_is_subset(tmp_path: Path) -> None:
    root = write_sewerml_sample(tmp_path / "src", images_per_split=IMAGES)
    (root / "SewerML_Test.csv").unlink()
    manifest = prepare_dataset("sewerml", root, progress=False)
    assert manifest.subset
    assert "annotation CSV not found for split(s): test" in manifest.notes
    assert "labels/test: missing, full release has 130026 rows" in manifest.notes


def test_prepare_without_csvs(tmp_path: Path) -> None:
    source = tmp_path / "empty"
    source.mkdir()
    with pytest.raises(FileNotFoundError, match="no SewerML_Train.csv"):
        SewerMLPlugin().read_source(source)
    with pytest.raises(FieldHarnessError, match="no sewerml data found"):
        prepare_dataset("sewerml", source, progress=False)


def test_prepare_reports_format_error(tmp_path: Path) -> None:
    root = write_sewerml_sample(tmp_path / "src", images_per_split=IMAGES)
    path = root / "SewerML_Val.csv"
    path.write_text(path.read_text().replace(",0,", ",7,", 1))
    with pytest.raises(DataFormatError, match=r"SewerML_Val\.csv:2: invalid label"):
        prepare_dataset("sewerml", root, progress=False)


def test_real_data_kind_without_marker(tmp_path: Path) -> None:
    root = write_sewerml_sample(tmp_path / "src", images_per_split=IMAGES)
    (root / SAMPLE_MARKER).unlink()
    assert SewerMLPlugin().read_source(root).data_kind == "real"


# --- sample and spec --------------------------------------------------------------------------


def test_sample_layout_and_marker(tmp_path: Path) -> None:
    root = SewerMLPlugin().generate_sample(tmp_path / "sample", seed=3)
    assert (root / SAMPLE_MARKER).is_file()
    assert (root / "SewerML_Test.csv").read_bytes().startswith(b"Filename\r\n")
    names = [row["Filename"] for row in read_rows(root / "SewerML_Train.csv")]
    assert all(len(name) == len("00000000.png") and name[:8].isdigit() for name in names)
    assert sorted(p.name for p in (root / "Train").iterdir()) == sorted(names)


def test_sample_zip_archive_names(tmp_path: Path) -> None:
    root = write_sewerml_sample(tmp_path, layout="zip", images_per_split=4)
    archives = sorted(p.name for p in root.glob("*.zip"))
    assert archives == ["test00.zip", "test01.zip", "train00.zip", "train01.zip",
                        "valid00.zip", "valid01.zip"]


def test_sample_is_deterministic(tmp_path: Path) -> None:
    first = write_sewerml_sample(tmp_path / "a", seed=5, images_per_split=4)
    second = write_sewerml_sample(tmp_path / "b", seed=5, images_per_split=4)
    for name in ("SewerML_Train.csv", "SewerML_Val.csv", "SewerML_Test.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_sample_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="unknown sample layout 'tar'"):
        write_sewerml_sample(tmp_path, layout="tar")


def test_spec_counts_and_licence() -> None:
    version = SEWERML_SPEC.version()
    assert version.name == "2021"
    assert version.row_counts == {"labels/train": 1_040_129, "labels/val": 130_046,
                                  "labels/test": 130_026}
    assert not SEWERML_SPEC.redistributable
    assert "CC BY-NC-SA 4.0" in SEWERML_SPEC.license
    assert not SEWERML_SPEC.split("test").has_labels
    assert SEWERML_SPEC.config().image_columns == ("image",)
    assert "Sewer-ML" in SEWERML_SPEC.citation


@pytest.mark.parametrize("layout", ["folders", "zip"])
def test_zip_images_verify_and_decode(tmp_path: Path, layout: str) -> None:
    from harness import load_dataset
    from harness.prepare import verify_dataset

    root = write_sewerml_sample(tmp_path / "src", layout=layout, images_per_split=IMAGES)
    prepare_dataset("sewerml", root, progress=False)
    report = verify_dataset("sewerml", progress=False)
    assert report.ok, report.problems

    dataset = load_dataset("sewerml", split="val")
    assert dataset[0]["image"].size in IMAGE_SIZES


def test_verify_reports_missing_archive(tmp_path: Path) -> None:
    from harness.prepare import verify_dataset

    root = write_sewerml_sample(tmp_path / "src", layout="zip", images_per_split=IMAGES)
    prepare_dataset("sewerml", root, progress=False)
    archive = next(root.rglob("valid*.zip"))
    archive.unlink()
    report = verify_dataset("sewerml", check_sources=True, progress=False)
    image_problems = [p for p in report.problems if "images in column image are missing" in p]
    assert image_problems
    assert ARCHIVE_SEPARATOR in image_problems[0]
