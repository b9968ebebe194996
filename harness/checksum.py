"""File checksums (SHA-256 and MD5), computed in streamed 1 MiB blocks."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

BLOCK_SIZE = 1 << 20
"""Bytes read per step, so that files of any size hash in constant memory."""


def _hash_file(
    path: str | os.PathLike[str],
    digest: hashlib._Hash,
    on_block: Callable[[int], object] | None = None,
) -> str:
    with open(path, "rb") as file:
        while block := file.read(BLOCK_SIZE):
            digest.update(block)
            if on_block is not None:
                on_block(len(block))
    return digest.hexdigest()


def sha256_file(
    path: str | os.PathLike[str], on_block: Callable[[int], object] | None = None
) -> str:
    """Return the hex SHA-256 of the file at ``path``.

    Args:
        path: File to hash.
        on_block: Called with the byte count of each block read, e.g. ``tqdm.update``.
    """
    return _hash_file(path, hashlib.sha256(), on_block)


def md5_file(path: str | os.PathLike[str], on_block: Callable[[int], object] | None = None) -> str:
    """Return the hex MD5 of the file at ``path``, the checksum many dataset authors publish.

    Args:
        path: File to hash.
        on_block: Called with the byte count of each block read, e.g. ``tqdm.update``.
    """
    return _hash_file(path, hashlib.md5(usedforsecurity=False), on_block)


def file_digests(path: Path) -> dict[str, str]:
    """Return ``{"md5": ..., "sha256": ...}`` of the file at ``path`` in one pass over it."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(BLOCK_SIZE):
            md5.update(block)
            sha256.update(block)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}
