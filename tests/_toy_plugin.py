"""A tiny dataset plugin for the core's tests, registered in-process as ``toy``.

Source layout, written by :func:`write_toy_source`::

    VERSION          # "1.0" or "1.1"; optional, the default version when absent
    train.csv        # header "id,label,image"; image is a path relative to the source root
    test.csv
    images/<split>_<id>.png

Config ``full`` (the default) keeps every column and declares ``image`` as an image column;
config ``labels`` keeps ``id`` and ``label``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa

from harness.errors import DataFormatError
from harness.plugin import DatasetPlugin, PreparedData
from harness.registry import register_dataset
from harness.spec import (
    ConfigSpec,
    DatasetSpec,
    DatasetVersion,
    RemoteFile,
    SplitSpec,
)

NAME = "toy"
SPLITS = ("train", "test")
ROWS = {"1.0": {"train": 3, "test": 2}, "1.1": {"train": 4, "test": 2}}
LABELS = ("cat", "dog")
HEADER = ["id", "label", "image"]

FULL_SCHEMA = pa.schema([("id", pa.int64()), ("label", pa.string()), ("image", pa.string())])
LABELS_SCHEMA = pa.schema([("id", pa.int64()), ("label", pa.string())])

TRAIN_CSV_MD5 = "db3f0f958a9924cbdd8cc08de9e7be1b"
"""Published MD5 of ``train.csv`` of version 1.1 (as :func:`csv_text` writes it)."""


def _row_counts(version: str) -> dict[str, int]:
    return {
        f"{config}/{split}": ROWS[version][split]
        for config in ("full", "labels")
        for split in SPLITS
    }


SPEC = DatasetSpec(
    name=NAME,
    title="Toy",
    description="Six labelled 2x2 images in two splits, for testing fieldharness.",
    homepage="https://example.org/toy",
    license="CC BY 4.0",
    redistributable=True,
    citation="@misc{toy2026,\n  title = {Toy},\n  author = {Tester, Ada},\n  year = {2026}\n}",
    versions=(
        DatasetVersion(
            "1.0", "First release, three training images.", row_counts=_row_counts("1.0")
        ),
        DatasetVersion(
            "1.1",
            "Second release, four training images.",
            files=(
                RemoteFile(
                    "train.csv", urls=("http://127.0.0.1:9/toy/train.csv",), md5=TRAIN_CSV_MD5
                ),
            ),
            row_counts=_row_counts("1.1"),
        ),
    ),
    splits=(SplitSpec("train", "Training images."), SplitSpec("test", "Test images.")),
    configs=(
        ConfigSpec("full", "Every column, with the image.", FULL_SCHEMA, default=True,
                   image_columns=("image",)),
        ConfigSpec("labels", "Identifiers and labels only.", LABELS_SCHEMA),
    ),
    default_version="1.1",
)


def csv_text(split: str, rows: int) -> str:
    """Return the CSV file of ``split`` with ``rows`` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for i in range(rows):
        writer.writerow([i, LABELS[i % 2], f"images/{split}_{i}.png"])
    return buffer.getvalue()


def png_bytes(seed: int) -> bytes:
    """Return a 2x2 RGB PNG whose colour depends on ``seed``."""
    from PIL import Image

    image = Image.new("RGB", (2, 2), ((seed * 40) % 256, 100, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_toy_source(
    root: Path, *, version: str | None = "1.1", splits: tuple[str, ...] = SPLITS
) -> Path:
    """Write a toy source folder at ``root`` and return ``root``.

    Args:
        root: Folder to create.
        version: Content of the ``VERSION`` file; no file for ``None`` (the plugin then assumes
            the default version 1.1).
        splits: Splits to write; fewer than both makes a subset.
    """
    rows = ROWS[version or "1.1"]
    (root / "images").mkdir(parents=True, exist_ok=True)
    if version is not None:
        (root / "VERSION").write_text(version + "\n")
    for split in splits:
        (root / f"{split}.csv").write_text(csv_text(split, rows[split]))
        for i in range(rows[split]):
            seed = i + 10 * (split == "test")
            (root / "images" / f"{split}_{i}.png").write_bytes(png_bytes(seed))
    return root


def _read_csv(path: Path) -> list[dict[str, object]]:
    rows = []
    with open(path, newline="") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header != HEADER:
            raise DataFormatError("invalid header", path=path, line=1, value=",".join(header or []),
                                  expected=",".join(HEADER))
        for line, fields in enumerate(reader, start=2):
            if len(fields) != len(HEADER):
                raise DataFormatError("wrong number of fields", path=path, line=line,
                                      value=len(fields), expected=str(len(HEADER)))
            try:
                identifier = int(fields[0])
            except ValueError:
                raise DataFormatError("invalid value", path=path, line=line, field="id",
                                      value=fields[0], expected="an integer") from None
            rows.append({"id": identifier, "label": fields[1], "image": fields[2]})
    return rows


class ToyPlugin(DatasetPlugin):
    """The toy dataset: two CSV files and a few PNG images."""

    spec = SPEC

    def read_source(self, source: Path, *, version: str | None = None) -> PreparedData:
        source = Path(source)
        found = [split for split in SPLITS if (source / f"{split}.csv").is_file()]
        if not found:
            raise FileNotFoundError(f"no train.csv or test.csv in {source}")

        version_file = source / "VERSION"
        if version is None:
            version = version_file.read_text().strip() if version_file.is_file() else "1.1"

        tables: dict[str, dict[str, pa.Table]] = {"full": {}, "labels": {}}
        files = [version_file] if version_file.is_file() else []
        for split in found:
            rows = _read_csv(source / f"{split}.csv")
            full = pa.Table.from_pylist(rows, schema=FULL_SCHEMA)
            tables["full"][split] = full
            tables["labels"][split] = full.select(LABELS_SCHEMA.names)
            files.append(source / f"{split}.csv")
            files.extend(source / str(row["image"]) for row in rows)

        missing = [split for split in SPLITS if split not in found]
        return PreparedData(
            version=version,
            tables=tables,
            source_root=source,
            source_files=files,
            subset=bool(missing),
            notes=[f"split {split} is missing from the source" for split in missing],
        )


def register() -> None:
    """Register the toy plugin under ``toy`` in this process."""
    register_dataset(NAME, ToyPlugin)


def prepare_toy(
    folder: Path, *, version: str | None = "1.1", splits: tuple[str, ...] = SPLITS
) -> Path:
    """Register the plugin, write a toy source under ``folder``, prepare it, return the source."""
    from harness.prepare import prepare_dataset

    register()
    source = write_toy_source(folder / f"toy-source-{version}", version=version, splits=splits)
    prepare_dataset(NAME, source, progress=False)
    return source


register()
