"""Download the public files of a dataset version: mirrors, retries, resume and checksums.

Each file goes to ``<name>.part`` beside its destination, is resumed with an HTTP ``Range``
request after an interruption, is checked against the checksum its authors publish, and only
then is renamed into place.
"""

from __future__ import annotations

import http.client
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from harness import __version__
from harness.checksum import BLOCK_SIZE, file_digests
from harness.errors import ChecksumError, DownloadError, FieldHarnessError, UnknownNameError
from harness.paths import downloads_dir
from harness.spec import RemoteFile

logger = logging.getLogger(__name__)

USER_AGENT = f"fieldharness/{__version__}"
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
"""HTTP status codes worth retrying on the same mirror; other errors move to the next mirror."""


class _TransientError(Exception):
    """A failure that another attempt on the same mirror may not repeat."""


class _MirrorError(Exception):
    """A failure that makes further attempts on the same mirror pointless."""


@dataclass
class _Mismatch:
    url: str
    algorithm: str
    expected: str
    actual: str


def _expected_checksums(remote: RemoteFile) -> dict[str, str]:
    expected = {}
    if remote.md5:
        expected["md5"] = remote.md5.lower()
    if remote.sha256:
        expected["sha256"] = remote.sha256.lower()
    return expected


def _find_mismatch(path: Path, remote: RemoteFile, url: str) -> _Mismatch | None:
    """Return the first difference between ``path`` and the published size and checksums."""
    if remote.size is not None and path.stat().st_size != remote.size:
        return _Mismatch(url, "size", str(remote.size), str(path.stat().st_size))
    expected = _expected_checksums(remote)
    digests = file_digests(path)
    for algorithm, value in expected.items():
        if digests[algorithm] != value:
            return _Mismatch(url, algorithm, value, digests[algorithm])
    if not expected:
        logger.warning(
            "%s has no published checksum; accepted it with SHA-256 %s", path.name,
            digests["sha256"],
        )
    return None


