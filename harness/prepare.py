"""Turn an official download into a versioned prepared copy, and verify such a copy later.

``prepare_dataset`` calls the dataset's plugin to read the source and checks the tables against
the version's row counts. It records the SHA-256 of every source file, then writes Parquet and
Arrow files plus ``manifest.json`` into a temporary folder that replaces the prepared folder in
one rename. A file lock keeps two prepares of the same dataset from running at once.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import filelock
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from harness import __version__
from harness.atomic import atomic_directory
from harness.checksum import sha256_file
from harness.errors import DataFormatError, FieldHarnessError, LockTimeoutError, UnknownNameError
from harness.manifest import MANIFEST_NAME, Manifest
from harness.paths import prepared_dir
from harness.plugin import ARCHIVE_MEMBER_SEPARATOR, SAMPLE_MARKER, DatasetPlugin, PreparedData
from harness.spec import ConfigSpec, DatasetSpec, DatasetVersion
from harness.storage import PathLike, dataset_root, read_manifest, table_key

logger = logging.getLogger(__name__)

PROGRESS_MIN_BYTES = 64 << 20
"""Source data smaller than this hashes without a progress bar."""


@dataclass
class VerifyReport:
    """Result of :func:`verify_dataset`: every difference found, one line each."""

    manifest: Manifest
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the prepared copy and its sources match the manifest."""
        return not self.problems


def lock_path(name: str, data_dir: PathLike | None = None) -> Path:
    """Return the lock file that serialises prepares of dataset ``name``."""
    return dataset_root(name, data_dir) / ".prepare.lock"


def hash_source_files(
    root: Path, files: list[Path], *, progress: bool = True
) -> dict[str, dict[str, object]]:
    """Return ``{relative path: {sha256, size, mtime}}`` of ``files`` under ``root``.

    Raises:
        FieldHarnessError: a file lies outside ``root``.
    """
    sizes = {}
    for path in files:
        path = Path(path)
        try:
            relative = Path(os.path.abspath(path)).relative_to(root).as_posix()
        except ValueError:
            raise FieldHarnessError(
                f"the plugin read {path}, which is outside the source root {root}; a plugin must "
                "report only files under the folder it was given"
            ) from None
        sizes[relative] = path.stat().st_size

    total = sum(sizes.values())
    show = progress and (total >= PROGRESS_MIN_BYTES or len(sizes) > 1000)
    records: dict[str, dict[str, object]] = {}
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
              desc="hashing source files", disable=not show) as bar:
        for relative in sorted(sizes):
            path = root / relative
            stat = path.stat()
            records[relative] = {
                "sha256": sha256_file(path, bar.update),
                "size": stat.st_size,
                "mtime": stat.st_mtime,
            }
    return records


def _check_tables(spec: DatasetSpec, data: PreparedData) -> dict[str, dict[str, pa.Table]]:
    """Return the plugin's tables with columns ordered and typed as the spec's config schemas."""
    configs = {config.name: config for config in spec.configs}
    splits = {split.name for split in spec.splits}
    checked: dict[str, dict[str, pa.Table]] = {}
    for config_name, tables in data.tables.items():
        if config_name not in configs:
            raise FieldHarnessError(
                f"the {spec.name} plugin returned a table for config {config_name!r}, which its "
                f"spec does not declare (configs: {', '.join(sorted(configs))})"
            )
        schema = configs[config_name].schema
        checked[config_name] = {}
        for split_name, table in tables.items():
            if split_name not in splits:
                raise FieldHarnessError(
                    f"the {spec.name} plugin returned split {split_name!r}, which its spec does "
                    f"not declare (splits: {', '.join(sorted(splits))})"
                )
            missing = [n for n in schema.names if n not in table.column_names]
            if missing:
                raise FieldHarnessError(
                    f"the {spec.name} plugin's table {config_name}/{split_name} lacks the columns "
                    f"{', '.join(missing)} of the config schema"
                )
            checked[config_name][split_name] = table.select(schema.names).cast(schema)
    return checked


def _row_count_notes(
    version: DatasetVersion, row_counts: dict[str, int], subset: bool
) -> list[str]:
    """Return one note per table whose row count differs from the version's published count.

    Tables without a published count are not compared.
    """
    reference = "full release has" if subset else "expected"
    notes = []
    for key, expected in version.row_counts.items():
        actual = row_counts.get(key)
        if actual is None:
            notes.append(f"{key}: missing, {reference} {expected} rows")
        elif actual != expected:
            notes.append(f"{key}: {actual} rows, {reference} {expected}")
    return notes


