"""Lazy, fork-safe reading of prepared image locations: files, or members of zip archives.

A prepared table stores each image as an absolute file path or as ``/abs/archive.zip::member``
(:data:`harness.plugin.ARCHIVE_MEMBER_SEPARATOR`). :class:`ImageStore` keeps those locations
compactly (each folder or archive once, the names as one bytes array), decodes an image only
when it is asked for, and opens each zip archive once per process. The torch datasets of the
dataset packages (``sewerml.torchdata``, ``bioscan.torchdata``) read their images through it.

This module does not import torch.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from PIL import Image, UnidentifiedImageError

from harness.errors import DataFormatError, FieldHarnessError
from harness.plugin import ARCHIVE_MEMBER_SEPARATOR

__all__ = ["ImageNotFoundError", "ImageStore", "split_locations"]

_FILE = 0
_ARCHIVE = 1


class ImageNotFoundError(FieldHarnessError, FileNotFoundError):
    """An image file, zip archive or archive member recorded at prepare time is gone."""


def split_locations(images: pl.Series) -> tuple[list[tuple[int, str]], np.ndarray, np.ndarray]:
    """Split image locations into containers (folders and archives) and names inside them.

    Storing each container once and the names as a bytes array keeps a million locations in
    tens of megabytes, and numpy arrays are not touched by reference counting in forked
    DataLoader workers.

    Returns:
        ``(containers, container_ids, names)``: the ``(kind, path)`` of each container, the
        container of each image (int32) and the file or member name of each image (bytes).
    """
    parts = pl.DataFrame({"image": images.cast(pl.String)}).with_columns(
        pl.col("image").str.contains(ARCHIVE_MEMBER_SEPARATOR, literal=True).alias("in_archive")
    )
    member = pl.col("image").str.splitn(ARCHIVE_MEMBER_SEPARATOR, 2)
    parts = parts.with_columns(
        pl.when(pl.col("in_archive"))
        .then(member.struct.field("field_0"))
        .otherwise(pl.col("image").str.replace(r"/[^/]*$", ""))
        .alias("container"),
        pl.when(pl.col("in_archive"))
        .then(member.struct.field("field_1"))
        .otherwise(pl.col("image").str.extract(r"([^/]*)$", 1))
        .alias("name"),
    )
    keys = parts.select("in_archive", "container").unique(maintain_order=True)
    containers = [(_ARCHIVE if in_archive else _FILE, path)
                  for in_archive, path in keys.iter_rows()]
    ids = parts.join(keys.with_row_index("id"), on=["in_archive", "container"], how="left",
                     maintain_order="left")["id"]
    names = np.array(parts["name"].to_list(), dtype=np.bytes_)
    return containers, ids.to_numpy().astype(np.int32), names


class ImageStore:
    """The images of one prepared table, decoded on request into RGB PIL images.

    Zip archives are opened on first use in each process, once per archive, so a member read
    does not parse the central directory again. A forked DataLoader worker opens its own
    handles, because a handle shared with the parent would share its file offset, and open
    handles are left out when the store is pickled for spawned workers.

    Args:
        images: Location of each image: an absolute file path or ``/abs/archive.zip::member``;
            no nulls (leave records without an image out first).
        keys: The record name of each image (e.g. ``Filename``, ``processid``), used in error
            messages.
        dataset: Dataset name used in error messages ("prepare DATASET again").
        image_format: What a valid file holds, for the decode error (e.g. ``"a JPEG image"``).

    Raises:
        FieldHarnessError: ``images`` has nulls or its length differs from ``keys``.
    """

    def __init__(self, images: pl.Series, keys: Sequence[str], *, dataset: str,
                 image_format: str = "an image"):
        if images.null_count():
            raise FieldHarnessError(f"{images.null_count()} image locations are null; leave "
                                    "records without an image out before reading images")
        if len(images) != len(keys):
            raise FieldHarnessError(f"{len(images)} image locations for {len(keys)} keys")
        self.dataset = dataset
        self.image_format = image_format
        self._keys = np.array(list(keys), dtype=np.bytes_)
        self._containers, self._container_ids, self._names = split_locations(images)
        self._archives: dict[str, zipfile.ZipFile] = {}
        self._archives_pid: int | None = None

    def __len__(self) -> int:
        return len(self._names)

    def location(self, index: int) -> str:
        """Return where image ``index`` is stored: a file path or ``archive.zip::member``."""
        kind, path = self._containers[self._container_ids[index]]
        name = self._names[index].decode()
        if kind == _ARCHIVE:
            return f"{path}{ARCHIVE_MEMBER_SEPARATOR}{name}"
        return f"{path}/{name}"

    def load(self, index: int) -> Image.Image:
        """Decode image ``index`` into an RGB PIL image.

        Raises:
            ImageNotFoundError: The file, the archive or the member is missing; the message
                names it and the record's key.
            DataFormatError: The file is not a readable image, or the archive is not a zip file.
        """
        kind, path = self._containers[self._container_ids[index]]
        name = self._names[index].decode()
        key = self._keys[index].decode()
        if kind == _FILE:
            file_path = f"{path}/{name}"
            try:
                return self._decode(file_path, file_path, key)
            except FileNotFoundError as err:
                raise ImageNotFoundError(
                    f"image file {file_path} of {key} not found; prepare {self.dataset} again "
                    "if the images moved"
                ) from err

        archive = self._archive(path)
        try:
            data = archive.read(name)
        except KeyError as err:
            raise ImageNotFoundError(
                f"member {name} of {key} not found in zip archive {path}; prepare "
                f"{self.dataset} again if the archive changed"
            ) from err
        return self._decode(data, f"{path}{ARCHIVE_MEMBER_SEPARATOR}{name}", key)

    def _decode(self, data: bytes | str, where: str, key: str) -> Image.Image:
        try:
            with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
                return image.convert("RGB")
        except UnidentifiedImageError as err:
            raise DataFormatError(f"failed to decode image {key}", path=where,
                                  expected=self.image_format) from err

    def _archive(self, path: str) -> zipfile.ZipFile:
        """Return this process's open handle of a zip archive, opening it on first use."""
        pid = os.getpid()
        if self._archives_pid != pid:
            # A forked child would share the parent's file offsets, so it drops the handles.
            self._archives = {}
            self._archives_pid = pid
        handle = self._archives.get(path)
        if handle is None:
            try:
                handle = zipfile.ZipFile(path)
            except FileNotFoundError as err:
                raise ImageNotFoundError(
                    f"zip archive {path} not found; prepare {self.dataset} again if it moved"
                ) from err
            except zipfile.BadZipFile as err:
                raise DataFormatError("invalid zip archive", path=path) from err
            self._archives[path] = handle
        return handle

    def close(self) -> None:
        """Close the zip archives this process opened. The next read reopens them."""
        if self._archives_pid == os.getpid():
            for handle in self._archives.values():
                handle.close()
        self._archives = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_archives"] = {}
        state["_archives_pid"] = None
        return state
