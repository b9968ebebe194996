"""Hub folder layout, publishing (with the HfApi calls replaced) and loading from the Hub cache."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from _toy_plugin import NAME, SPEC, ToyPlugin, png_bytes, prepare_toy, write_toy_source
from huggingface_hub import HfApi

from harness import hub, load_dataset
from harness.errors import FieldHarnessError, NotPreparedError, UnknownNameError
from harness.hub import build_hub_folder, hub_license, hub_repo_id, publish_dataset
from harness.prepare import prepare_dataset
from harness.registry import register_dataset

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _front_matter(readme: Path) -> dict:
    text = readme.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---", 2)[1])


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _cache_snapshot(repo_id: str, commit: str = COMMIT, *, ref: str = "main") -> Path:
    """Lay out a Hub cache entry for ``repo_id`` and return its snapshot folder."""
    org, name = repo_id.split("/")
    repo = Path(os.environ["HF_HUB_CACHE"]) / f"datasets--{org}--{name}"
    snapshot = repo / "snapshots" / commit
    build_hub_folder(NAME, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return snapshot


def test_hub_folder_layout(tmp_path: Path) -> None:
    prepare_toy(tmp_path)
    out = build_hub_folder(NAME, tmp_path / "repo")
    assert _files(out) == [
        "README.md",
        "data/full/test-00000-of-00001.parquet",
        "data/full/train-00000-of-00001.parquet",
        "data/labels/test-00000-of-00001.parquet",
        "data/labels/train-00000-of-00001.parquet",
        "fieldharness_manifest.json",
    ]
    manifest = json.loads((out / "fieldharness_manifest.json").read_text())
    assert "source_root" not in manifest
    assert manifest["version"] == "1.1"
    assert manifest["source_files"]["train.csv"]["sha256"]


def test_hub_folder_rejects_earlier_export(tmp_path: Path) -> None:
    prepare_toy(tmp_path)
    out = build_hub_folder(NAME, tmp_path / "repo")
    with pytest.raises(FieldHarnessError, match=r"repo/data already exists, and shards left from "
                                                r"an earlier export would mix with the new ones"):
        build_hub_folder(NAME, out)


def test_hub_folder_shards_large_splits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prepare_toy(tmp_path)
    monkeypatch.setattr(hub, "MAX_SHARD_BYTES", 200)
    out = build_hub_folder(NAME, tmp_path / "repo")
    shards = sorted(p.name for p in (out / "data" / "full").glob("train-*.parquet"))
    assert len(shards) > 1
    assert shards[0] == f"train-00000-of-{len(shards):05d}.parquet"
    loaded = datasets.load_dataset(str(out), split="train")
    assert loaded["id"] == [0, 1, 2, 3]


def test_hub_readme_yaml(tmp_path: Path) -> None:
    prepare_toy(tmp_path)
    meta = _front_matter(build_hub_folder(NAME, tmp_path / "repo") / "README.md")

    assert meta["license"] == "cc-by-4.0"
    assert meta["pretty_name"] == "Toy"
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert configs["full"]["default"] is True
    assert "default" not in configs["labels"]
    assert configs["labels"]["data_files"] == [
        {"split": "train", "path": "data/labels/train-*"},
        {"split": "test", "path": "data/labels/test-*"},
    ]
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    assert {"name": "image", "dtype": "image"} in infos["full"]["features"]
    splits = {s["name"]: s["num_examples"] for s in infos["full"]["splits"]}
    assert splits == {"train": 4, "test": 2}


def test_hub_readme_body(tmp_path: Path) -> None:
    prepare_toy(tmp_path)
    text = (build_hub_folder(NAME, tmp_path / "repo") / "README.md").read_text()
    body = text.split("---", 2)[2]
    assert "# Toy" in body
    assert SPEC.description in body
    assert "```bibtex\n" + SPEC.citation + "\n```" in body
    assert "- Version: 1.1 (real data)" in body


def test_hub_parquet_embeds_images(tmp_path: Path) -> None:
    source = prepare_toy(tmp_path)
    out = build_hub_folder(NAME, tmp_path / "repo")
    table = pq.read_table(out / "data/full/train-00000-of-00001.parquet")
    assert b"huggingface" in table.schema.metadata
    images = table["image"].to_pylist()
    assert images[1]["bytes"] == (source / "images" / "train_1.png").read_bytes()
    assert images[1]["bytes"] == png_bytes(1)
    assert images[1]["path"] == "train_1.png"


def test_hub_folder_loads_without_sources(tmp_path: Path) -> None:
    source = prepare_toy(tmp_path)
    out = build_hub_folder(NAME, tmp_path / "repo")
    shutil.rmtree(source)
    loaded = datasets.load_dataset(str(out), split="train")
    assert isinstance(loaded.features["image"], datasets.Image)
    assert loaded[1]["image"].getpixel((0, 0)) == (40, 100, 200)
    labels = datasets.load_dataset(str(out), "labels")
    assert labels["test"].num_rows == 2


def test_hub_license_ids() -> None:
    assert hub_license("CC BY-NC-SA 3.0") == "cc-by-nc-sa-3.0"
    assert hub_license("MIT") == "mit"
    assert hub_license("Research use only") == "other"


def test_hub_repo_id() -> None:
    assert hub_repo_id("mot17") == "fieldharness/mot17"
    assert hub_repo_id("someone/mot17") == "someone/mot17"


def test_hub_restricted_license_card(tmp_path: Path) -> None:
    spec = dataclasses.replace(SPEC, license="Research use only", redistributable=False)
    register_dataset("toy-restricted", type("RestrictedToy", (ToyPlugin,), {"spec": spec}))
    prepare_dataset("toy-restricted", write_toy_source(tmp_path / "src"), progress=False)
    meta = _front_matter(build_hub_folder("toy-restricted", tmp_path / "repo") / "README.md")
    assert meta["license"] == "other"
    assert meta["license_name"] == "research-use-only"
    assert meta["license_link"] == SPEC.homepage


class _Commit:
    commit_url = f"https://huggingface.co/datasets/me/toy/commit/{COMMIT}"


@pytest.fixture
def hub_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict]]:
    """Replace the two HfApi methods that reach the network; record their arguments."""
    calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", {"repo_id": repo_id, **kwargs, "token": self.token}))

    def upload_folder(self, **kwargs):
        kwargs["files"] = _files(Path(kwargs["folder_path"]))
        calls.append(("upload_folder", kwargs))
        return _Commit()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_publish_uploads_one_commit(tmp_path: Path, hub_calls) -> None:
    prepare_toy(tmp_path)
    url = publish_dataset(NAME, "me/toy", token="hf_test")
    assert url == _Commit.commit_url

    assert [name for name, _ in hub_calls] == ["create_repo", "upload_folder"]
    assert hub_calls[0][1] == {"repo_id": "me/toy", "repo_type": "dataset", "private": True,
                               "exist_ok": True, "token": "hf_test"}
    upload = hub_calls[1][1]
    assert upload["repo_id"] == "me/toy"
    assert upload["repo_type"] == "dataset"
    assert upload["commit_message"] == "Upload toy 1.1 (fieldharness 0.1.0)"
    assert "README.md" in upload["files"]
    assert "data/full/train-00000-of-00001.parquet" in upload["files"]
    assert not Path(upload["folder_path"]).exists()


def test_publish_public_repo(tmp_path: Path, hub_calls) -> None:
    prepare_toy(tmp_path)
    publish_dataset(NAME, "me/toy", private=False)
    assert hub_calls[0][1]["private"] is False


def test_publish_restricted_license_raises(tmp_path: Path, hub_calls) -> None:
    spec = dataclasses.replace(SPEC, license="Research use only", redistributable=False)
    register_dataset("toy-private", type("PrivateToy", (ToyPlugin,), {"spec": spec}))
    prepare_dataset("toy-private", write_toy_source(tmp_path / "src"), progress=False)
    with pytest.raises(FieldHarnessError, match=r"the licence of toy-private \(Research use only\) "
                                                r"does not allow redistribution, so it is not "
                                                r"published; pass allow_restricted_license=True"):
        publish_dataset("toy-private", "me/toy")
    assert hub_calls == []
    publish_dataset("toy-private", "me/toy", allow_restricted_license=True)
    assert [name for name, _ in hub_calls] == ["create_repo", "upload_folder"]


def test_publish_not_prepared_raises(hub_calls) -> None:
    with pytest.raises(NotPreparedError, match=r"toy is not prepared"):
        publish_dataset(NAME, "me/toy")
    assert hub_calls == []


def test_load_hub_from_cache_offline(tmp_path: Path) -> None:
    source = prepare_toy(tmp_path)
    _cache_snapshot("fieldharness/toy")
    shutil.rmtree(source)

    result = load_dataset(NAME, source="hub")
    assert isinstance(result, datasets.DatasetDict)
    assert {split: ds.num_rows for split, ds in result.items()} == {"train": 4, "test": 2}
    assert result["train"][0]["image"].size == (2, 2)
    both = load_dataset(NAME, split="train+test", config="labels", source="hub")
    assert both["id"] == [0, 1, 2, 3, 0, 1]
    stream = load_dataset(NAME, split="test", source="hub", streaming=True, columns=["label"])
    assert [row["label"] for row in stream] == ["cat", "dog"]
    ids = load_dataset(NAME, split="train", source="hub", columns=["id"])
    assert ids.column_names == ["id"]


def test_load_hub_polars(tmp_path: Path) -> None:
    prepare_toy(tmp_path)
    _cache_snapshot("someone/toy")
    frame = load_dataset("someone/toy", split="train", format="polars", source="hub",
                         columns=["id"])
    assert isinstance(frame, pl.DataFrame)
    assert frame["id"].to_list() == [0, 1, 2, 3]
    frames = load_dataset("someone/toy", format="polars", source="hub", config="labels")
    assert set(frames) == {"train", "test"}
    lazy = load_dataset("someone/toy", split="test", format="polars", source="hub",
                        streaming=True)
    assert isinstance(lazy, pl.LazyFrame)


def test_load_published_folder(tmp_path: Path) -> None:
    source = prepare_toy(tmp_path)
    out = build_hub_folder(NAME, tmp_path / "repo")
    shutil.rmtree(source)
    frame = load_dataset(str(out), split="train", format="polars", source="hub", columns=["id"])
    assert frame["id"].to_list() == [0, 1, 2, 3]
    with pytest.raises(FieldHarnessError, match=r"is neither a Hub repo id \(ORG/NAME\) nor a "
                                                r"folder written by publish"):
        load_dataset(str(tmp_path / "elsewhere" / "folder"), source="hub")


def test_load_hub_pinned_revision(tmp_path: Path) -> None:
    prepare_toy(tmp_path)
    _cache_snapshot("fieldharness/toy", ref="v1.1")
    assert load_dataset(NAME, split="train", source="hub", revision="v1.1").num_rows == 4


def test_load_hub_missing_from_cache() -> None:
    with pytest.raises(NotPreparedError,
                       match=r"Hub dataset fieldharness/toy \(revision main\) is not in the "
                             r"Hugging Face cache and could not be downloaded"):
        load_dataset(NAME, source="hub")


def test_load_hub_unknown_names(tmp_path: Path) -> None:
    prepare_toy(tmp_path)
    _cache_snapshot("fieldharness/toy")
    with pytest.raises(UnknownNameError, match=r"unknown split of fieldharness/toy config full "
                                               r"'val'; valid values are: test, train"):
        load_dataset(NAME, split="val", source="hub")
    with pytest.raises(UnknownNameError, match=r"unknown config of .* 'big'; valid values are: "
                                               r"full, labels"):
        load_dataset(NAME, config="big", source="hub")
    with pytest.raises(UnknownNameError, match=r"unknown column of fieldharness/toy config full "
                                               r"'box'; valid values are: id, image, label"):
        load_dataset(NAME, split="train", columns=["box"], source="hub")


def test_load_hub_incomplete_snapshot(tmp_path: Path) -> None:
    prepare_toy(tmp_path)
    snapshot = _cache_snapshot("fieldharness/toy")
    (snapshot / "data" / "full" / "test-00000-of-00001.parquet").unlink()
    with pytest.raises(FieldHarnessError, match=r"of fieldharness/toy has no Parquet file for "
                                                r"full/test; download the complete repo again"):
        load_dataset(NAME, split="test", source="hub")


def test_load_hub_offline_env_in_subprocess(tmp_path: Path) -> None:
    prepare_toy(tmp_path)
    snapshot = _cache_snapshot("fieldharness/toy")
    script = (
        "from harness import load_dataset\n"
        "ds = load_dataset('fieldharness/toy', split='test', source='hub')\n"
        "print(ds.num_rows, ds.cache_files[0]['filename'])\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    rows, cache_file = result.stdout.split()
    assert rows == "2"
    assert cache_file.startswith(os.environ["HF_DATASETS_CACHE"])
    assert snapshot.is_dir()
