"""Read a Sewer-ML download into the ``labels`` table.

The annotation CSVs are looked up in the source folder, its direct sub-folders (such as
``Annotations/``) and its parents. Images are found in any of three layouts, checked in this
order for every split:

* split folders ``Train/``, ``Val/`` (or ``Valid/``) and ``Test/`` under the source folder, as
  CT-GNN and most user code arrange them;
* one flat folder, the source folder itself, as the official Sewer-ML code opens
  ``<data_root>/<Filename>``;
* the official zip archives (``train00.zip`` … ``train13.zip``, ``valid00.zip``,
  ``valid01.zip``, ``test00.zip``, ``test01.zip``) in the source folder or its ``zips/``
  sub-folder, read in place. Such an image is stored as ``<archive path>::<member>``, for
  example ``train00.zip::00000001.png``, with the archive path relative to the source root.

``verify`` checks such members in the archive's listing, and ``load_dataset`` decodes them from
inside the archive (the prepared Arrow file stores them as ``zip://<member>::<archive>`` URLs).
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Iterable
from os import PathLike
from pathlib import Path

import polars as pl
import pyarrow as pa

from harness.plugin import ARCHIVE_MEMBER_SEPARATOR, SAMPLE_MARKER, PreparedData
from harness.spec import DatasetSpec
from sewerml.classes import DEFECT_CODES, NORMAL
from sewerml.io import read_labels_csv, read_test_csv
from sewerml.spec import LABELS_SCHEMA, PUBLISHED_CLASS_COUNTS

__all__ = ["ARCHIVE_SEPARATOR", "find_annotations", "is_sample", "read_sewerml_source"]

logger = logging.getLogger(__name__)

ARCHIVE_SEPARATOR = ARCHIVE_MEMBER_SEPARATOR
"""Separator between a zip archive's path and a member's name in the ``image`` column."""

CSV_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("SewerML_Train.csv",),
    "val": ("SewerML_Val.csv", "SewerML_Valid.csv"),
    "test": ("SewerML_Test.csv",),
}
"""Annotation file names per split, in order of preference. ``Valid`` is the spelling of the
CT-GNN code and of the ``valid*.zip`` archives."""

IMAGE_FOLDERS: dict[str, tuple[str, ...]] = {
    "train": ("Train", "train"),
    "val": ("Val", "Valid", "val", "valid"),
    "test": ("Test", "test"),
}

ARCHIVE_PREFIXES = {"train": "train", "val": "valid", "test": "test"}
"""Name prefix of each split's official zip archives (``train00.zip``, ``valid01.zip``)."""

MISSING_LISTED = 3
"""File names listed per split in the note about missing images."""


def is_sample(source: str | PathLike[str]) -> bool:
    """Return whether ``source`` or one of its parents contains the sample marker file."""
    folder = Path(source).expanduser().resolve()
    return any((parent / SAMPLE_MARKER).is_file() for parent in (folder, *folder.parents))


def find_annotations(source: Path) -> dict[str, Path]:
    """Return the annotation CSV of each split found at, below or above ``source``.

    The first folder that contains any of the CSVs wins: ``source``, then its direct
    sub-folders in name order, then its parents.
    """
    children = sorted(p for p in source.iterdir() if p.is_dir()) if source.is_dir() else []
    for folder in (source, *children, *source.parents):
        found = {}
        for split, names in CSV_NAMES.items():
            for name in names:
                if (folder / name).is_file():
                    found[split] = folder / name
                    break
        if found:
            return found
    return {}


def _folder_index(folder: Path) -> set[str]:
    with os.scandir(folder) as entries:
        return {entry.name for entry in entries if entry.is_file()}


def _archives(source: Path, split: str) -> list[Path]:
    prefix = ARCHIVE_PREFIXES[split]
    found = []
    for folder in (source, source / "zips"):
        if folder.is_dir():
            found += sorted(folder.glob(f"{prefix}[0-9][0-9].zip"))
    return found


def _archive_index(archives: Iterable[Path], root: Path) -> dict[str, str]:
    """Map each image's base name to its ``<archive>::<member>`` path."""
    index: dict[str, str] = {}
    for archive in archives:
        relative = archive.relative_to(root).as_posix()
        with zipfile.ZipFile(archive) as handle:
            for member in handle.namelist():
                if member.endswith("/"):
                    continue
                index.setdefault(member.rsplit("/", 1)[-1],
                                 f"{relative}{ARCHIVE_SEPARATOR}{member}")
    return index