def _archive_members_as_urls(paths: pa.ChunkedArray) -> pa.ChunkedArray:
    """Rewrite ``/abs/archive.zip::member`` paths as fsspec URLs ``zip://member::/abs/archive.zip``.

    ``datasets`` opens such URLs when it decodes an image, so images stay inside their archives.
    """
    values = paths.to_pylist()
    if not any(v is not None and ARCHIVE_MEMBER_SEPARATOR in v for v in values):
        return paths
    rewritten = []
    for value in values:
        parts = None if value is None else _split_member(value)
        rewritten.append(value if parts is None else f"zip://{parts[1]}::{parts[0]}")
    return pa.chunked_array([pa.array(rewritten, pa.string())])


def hf_table(table: pa.Table, config: ConfigSpec, source_root: Path) -> pa.Table:
    """Return ``table`` cast to HF features, with image-path columns as ``datasets.Image()``.

    Relative image paths are resolved against ``source_root`` so that ``datasets`` can open them
    from any working folder. The features are stored in the schema metadata (key
    ``huggingface``), where ``datasets.Dataset.from_file`` finds them.
    """
    from datasets import Features, Image
    from datasets.table import table_cast

    if table.num_rows == 0:
        # datasets casts each column chunk by chunk, so an empty split needs one empty chunk
        # per column. A table built from an empty frame may have none.
        table = pa.table([pa.array([], field.type) for field in table.schema],
                         schema=table.schema)
    features = Features.from_arrow_schema(table.schema)
    for column in config.image_columns:
        if column not in features:
            continue
        values = table[column]
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            values = values.cast(pa.string())
            prefix = str(source_root).rstrip("/") + "/"
            joined = pc.binary_join_element_wise(prefix, values, "")
            absolute = pc.if_else(pc.starts_with(values, "/"), values, joined)
            absolute = _archive_members_as_urls(absolute)
            if absolute.num_chunks == 0:
                # An empty split: datasets' cast needs one (empty) chunk to cast.
                absolute = pa.chunked_array([pa.array([], pa.string())])
            table = table.set_column(table.schema.get_field_index(column), column, absolute)
        features[column] = Image()
    return table_cast(table, features.arrow_schema)


def _write_tables(
    folder: Path, spec: DatasetSpec, tables: dict[str, dict[str, pa.Table]], source_root: Path
) -> dict[str, dict[str, object]]:
    """Write each table as Parquet and as an Arrow IPC stream; return the manifest entries."""
    configs = {config.name: config for config in spec.configs}
    entries: dict[str, dict[str, object]] = {}
    for config_name, split_tables in tables.items():
        (folder / config_name).mkdir(parents=True, exist_ok=True)
        for split_name, table in split_tables.items():
            parquet_path = folder / config_name / f"{split_name}.parquet"
            arrow_path = folder / config_name / f"{split_name}.arrow"
            pq.write_table(table, parquet_path)

            arrow_table = hf_table(table, configs[config_name], source_root)
            with pa.ipc.new_stream(arrow_path, arrow_table.schema) as writer:
                writer.write_table(arrow_table)

            entries[table_key(config_name, split_name)] = {
                "path": parquet_path.relative_to(folder).as_posix(),
                "arrow_path": arrow_path.relative_to(folder).as_posix(),
                "rows": table.num_rows,
                "sha256": sha256_file(parquet_path),
                "arrow_sha256": sha256_file(arrow_path),
                "schema": {f.name: str(f.type) for f in table.schema},
            }
    return entries


def prepare_dataset(
    name: str,
    source: PathLike,
    *,
    version: str | None = None,
    data_dir: PathLike | None = None,
    lock_timeout: float = 600.0,
    progress: bool = True,
    options: Mapping[str, str] | None = None,
) -> Manifest:
    """Prepare dataset ``name`` from the official download in ``source``.

    An existing prepared copy of the same version is replaced. A warning names every table that
    the new copy lacks or that has fewer rows than before.

    Args:
        name: Registered dataset name.
        source: Folder of the official download (at or above the split folders).
        version: Dataset version; the plugin detects it (or takes the default) for ``None``.
        data_dir: Override of the data home.
        lock_timeout: Seconds to wait for another prepare of the same dataset to finish.
        progress: Show progress bars.
        options: Dataset-specific options (``prepare --option NAME=VALUE``), e.g. BIOSCAN-5M's
            ``image_package``; the plugin's ``prepare_options`` lists them.

    Returns:
        The manifest written to ``<data home>/datasets/<name>/<version>/manifest.json``.

    Raises:
        UnknownNameError: the dataset or version is not known.
        FieldHarnessError: ``source`` does not exist or contains nothing of the dataset.
        DataFormatError: a source file does not follow the official format.
        LockTimeoutError: another prepare of ``name`` held the lock for ``lock_timeout`` seconds.
    """
    from harness.registry import get_dataset

    plugin = get_dataset(name)
    spec = plugin.spec
    if version is not None:
        spec.version(version)
    if options:
        for option in options:
            if option not in plugin.prepare_options:
                raise UnknownNameError(f"prepare option of {name}", option,
                                       plugin.prepare_options)
        plugin.configure_prepare(dict(options))
    source = Path(source).expanduser().resolve()
    if not source.exists():
        raise FieldHarnessError(
            f"source folder {source} not found; pass --source the folder that contains the "
            f"official download of {name}"
        )

    lock = lock_path(name, data_dir)
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        with filelock.FileLock(lock, timeout=lock_timeout):
            return _prepare_locked(name, plugin, source, version, data_dir, progress)
    except filelock.Timeout:
        raise LockTimeoutError(
            f"another prepare of {name} held the lock file {lock} for over {lock_timeout:g} s; "
            "wait for it to finish, or delete the lock file if no prepare is running"
        ) from None


