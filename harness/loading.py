"""``load_dataset``: open a prepared dataset, or a published copy from the Hugging Face Hub.

A local load memory-maps the Arrow file written by ``prepare`` and never parses the source files.
It compares their sizes and modification times with the manifest, and re-hashes a file only when
its mtime alone changed. Missing source files log a warning, because the prepared tables do not
need them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from harness.errors import FieldHarnessError, UnknownNameError
from harness.paths import prepared_dir
from harness.plugin import ARCHIVE_MEMBER_SEPARATOR
from harness.registry import get_dataset
from harness.spec import DatasetSpec
from harness.storage import (
    PathLike,
    check_columns,
    check_config,
    check_fresh,
    prepared_splits,
    read_manifest,
    table_entry,
)

logger = logging.getLogger(__name__)

FORMATS = ("hf", "polars")
SOURCES = ("local", "hub")


def load_dataset(
    name: str,
    split: str | None = None,
    *,
    config: str | None = None,
    version: str | None = None,
    data_dir: PathLike | None = None,
    source: str = "local",
    revision: str | None = None,
    format: str = "hf",
    streaming: bool = False,
    columns: list[str] | None = None,
) -> Any:
    """Load a prepared dataset.

    Args:
        name: Registered dataset name; with ``source="hub"`` also a Hub repo id (``org/name``).
        split: A split name, several joined with ``+`` (``"train+test"``), an alias the dataset
            defines (BIOSCAN-5M's ``"seen"``), or ``None`` for every prepared split.
        config: View of the dataset; the spec's default config for ``None``.
        version: Prepared version; for ``None`` the spec's default when prepared, else the only
            prepared version.
        data_dir: Override of the data home.
        source: ``"local"`` for the prepared copy, ``"hub"`` for the published copy.
        revision: Hub branch, tag or commit (``source="hub"`` only).
        format: ``"hf"`` for ``datasets`` objects, ``"polars"`` for polars frames.
        streaming: Return an iterable dataset (``hf``) or a ``LazyFrame`` (``polars``).
        columns: Columns to keep; every column for ``None``.

    Returns:
        With ``format="hf"``: a ``datasets.Dataset`` for one split, a ``DatasetDict`` for
        ``split=None``, or their iterable counterparts with ``streaming=True``. With
        ``format="polars"``: a ``polars.DataFrame`` (``LazyFrame`` when streaming), or a dict
        of them by split for ``split=None``. Image columns decode lazily to PIL images in
        ``datasets`` objects. In local polars frames they contain absolute file paths, and in
        Hub polars frames ``{bytes, path}`` structs.

    Raises:
        UnknownNameError: the dataset, config, split, version, column, format or source is not
            known; the message lists the valid ones.
        NotPreparedError: the dataset is not prepared, the config or split is known but was not
            prepared from the source, or a Hub copy is not in the cache while offline.
        StaleDataError: a source file changed size or content since ``prepare``.
        FieldHarnessError: ``revision`` is given for a local load, or ``version`` for a Hub load.
    """
    if format not in FORMATS:
        raise UnknownNameError("format", format, FORMATS)
    if source not in SOURCES:
        raise UnknownNameError("source", source, SOURCES)
    if source == "hub":
        from harness.hub import load_from_hub

        if version is not None:
            raise FieldHarnessError(
                f"version={version!r} applies to source='local' only; pin a Hub copy with "
                "revision= (a branch, tag or commit)"
            )

        return load_from_hub(name, split, config=config, revision=revision, format=format,
                             streaming=streaming, columns=columns)
    if revision is not None:
        raise FieldHarnessError(
            f"revision={revision!r} applies to source='hub' only; a local copy is chosen with "
            "version="
        )

    spec = get_dataset(name).spec
    config_name = spec.config(config).name
    manifest = read_manifest(name, version=version, data_dir=data_dir)
    check_fresh(manifest, missing_ok=True)
    folder = prepared_dir(name, manifest.version, data_dir)

    check_config(manifest, config_name)
    splits = prepared_splits(manifest, config_name)
    requested = splits if split is None else spec.expand_splits(split)
    for part in requested:
        table_entry(manifest, config_name, part)
        check_columns(manifest, config_name, part, columns)

    def path_of(part: str, key: str) -> Path:
        return folder / table_entry(manifest, config_name, part)[key]

    if format == "polars":
        image_columns = spec.config(config_name).image_columns
        frames = {
            part: _polars_frame(path_of(part, "path"), path_of(part, "arrow_path"), columns,
                                streaming, image_columns, manifest.source_root)
            for part in requested
        }
        if split is None:
            return frames
        return _concat_polars(list(frames.values()))

    datasets_by_split = {
        part: _hf_dataset(path_of(part, "arrow_path"), spec, part, columns) for part in requested
    }
    if split is None:
        from datasets import DatasetDict, IterableDatasetDict

        if streaming:
            return IterableDatasetDict(
                {part: dataset.to_iterable_dataset() for part, dataset in datasets_by_split.items()}
            )
        return DatasetDict(datasets_by_split)

    dataset = _concat_hf(list(datasets_by_split.values()))
    return dataset.to_iterable_dataset() if streaming else dataset


def _polars_from_arrow(arrow_path: Path, columns: list[str] | None,
                       image_columns: tuple[str, ...]) -> Any:
    """Read one memory-mapped Arrow file into polars, image structs reduced to their path.

    Decoding the Parquet copy costs several times more than this, mostly for long string
    columns such as DNA barcodes, and the Arrow file already has absolute image paths. Its
    archive members are fsspec URLs (``zip://member::/abs/archive.zip``); they are turned back
    into the ``/abs/archive.zip::member`` form of the Parquet copy.
    """
    import polars as pl
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.ipc

    with pa.memory_map(str(arrow_path)) as source:
        table = pa.ipc.open_stream(source).read_all()
    if columns is not None:
        table = table.select(columns)
    for name in image_columns:
        if name in table.column_names:
            # struct_field keeps a null image null, whatever its child arrays hold.
            paths = pc.struct_field(table.column(name), "path")
            table = table.set_column(table.column_names.index(name), name, paths)
    frame = pl.from_arrow(table, rechunk=False)
    members = [
        pl.col(name).str.replace(r"^zip://(.*)::(.*)$", f"${{2}}{ARCHIVE_MEMBER_SEPARATOR}${{1}}")
        for name in image_columns if name in frame.columns
    ]
    return frame.with_columns(members) if members else frame


def _polars_frame(
    path: Path, arrow_path: Path, columns: list[str] | None, streaming: bool,
    image_columns: tuple[str, ...], source_root: str,
) -> Any:
    """Load one prepared table into polars, with absolute image paths as in the Arrow file.

    An eager load reads the memory-mapped Arrow file; a streaming one scans the Parquet file.
    """
    import polars as pl

    if not streaming and arrow_path.is_file():
        return _polars_from_arrow(arrow_path, columns, image_columns)
    frame = pl.scan_parquet(path)
    if columns is not None:
        frame = frame.select(columns)
    prefix = source_root.rstrip("/") + "/"
    resolved = [
        pl.when(pl.col(name).str.starts_with("/"))
        .then(pl.col(name))
        .otherwise(pl.lit(prefix) + pl.col(name))
        .alias(name)
        for name in image_columns
        if name in frame.collect_schema().names()
    ]
    if resolved:
        frame = frame.with_columns(resolved)
    return frame if streaming else frame.collect()


def _concat_polars(frames: list[Any]) -> Any:
    import polars as pl

    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")


def _hf_dataset(path: Path, spec: DatasetSpec, split: str, columns: list[str] | None) -> Any:
    from datasets import Dataset, DatasetInfo, NamedSplit

    info = DatasetInfo(
        description=spec.description, citation=spec.citation, homepage=spec.homepage,
        license=spec.license,
    )
    dataset = Dataset.from_file(str(path), info=info, split=NamedSplit(split))
    if columns is not None:
        dataset = dataset.select_columns(columns)
    return dataset


def _concat_hf(parts: list[Any]) -> Any:
    from datasets import concatenate_datasets

    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)
