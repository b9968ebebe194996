"""Read a BIOSCAN-5M download into the ``metadata`` table, one per partition.

The metadata CSV is looked up at ``source`` (the file itself or a folder holding it), at
``source/bioscan5m/metadata/csv/`` (where the official metadata zip puts it), and below
``source`` (image folders are not searched). The source root is the folder that contains
``bioscan5m/``, or the CSV's folder for a CSV outside that layout.

Prepare checks the CSV against the 2024 release: its MD5 against the published one, and its
``chunk`` column against the md5 rule (``bioscan.images``). It then locates the image of every
record in one image package (``bioscan.images.locate_images``): extracted folders under
``bioscan5m/images/<package>/`` or the official zips in the source root, read in place.

Notes name what differs: a different MD5 (with the partitions whose row counts differ; the core
adds one note per such partition), chunk values that break the rule, the image package used,
and per partition the images not found. A copy with other row counts, or with missing images,
is prepared as a subset of version 2024.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from os import PathLike
from pathlib import Path

import polars as pl
import pyarrow as pa

from bioscan.images import (
    IMAGES_FOLDER,
    MISSING_LISTED,
    PACKAGE_PREFERENCE,
    ImageLocations,
    chunk_series,
    find_image_sources,
    locate_images,
)
from bioscan.io5m import read_metadata_csv
from bioscan.spec import (
    CSV_NAME,
    CSV_RELATIVE_PATH,
    METADATA_CSV_MD5,
    METADATA_SCHEMA,
    METADATA_ZIP_NAME,
    SPLIT_ROWS,
)
from bioscan.splits import SPLITS
from harness.checksum import md5_file
from harness.errors import FieldHarnessError
from harness.plugin import SAMPLE_MARKER, PreparedData
from harness.spec import DatasetSpec

__all__ = ["find_metadata_csv", "read_bioscan5m_source"]

logger = logging.getLogger(__name__)

SEARCH_DEPTH = 5
"""Folder levels below ``source`` searched for the CSV."""

BATCH_ROWS = 500_000
"""Rows per Arrow chunk; keeps each string chunk well under the 2 GiB of an Arrow string
array (500,000 barcodes take about 330 MB)."""


def _walk_for(source: Path, name: str) -> Path | None:
    """Return the first file called ``name`` below ``source``, skipping image folders."""
    base_depth = len(source.parts)
    for folder, subfolders, files in os.walk(source):
        if name in files:
            return Path(folder) / name
        if len(Path(folder).parts) - base_depth >= SEARCH_DEPTH:
            subfolders.clear()
        subfolders[:] = sorted(d for d in subfolders if d != "images" and not d.startswith("."))
    return None


def find_metadata_csv(source: str | PathLike[str]) -> Path:
    """Return the BIOSCAN-5M metadata CSV at or below ``source``.

    Raises:
        FileNotFoundError: No such CSV; the message names the metadata zip to extract when
            only the zip is there.
    """
    source = Path(source).expanduser().resolve()
    if source.is_file():
        return source
    for candidate in (source / CSV_NAME, source / CSV_RELATIVE_PATH):
        if candidate.is_file():
            return candidate
    found = _walk_for(source, CSV_NAME) if source.is_dir() else None
    if found is not None:
        return found
    archive = _walk_for(source, METADATA_ZIP_NAME) if source.is_dir() else None
    if archive is not None:
        raise FileNotFoundError(
            f"{CSV_NAME} was not found, but {archive} contains it. Extract it in its folder "
            f"(cd {archive.parent} && unzip {archive.name} '{CSV_RELATIVE_PATH}') and prepare "
            "again"
        )
    raise FileNotFoundError(f"no {CSV_NAME} at or below {source}")


def _source_root(csv_path: Path) -> Path:
    """Return the folder that contains ``bioscan5m/`` for a CSV in the official place, else the
    CSV's folder."""
    parts = csv_path.parent.parts
    if len(parts) >= 3 and tuple(parts[-3:]) == ("bioscan5m", "metadata", "csv"):
        return csv_path.parents[3]
    return csv_path.parent


