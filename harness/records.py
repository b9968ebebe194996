"""Run records: one JSON file per ``eval`` or ``run``, the raw material of the leaderboard.

A record contains what a reader needs to trust and repeat a number. That is the dataset version
and split, the method and its configuration, and the seed. It also records whether the data was
real or a generated sample, the fieldharness version and git commit, the hardware, the runtime
and the command line.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import secrets
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__, atomic
from harness.errors import DataFormatError
from harness.paths import runs_dir
from harness.plugin import EvalOutcome

RECORD_FILE = "record.json"
RECORD_SCHEMA = 1


@dataclass
class RunRecord:
    """One evaluation or baseline run, as written to ``record.json``."""

    dataset: str
    method: str
    metrics: dict[str, float]
    kind: str
    """``"eval"`` for scored user predictions, ``"run"`` for a baseline run by the harness."""
    version: str | None = None
    split: str | None = None
    per_item: dict[str, dict[str, float]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    data_kind: str = "real"
    date: str = ""
    """Start of the run, ISO 8601 in UTC."""
    runtime_s: float = 0.0
    fieldharness_version: str = __version__
    git_commit: str | None = None
    git_dirty: bool | None = None
    hardware: dict[str, Any] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    """Result files written beside the record, relative to its folder."""
    schema: int = RECORD_SCHEMA

    @classmethod
    def from_outcome(
        cls,
        outcome: EvalOutcome,
        *,
        kind: str,
        seed: int,
        started: dt.datetime,
        runtime_s: float,
        output_dir: Path,
        command: list[str] | None = None,
    ) -> RunRecord:
        """Build the record of a finished run from the plugin's outcome and the run's context."""
        commit, dirty = git_state()
        files = []
        for path in outcome.files:
            path = Path(path)
            try:
                files.append(str(path.resolve().relative_to(output_dir.resolve())))
            except ValueError:
                files.append(str(path))
        return cls(
            dataset=outcome.dataset,
            method=outcome.method,
            metrics=dict(outcome.metrics),
            kind=kind,
            version=outcome.version,
            split=outcome.split,
            per_item={k: dict(v) for k, v in outcome.per_item.items()},
            config=dict(outcome.config),
            seed=seed,
            data_kind=outcome.data_kind,
            date=started.astimezone(dt.UTC).isoformat(timespec="seconds"),
            runtime_s=round(runtime_s, 6),
            git_commit=commit,
            git_dirty=dirty,
            hardware=hardware_info(),
            command=list(sys.argv if command is None else command),
            files=files,
        )

    def write(self, output_dir: Path) -> Path:
        """Write the record atomically to ``output_dir/record.json`` and return that path."""
        path = Path(output_dir) / RECORD_FILE
        data = asdict(self)
        # An undefined metric (NaN) is written as null, so the file stays strict JSON.
        data["metrics"] = _nan_to_none(data["metrics"])
        data["per_item"] = {item: _nan_to_none(values) for item, values in data["per_item"].items()}
        atomic.write_json(path, data)
        return path

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        """Read a record file.

        Raises:
            DataFormatError: the file is not valid JSON or lacks a required field.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno,
                                  expected="a run record written by fieldharness") from None
        if not isinstance(data, dict):
            raise DataFormatError("a run record must be a JSON object", path=path,
                                  value=type(data).__name__, expected="an object")
        known = set(cls.__dataclass_fields__)
        for required in ("dataset", "method", "metrics", "kind"):
            if required not in data:
                raise DataFormatError("run record lacks a required field", path=path,
                                      field=required, expected="dataset, method, metrics, kind")
        record = cls(**{k: v for k, v in data.items() if k in known})
        record.metrics = _none_to_nan(record.metrics)
        record.per_item = {item: _none_to_nan(values) for item, values in record.per_item.items()}
        return record


def _nan_to_none(metrics: dict[str, Any]) -> dict[str, Any]:
    return {name: None if isinstance(value, float) and math.isnan(value) else value
            for name, value in metrics.items()}


def _none_to_nan(metrics: dict[str, Any]) -> dict[str, Any]:
    return {name: math.nan if value is None else value for name, value in metrics.items()}


def new_run_dir(dataset: str, method: str, data_dir: Path | None = None) -> Path:
    """Return a new, unique folder under ``FIELDHARNESS_HOME/runs`` for one run."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    safe_method = "".join(c if c.isalnum() or c in "-_." else "_" for c in method)
    return runs_dir(data_dir) / f"{stamp}-{dataset}-{safe_method}-{secrets.token_hex(3)}"


def git_state() -> tuple[str | None, bool | None]:
    """Return the git commit of the fieldharness source tree and whether it has local changes.

    Both are ``None`` for an installed wheel or when git is not available.
    """
    source = Path(__file__).resolve().parent.parent
    if not (source / ".git").exists():
        return None, None
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
        status = subprocess.run(["git", "-C", str(source), "status", "--porcelain",
                                 "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit.strip() or None, bool(status.strip())


def hardware_info() -> dict[str, Any]:
    """Describe the machine: CPU, core count, memory and, if torch is already loaded, the GPU.

    torch is never imported here, so evaluating without the ``train`` extra stays torch-free.
    """
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "system": platform.system(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                count = torch.cuda.device_count()
                info["gpu"] = f"{count}x{torch.cuda.get_device_name(0)}"
        except Exception:  # noqa: BLE001 - a broken CUDA setup must not lose the record
            info["gpu"] = "unavailable"
    return info


def find_records(root: Path) -> list[Path]:
    """Return every ``record.json`` below ``root``, sorted by path.

    Linked run folders are followed (a runs folder that gathers links to runs kept elsewhere),
    each real folder once, so a link cycle ends.
    """
    found: list[Path] = []
    seen: set[str] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders.clear()
            continue
        seen.add(real)
        if RECORD_FILE in files:
            found.append(Path(folder) / RECORD_FILE)
    return sorted(found)