def _fetch_once(url: str, part: Path, *, timeout: float, progress: bool, name: str) -> int:
    """Download ``url`` into ``part``, resuming from the bytes already there.

    Returns:
        The byte offset the transfer resumed from (0 for a complete transfer).

    Raises:
        _TransientError: the connection failed, timed out or ended early (``part`` keeps the
            bytes received so far), or the server returned a retryable status.
        _MirrorError: the server returned a status that another attempt will not change.
    """
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")

    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # The partial file already contains every byte (or more than the server has); the
            # checksum check that follows decides whether it is usable.
            return offset
        if err.code in RETRY_STATUS:
            raise _TransientError(f"HTTP {err.code} {err.reason}") from err
        raise _MirrorError(f"HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise _TransientError(f"{type(err).__name__}: {err}") from err

    with response:
        if response.status == 206:
            mode = "ab"
        else:
            # A server that ignores Range sends the whole file with status 200.
            if offset:
                logger.info("%s ignored the Range request; restarting from byte 0", url)
            offset = 0
            mode = "wb"
        length = response.headers.get("Content-Length")
        expected_total = offset + int(length) if length is not None else None

        received = 0
        try:
            with (
                open(part, mode) as file,
                tqdm(
                    total=expected_total, initial=offset, unit="B", unit_scale=True,
                    unit_divisor=1024, desc=name, disable=not progress, leave=False,
                ) as bar,
            ):
                while block := response.read(BLOCK_SIZE):
                    file.write(block)
                    received += len(block)
                    bar.update(len(block))
        except (OSError, http.client.HTTPException) as err:
            raise _TransientError(
                f"connection lost after {offset + received} bytes: {err}"
            ) from err

    if expected_total is not None and offset + received < expected_total:
        raise _TransientError(
            f"connection closed after {offset + received} of {expected_total} bytes"
        )
    return offset


def download_file(
    remote: RemoteFile,
    dest_dir: Path,
    *,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
    backoff: float = 1.0,
) -> Path:
    """Download ``remote`` into ``dest_dir`` and return the path of the checked file.

    A file already at the destination that matches the published size and checksums is kept
    without any request. Mirrors are tried in the order of ``remote.urls``; on each one a failed
    transfer is retried, resuming the ``.part`` file with an HTTP ``Range`` request. A file with
    no published checksum is accepted, and its SHA-256 is logged as a warning.

    Args:
        remote: The file, its mirrors and its published checksums.
        dest_dir: Folder to save the file into; created when missing.
        retries: Further attempts on one mirror after its first failed attempt.
        timeout: Seconds to wait for a connection or for the next block of data.
        progress: Show a tqdm progress bar per transfer.
        backoff: Seconds to wait before the first retry; each later retry waits twice as long.

    Raises:
        ChecksumError: every mirror failed and at least one served bytes whose size or
            checksum differs from the published value.
        DownloadError: every mirror failed on every attempt.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / remote.name
    part = dest_dir / f"{remote.name}.part"

    if dest.exists():
        mismatch = _find_mismatch(dest, remote, str(dest))
        if mismatch is None:
            logger.info("%s is already downloaded and valid", dest)
            return dest
        logger.warning(
            "%s exists but its %s is %s, expected %s; downloading it again",
            dest, mismatch.algorithm, mismatch.actual, mismatch.expected,
        )
    if not remote.urls:
        raise DownloadError(f"{remote.name} has no download URL; download it by hand into {dest}")

    failures: list[str] = []
    mismatches: list[_Mismatch] = []
    for url in remote.urls:
        for attempt in range(retries + 1):
            if attempt:
                delay = backoff * 2 ** (attempt - 1)
                logger.info("retrying %s in %.1f s (attempt %d of %d)", url, delay, attempt + 1,
                            retries + 1)
                time.sleep(delay)
            try:
                logger.info("downloading %s", url)
                offset = _fetch_once(url, part, timeout=timeout, progress=progress,
                                     name=remote.name)
            except _TransientError as err:
                logger.warning("download of %s failed: %s", url, err)
                failures.append(f"{url}: {err}")
                continue
            except _MirrorError as err:
                logger.warning("download of %s failed: %s; trying the next mirror", url, err)
                failures.append(f"{url}: {err}")
                break

            mismatch = _find_mismatch(part, remote, url)
            if mismatch is None:
                os.replace(part, dest)
                logger.info("saved %s", dest)
                return dest
            part.unlink(missing_ok=True)
            if offset:
                # The bytes kept from an earlier transfer may be the corrupt ones, so the same
                # mirror gets another attempt from byte 0.
                logger.warning(
                    "%s resumed from byte %d is invalid (%s %s, expected %s); restarting it",
                    remote.name, offset, mismatch.algorithm, mismatch.actual, mismatch.expected,
                )
                failures.append(f"{url}: resumed file has {mismatch.algorithm} {mismatch.actual}")
                continue
            logger.warning(
                "%s from %s is invalid: %s is %s, expected %s; trying the next mirror",
                remote.name, url, mismatch.algorithm, mismatch.actual, mismatch.expected,
            )
            mismatches.append(mismatch)
            failures.append(f"{url}: {mismatch.algorithm} {mismatch.actual}")
            break

    if mismatches:
        first = mismatches[0]
        raise ChecksumError(
            f"{remote.name} downloaded from {first.url} has {first.algorithm} {first.actual}, "
            f"expected {first.expected}; every mirror failed ({'; '.join(failures)}). "
            "The mirror may serve another release: check the dataset homepage."
        )
    resume = f"; it resumes from {part}" if part.exists() else ""
    raise DownloadError(
        f"could not download {remote.name} after up to {retries + 1} attempts per mirror: "
        f"{'; '.join(failures)}. Check the network and run the download again{resume}."
    )


def download_dataset(
    name: str,
    *,
    version: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    files: list[str] | None = None,
    progress: bool = True,
) -> list[Path]:
    """Download the public files of dataset ``name`` at ``version`` and return their paths.

    Files go to ``<data home>/downloads/<name>/<version>/``.

    Args:
        name: Registered dataset name.
        version: Dataset version; the spec's default for ``None``.
        data_dir: Override of the data home.
        files: Names of the files to fetch; every file of the version for ``None``.
        progress: Show tqdm progress bars.

    Raises:
        UnknownNameError: the dataset, version or a file name is not known.
        FieldHarnessError: the version lists no downloadable file.
        DownloadError, ChecksumError: as raised by :func:`download_file`.
    """
    from harness.registry import get_dataset

    spec = get_dataset(name).spec
    dataset_version = spec.version(version)
    if not dataset_version.files:
        raise FieldHarnessError(
            f"{name} {dataset_version.name} has no public download; get it from {spec.homepage} "
            f"and run: python -m harness prepare {name} --source <folder of the download>"
        )

    by_name = {remote.name: remote for remote in dataset_version.files}
    requested = list(by_name) if files is None else list(files)
    for file_name in requested:
        if file_name not in by_name:
            raise UnknownNameError(f"file of {name} {dataset_version.name}", file_name, by_name)

    dest_dir = downloads_dir(name, data_dir) / dataset_version.name
    return [download_file(by_name[n], dest_dir, progress=progress) for n in requested]
