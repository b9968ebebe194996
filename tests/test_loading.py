"""load_dataset and the storage helpers on a prepared toy dataset."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from pathlib import Path

import datasets
import polars as pl
import pyarrow as pa
import pytest
from _toy_plugin import NAME, SPEC, ToyPlugin, prepare_toy

from harness import load_dataset
from harness.checksum import sha256_file
from harness.errors import (
    FieldHarnessError,
    NotPreparedError,
    StaleDataError,
    UnknownNameError,
)
from harness.plugin import RunContext
from harness.prepare import prepare_dataset, verify_dataset
from harness.registry import get_evaluator
from harness.storage import check_fresh, prepared_versions, read_manifest, read_prepared_table
from motcom.sample import write_mot_sample


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Return the source folder of a freshly prepared toy dataset (version 1.1)."""
    return prepare_toy(tmp_path)


def test_load_split_returns_dataset(source: Path) -> None:
    dataset = load_dataset(NAME, split="train")
    assert isinstance(dataset, datasets.Dataset)
    assert dataset.num_rows == 4
    assert dataset.split == "train"
    assert dataset.column_names == ["id", "label", "image"]
    assert dataset.info.citation == SPEC.citation
    assert dataset.info.license == SPEC.license
    assert dataset[2]["label"] == "cat"
    assert dataset[2]["image"].size == (2, 2)


def test_load_memory_maps_arrow_file(source: Path, isolated_homes: Path) -> None:
    dataset = load_dataset(NAME, split="train")
    arrow = isolated_homes / "datasets" / "toy" / "1.1" / "full" / "train.arrow"
    assert [Path(f["filename"]) for f in dataset.cache_files] == [arrow]


