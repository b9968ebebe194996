"""The manifest of a prepared dataset: what was read, what was written, and their checksums.

``manifest.json`` sits at the root of every prepared copy. ``verify`` re-hashes against it, and
``load_dataset`` compares the sizes and modification times of the source files with it (and
re-hashes a file whose mtime alone changed).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.atomic import write_json
from harness.errors import DataFormatError

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
"""Layout version of ``manifest.json``; a reader rejects a newer one."""


@dataclass
class Manifest:
    """Record of one prepared copy of a dataset version.

    ``source_files`` maps each source file, relative to ``source_root``, to its ``sha256``,
    ``size`` (bytes) and ``mtime`` (seconds since the epoch). ``tables`` maps ``"config/split"``
    to ``path`` (the Parquet file, relative to the prepared folder), ``arrow_path`` (the Arrow IPC
    stream file), ``rows``, ``sha256`` and ``arrow_sha256`` of the two files, and ``schema``
    (column name to Arrow type). ``row_counts`` maps ``"config/split"`` to the number of rows.
    """

    dataset: str
    version: str
    data_kind: str = "real"
    subset: bool = False
    notes: list[str] = field(default_factory=list)
    source_root: str = ""
    source_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    fieldharness_version: str = ""
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest as plain JSON-compatible data."""
        return asdict(self)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, path: str | os.PathLike[str] | None = None
    ) -> Manifest:
        """Build a manifest from :meth:`to_dict` output.

        Raises:
            DataFormatError: a required key is missing or the layout version is newer than this
                fieldharness reads.
        """
        known = {f.name for f in fields(cls)}
        for key in ("dataset", "version", "tables"):
            if key not in data:
                raise DataFormatError(
                    "manifest is missing a key", path=path, field=key,
                    expected="a manifest.json written by python -m harness prepare",
                )
        format_version = data.get("format_version", FORMAT_VERSION)
        if format_version > FORMAT_VERSION:
            raise DataFormatError(
                "manifest was written by a newer fieldharness", path=path,
                field="format_version", value=format_version,
                expected=f"{FORMAT_VERSION} or lower; upgrade fieldharness or prepare again",
            )
        return cls(**{key: value for key, value in data.items() if key in known})

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read a manifest from the JSON file at ``path``.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            DataFormatError: the file is not valid JSON or lacks a required key.
        """
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataFormatError(
                f"manifest is not valid JSON ({err.msg})", path=path, line=err.lineno,
                expected="a manifest.json written by python -m harness prepare",
            ) from err
        if not isinstance(data, dict):
            raise DataFormatError("manifest is not a JSON object", path=path,
                                  expected="a manifest.json written by python -m harness prepare")
        return cls.from_dict(data, path=path)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the manifest as JSON to ``path`` atomically."""
        write_json(path, self.to_dict())
