"""The on-disk layout of prepared datasets and the cheap checks made before reading them.

A prepared copy lives in ``<data home>/datasets/<name>/<version>/``::

    manifest.json
    <config>/<split>.parquet   # the plugin's table as written, for polars and other readers
    <config>/<split>.arrow     # Arrow IPC stream with HF features, memory-mapped by ``datasets``
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from harness.checksum import sha256_file
from harness.errors import FieldHarnessError, NotPreparedError, StaleDataError, UnknownNameError
from harness.manifest import MANIFEST_NAME, Manifest
from harness.paths import data_home, prepared_dir
from harness.spec import DatasetSpec

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def dataset_root(name: str, data_dir: PathLike | None = None) -> Path:
    """Return the folder that contains every prepared version of dataset ``name``."""
    return data_home(data_dir) / "datasets" / name


def table_key(config: str, split: str) -> str:
    """Return the ``"config/split"`` key of a table in a manifest and in ``row_counts``."""
    return f"{config}/{split}"


def prepare_command(name: str, source_root: str | None = None, version: str | None = None) -> str:
    """Return the command line that prepares ``name``, for error messages."""
    source = shlex.quote(source_root) if source_root else "<folder of the official download>"
    command = f"python -m harness prepare {name} --source {source}"
    if version is not None:
        command += f" --version {shlex.quote(version)}"
    return command


def _spec(name: str) -> DatasetSpec:
    from harness.registry import get_dataset

    return get_dataset(name).spec


def prepared_versions(name: str, *, data_dir: PathLike | None = None) -> list[str]:
    """Return the versions of ``name`` that have a prepared copy, sorted by name."""
    root = dataset_root(name, data_dir)
    if not root.is_dir():
        return []
    return sorted(
        child.name for child in root.iterdir()
        if not child.name.startswith(".") and (child / MANIFEST_NAME).is_file()
    )


def resolve_version(
    name: str, version: str | None = None, *, data_dir: PathLike | None = None
) -> str:
    """Return the prepared version of ``name`` to read.

    For ``None`` that is the spec's default version when it is prepared, else the only prepared
    version.

    Raises:
        UnknownNameError: the dataset or ``version`` is not known to the spec.
        NotPreparedError: the requested version, or any version for ``None``, is not prepared.
        FieldHarnessError: several versions are prepared but not the default one.
    """
    spec = _spec(name)
    prepared = prepared_versions(name, data_dir=data_dir)

    if version is not None:
        spec.version(version)
        if version not in prepared:
            others = f" (prepared: {', '.join(prepared)})" if prepared else ""
            raise NotPreparedError(
                f"{name} version {version} is not prepared in {dataset_root(name, data_dir)}"
                f"{others}; run: {prepare_command(name, version=version)}"
            )
        return version

    default = spec.version().name
    if default in prepared:
        return default
    if len(prepared) == 1:
        return prepared[0]
    if not prepared:
        raise NotPreparedError(
            f"{name} is not prepared in {dataset_root(name, data_dir)}; "
            f"run: {prepare_command(name)}"
        )
    raise FieldHarnessError(
        f"{name} has several prepared versions ({', '.join(prepared)}) and its default version "
        f"{default} is not among them; pass version= (or --version) one of them"
    )


def read_manifest(
    name: str, *, version: str | None = None, data_dir: PathLike | None = None
) -> Manifest:
    """Read the manifest of the prepared copy of ``name`` at ``version``.

    Raises:
        UnknownNameError, NotPreparedError, FieldHarnessError: as :func:`resolve_version`.
        StaleDataError: the manifest belongs to another dataset or to a version the spec does
            not know.
        DataFormatError: the manifest file is damaged.
    """
    resolved = resolve_version(name, version, data_dir=data_dir)
    manifest = Manifest.read(prepared_dir(name, resolved, data_dir) / MANIFEST_NAME)
    spec = _spec(name)
    known = [v.name for v in spec.versions]
    if manifest.dataset != name or manifest.version not in known:
        raise StaleDataError(
            f"the prepared copy in {prepared_dir(name, resolved, data_dir)} records dataset "
            f"{manifest.dataset!r} version {manifest.version!r}, which this fieldharness does not "
            f"know (known versions of {name}: {', '.join(known)}); "
            f"{reprepare_hint(name, manifest.source_root)}"
        )
    return manifest


def reprepare_hint(name: str, source_root: str) -> str:
    """Return the next step for a stale copy: the prepare command with its recorded source root.

    When that folder no longer exists, the hint states it and uses the placeholder ``NEW_DIR``.
    """
    if source_root and not Path(source_root).is_dir():
        return (
            f"the recorded source root {source_root} no longer exists; if you moved it, run: "
            f"{prepare_command(name, 'NEW_DIR')}"
        )
    return f"run: {prepare_command(name, source_root or None)}"


@dataclass
class SourceChanges:
    """Differences between the source files and the manifest, one line per file."""

    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def source_changes(manifest: Manifest) -> SourceChanges:
    """Compare the source files with the manifest by size and mtime.

    A file whose size matches but whose mtime differs (after ``touch`` or a copy) is re-hashed,
    and it counts as changed only when its SHA-256 differs from the recorded one, so this check
    and ``verify`` agree.
    """
    root = Path(manifest.source_root)
    changes = SourceChanges()
    for relative, recorded in manifest.source_files.items():
        path = root / relative
        try:
            stat = path.stat()
        except FileNotFoundError:
            changes.missing.append(f"{path} is missing")
            continue
        if stat.st_size != recorded.get("size"):
            changes.changed.append(
                f"{path} changed size from {recorded.get('size')} to {stat.st_size} bytes"
            )
        elif stat.st_mtime != recorded.get("mtime"):
            actual = sha256_file(path)
            if actual != recorded.get("sha256"):
                changes.changed.append(
                    f"{path} changed content (SHA-256 {actual}, recorded {recorded.get('sha256')})"
                )
            else:
                logger.debug("%s has a new modification time but the SHA-256 recorded by "
                             "prepare, so it is unchanged", path)
    return changes


_warned_missing: set[tuple[str, str, str, int]] = set()
"""Copies already warned about in this process, so that repeated loads log the warning once."""


def check_fresh(manifest: Manifest, *, missing_ok: bool = False) -> None:
    """Raise :class:`StaleDataError` when a source file changed since ``prepare``.

    The check costs one ``stat`` per file, plus one SHA-256 per file whose mtime alone changed.

    Args:
        manifest: The manifest of the prepared copy.
        missing_ok: Log one warning for missing source files instead of raising. The prepared
            tables do not need the source files, but image paths in them point into the source
            folder.

    Raises:
        StaleDataError: a source file changed size or content, or is missing and ``missing_ok``
            is false.
    """
    changes = source_changes(manifest)
    if changes.changed or (changes.missing and not missing_ok):
        listed_changes = changes.changed + changes.missing
        listed = "; ".join(listed_changes[:5])
        more = f" and {len(listed_changes) - 5} more" if len(listed_changes) > 5 else ""
        raise StaleDataError(
            f"the source files of {manifest.dataset} {manifest.version} changed since it was "
            f"prepared: {listed}{more}; {reprepare_hint(manifest.dataset, manifest.source_root)}"
        )
    if changes.missing:
        _warn_missing_sources(manifest, len(changes.missing))


def _warn_missing_sources(manifest: Manifest, count: int) -> None:
    key = (manifest.dataset, manifest.version, manifest.source_root, count)
    if key in _warned_missing:
        return
    _warned_missing.add(key)

    name = manifest.dataset
    total = len(manifest.source_files)
    root = manifest.source_root
    where = (f"the recorded source root {root} no longer exists" if not Path(root).is_dir()
             else f"recorded source root: {root}")
    logger.warning(
        "%d of %d source files of %s %s are missing (%s). The prepared tables still load, but "
        "image paths in them point into that folder. If you moved it, run: %s",
        count, total, name, manifest.version, where, prepare_command(name, "NEW_DIR"),
    )


def prepared_configs(manifest: Manifest) -> list[str]:
    """Return the configs that have at least one prepared table, sorted by name."""
    return sorted({key.split("/", 1)[0] for key in manifest.tables})


def _not_prepared_notes(manifest: Manifest, terms: list[str]) -> str:
    """Return the manifest notes that mention one of ``terms`` (all notes if none does)."""
    patterns = [re.compile(rf"\b{re.escape(term)}\b") for term in terms]
    notes = [note for note in manifest.notes if any(p.search(note) for p in patterns)]
    notes = notes or list(manifest.notes)
    if not notes:
        return ""
    more = f" and {len(notes) - 5} more in manifest.json" if len(notes) > 5 else ""
    return f"; notes recorded by prepare: {'; '.join(notes[:5])}{more}"


def check_config(manifest: Manifest, config: str) -> None:
    """Check that ``config`` has at least one prepared table.

    Raises:
        UnknownNameError: the spec does not declare ``config``; lists the prepared configs.
        NotPreparedError: the spec declares ``config`` but ``prepare`` wrote no table of it,
            e.g. because the source has no images; lists the prepared configs and the notes
            that ``prepare`` recorded.
    """
    configs = prepared_configs(manifest)
    if config in configs:
        return
    spec_configs = {c.name: c for c in _spec(manifest.dataset).configs}
    if config not in spec_configs:
        raise UnknownNameError(f"config of prepared {manifest.dataset} {manifest.version}",
                               config, configs)

    terms = [config] + (["image", "images"] if spec_configs[config].image_columns else [])
    raise NotPreparedError(
        f"config {config!r} of {manifest.dataset} {manifest.version} was not prepared from the "
        f"source {manifest.source_root} (prepared configs: {', '.join(configs) or 'none'})"
        f"{_not_prepared_notes(manifest, terms)}"
    )


def table_entry(manifest: Manifest, config: str, split: str) -> dict:
    """Return the manifest entry of one table.

    Raises:
        UnknownNameError: the spec does not declare the config or split; lists the prepared ones.
        NotPreparedError: the spec declares the config and split but ``prepare`` wrote no such
            table; lists the prepared ones.
    """
    check_config(manifest, config)
    key = table_key(config, split)
    if key in manifest.tables:
        return manifest.tables[key]

    splits = prepared_splits(manifest, config)
    if split not in {s.name for s in _spec(manifest.dataset).splits}:
        raise UnknownNameError(
            f"split of prepared {manifest.dataset} {manifest.version} config {config}", split,
            splits,
        )
    other_configs = sorted(key.split("/", 1)[0] for key in manifest.tables
                           if key.split("/", 1)[1] == split)
    if other_configs:
        # The split was prepared, but this view of it does not exist (e.g. a test split whose
        # ground truth is withheld has frames and detections but no boxes).
        labels = "" if _spec(manifest.dataset).split(split).has_labels else (
            "; the split has no public labels")
        raise NotPreparedError(
            f"split {split!r} of {manifest.dataset} {manifest.version} has no {config!r} "
            f"table{labels}; its prepared configs are: {', '.join(other_configs)} (pass "
            "config=...)"
        )
    raise NotPreparedError(
        f"split {split!r} of {manifest.dataset} {manifest.version} config {config} was not "
        f"prepared from the source {manifest.source_root} (prepared splits: "
        f"{', '.join(splits)}){_not_prepared_notes(manifest, [split])}"
    )


def prepared_splits(manifest: Manifest, config: str) -> list[str]:
    """Return the prepared splits of ``config`` in the order they were written."""
    return [key.split("/", 1)[1] for key in manifest.tables if key.split("/", 1)[0] == config]


def check_columns(manifest: Manifest, config: str, split: str, columns: list[str] | None) -> None:
    """Raise :class:`UnknownNameError` for a requested column the table does not have."""
    if columns is None:
        return
    schema = table_entry(manifest, config, split)["schema"]
    for column in columns:
        if column not in schema:
            raise UnknownNameError(f"column of {manifest.dataset} {config}/{split}", column, schema)


def read_prepared_table(
    name: str,
    config: str,
    split: str,
    *,
    version: str | None = None,
    data_dir: PathLike | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """Read one prepared table (the Parquet copy) of ``name``.

    Raises:
        UnknownNameError: the dataset, version, config, split or a column is not known.
        NotPreparedError: the dataset is not prepared, or the config or split is known but was
            not prepared from the source.
        StaleDataError: a source file changed size or content since ``prepare``. Missing source
            files only log a warning.
    """
    manifest = read_manifest(name, version=version, data_dir=data_dir)
    check_fresh(manifest, missing_ok=True)
    entry = table_entry(manifest, config, split)
    check_columns(manifest, config, split, columns)
    path = prepared_dir(name, manifest.version, data_dir) / entry["path"]
    return pq.read_table(path, columns=columns)