def test_load_never_reads_sources(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail_read(self, source, *, version=None):
        raise AssertionError("load_dataset read the source")

    monkeypatch.setattr(ToyPlugin, "read_source", fail_read)
    assert load_dataset(NAME, split="test").num_rows == 2


def test_load_all_splits_returns_dict(source: Path) -> None:
    result = load_dataset(NAME)
    assert isinstance(result, datasets.DatasetDict)
    assert list(result) == ["train", "test"]
    assert result["test"].num_rows == 2


def test_load_config_and_columns(source: Path) -> None:
    labels = load_dataset(NAME, split="train", config="labels")
    assert labels.column_names == ["id", "label"]
    ids = load_dataset(NAME, split="train", columns=["id"])
    assert ids.column_names == ["id"]
    assert ids["id"] == [0, 1, 2, 3]


def test_load_split_expression(source: Path) -> None:
    both = load_dataset(NAME, split="train+test", config="labels")
    assert both.num_rows == 6
    assert both["id"] == [0, 1, 2, 3, 0, 1]
    frame = load_dataset(NAME, split="train + test", format="polars")
    assert frame.height == 6


def test_load_streaming_returns_iterable(source: Path) -> None:
    stream = load_dataset(NAME, split="train", streaming=True)
    assert isinstance(stream, datasets.IterableDataset)
    rows = list(stream)
    assert [row["id"] for row in rows] == [0, 1, 2, 3]
    assert rows[0]["image"].size == (2, 2)
    streams = load_dataset(NAME, streaming=True, columns=["label"])
    assert isinstance(streams, datasets.IterableDatasetDict)
    assert [row["label"] for row in streams["test"]] == ["cat", "dog"]


def test_load_polars_frames(source: Path) -> None:
    frame = load_dataset(NAME, split="train", format="polars", columns=["id", "image"])
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == ["id", "image"]
    assert frame["image"].to_list()[0] == f"{source.resolve()}/images/train_0.png"

    frames = load_dataset(NAME, format="polars")
    assert set(frames) == {"train", "test"}
    assert frames["test"].height == 2

    lazy = load_dataset(NAME, split="test", format="polars", streaming=True, columns=["label"])
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect()["label"].to_list() == ["cat", "dog"]


def test_load_unknown_names_raise(source: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"unknown dataset 'nope'; valid values are: .*toy"):
        load_dataset("nope")
    with pytest.raises(UnknownNameError,
                       match=r"unknown config of toy 'big'; valid values are: full, labels"):
        load_dataset(NAME, config="big")
    with pytest.raises(UnknownNameError, match=r"unknown split of prepared toy 1\.1 config full "
                                               r"'val'; valid values are: test, train"):
        load_dataset(NAME, split="train+val")
    with pytest.raises(UnknownNameError, match=r"unknown column of toy full/train 'box'; valid "
                                               r"values are: id, image, label"):
        load_dataset(NAME, split="train", columns=["id", "box"])
    with pytest.raises(UnknownNameError,
                       match=r"unknown version of toy '2\.0'; valid values are: 1\.0, 1\.1"):
        load_dataset(NAME, version="2.0")
    with pytest.raises(UnknownNameError, match=r"unknown format 'pandas'; valid values are: hf, "
                                               r"polars"):
        load_dataset(NAME, format="pandas")
    with pytest.raises(UnknownNameError, match=r"unknown source 'web'; valid values are: hub, "
                                               r"local"):
        load_dataset(NAME, source="web")


def test_load_revision_needs_hub(source: Path) -> None:
    with pytest.raises(FieldHarnessError, match=r"revision='abc' applies to source='hub' only"):
        load_dataset(NAME, revision="abc")


def test_load_version_needs_local() -> None:
    with pytest.raises(FieldHarnessError, match=r"version='1\.1' applies to source='local' only; "
                                                r"pin a Hub copy with revision="):
        load_dataset(NAME, version="1.1", source="hub")


def test_load_not_prepared_names_command() -> None:
    with pytest.raises(NotPreparedError,
                       match=r"toy is not prepared in .*/datasets/toy; run: python -m harness "
                             r"prepare toy --source <folder of the official download>"):
        load_dataset(NAME, split="train")


def test_load_changed_source_is_stale(source: Path) -> None:
    with open(source / "test.csv", "a") as file:
        file.write("2,cat,images/test_0.png\n")
    with pytest.raises(StaleDataError,
                       match=rf"changed since it was prepared: {source}/test\.csv changed size "
                             rf"from \d+ to \d+ bytes; run: python -m harness prepare toy "
                             rf"--source {source}$"):
        load_dataset(NAME, split="train")


def test_load_touched_source_loads(source: Path, isolated_homes: Path, caplog) -> None:
    manifest_path = isolated_homes / "datasets" / "toy" / "1.1" / "manifest.json"
    manifest_before = manifest_path.read_bytes()
    stat = (source / "train.csv").stat()
    os.utime(source / "train.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    with caplog.at_level(logging.DEBUG, logger="harness.storage"):
        assert load_dataset(NAME, split="train").num_rows == 4
        assert read_prepared_table(NAME, "labels", "train").num_rows == 4
    assert f"{source}/train.csv has a new modification time but the SHA-256 recorded by " \
           "prepare, so it is unchanged" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert manifest_path.read_bytes() == manifest_before
    assert verify_dataset(NAME, progress=False).ok


def test_load_same_size_edit_is_stale(source: Path) -> None:
    recorded = read_manifest(NAME).source_files["train.csv"]["sha256"]
    stat = (source / "train.csv").stat()
    (source / "train.csv").write_text((source / "train.csv").read_text().replace("cat", "cow"))
    os.utime(source / "train.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    actual = sha256_file(source / "train.csv")

    with pytest.raises(StaleDataError,
                       match=rf"changed since it was prepared: {source}/train\.csv changed "
                             rf"content \(SHA-256 {actual}, recorded {recorded}\); run: "
                             rf"python -m harness prepare toy --source {source}$"):
        load_dataset(NAME, split="train")
    assert not verify_dataset(NAME, progress=False).ok


def test_load_missing_source_warns(source: Path, caplog) -> None:
    (source / "images" / "train_3.png").unlink()
    with caplog.at_level(logging.WARNING, logger="harness.storage"):
        frame = load_dataset(NAME, split="train", format="polars")
    assert frame.height == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"1 of 9 source files of toy 1.1 are missing (recorded source root: {source}). The "
        "prepared tables still load, but image paths in them point into that folder. If you "
        "moved it, run: python -m harness prepare toy --source NEW_DIR"
    ]


def test_load_moved_source_warns_once(source: Path, tmp_path: Path, caplog) -> None:
    moved = shutil.move(source, tmp_path / "moved")
    with caplog.at_level(logging.WARNING, logger="harness.storage"):
        assert load_dataset(NAME, split="train", config="labels").num_rows == 4
        assert read_prepared_table(NAME, "labels", "test").num_rows == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"9 of 9 source files of toy 1.1 are missing (the recorded source root {source} no "
        "longer exists). The prepared tables still load, but image paths in them point into "
        "that folder. If you moved it, run: python -m harness prepare toy --source NEW_DIR"
    ]
    assert "--source NEW_DIR" in caplog.text
    assert str(moved) not in caplog.text


def test_stale_moved_source_names_new_dir(source: Path, tmp_path: Path,
                                          isolated_homes: Path) -> None:
    shutil.move(source, tmp_path / "moved")
    with pytest.raises(StaleDataError,
                       match=rf"{source}/VERSION is missing; .* and 4 more; the recorded source "
                             rf"root {source} no longer exists; if you moved it, run: python -m "
                             r"harness prepare toy --source NEW_DIR$"):
        check_fresh(read_manifest(NAME))

    path = isolated_homes / "datasets" / "toy" / "1.1" / "manifest.json"
    data = json.loads(path.read_text())
    data["version"] = "0.9"
    path.write_text(json.dumps(data))
    with pytest.raises(StaleDataError,
                       match=rf"which this fieldharness does not know .*; the recorded source "
                             rf"root {source} no longer exists; if you moved it, run: python -m "
                             r"harness prepare toy --source NEW_DIR$"):
        load_dataset(NAME)


def test_load_changed_and_missing_is_stale(source: Path) -> None:
    (source / "images" / "test_0.png").unlink()
    with open(source / "test.csv", "a") as file:
        file.write("2,cat,images/test_0.png\n")
    with pytest.raises(StaleDataError,
                       match=rf"prepared: {source}/test\.csv changed size from \d+ to \d+ "
                             rf"bytes; {source}/images/test_0\.png is missing; run: python -m "
                             rf"harness prepare toy --source {source}$"):
        load_dataset(NAME, split="test")


def test_eval_mot17_after_moving_source(tmp_path: Path, caplog) -> None:
    sample = write_mot_sample(tmp_path / "mot", sequences=2, frames=20, pedestrians=3)
    prepare_dataset("mot17", sample, progress=False)
    moved = Path(shutil.move(sample, tmp_path / "moved"))

    evaluator = get_evaluator("mot17")
    parser = argparse.ArgumentParser()
    evaluator.add_arguments(parser)
    args = parser.parse_args(["--tracker-dir", str(moved / "trackers" / "noisytracker")])
    with caplog.at_level(logging.WARNING, logger="harness.storage"):
        outcome = evaluator.evaluate(args, RunContext(output_dir=tmp_path / "run"))
    assert 0.0 < outcome.metrics["MOTA"] <= 100.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"the recorded source root {sample} no longer exists" in warnings[0]


def test_load_unknown_manifest_version(source: Path, isolated_homes: Path) -> None:
    path = isolated_homes / "datasets" / "toy" / "1.1" / "manifest.json"
    data = json.loads(path.read_text())
    data["version"] = "0.9"
    path.write_text(json.dumps(data))
    with pytest.raises(StaleDataError, match=r"records dataset 'toy' version '0\.9', which this "
                                             r"fieldharness does not know \(known versions of "
                                             r"toy: 1\.0, 1\.1\); run: python -m harness prepare "
                                             rf"toy --source {source}"):
        load_dataset(NAME)


def test_version_defaults_to_only_prepared(tmp_path: Path) -> None:
    prepare_toy(tmp_path, version="1.0")
    assert prepared_versions(NAME) == ["1.0"]
    assert load_dataset(NAME, split="train").num_rows == 3
    with pytest.raises(NotPreparedError, match=r"toy version 1\.1 is not prepared in .* "
                                               r"\(prepared: 1\.0\); run: python -m harness "
                                               r"prepare toy --source .* --version 1\.1"):
        load_dataset(NAME, version="1.1")


def test_version_prefers_spec_default(tmp_path: Path) -> None:
    prepare_toy(tmp_path, version="1.0")
    prepare_toy(tmp_path, version="1.1")
    assert prepared_versions(NAME) == ["1.0", "1.1"]
    assert load_dataset(NAME, split="train").num_rows == 4
    assert load_dataset(NAME, split="train", version="1.0").num_rows == 3


def test_version_ambiguous_raises(tmp_path: Path, isolated_homes: Path) -> None:
    prepare_toy(tmp_path, version="1.0")
    root = isolated_homes / "datasets" / "toy"
    shutil.copytree(root / "1.0", root / "0.5")
    with pytest.raises(FieldHarnessError, match=r"toy has several prepared versions \(0\.5, "
                                                r"1\.0\) and its default version 1\.1 is not "
                                                r"among them; pass version="):
        load_dataset(NAME)


def test_read_prepared_table(source: Path) -> None:
    table = read_prepared_table(NAME, "labels", "train", columns=["label"])
    assert isinstance(table, pa.Table)
    assert table.column_names == ["label"]
    assert table.num_rows == 4
    assert read_manifest(NAME).row_counts["labels/train"] == 4


def test_read_prepared_table_unknown_config(source: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"unknown config of prepared toy 1\.1 'x'; valid "
                                               r"values are: full, labels"):
        read_prepared_table(NAME, "x", "train")


def test_load_subset_split_not_prepared(tmp_path: Path) -> None:
    source = prepare_toy(tmp_path, splits=("train",))
    assert list(load_dataset(NAME)) == ["train"]
    with pytest.raises(NotPreparedError,
                       match=rf"split 'test' of toy 1\.1 config full was not prepared from the "
                             rf"source {source} \(prepared splits: train\); notes recorded by "
                             r"prepare: split test is missing from the source; full/test: "
                             r"missing, full release has 2 rows; labels/test: missing, full "
                             r"release has 2 rows$"):
        load_dataset(NAME, split="test")
    with pytest.raises(NotPreparedError, match=r"split 'test' of toy 1\.1 config labels"):
        read_prepared_table(NAME, "labels", "test")
    with pytest.raises(UnknownNameError, match=r"unknown split of prepared toy 1\.1 config full "
                                               r"'val'; valid values are: train$"):
        load_dataset(NAME, split="val")


def test_load_unprepared_config_not_prepared(source: Path, isolated_homes: Path) -> None:
    path = isolated_homes / "datasets" / "toy" / "1.1" / "manifest.json"
    data = json.loads(path.read_text())
    data["tables"] = {k: v for k, v in data["tables"].items() if k.startswith("labels/")}
    data["notes"] = ["images were not found"]
    path.write_text(json.dumps(data))
    with pytest.raises(NotPreparedError,
                       match=rf"config 'full' of toy 1\.1 was not prepared from the source "
                             rf"{source} \(prepared configs: labels\); notes recorded by "
                             r"prepare: images were not found$"):
        load_dataset(NAME)
    assert load_dataset(NAME, config="labels", split="test").num_rows == 2


def test_mot17_unprepared_config_and_split(tmp_path: Path) -> None:
    sample = write_mot_sample(tmp_path / "mot", sequences=2, frames=20, pedestrians=3)
    prepare_dataset("mot17", sample, progress=False)

    with pytest.raises(NotPreparedError,
                       match=r"config 'frames' of mot17 1\.0 was not prepared from the source "
                             r".*mot \(prepared configs: boxes, detections, sequences\); notes "
                             r"recorded by prepare: images \(img1\) missing in 2 of 2 "
                             r"sequences"):
        load_dataset("mot17", split="train", config="frames")
    with pytest.raises(NotPreparedError,
                       match=r"split 'test' of mot17 1\.0 config boxes was not prepared from the "
                             r"source .*mot \(prepared splits: train\); notes recorded by "
                             r"prepare: test: 7 of 7 sequences missing"):
        load_dataset("mot17", split="test")
    with pytest.raises(UnknownNameError, match=r"unknown config of mot17 'pixels'"):
        load_dataset("mot17", split="train", config="pixels")
    with pytest.raises(UnknownNameError, match=r"unknown config of prepared mot17 1\.0 'pixels'; "
                                               r"valid values are: boxes, detections, sequences$"):
        read_prepared_table("mot17", "pixels", "train")


def test_load_split_alias(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import _toy_plugin

    aliased = dataclasses.replace(SPEC, split_aliases={"everything": ("train", "test"),
                                                       "training": ("train",)})
    monkeypatch.setattr(_toy_plugin.ToyPlugin, "spec", aliased)

    assert load_dataset(NAME, split="everything").num_rows == 6
    assert load_dataset(NAME, split="training").num_rows == 4
    assert aliased.expand_splits("training+everything") == ["train", "test"]