def _is_sample(*folders: Path) -> bool:
    return any((parent / SAMPLE_MARKER).is_file()
               for folder in folders for parent in (folder, *folder.parents))


def _listed(items: list[str], total: int) -> str:
    text = ", ".join(items[:MISSING_LISTED])
    return text + (", ..." if total > MISSING_LISTED else "")


def _md5_note(csv_name: str, md5: str, counts: dict[str, int], version: str) -> str | None:
    if md5 == METADATA_CSV_MD5:
        return None
    differing = [split for split in SPLITS if counts.get(split, 0) != SPLIT_ROWS[split]]
    if differing:
        rows = sum(counts.values())
        which = ("every partition's row count differs" if len(differing) == len(SPLITS)
                 else f"the row counts of {', '.join(differing)} differ")
        detail = (f"{rows:,} rows against the release's {sum(SPLIT_ROWS.values()):,}; {which} "
                  "(one note each below)")
    else:
        detail = "the same rows per partition as the release, so its content was changed"
    return (f"{csv_name} has MD5 {md5}, not the published MD5 {METADATA_CSV_MD5} of version "
            f"{version}: {detail}")


def _chunk_note(frame: pl.DataFrame) -> str | None:
    """Compare the chunk column with the md5 rule; return a note when they differ."""
    expected = chunk_series(frame["processid"], frame["split"])
    actual = frame["chunk"]
    wrong = actual.ne_missing(expected)
    count = int(wrong.sum())
    if not count:
        return None
    rows = pl.DataFrame({"processid": frame["processid"], "split": frame["split"],
                         "chunk": actual, "rule": expected}).filter(wrong)
    examples = [f"{pid} ({split}: chunk {chunk or ''!r}, rule {rule or ''!r})"
                for pid, split, chunk, rule in rows.head(MISSING_LISTED).iter_rows()]
    return (f"chunk differs from the first hex digits of md5(processid) in {count:,} of "
            f"{frame.height:,} records ({_listed(examples, count)}); images are looked up "
            "under the CSV's chunk, as bioscan-dataset does")


def _image_notes(
    locations: ImageLocations, root: Path, requested: str | None, level: int
) -> tuple[list[str], bool]:
    """Return the notes on the image package and the missing images, and whether any is
    missing."""
    available = find_image_sources(root)
    if locations.package is None or locations.layout == "none":
        wanted = requested or " or ".join(PACKAGE_PREFERENCE)
        note = (f"no images of {wanted} under {root} (looked for {IMAGES_FOLDER}/<package>/ "
                "folders and BIOSCAN_5M_<package>*.zip files); the image column is null")
        logger.log(level, "%s", note)
        return [note], True
    others = [f"{name} ({sources.layout})" for name, sources in available.items()
              if name != locations.package]
    note = f"images: package {locations.package}, read from {locations.layout}"
    if requested is None:
        note += ", chosen in the order " + ", ".join(PACKAGE_PREFERENCE)
    if others:
        note += "; also present: " + ", ".join(others)
    notes = [note]
    for split, missing in locations.missing.items():
        if missing:
            total = locations.records[split]
            examples = _listed(locations.missing_examples.get(split, []), missing)
            notes.append(f"{split}: {missing:,} of {total:,} images not found in "
                         f"{locations.package} ({examples}); their image column is null")
            logger.log(level, "%s: %d of %d BIOSCAN-5M images not found in %s under %s", split,
                       missing, total, locations.package, root)
    return notes, any(locations.missing.values())


