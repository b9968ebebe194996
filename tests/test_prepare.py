"""prepare and verify on the toy plugin: layout, manifest, subsets, locking, atomicity."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from datetime import datetime
from pathlib import Path

import datasets
import filelock
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _toy_plugin import (
    NAME,
    SPEC,
    ToyPlugin,
    csv_text,
    png_bytes,
    prepare_toy,
    write_toy_source,
)

import harness
from harness import prepare as prepare_module
from harness.checksum import sha256_file
from harness.cli import main
from harness.errors import (
    DataFormatError,
    FieldHarnessError,
    LockTimeoutError,
    NotPreparedError,
    UnknownNameError,
)
from harness.manifest import Manifest
from harness.plugin import SAMPLE_MARKER
from harness.prepare import hf_table, lock_path, prepare_dataset, verify_dataset
from harness.registry import register_dataset


def test_prepare_writes_tables_and_manifest(tmp_path: Path, isolated_homes: Path) -> None:
    source = write_toy_source(tmp_path / "src")
    manifest = prepare_dataset(NAME, source, progress=False)

    folder = isolated_homes / "datasets" / "toy" / "1.1"
    for config in ("full", "labels"):
        for split in ("train", "test"):
            assert (folder / config / f"{split}.parquet").is_file()
            assert (folder / config / f"{split}.arrow").is_file()
    assert Manifest.read(folder / "manifest.json") == manifest

    assert manifest.dataset == "toy"
    assert manifest.version == "1.1"
    assert manifest.data_kind == "real"
    assert manifest.subset is False
    assert manifest.notes == []
    assert manifest.source_root == str(source.resolve())
    assert manifest.fieldharness_version == harness.__version__
    assert datetime.fromisoformat(manifest.created).tzinfo is not None
    assert manifest.row_counts == dict(SPEC.version("1.1").row_counts)


def test_prepare_records_source_checksums(tmp_path: Path) -> None:
    source = write_toy_source(tmp_path / "src")
    manifest = prepare_dataset(NAME, source, progress=False)

    expected = {"VERSION", "train.csv", "test.csv"}
    expected |= {f"images/train_{i}.png" for i in range(4)}
    expected |= {f"images/test_{i}.png" for i in range(2)}
    assert set(manifest.source_files) == expected
    record = manifest.source_files["train.csv"]
    assert record["sha256"] == sha256_file(source / "train.csv")
    assert record["size"] == (source / "train.csv").stat().st_size
    assert record["mtime"] == (source / "train.csv").stat().st_mtime


def test_prepare_records_table_entries(tmp_path: Path, isolated_homes: Path) -> None:
    manifest = prepare_dataset(NAME, write_toy_source(tmp_path / "src"), progress=False)
    folder = isolated_homes / "datasets" / "toy" / "1.1"

    entry = manifest.tables["full/train"]
    assert entry["path"] == "full/train.parquet"
    assert entry["arrow_path"] == "full/train.arrow"
    assert entry["rows"] == 4
    assert entry["sha256"] == sha256_file(folder / "full" / "train.parquet")
    assert entry["arrow_sha256"] == sha256_file(folder / "full" / "train.arrow")
    assert entry["schema"] == {"id": "int64", "label": "string", "image": "string"}
    assert manifest.tables["labels/test"]["schema"] == {"id": "int64", "label": "string"}


def test_prepare_parquet_keeps_plugin_table(tmp_path: Path, isolated_homes: Path) -> None:
    prepare_dataset(NAME, write_toy_source(tmp_path / "src"), progress=False)
    table = pq.read_table(isolated_homes / "datasets" / "toy" / "1.1" / "full" / "train.parquet")
    assert table.column_names == ["id", "label", "image"]
    assert table["image"].to_pylist()[1] == "images/train_1.png"


def test_prepare_arrow_decodes_images(tmp_path: Path, isolated_homes: Path) -> None:
    source = write_toy_source(tmp_path / "src")
    prepare_dataset(NAME, source, progress=False)
    arrow = isolated_homes / "datasets" / "toy" / "1.1" / "full" / "train.arrow"

    dataset = datasets.Dataset.from_file(str(arrow))
    assert isinstance(dataset.features["image"], datasets.Image)
    image = dataset[1]["image"]
    assert image.size == (2, 2)
    assert image.getpixel((0, 0)) == (40, 100, 200)
    raw = dataset.cast_column("image", datasets.Image(decode=False))[1]["image"]
    assert raw["path"] == str(source.resolve() / "images" / "train_1.png")


def test_prepare_subset_recorded(tmp_path: Path) -> None:
    source = write_toy_source(tmp_path / "src", splits=("train",))
    manifest = prepare_dataset(NAME, source, progress=False)
    assert manifest.subset is True
    assert "split test is missing from the source" in manifest.notes
    assert "full/test: missing, full release has 2 rows" in manifest.notes
    assert set(manifest.tables) == {"full/train", "labels/train"}


def test_prepare_count_mismatch_warns(tmp_path: Path, caplog) -> None:
    source = write_toy_source(tmp_path / "src", version=None)  # 1.1 content, no VERSION file
    with caplog.at_level(logging.WARNING, logger="harness.prepare"):
        manifest = prepare_dataset(NAME, source, version="1.0", progress=False)
    assert manifest.version == "1.0"
    assert manifest.subset is False
    assert "does not match the row counts of version 1.0" in caplog.text
    assert "full/train: 4 rows, expected 3" in caplog.text
    assert manifest.notes == [
        "row counts differ from the release: full/train: 4 rows, expected 3; "
        "labels/train: 4 rows, expected 3"
    ]


def test_prepare_sample_marker_sets_kind(tmp_path: Path) -> None:
    source = write_toy_source(tmp_path / "src")
    (source / SAMPLE_MARKER).write_text("")
    assert prepare_dataset(NAME, source, progress=False).data_kind == "sample"


def test_prepare_bad_line_raises(tmp_path: Path) -> None:
    source = write_toy_source(tmp_path / "src")
    (source / "train.csv").write_text("id,label,image\n0,cat,images/train_0.png\nx,dog,a.png\n")
    with pytest.raises(DataFormatError,
                       match=r"train\.csv:3: invalid value \(field 'id', value 'x'\); "
                             r"expected an integer"):
        prepare_dataset(NAME, source, progress=False)


def test_prepare_missing_source_raises(tmp_path: Path) -> None:
    with pytest.raises(FieldHarnessError, match=r"source folder .*nowhere not found; pass "
                                                r"--source the folder that contains the official "
                                                r"download of toy"):
        prepare_dataset(NAME, tmp_path / "nowhere", progress=False)


def test_prepare_empty_source_raises(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FieldHarnessError, match=r"no toy data found under .*empty \(no train\.csv"):
        prepare_dataset(NAME, tmp_path / "empty", progress=False)


def test_prepare_unknown_names_raise(tmp_path: Path) -> None:
    source = write_toy_source(tmp_path / "src")
    with pytest.raises(UnknownNameError, match=r"unknown dataset 'nope'; valid values are: .*toy"):
        prepare_dataset("nope", source)
    with pytest.raises(UnknownNameError,
                       match=r"unknown version of toy '9\.9'; valid values are: 1\.0, 1\.1"):
        prepare_dataset(NAME, source, version="9.9")


def test_prepare_undeclared_config_raises(tmp_path: Path) -> None:
    class ExtraConfig(ToyPlugin):
        def read_source(self, source, *, version=None):
            data = super().read_source(source, version=version)
            data.tables["extra"] = data.tables["labels"]
            return data

    register_dataset("toy-extra", type("ExtraToy", (ExtraConfig,), {"spec": SPEC}))
    with pytest.raises(FieldHarnessError, match=r"returned a table for config 'extra', which its "
                                                r"spec does not declare \(configs: full, labels\)"):
        prepare_dataset("toy-extra", write_toy_source(tmp_path / "src"), progress=False)


def test_prepare_lock_timeout(tmp_path: Path) -> None:
    source = write_toy_source(tmp_path / "src")
    lock = lock_path(NAME)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(lock):
        with pytest.raises(LockTimeoutError,
                           match=rf"another prepare of toy held the lock file {lock} for over "
                                 r"0\.2 s; wait for it to finish"):
            prepare_dataset(NAME, source, lock_timeout=0.2, progress=False)


def test_prepare_waits_for_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_toy_source(tmp_path / "src")
    lock_path(NAME).parent.mkdir(parents=True, exist_ok=True)
    lock_taken = threading.Event()
    events: list[str] = []

    def hold_lock() -> None:
        with filelock.FileLock(lock_path(NAME)):
            lock_taken.set()
            threading.Event().wait(0.3)
            events.append("released")

    original = prepare_module._prepare_locked

    def recording(*args, **kwargs):
        events.append("prepared")
        return original(*args, **kwargs)

    monkeypatch.setattr(prepare_module, "_prepare_locked", recording)
    holder = threading.Thread(target=hold_lock)
    holder.start()
    lock_taken.wait()
    try:
        manifest = prepare_dataset(NAME, source, lock_timeout=30, progress=False)
    finally:
        holder.join()
    assert events == ["released", "prepared"]
    assert manifest.version == "1.1"


def test_prepare_failure_keeps_previous_copy(tmp_path: Path, isolated_homes: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_toy_source(tmp_path / "src")
    first = prepare_dataset(NAME, source, progress=False)
    folder = isolated_homes / "datasets" / "toy"

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(prepare_module, "hf_table", broken)
    with pytest.raises(OSError, match="disk full"):
        prepare_dataset(NAME, source, progress=False)
    assert Manifest.read(folder / "1.1" / "manifest.json") == first
    assert sorted(p.name for p in folder.iterdir()) == [".prepare.lock", "1.1"]


def test_prepare_again_replaces_copy(tmp_path: Path) -> None:
    subset = write_toy_source(tmp_path / "subset", splits=("train",))
    assert prepare_dataset(NAME, subset, progress=False).subset is True
    full = write_toy_source(tmp_path / "full")
    manifest = prepare_dataset(NAME, full, progress=False)
    assert manifest.subset is False
    assert "full/test" in manifest.tables


def test_prepare_smaller_copy_warns(tmp_path: Path, caplog) -> None:
    prepare_dataset(NAME, write_toy_source(tmp_path / "full"), progress=False)
    smaller = write_toy_source(tmp_path / "smaller", splits=("train",))
    (smaller / "train.csv").write_text(csv_text("train", 2))

    with caplog.at_level(logging.WARNING, logger="harness.prepare"):
        manifest = prepare_dataset(NAME, smaller, progress=False)
    assert manifest.row_counts == {"full/train": 2, "labels/train": 2}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings[-1].startswith("replaced the prepared copy of toy 1.1 in ")
    assert warnings[-1].endswith(
        " with a smaller one: table full/train shrank from 4 to 2 rows; table full/test (2 rows) "
        "is no longer prepared; table labels/train shrank from 4 to 2 rows; table labels/test "
        "(2 rows) is no longer prepared"
    )


def test_prepare_same_or_larger_copy_quiet(tmp_path: Path, caplog) -> None:
    prepare_dataset(NAME, write_toy_source(tmp_path / "subset", splits=("train",)),
                    progress=False)
    with caplog.at_level(logging.WARNING, logger="harness.prepare"):
        prepare_dataset(NAME, write_toy_source(tmp_path / "full"), progress=False)
        prepare_dataset(NAME, write_toy_source(tmp_path / "again"), progress=False)
    assert "smaller" not in caplog.text


def test_verify_clean_copy_is_ok(tmp_path: Path) -> None:
    prepare_toy(tmp_path)
    report = verify_dataset(NAME, progress=False)
    assert report.ok
    assert report.problems == []
    assert report.manifest.version == "1.1"


def test_verify_reports_every_problem(tmp_path: Path, isolated_homes: Path) -> None:
    source = prepare_toy(tmp_path)
    folder = isolated_homes / "datasets" / "toy" / "1.1"
    manifest = Manifest.read(folder / "manifest.json")
    with open(folder / "full" / "train.parquet", "ab") as file:
        file.write(b"junk")
    (folder / "labels" / "test.arrow").unlink()
    (source / "images" / "test_1.png").unlink()
    (source / "images" / "train_0.png").write_bytes(png_bytes(0) + b"extra")
    same_size = (source / "train.csv").read_text().replace("cat", "cow")
    (source / "train.csv").write_text(same_size)

    report = verify_dataset(NAME, progress=False)
    parquet_sha = sha256_file(folder / "full" / "train.parquet")
    assert not report.ok
    assert report.problems == [
        f"prepared table full/train: {folder}/full/train.parquet has SHA-256 {parquet_sha}, "
        f"recorded {manifest.tables['full/train']['sha256']}",
        f"prepared table labels/test: {folder}/labels/test.arrow is missing",
        f"prepared table full/test: 1 of 2 images in column image are missing: "
        f"{source}/images/test_1.png",
        f"source file {source}/images/test_1.png is missing",
        f"source file {source}/images/train_0.png has {len(png_bytes(0)) + 5} bytes, "
        f"recorded {len(png_bytes(0))}",
        f"source file {source}/train.csv has SHA-256 {sha256_file(source / 'train.csv')}, "
        f"recorded {manifest.source_files['train.csv']['sha256']}",
    ]


def test_verify_reports_missing_images(tmp_path: Path) -> None:
    source = prepare_toy(tmp_path)
    for i in range(4):
        (source / "images" / f"train_{i}.png").unlink()

    problems = verify_dataset(NAME, progress=False).problems
    image_problems = [p for p in problems if p.startswith("prepared table")]
    assert image_problems == [
        f"prepared table full/train: 4 of 4 images in column image are missing: "
        f"{source}/images/train_0.png, {source}/images/train_1.png, "
        f"{source}/images/train_2.png, ..."
    ]


def test_verify_checks_images_outside_sources(tmp_path: Path) -> None:
    class UnlistedImages(ToyPlugin):
        def read_source(self, source, *, version=None):
            data = super().read_source(source, version=version)
            data.source_files = [f for f in data.source_files if f.suffix != ".png"]
            return data

    register_dataset("toy-unlisted", type("UnlistedToy", (UnlistedImages,), {"spec": SPEC}))
    source = write_toy_source(tmp_path / "src")
    prepare_dataset("toy-unlisted", source, progress=False)
    shutil.rmtree(source / "images")

    report = verify_dataset("toy-unlisted", progress=False)
    assert report.problems == [
        f"prepared table full/train: 4 of 4 images in column image are missing: "
        f"{source}/images/train_0.png, {source}/images/train_1.png, "
        f"{source}/images/train_2.png, ...",
        f"prepared table full/test: 2 of 2 images in column image are missing: "
        f"{source}/images/test_0.png, {source}/images/test_1.png",
    ]
    assert verify_dataset("toy-unlisted", check_sources=False, progress=False).ok


def test_verify_reports_missing_file_once(tmp_path: Path, capsys, caplog) -> None:
    source = prepare_toy(tmp_path)
    (source / "train.csv").unlink()

    with caplog.at_level(logging.WARNING):
        report = verify_dataset(NAME, progress=False)
    assert report.problems == [f"source file {source}/train.csv is missing"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    status = main(["verify", NAME])
    err = capsys.readouterr().err
    assert status == 1
    assert err.count(f"{source}/train.csv") == 1
    assert f"  source file {source}/train.csv is missing\n" in err


def test_verify_without_sources(tmp_path: Path) -> None:
    source = prepare_toy(tmp_path)
    (source / "train.csv").unlink()
    assert verify_dataset(NAME, check_sources=False, progress=False).ok
    assert not verify_dataset(NAME, progress=False).ok


def test_verify_not_prepared_raises() -> None:
    with pytest.raises(NotPreparedError,
                       match=r"toy is not prepared in .*datasets/toy; run: python -m harness "
                             r"prepare toy --source <folder of the official download>"):
        verify_dataset(NAME)


def test_manifest_round_trip(tmp_path: Path) -> None:
    manifest = Manifest(dataset="toy", version="1.1", notes=["a"], row_counts={"full/train": 4},
                        tables={"full/train": {"rows": 4}})
    manifest.write(tmp_path / "m.json")
    assert Manifest.read(tmp_path / "m.json") == manifest
    assert Manifest.from_dict(manifest.to_dict()) == manifest


def test_manifest_missing_key_raises(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"dataset": "toy", "version": "1.1"}))
    with pytest.raises(DataFormatError, match=r"manifest\.json: manifest is missing a key "
                                              r"\(field 'tables'\)"):
        Manifest.read(path)


def test_manifest_newer_format_raises(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"dataset": "toy", "version": "1.1", "tables": {},
                                "format_version": 99}))
    with pytest.raises(DataFormatError, match=r"written by a newer fieldharness \(field "
                                              r"'format_version', value 99\); expected 1 or lower"):
        Manifest.read(path)


def test_manifest_invalid_json_raises(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text('{"dataset": "toy",\n  oops}')
    with pytest.raises(DataFormatError, match=r"manifest\.json:2: manifest is not valid JSON"):
        Manifest.read(path)


def test_prepare_source_outside_root_raises(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x")

    class Leaky(ToyPlugin):
        def read_source(self, source, *, version=None):
            data = super().read_source(source, version=version)
            data.source_files.append(outside)
            return data

    register_dataset("toy-leaky", type("LeakyToy", (Leaky,), {"spec": SPEC}))
    with pytest.raises(FieldHarnessError, match=r"the plugin read .*elsewhere\.txt, which is "
                                                r"outside the source root"):
        prepare_dataset("toy-leaky", write_toy_source(tmp_path / "src"), progress=False)


def test_hf_table_resolves_relative_image_paths(tmp_path: Path) -> None:
    table = pa.table({
        "id": [0, 1, 2],
        "label": ["cat", "dog", "cat"],
        "image": ["images/a.png", "/data/b.png", None],
    })
    config = SPEC.config("full")
    result = hf_table(table, config, tmp_path)
    assert result["image"].to_pylist() == [
        {"bytes": None, "path": f"{tmp_path}/images/a.png"},
        {"bytes": None, "path": "/data/b.png"},
        None,
    ]
    features = datasets.Features.from_arrow_schema(result.schema)
    assert isinstance(features["image"], datasets.Image)
    assert features["id"] == datasets.Value("int64")


def test_prepare_follows_symlinked_images(tmp_path: Path) -> None:
    source = write_toy_source(tmp_path / "src")
    shutil.move(source / "images", tmp_path / "elsewhere")
    (source / "images").symlink_to(tmp_path / "elsewhere")
    manifest = prepare_dataset(NAME, source, progress=False)
    assert "images/train_0.png" in manifest.source_files


def test_hf_table_empty_split_with_images(tmp_path):
    import pyarrow as pa

    from harness.prepare import hf_table
    from harness.spec import ConfigSpec

    schema = pa.schema([("image", pa.string()), ("x", pa.int64())])
    table = pa.Table.from_batches([], schema=schema)  # no chunks at all, as polars may give
    config = ConfigSpec("c", "an image column", table.schema, default=True,
                        image_columns=("image",))

    converted = hf_table(table, config, tmp_path)

    assert converted.num_rows == 0
    assert converted.schema.names == ["image", "x"]
