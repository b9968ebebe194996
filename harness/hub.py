"""Publish prepared datasets to the Hugging Face Hub and load the published copies.

A published repo contains plain Parquet shards, ``data/<config>/<split>-00000-of-0000N.parquet``,
with image bytes embedded and the HF features in their schema, plus a ``README.md`` whose YAML
declares the configs, features, split sizes and licence. ``datasets`` 4.0 and later no longer
runs loading scripts, so the YAML is what makes configs and splits visible.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from harness import __version__
from harness.atomic import write_json, write_text
from harness.errors import FieldHarnessError, NotPreparedError, UnknownNameError
from harness.manifest import Manifest
from harness.paths import prepared_dir
from harness.spec import DatasetSpec
from harness.storage import PathLike, check_fresh, prepared_splits, read_manifest

logger = logging.getLogger(__name__)

HUB_ORGANISATION = "fieldharness"
"""Organisation of the official published copies: ``mot17`` is ``fieldharness/mot17``."""

MAX_SHARD_BYTES = 500 * 1024 * 1024
"""Target size of one Parquet shard, the default of ``datasets.Dataset.push_to_hub``."""

MANIFEST_IN_REPO = "fieldharness_manifest.json"

HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "cc-by-2.0", "cc-by-3.0",
    "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0",
    "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0",
    "odbl", "odc-by", "pddl", "gpl-3.0", "lgpl-3.0", "unknown", "other",
})
"""Licence identifiers of the Hub's dataset-card metadata that specs are likely to use."""


def hub_repo_id(name: str) -> str:
    """Return the Hub repo id of ``name``: itself when it contains a slash, else under
    :data:`HUB_ORGANISATION`."""
    return name if "/" in name else f"{HUB_ORGANISATION}/{name}"


def hub_license(text: str) -> str:
    """Return the Hub licence identifier of a licence name such as ``"CC BY-NC-SA 3.0"``.

    Names that do not map to a known identifier give ``"other"``.
    """
    candidate = re.sub(r"[\s_]+", "-", text.strip().lower())
    return candidate if candidate in HUB_LICENSES else "other"


def _shard_count(dataset: Any, image_columns: list[str]) -> int:
    """Estimate the shards needed to keep each under :data:`MAX_SHARD_BYTES` after embedding."""
    total = dataset.data.nbytes
    for column in image_columns:
        for value in dataset.with_format("arrow")[column].to_pylist():
            if value and value.get("path") and not value.get("bytes"):
                path = Path(value["path"])
                total += path.stat().st_size if path.is_file() else 0
    return max(1, math.ceil(total / MAX_SHARD_BYTES))


def _write_shards(dataset: Any, out_folder: Path, split: str, image_columns: list[str]) -> int:
    """Write ``dataset`` as Parquet shards with embedded images; return the bytes of data."""
    from datasets.table import embed_table_storage

    out_folder.mkdir(parents=True, exist_ok=True)
    shards = _shard_count(dataset, image_columns)
    num_bytes = 0
    for index in range(shards):
        shard = dataset.shard(num_shards=shards, index=index, contiguous=True)
        table = embed_table_storage(shard.with_format("arrow")[:])
        num_bytes += table.nbytes
        pq.write_table(table, out_folder / f"{split}-{index:05d}-of-{shards:05d}.parquet")
    return num_bytes


def _card_text(spec: DatasetSpec, manifest: Manifest, infos: dict, configs: dict) -> str:
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    license_id = hub_license(spec.license)
    card = DatasetCardData(license=license_id, pretty_name=spec.title)
    if license_id == "other":
        card.license_name = re.sub(r"[^a-z0-9]+", "-", spec.license.lower()).strip("-")
        card.license_link = spec.homepage
    DatasetInfosDict(infos).to_dataset_card_data(card)
    MetadataConfigs(configs).to_dataset_card_data(card)

    subset = " It is a subset of the release." if manifest.subset else ""
    notes = "".join(f"- {note}\n" for note in manifest.notes)
    body = [
        f"# {spec.title}\n",
        spec.description.strip() + "\n",
        f"- Homepage: {spec.homepage}",
        f"- Licence: {spec.license}",
        f"- Version: {manifest.version} ({manifest.data_kind} data), prepared by fieldharness "
        f"{__version__}.{subset} The SHA-256 of every source file is in `{MANIFEST_IN_REPO}`.\n",
    ]
    if notes:
        body.append("## Notes\n\n" + notes)
    body.append("## Citation\n\n```bibtex\n" + spec.citation.strip() + "\n```\n")
    return f"---\n{card.to_yaml()}\n---\n\n" + "\n".join(body)