def _split_tables(frames: list[pl.DataFrame]) -> dict[str, pa.Table]:
    """Return one Arrow table of ``METADATA_SCHEMA`` per partition of the frame in ``frames``.

    The frame is popped from the list and built into the tables column by column, each column
    dropped from the frame once copied, so the peak memory is the frame plus its largest
    column rather than twice the frame (4 GB less for the full release).
    """
    frame = frames.pop()
    split = frame["split"]
    rows = {name: (split == name).arg_true() for name in SPLITS}
    rows = {name: index for name, index in rows.items() if len(index)}
    del split
    columns: dict[str, dict[str, pa.ChunkedArray]] = {name: {} for name in rows}
    for field in METADATA_SCHEMA:
        series = frame[field.name]
        frame = frame.drop(field.name)
        for name, index in rows.items():
            columns[name][field.name] = pa.chunked_array(
                [series.gather(index.slice(start, BATCH_ROWS)).to_arrow().cast(field.type)
                 for start in range(0, len(index), BATCH_ROWS)],
                field.type,
            )
        del series
    return {name: pa.table(values, schema=METADATA_SCHEMA) for name, values in columns.items()}


def read_bioscan5m_source(
    spec: DatasetSpec,
    source: str | PathLike[str],
    version: str | None = None,
    *,
    package: str | None = None,
) -> PreparedData:
    """Read the BIOSCAN-5M metadata CSV under ``source`` and locate its images.

    Args:
        spec: The BIOSCAN-5M spec.
        source: The CSV, or a folder at or above ``bioscan5m/``.
        version: The version to prepare as; the spec's default (``2024``) for ``None``.
        package: Image package (``cropped_256``, ``original_256``, ``cropped`` or
            ``original_full``); for ``None`` the first of ``PACKAGE_PREFERENCE`` present.

    Returns:
        The ``metadata`` table of every partition in the CSV, with ``image`` set where the
        image was found. ``subset`` is set when the row counts differ from the release or an
        image is missing; ``notes`` say what differs.

    Raises:
        FileNotFoundError: No metadata CSV at or below ``source``.
        FieldHarnessError: ``package`` is given but none of its images are under the source.
        harness.errors.DataFormatError: The CSV does not follow the official format.
        UnknownNameError: ``version`` or ``package`` is not known.
    """
    dataset_version = spec.version(version)
    source = Path(source).expanduser().resolve()
    csv_path = find_metadata_csv(source)
    root = _source_root(csv_path)
    sample = _is_sample(source, root)
    # A sample differs from the release by design, so its differences are only logged at INFO.
    level = logging.INFO if sample else logging.WARNING

    with ThreadPoolExecutor(max_workers=1) as pool:
        md5 = pool.submit(md5_file, csv_path)  # hashing overlaps the parse
        frame = read_metadata_csv(csv_path)
        md5 = md5.result()
    counts = dict(frame.group_by("split").len().iter_rows())

    notes: list[str] = []
    csv_name = csv_path.relative_to(root).as_posix()
    md5_note = _md5_note(csv_name, md5, counts, dataset_version.name)
    if md5_note:
        notes.append(md5_note)
        logger.log(level, "%s", md5_note)
    subset = any(counts.get(split, 0) != rows for split, rows in SPLIT_ROWS.items())

    chunk_note = _chunk_note(frame)
    if chunk_note:
        notes.append(chunk_note)
        logger.log(level, "%s", chunk_note)

    if package is not None and package not in find_image_sources(root):
        found = ", ".join(find_image_sources(root)) or "none"
        raise FieldHarnessError(
            f"image package {package} was requested but is not under {root} (looked for "
            f"{IMAGES_FOLDER}/{package}/ and BIOSCAN_5M_{package}*.zip; packages found: {found}); "
            "extract or copy it there, or prepare without --option image_package")
    locations = locate_images(frame, root, package)
    image_notes, images_missing = _image_notes(locations, root, package, level)
    notes += image_notes
    subset = subset or images_missing

    frames = [frame.with_columns(locations.paths.alias("image"))]
    del frame, locations
    tables = _split_tables(frames)

    # NOTE: Only the CSV is recorded with its SHA-256. The image zips (up to 18 GB each) and
    # the 5 million image files are not hashed: prepare reads only their names.
    return PreparedData(
        version=dataset_version.name,
        tables={"metadata": tables},
        source_root=root,
        source_files=[csv_path],
        subset=subset,
        notes=notes,
        data_kind="sample" if sample else "real",
    )