def _locate_images(
    names: list[str], split: str, source: Path, root: Path, flat: set[str] | None
) -> list[str | None]:
    """Return the image path of each file name, or None where no layout has the image."""
    paths: list[str | None] = [None] * len(names)
    pending = list(range(len(names)))

    for folder_name in IMAGE_FOLDERS[split]:
        folder = source / folder_name
        if pending and folder.is_dir():
            prefix = folder.relative_to(root).as_posix() + "/"
            index = {name: prefix + name for name in _folder_index(folder)}
            pending = _fill(paths, pending, names, index)

    if pending and flat:
        prefix = "" if source == root else source.relative_to(root).as_posix() + "/"
        pending = _fill(paths, pending, names, {name: prefix + name for name in flat})

    archives = _archives(source, split) if pending else []
    if archives:
        _fill(paths, pending, names, _archive_index(archives, root))
    return paths


def _fill(
    paths: list[str | None], pending: list[int], names: list[str], index: dict[str, str]
) -> list[int]:
    """Set ``paths[i]`` for each pending row whose name is in ``index``; return the others."""
    remaining = []
    for i in pending:
        found = index.get(names[i])
        if found is None:
            remaining.append(i)
        else:
            paths[i] = found
    return remaining


def _class_count_note(split: str, frame: pl.DataFrame) -> str | None:
    """Compare the images per class with supplementary Table 7 of the Sewer-ML paper."""
    published = PUBLISHED_CLASS_COUNTS.get(split)
    if published is None:
        return None
    counts = {code: int(frame[code].sum()) for code in DEFECT_CODES}
    counts[NORMAL] = int((frame.select(pl.sum_horizontal(DEFECT_CODES)).to_series() == 0).sum())
    differences = [f"{name} {counts[name]} (published {published[name]})"
                   for name in (*DEFECT_CODES, NORMAL) if counts[name] != published[name]]
    if not differences:
        return None
    return f"{split}: images per class differ from the published counts: " + ", ".join(
        differences)


def _table(split: str, frame: pl.DataFrame, images: list[str | None]) -> pa.Table:
    columns = {
        "split": pa.array([split] * frame.height, pa.string()),
        "Filename": frame["Filename"].to_arrow(),
        "image": pa.array(images, pa.string()),
    }
    for field in LABELS_SCHEMA:
        if field.name in columns:
            continue
        if field.name in frame.columns:
            columns[field.name] = frame[field.name].to_arrow().cast(field.type)
        else:
            columns[field.name] = pa.nulls(frame.height, field.type)
    return pa.table(columns, schema=LABELS_SCHEMA)


def read_sewerml_source(
    spec: DatasetSpec, source: str | PathLike[str], version: str | None = None
) -> PreparedData:
    """Read the Sewer-ML CSVs and locate the images under ``source``.

    Returns:
        The ``labels`` table of every split whose CSV was found. ``subset`` is set when a CSV
        or an image is missing, and ``notes`` name what is missing and every per-class count
        that differs from supplementary Table 7 of the Sewer-ML paper.

    Raises:
        FileNotFoundError: No Sewer-ML annotation CSV is at, below or above ``source``.
        harness.errors.DataFormatError: A CSV does not follow the official format.
    """
    source = Path(source).expanduser().resolve()
    dataset_version = spec.version(version)
    csvs = find_annotations(source)
    if not csvs:
        raise FileNotFoundError(
            f"no SewerML_Train.csv, SewerML_Val.csv or SewerML_Test.csv at, below or above "
            f"{source}"
        )
    csv_folder = next(iter(csvs.values())).parent
    root = csv_folder if csv_folder in source.parents else source

    notes: list[str] = []
    subset = False
    missing_splits = [split for split in CSV_NAMES if split not in csvs]
    if missing_splits:
        subset = True
        notes.append(f"annotation CSV not found for split(s): {', '.join(missing_splits)}")

    flat = _folder_index(source) if source.is_dir() else set()
    tables: dict[str, pa.Table] = {}
    source_files: list[Path] = []
    for split, csv_path in csvs.items():
        if split == "test":
            frame = read_test_csv(csv_path)
        else:
            frame = read_labels_csv(csv_path)
        source_files.append(csv_path)

        names = frame["Filename"].to_list()
        images = _locate_images(names, split, source, root, flat)
        missing = [name for name, image in zip(names, images, strict=True) if image is None]
        if missing:
            subset = True
            listed = ", ".join(missing[:MISSING_LISTED]) + (", ..." if len(missing) >
                                                          MISSING_LISTED else "")
            notes.append(f"{split}: {len(missing)} of {len(names)} images not found ({listed}); "
                         "their image column is null")
            logger.warning("%s: %d of %d Sewer-ML images not found under %s", split,
                           len(missing), len(names), source)

        if split != "test":
            note = _class_count_note(split, frame)
            if note:
                notes.append(note)
        tables[split] = _table(split, frame, images)

    # NOTE: The zip archives (about 19 GB each) are not listed in source_files, so their
    # SHA-256 is not recorded. Prepare reads only their member lists, and hashing all 18 would
    # take longer than the rest of prepare.
    return PreparedData(
        version=dataset_version.name,
        tables={"labels": tables},
        source_root=root,
        source_files=source_files,
        subset=subset,
        notes=notes,
        data_kind="sample" if is_sample(source) else "real",
    )
