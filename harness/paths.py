"""Locations in the data home: prepared datasets, downloads and run records."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "FIELDHARNESS_HOME"


def data_home(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the data home: ``data_dir`` if given, else ``$FIELDHARNESS_HOME``, else the user
    cache folder (``~/.cache/fieldharness`` on Linux)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("fieldharness"))


def prepared_dir(name: str, version: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder of the prepared copy of dataset ``name`` at ``version``."""
    return data_home(data_dir) / "datasets" / name / version


def downloads_dir(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder that ``python -m harness download NAME`` saves archives into."""
    return data_home(data_dir) / "downloads" / name


def runs_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the default parent folder of run records."""
    return data_home(data_dir) / "runs"
