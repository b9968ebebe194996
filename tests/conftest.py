"""Shared fixtures: every test gets its own data home and Hugging Face caches, offline."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def isolated_homes(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point ``FIELDHARNESS_HOME`` and ``HF_HOME`` at fresh folders, with the Hub offline.

    ``huggingface_hub.constants`` and ``datasets.config`` read the environment when imported, so
    the fixture also patches them when an earlier test has imported them.

    Returns:
        The fieldharness data home of the test.
    """
    root = tmp_path_factory.mktemp("homes")
    home = root / "fieldharness"
    hf_home = root / "huggingface"
    hub_cache = hf_home / "hub"
    datasets_cache = hf_home / "datasets"

    monkeypatch.setenv("FIELDHARNESS_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(datasets_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")

    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        monkeypatch.setattr(constants, "HF_HOME", str(hf_home))
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    config = sys.modules.get("datasets.config")
    if config is not None:
        monkeypatch.setattr(config, "HF_DATASETS_CACHE", datasets_cache)
        monkeypatch.setattr(config, "HF_HUB_OFFLINE", True)
        monkeypatch.setattr(config, "HF_DATASETS_OFFLINE", True)
    return home
