"""Declarative description of a dataset: versions, files, splits, configs, licence, citation.

A version is defined by the checksums its authors publish (MD5 where that is what they give) and
by its row counts, so ``prepare`` and ``verify`` can identify the version of a user's copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.errors import UnknownNameError

if TYPE_CHECKING:  # pyarrow is imported where tables are built, not for annotations
    import pyarrow as pa


@dataclass(frozen=True)
class RemoteFile:
    """One public file of a dataset version, with its mirrors and published checksum."""

    name: str
    urls: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None
    """Size in bytes, when the authors publish it."""


@dataclass(frozen=True)
class SplitSpec:
    """One split of a dataset (``train``, ``test``, ...)."""

    name: str
    description: str
    has_labels: bool = True


@dataclass(frozen=True)
class ConfigSpec:
    """One view of a dataset, i.e. one prepared table per split with the given schema."""

    name: str
    description: str
    schema: pa.Schema
    default: bool = False
    image_columns: tuple[str, ...] = ()
    """Columns that hold image file paths (or archive members); ``load_dataset`` decodes them
    lazily as images and ``publish`` embeds their bytes."""


@dataclass(frozen=True)
class DatasetVersion:
    """One release of a dataset.

    ``row_counts`` maps ``"<config>/<split>"`` to the number of rows of the complete release, so a
    prepared subset can be recognised and reported as one.
    """

    name: str
    description: str
    files: tuple[RemoteFile, ...] = ()
    row_counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    """Everything fieldharness records about a dataset before any file is read."""

    name: str
    title: str
    description: str
    homepage: str
    license: str
    redistributable: bool
    """Whether the licence allows publishing a copy (``publish`` needs a flag otherwise)."""
    citation: str
    """BibTeX entry of the dataset's paper, printed by ``python -m harness info NAME --bibtex``."""
    versions: tuple[DatasetVersion, ...]
    splits: tuple[SplitSpec, ...]
    configs: tuple[ConfigSpec, ...]
    default_version: str | None = None
    split_aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Split names that stand for one or more splits, e.g. BIOSCAN-5M's ``seen`` for
    ``train + val + test`` or ``validation`` for ``val``; ``load_dataset`` expands them."""

    def expand_splits(self, text: str) -> list[str]:
        """Return the splits that ``text`` names: split names or aliases joined with ``+``.

        Each split appears once, in the order of first mention.
        """
        expanded: list[str] = []
        for part in text.split("+"):
            name = part.strip()
            for split in self.split_aliases.get(name, (name,)):
                if split not in expanded:
                    expanded.append(split)
        return expanded

    def version(self, name: str | None = None) -> DatasetVersion:
        """Return the version called ``name``, or the default version for ``None``."""
        requested = name or self.default_version or self.versions[-1].name
        for version in self.versions:
            if version.name == requested:
                return version
        names = [v.name for v in self.versions]
        raise UnknownNameError(f"version of {self.name}", requested, names)

    def split(self, name: str) -> SplitSpec:
        """Return the split called ``name``."""
        for split in self.splits:
            if split.name == name:
                return split
        raise UnknownNameError(f"split of {self.name}", name, [s.name for s in self.splits])

    def config(self, name: str | None = None) -> ConfigSpec:
        """Return the config called ``name``, or the default config for ``None``."""
        for config in self.configs:
            if (name is None and config.default) or config.name == name:
                return config
        if name is None:
            return self.configs[0]
        raise UnknownNameError(f"config of {self.name}", name, [c.name for c in self.configs])