def _prepare_locked(
    name: str, plugin: DatasetPlugin, source: Path, version: str | None, data_dir: PathLike | None,
    progress: bool,
) -> Manifest:
    spec = plugin.spec
    logger.info("reading the %s source in %s", name, source)
    try:
        data = plugin.read_source(source, version=version)
    except FileNotFoundError as err:
        raise FieldHarnessError(
            f"no {name} data found under {source} ({err}); pass --source the folder that contains "
            "the official download"
        ) from err
    dataset_version = spec.version(data.version)
    source_root = Path(data.source_root).expanduser().resolve()
    tables = _check_tables(spec, data)

    row_counts = {
        table_key(config, split): table.num_rows
        for config, split_tables in tables.items() for split, table in split_tables.items()
    }
    notes = list(data.notes)
    count_notes = _row_count_notes(dataset_version, row_counts, data.subset)
    if data.subset:
        notes.extend(count_notes)
    elif count_notes:
        logger.warning(
            "%s source in %s does not match the row counts of version %s: %s",
            name, source, dataset_version.name, "; ".join(count_notes),
        )
        notes.append("row counts differ from the release: " + "; ".join(count_notes))

    data_kind = data.data_kind
    if (source_root / SAMPLE_MARKER).exists() or (source / SAMPLE_MARKER).exists():
        data_kind = "sample"

    source_files = hash_source_files(source_root, data.source_files, progress=progress)

    target = prepared_dir(name, dataset_version.name, data_dir)
    lost = _lost_rows(target / MANIFEST_NAME, row_counts)
    with atomic_directory(target) as folder:
        entries = _write_tables(folder, spec, tables, source_root)
        manifest = Manifest(
            dataset=name,
            version=dataset_version.name,
            data_kind=data_kind,
            subset=data.subset,
            notes=notes,
            source_root=str(source_root),
            source_files=source_files,
            tables=entries,
            row_counts=row_counts,
            fieldharness_version=__version__,
        )
        manifest.write(folder / MANIFEST_NAME)
    if lost:
        logger.warning(
            "replaced the prepared copy of %s %s in %s with a smaller one: %s",
            name, dataset_version.name, target, "; ".join(lost),
        )
    logger.info("prepared %s %s in %s", name, dataset_version.name, target)
    return manifest


def _lost_rows(old_manifest: Path, row_counts: dict[str, int]) -> list[str]:
    """Return one line per table of the existing copy that the new copy lacks or has fewer rows in.

    An existing copy whose manifest is missing or damaged is not compared.
    """
    try:
        old = Manifest.read(old_manifest)
    except (OSError, DataFormatError):
        return []
    lost = []
    for key, rows in old.row_counts.items():
        if key not in row_counts:
            lost.append(f"table {key} ({rows} rows) is no longer prepared")
        elif row_counts[key] < rows:
            lost.append(f"table {key} shrank from {rows} to {row_counts[key]} rows")
    return lost


def verify_dataset(
    name: str,
    *,
    version: str | None = None,
    data_dir: PathLike | None = None,
    check_sources: bool = True,
    progress: bool = True,
) -> VerifyReport:
    """Re-hash the prepared tables and, with ``check_sources``, the source files of ``name``.

    With ``check_sources``, every path in an image column (``ConfigSpec.image_columns``) must
    also exist. A relative path is resolved against the recorded source root, as the loader does.
    Each folder and zip archive is listed once, so millions of images cost one listing per
    folder, not one ``stat`` each.

    Returns:
        A report that lists every missing file, every changed size or SHA-256, and per table the
        number of missing images with the first few paths. The problems are not logged, so the
        caller prints each one once.

    Raises:
        UnknownNameError, NotPreparedError: the dataset or version is not known or not prepared.
        StaleDataError: the manifest records a version this fieldharness does not know.
    """
    manifest = read_manifest(name, version=version, data_dir=data_dir)
    report = VerifyReport(manifest)
    folder = prepared_dir(name, manifest.version, data_dir)

    damaged = _verify_tables(manifest, folder, report.problems)
    if check_sources:
        _verify_images(manifest, folder, damaged, report.problems)
        _verify_sources(manifest, progress, report.problems)

    logger.info("verified %s %s: %d problems", name, manifest.version, len(report.problems))
    return report