def build_hub_folder(
    name: str, out_dir: PathLike, *, version: str | None = None, data_dir: PathLike | None = None
) -> Path:
    """Write a Hub-ready dataset repo of the prepared copy of ``name`` into ``out_dir``.

    The folder contains ``data/<config>/<split>-<i>-of-<n>.parquet`` shards with image bytes
    embedded, ``README.md`` with the dataset card (configs, features, split sizes, licence,
    description and BibTeX citation), and the manifest without the local source root.

    Returns:
        ``out_dir``.

    Raises:
        FieldHarnessError: ``out_dir`` already contains a ``data`` folder.
        UnknownNameError, NotPreparedError: the dataset or version is not known or not prepared.
        StaleDataError: the source files (and so the images) changed since ``prepare``.
    """
    from datasets import Dataset
    from datasets.info import DatasetInfo
    from datasets.splits import SplitDict, SplitInfo

    from harness.registry import get_dataset

    spec = get_dataset(name).spec
    manifest = read_manifest(name, version=version, data_dir=data_dir)
    check_fresh(manifest)
    folder = prepared_dir(name, manifest.version, data_dir)
    out_dir = Path(out_dir)
    if (out_dir / "data").exists():
        raise FieldHarnessError(
            f"{out_dir / 'data'} already exists, and shards left from an earlier export would "
            "mix with the new ones; pass an empty or new folder, or delete it first"
        )
    out_dir.mkdir(parents=True, exist_ok=True)

    default_config = spec.config().name
    infos: dict[str, DatasetInfo] = {}
    configs: dict[str, dict] = {}
    for config_spec in spec.configs:
        splits = prepared_splits(manifest, config_spec.name)
        if not splits:
            continue
        split_dict = SplitDict()
        data_files = []
        features = None
        for split in splits:
            entry = manifest.tables[f"{config_spec.name}/{split}"]
            dataset = Dataset.from_file(str(folder / entry["arrow_path"]))
            features = dataset.features
            logger.info("writing %s %s/%s to %s", name, config_spec.name, split, out_dir)
            num_bytes = _write_shards(dataset, out_dir / "data" / config_spec.name, split,
                                      list(config_spec.image_columns))
            split_dict.add(SplitInfo(name=split, num_bytes=num_bytes,
                                     num_examples=dataset.num_rows))
            data_files.append({"split": split, "path": f"data/{config_spec.name}/{split}-*"})
        infos[config_spec.name] = DatasetInfo(features=features, splits=split_dict)
        configs[config_spec.name] = {"data_files": data_files}
        if config_spec.name == default_config:
            configs[config_spec.name]["default"] = True

    write_text(out_dir / "README.md", _card_text(spec, manifest, infos, configs))
    public = manifest.to_dict()
    public.pop("source_root", None)
    write_json(out_dir / MANIFEST_IN_REPO, public)
    return out_dir


def publish_dataset(
    name: str,
    repo_id: str,
    *,
    version: str | None = None,
    data_dir: PathLike | None = None,
    private: bool = True,
    allow_restricted_license: bool = False,
    token: str | None = None,
) -> str:
    """Upload the prepared copy of ``name`` to the Hub dataset repo ``repo_id`` in one commit.

    Args:
        name: Registered dataset name.
        repo_id: Hub repo id, ``org/name``; created (as a dataset repo) when missing.
        version: Prepared version; chosen as by ``load_dataset`` for ``None``.
        data_dir: Override of the data home.
        private: Create the repo as private.
        allow_restricted_license: Publish although the spec marks the licence as not allowing
            redistribution; set only with the rights holder's permission.
        token: Hub access token; the locally saved login for ``None``.

    Returns:
        The URL of the commit.

    Raises:
        FieldHarnessError: the licence does not allow redistribution and
            ``allow_restricted_license`` is false.
    """
    from huggingface_hub import HfApi

    from harness.registry import get_dataset

    spec = get_dataset(name).spec
    if not spec.redistributable and not allow_restricted_license:
        raise FieldHarnessError(
            f"the licence of {name} ({spec.license}) does not allow redistribution, so it is not "
            f"published; pass allow_restricted_license=True (--allow-restricted-license) only "
            f"with the rights holder's permission"
        )
    manifest = read_manifest(name, version=version, data_dir=data_dir)

    with tempfile.TemporaryDirectory(prefix=f"fieldharness-{name}-") as tmp:
        folder = build_hub_folder(name, Path(tmp) / "repo", version=manifest.version,
                                  data_dir=data_dir)
        api = HfApi(token=token)
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=str(folder),
            commit_message=f"Upload {name} {manifest.version} (fieldharness {__version__})",
        )
    url = getattr(commit, "commit_url", None) or str(commit)
    logger.info("published %s %s to %s", name, manifest.version, url)
    return url


