"""Read a BIOSCAN-1M download into the ``metadata`` table and locate every record's image.

The metadata TSV is looked up in the source folder and in its ``bioscan1m/`` (the layout of
``bioscan-dataset`` >= 1.2) and ``bioscan/`` (its layout up to 1.1) sub-folders. Images lie at
``images/<package>/part<chunk_number>/<image_file>`` under any of those folders, for the packages
``cropped_256``, ``original_256``, ``cropped`` and ``original_full``, or inside the Zenodo zip
archives ``cropped_256.zip`` and ``original_256.zip`` (also under the name ``bioscan-dataset``
downloads them to, ``BIOSCAN_1M_cropped_256.zip``), read in place. Such an image is stored as
``<archive path>::<member>``, with the archive path relative to the source root.

Each folder is listed once and each archive's member list is read once; no file is opened or
stat-ed per record. A record's ``image`` comes from the first package of
:data:`bioscan.spec1m.IMAGE_PACKAGES` that contains it, and ``image_package`` names that package.

When a ``CLIBD_partitioning`` folder lies next to the TSV (where ``bioscan-dataset`` looks for
it), its partition files fill the ``clibd_split`` column.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from os import PathLike
from pathlib import Path

import polars as pl

from bioscan.io1m import read_clibd_partitioning, read_metadata_tsv
from bioscan.spec1m import (
    DEFAULT_PARTITIONING,
    IMAGE_PACKAGES,
    METADATA_SCHEMA,
    PARTITION_VALUES,
    RELEASE_MD5,
    RELEASE_ROWS,
    TSV_NAMES,
)
from harness.checksum import md5_file
from harness.plugin import ARCHIVE_MEMBER_SEPARATOR, SAMPLE_MARKER, PreparedData
from harness.spec import DatasetSpec

__all__ = [
    "CLIBD_FOLDER",
    "DATA_FOLDERS",
    "find_metadata_tsv",
    "index_images",
    "read_bioscan1m_source",
]

logger = logging.getLogger(__name__)

DATA_FOLDERS = ("", "bioscan1m", "bioscan")
"""Sub-folders of the source folder searched for the TSV and the ``images/`` folder: the source
itself, the ``bioscan-dataset`` >= 1.2 layout and its layout up to 1.1."""

CLIBD_FOLDER = "CLIBD_partitioning"
"""Folder of the CLIBD partition files, next to the TSV."""

ARCHIVE_NAMES = ("{package}.zip", "BIOSCAN_1M_{package}.zip")
"""Zip archive names per package: the Zenodo name, and the name ``bioscan-dataset`` saves."""

_PART = re.compile(r"part(\d+)")

_INDEX_SCHEMA = {"chunk_number": pl.Int16, "image_file": pl.String, "image": pl.String,
                 "image_package": pl.String, "priority": pl.Int32}


def is_sample(source: str | PathLike[str]) -> bool:
    """Return whether ``source`` or one of its parents contains the sample marker file."""
    folder = Path(source).expanduser().resolve()
    return any((parent / SAMPLE_MARKER).is_file() for parent in (folder, *folder.parents))


def find_metadata_tsv(source: str | PathLike[str]) -> Path | None:
    """Return the metadata TSV in ``source`` or its ``bioscan1m/`` or ``bioscan/`` folder."""
    source = Path(source)
    for folder in DATA_FOLDERS:
        for name in TSV_NAMES:
            path = source / folder / name
            if path.is_file():
                return path
    return None


def _list_package_folder(folder: Path, root: Path, package: str) -> dict[str, list]:
    """List ``folder/part<N>/`` once per part folder (no stat per image)."""
    prefix = folder.relative_to(root).as_posix()
    found: dict[str, list] = {"chunk_number": [], "image_file": [], "image": []}
    with os.scandir(folder) as parts:
        part_entries = [(entry.name, entry.path) for entry in parts if entry.is_dir()]
    for name, path in sorted(part_entries):
        match = _PART.fullmatch(name)
        if match is None:
            continue
        with os.scandir(path) as entries:
            files = [entry.name for entry in entries if entry.is_file()]
        found["chunk_number"] += [int(match.group(1))] * len(files)
        found["image_file"] += files
        found["image"] += [f"{prefix}/{name}/{file}" for file in files]
    logger.debug("listed %d %s images in %s", len(found["image"]), package, folder)
    return found


def _list_archive(archive: Path, root: Path, package: str) -> dict[str, list]:
    """List the ``.../<package>/part<N>/<image_file>`` members of ``archive`` once."""
    relative = archive.relative_to(root).as_posix()
    pattern = re.compile(rf"(?:^|.*/){re.escape(package)}/part(\d+)/([^/]+)")
    found: dict[str, list] = {"chunk_number": [], "image_file": [], "image": []}
    with zipfile.ZipFile(archive) as handle:
        for member in handle.namelist():
            match = pattern.fullmatch(member)
            if match is None:
                continue
            found["chunk_number"].append(int(match.group(1)))
            found["image_file"].append(match.group(2))
            found["image"].append(f"{relative}{ARCHIVE_MEMBER_SEPARATOR}{member}")
    logger.debug("listed %d %s images in %s", len(found["image"]), package, archive)
    return found


def index_images(
    source: Path, root: Path, packages: tuple[str, ...] = IMAGE_PACKAGES
) -> tuple[pl.DataFrame, list[Path]]:
    """Index every image of ``packages`` in folders and zip archives under ``source``.

    Args:
        source: The folder searched (with its ``bioscan1m/`` and ``bioscan/`` sub-folders).
        root: The source root the ``image`` paths are relative to.
        packages: Packages in order of preference.

    Returns:
        One row per ``(chunk_number, image_file)`` with the ``image`` path and its
        ``image_package``: of the first package in ``packages`` that has it, from a folder
        before an archive. Also the archives that were listed.
    """
    parts = []
    archives_read = []
    for rank, package in enumerate(packages):
        listings = []
        for folder in dict.fromkeys(source / sub for sub in DATA_FOLDERS):
            package_folder = folder / "images" / package
            if package_folder.is_dir():
                listings.append(_list_package_folder(package_folder, root, package))
        for folder in dict.fromkeys(source / sub for sub in DATA_FOLDERS):
            for pattern in ARCHIVE_NAMES:
                archive = folder / pattern.format(package=package)
                if archive.is_file():
                    listings.append(_list_archive(archive, root, package))
                    archives_read.append(archive)
        for order, listing in enumerate(listings):
            frame = pl.DataFrame(listing, schema={k: _INDEX_SCHEMA[k] for k in listing})
            parts.append(frame.with_columns(image_package=pl.lit(package),
                                            priority=pl.lit(rank * 100 + order, pl.Int32)))
    if not parts:
        return pl.DataFrame(schema=_INDEX_SCHEMA).drop("priority"), archives_read
    index = (pl.concat(parts).sort("priority", maintain_order=True)
             .unique(["chunk_number", "image_file"], keep="first", maintain_order=True))
    return index.drop("priority"), archives_read


def _add_clibd(frame: pl.DataFrame, tsv: Path, notes: list[str],
               source_files: list[Path]) -> pl.DataFrame:
    folder = tsv.parent / CLIBD_FOLDER
    if not folder.is_dir():
        return frame.with_columns(clibd_split=pl.lit(None, pl.String))
    partition = read_clibd_partitioning(folder)
    source_files.extend(sorted(folder.glob("*.txt")))
    joined = frame.join(partition, on="sampleid", how="left", maintain_order="left")
    unassigned = joined["clibd_split"].null_count()
    if unassigned:
        # NOTE: bioscan-dataset raises when a record has no CLIBD partition; here it stays null.
        notes.append(f"{unassigned} of {frame.height} records are in no CLIBD partition file; "
                     "their clibd_split is null")
    unknown = partition.filter(~pl.col("sampleid").is_in(frame["sampleid"].implode())).height
    if unknown:
        notes.append(f"{unknown} sampleids of the CLIBD partition files are not in {tsv.name}")
    return joined


def read_bioscan1m_source(
    spec: DatasetSpec, source: str | PathLike[str], version: str | None = None,
    *, packages: tuple[str, ...] = IMAGE_PACKAGES,
) -> PreparedData:
    """Read the BIOSCAN-1M metadata TSV under ``source`` and locate every record's image.

    A TSV whose MD5 differs from the published one is still prepared, with a note naming both
    MD5s and the row counts, and ``subset`` set when it has fewer rows than the release.

    Args:
        spec: The BIOSCAN-1M spec.
        source: The download folder (see the module docstring for the layouts).
        version: Dataset version; the spec's default for ``None``.
        packages: Image packages to look for, in order of preference.

    Returns:
        The ``metadata`` table of each ``large_diptera_family`` partition (``train``,
        ``validation``, ``test``, ``no_split``; a partition without records is left out, with
        a note). ``notes`` name the MD5 and row-count differences and the records without an
        image per split.

    Raises:
        FileNotFoundError: No metadata TSV is in ``source`` or its ``bioscan1m/`` or
            ``bioscan/`` folder.
        harness.errors.DataFormatError: The TSV or a CLIBD file does not follow the format.
    """
    source = Path(source).expanduser().resolve()
    dataset_version = spec.version(version)
    tsv = find_metadata_tsv(source)
    if tsv is None:
        raise FileNotFoundError(
            f"no {' or '.join(TSV_NAMES)} in {source} or its bioscan1m/ or bioscan/ folder")
    root = source
    notes: list[str] = []
    source_files = [tsv]

    frame = read_metadata_tsv(tsv)
    subset = frame.height < RELEASE_ROWS
    md5 = md5_file(tsv)
    if md5 != RELEASE_MD5:
        notes.append(f"{tsv.name} has MD5 {md5}, not the published {RELEASE_MD5} of version "
                     f"{dataset_version.name}; prepared as a modified copy ({frame.height:,} "
                     f"rows, the release has {RELEASE_ROWS:,})")
        logger.warning("%s differs from the published BIOSCAN-1M metadata (MD5 %s)", tsv, md5)
    elif frame.height != RELEASE_ROWS:
        notes.append(f"{tsv.name}: {frame.height:,} rows, the release has {RELEASE_ROWS:,}")

    frame = _add_clibd(frame, tsv, notes, source_files)

    index, _archives = index_images(source, root, packages)
    frame = frame.join(index, on=["chunk_number", "image_file"], how="left",
                       maintain_order="left")
    if index.is_empty():
        notes.append(f"no image folder or archive of the packages {', '.join(packages)} found; "
                     "the image column is null")
    # NOTE: The image archives (up to tens of GB) are not listed in source_files, so their
    # SHA-256 is not recorded. Prepare reads only their member lists.

    tables = {}
    for split in PARTITION_VALUES:
        part = frame.filter(pl.col(DEFAULT_PARTITIONING) == split)
        missing = part["image"].null_count()
        if missing and not index.is_empty():
            subset = True
            example = part.filter(pl.col("image").is_null()).row(0, named=True)
            notes.append(f"{split}: {missing} of {part.height} records have no image in any "
                         f"package found (first: part{example['chunk_number']}/"
                         f"{example['image_file']}); their image column is null")
        if part.is_empty():
            notes.append(f"{split}: no records in {DEFAULT_PARTITIONING}; the split is empty")
        tables[split] = part.select(METADATA_SCHEMA.names).to_arrow().cast(METADATA_SCHEMA)

    return PreparedData(
        version=dataset_version.name,
        tables={"metadata": tables},
        source_root=root,
        source_files=source_files,
        subset=subset,
        notes=notes,
        data_kind="sample" if is_sample(source) else "real",
    )
