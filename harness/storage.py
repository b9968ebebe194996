"""The on-disk layout of prepared datasets and the cheap checks made before reading them.

A prepared copy lives in ``<data home>/datasets/<name>/<version>/``::

    manifest.json
    <config>/<split>.parquet   # the plugin's table as written, for polars and other readers
    <config>/<split>.arrow     # Arrow IPC stream with HF features, memory-mapped by ``datasets``
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

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
            f"run: {prepare_command(name, manifest.source_root or None)}"
        )
    return manifest


def source_changes(manifest: Manifest) -> list[str]:
    """Return how the source files differ from the manifest, comparing only size and mtime."""
    root = Path(manifest.source_root)
    changes = []
    for relative, recorded in manifest.source_files.items():
        path = root / relative
        try:
            stat = path.stat()
        except FileNotFoundError:
            changes.append(f"{path} is missing")
            continue
        if stat.st_size != recorded.get("size"):
            changes.append(
                f"{path} changed size from {recorded.get('size')} to {stat.st_size} bytes"
            )
        elif stat.st_mtime != recorded.get("mtime"):
            changes.append(f"{path} was modified after prepare")
    return changes


def check_fresh(manifest: Manifest) -> None:
    """Raise :class:`StaleDataError` when a source file changed since ``prepare``.

    The check compares sizes and modification times only, so it costs one ``stat`` per file.
    """
    changes = source_changes(manifest)
    if changes:
        listed = "; ".join(changes[:5])
        more = f" and {len(changes) - 5} more" if len(changes) > 5 else ""
        raise StaleDataError(
            f"the source files of {manifest.dataset} {manifest.version} changed since it was "
            f"prepared: {listed}{more}; run: "
            f"{prepare_command(manifest.dataset, manifest.source_root)}"
        )


def prepared_configs(manifest: Manifest) -> list[str]:
    """Return the configs that have at least one prepared table, sorted by name."""
    return sorted({key.split("/", 1)[0] for key in manifest.tables})


def check_config(manifest: Manifest, config: str) -> None:
    """Raise :class:`UnknownNameError` listing the prepared configs if ``config`` is not one."""
    configs = prepared_configs(manifest)
    if config not in configs:
        raise UnknownNameError(f"config of prepared {manifest.dataset} {manifest.version}",
                               config, configs)


def table_entry(manifest: Manifest, config: str, split: str) -> dict:
    """Return the manifest entry of one table.

    Raises:
        UnknownNameError: the config or split has no prepared table; lists the prepared ones.
    """
    check_config(manifest, config)
    key = table_key(config, split)
    if key not in manifest.tables:
        raise UnknownNameError(
            f"split of prepared {manifest.dataset} {manifest.version} config {config}", split,
            prepared_splits(manifest, config),
        )
    return manifest.tables[key]


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
        NotPreparedError: the dataset is not prepared.
        StaleDataError: the source files changed since ``prepare``.
    """
    manifest = read_manifest(name, version=version, data_dir=data_dir)
    check_fresh(manifest)
    entry = table_entry(manifest, config, split)
    check_columns(manifest, config, split, columns)
    path = prepared_dir(name, manifest.version, data_dir) / entry["path"]
    return pq.read_table(path, columns=columns)