def _snapshot(name: str, revision: str | None) -> Path:
    """Return the local folder of the Hub snapshot of ``name`` (downloaded unless cached)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id = hub_repo_id(name)
    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision))
    except HFValidationError as err:
        raise FieldHarnessError(
            f"{name!r} is neither a Hub repo id (ORG/NAME) nor a folder written by publish "
            f"({err})"
        ) from None
    except LocalEntryNotFoundError as err:
        raise NotPreparedError(
            f"Hub dataset {repo_id} (revision {revision or 'main'}) is not in the Hugging Face "
            f"cache and could not be downloaded ({err.__class__.__name__}); connect to the "
            f"network with HF_HUB_OFFLINE unset, or load the local copy with source='local'"
        ) from err
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise NotPreparedError(
            f"Hub dataset {repo_id} (revision {revision or 'main'}) not found; check the repo id "
            f"and revision ({err.__class__.__name__})"
        ) from err


def load_from_hub(
    name: str,
    split: str | None = None,
    *,
    config: str | None = None,
    revision: str | None = None,
    format: str = "hf",
    streaming: bool = False,
    columns: list[str] | None = None,
) -> Any:
    """Load a published copy through the Hub cache; see :func:`harness.loading.load_dataset`.

    The snapshot is resolved with ``snapshot_download`` and loaded from its local folder,
    because ``datasets.load_dataset(repo_id)`` fails offline unless its own Arrow cache already
    contains the repo.

    Raises:
        NotPreparedError: the repo or revision is not in the Hub cache and the Hub is offline or
            unreachable.
        UnknownNameError: the config, split or a column is not in the repo.
        FieldHarnessError: the cached snapshot lacks the files of a requested split.
    """
    local = Path(name).expanduser()
    if (local / MANIFEST_IN_REPO).is_file():
        # A folder written by 'publish --folder-only', or a copy of a published repo.
        repo_id, snapshot = str(local), local
    else:
        repo_id, snapshot = hub_repo_id(name), _snapshot(name, revision)

    config_name, split_files = _snapshot_layout(snapshot, config)
    requested = list(split_files) if split is None else [p.strip() for p in split.split("+")]
    for part in requested:
        if part not in split_files:
            raise UnknownNameError(f"split of {repo_id} config {config_name}", part, split_files)
        if not split_files[part]:
            raise FieldHarnessError(
                f"the cached snapshot {snapshot} of {repo_id} has no Parquet file for "
                f"{config_name}/{part}; download the complete repo again with HF_HUB_OFFLINE unset"
            )

    available = pq.read_schema(split_files[requested[0]][0]).names
    for column in columns or []:
        if column not in available:
            raise UnknownNameError(f"column of {repo_id} config {config_name}", column, available)

    if format == "polars":
        return _load_polars(split_files, requested, split, streaming, columns)

    import datasets

    return datasets.load_dataset(
        str(snapshot),
        config_name,
        split=None if split is None else "+".join(requested),
        streaming=streaming,
        columns=columns,
    )


def _snapshot_layout(snapshot: Path, config: str | None) -> tuple[str, dict[str, list[Path]]]:
    """Return the config to load and its Parquet files by split, from the README's ``configs``."""
    import yaml

    readme = snapshot / "README.md"
    declared: list[dict] = []
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        if text.startswith("---"):
            front = text.split("---", 2)[1]
            declared = (yaml.safe_load(front) or {}).get("configs", [])
    if not declared:
        raise FieldHarnessError(
            f"{readme} declares no configs; a fieldharness Hub repo lists them in the README YAML"
        )
    names = [entry["config_name"] for entry in declared]
    if config is None:
        chosen = next((e for e in declared if e.get("default")), declared[0])
    elif config in names:
        chosen = declared[names.index(config)]
    else:
        raise UnknownNameError(f"config of {snapshot.name}", config, names)

    split_files = {
        item["split"]: sorted(snapshot.glob(item["path"])) for item in chosen["data_files"]
    }
    return chosen["config_name"], split_files


def _load_polars(
    split_files: dict[str, list[Path]], requested: list[str], split: str | None, streaming: bool,
    columns: list[str] | None,
) -> Any:
    import polars as pl

    def frame(part: str) -> Any:
        lazy = pl.scan_parquet(split_files[part])
        if columns is not None:
            lazy = lazy.select(columns)
        return lazy if streaming else lazy.collect()

    if split is None:
        return {part: frame(part) for part in requested}
    frames = [frame(part) for part in requested]
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")