def _verify_tables(manifest: Manifest, folder: Path, problems: list[str]) -> set[str]:
    """Re-hash the Parquet and Arrow file of every table; return the keys of damaged tables."""
    damaged = set()
    for key, entry in manifest.tables.items():
        for path_key, hash_key in (("path", "sha256"), ("arrow_path", "arrow_sha256")):
            if path_key not in entry:
                continue
            path = folder / entry[path_key]
            if not path.is_file():
                problems.append(f"prepared table {key}: {path} is missing")
                damaged.add(key)
                continue
            actual = sha256_file(path)
            if actual != entry[hash_key]:
                problems.append(
                    f"prepared table {key}: {path} has SHA-256 {actual}, recorded {entry[hash_key]}"
                )
                damaged.add(key)
    return damaged


MISSING_IMAGES_LISTED = 3
"""Missing image paths listed per table in a verify report; the rest are only counted."""


def _split_member(path: str) -> tuple[str, str] | None:
    """Return ``(archive, member)`` for an ``<archive>::<member>`` path, else ``None``."""
    if ARCHIVE_MEMBER_SEPARATOR not in path or path.startswith("zip://"):
        return None
    archive, member = path.split(ARCHIVE_MEMBER_SEPARATOR, 1)
    return archive, member


def _image_exists(root: Path, path: str, listings: dict[Path, set[str] | None]) -> bool:
    """Return whether an image file, or an archive member, exists.

    Each folder and each archive is listed once and the listing cached in ``listings``, so a
    table of millions of images costs one directory listing per folder instead of one ``stat``
    per image.
    """
    parts = _split_member(path)
    if parts is None:
        file = root / path
        folder = file.parent
        if folder not in listings:
            try:
                listings[folder] = set(os.listdir(folder))
            except OSError:
                listings[folder] = None
        listed = listings[folder]
        return listed is not None and file.name in listed
    archive = root / parts[0]
    if archive not in listings:
        try:
            with zipfile.ZipFile(archive) as handle:
                listings[archive] = set(handle.namelist())
        except (OSError, zipfile.BadZipFile):
            listings[archive] = None
    listed = listings[archive]
    return listed is not None and parts[1] in listed


def _verify_images(
    manifest: Manifest, folder: Path, damaged: set[str], problems: list[str]
) -> None:
    """Check that every image path of every undamaged table exists on disk."""
    from harness.registry import get_dataset

    configs = {config.name: config for config in get_dataset(manifest.dataset).spec.configs}
    root = Path(manifest.source_root)
    for key, entry in manifest.tables.items():
        config = configs.get(key.split("/", 1)[0])
        if config is None or key in damaged:
            continue
        columns = [c for c in config.image_columns if c in entry.get("schema", {})]
        if not columns:
            continue

        table = pq.read_table(folder / entry["path"], columns=columns)
        listings: dict[Path, set[str] | None] = {}
        for column in columns:
            values = [v for v in table[column].to_pylist() if v is not None]
            missing = [str(root / v) for v in values if not _image_exists(root, v, listings)]
            if missing:
                listed = ", ".join(missing[:MISSING_IMAGES_LISTED])
                more = ", ..." if len(missing) > MISSING_IMAGES_LISTED else ""
                problems.append(
                    f"prepared table {key}: {len(missing)} of {len(values)} images in column "
                    f"{column} are missing: {listed}{more}"
                )


def _verify_sources(manifest: Manifest, progress: bool, problems: list[str]) -> None:
    """Re-hash every source file recorded in the manifest."""
    root = Path(manifest.source_root)
    total = sum(int(r.get("size", 0)) for r in manifest.source_files.values())
    show = progress and total >= PROGRESS_MIN_BYTES
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
              desc="hashing source files", disable=not show) as bar:
        for relative, recorded in manifest.source_files.items():
            path = root / relative
            if not path.is_file():
                problems.append(f"source file {path} is missing")
                continue
            size = path.stat().st_size
            if size != recorded["size"]:
                problems.append(
                    f"source file {path} has {size} bytes, recorded {recorded['size']}"
                )
                continue
            actual = sha256_file(path, bar.update)
            if actual != recorded["sha256"]:
                problems.append(
                    f"source file {path} has SHA-256 {actual}, recorded {recorded['sha256']}"
                )
