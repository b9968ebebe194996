"""Downloads against a local HTTP server: mirrors, retries, resume, checksums."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from _toy_plugin import SPEC, ToyPlugin, csv_text

from harness.checksum import md5_file, sha256_file
from harness.download import download_dataset, download_file
from harness.errors import ChecksumError, DownloadError, FieldHarnessError, UnknownNameError
from harness.registry import register_dataset
from harness.spec import RemoteFile

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, so a resumed transfer spans several blocks
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@dataclasses.dataclass
class Behaviour:
    """How the test server responds; the counters record the requests it received."""

    files: dict[str, bytes]
    fail_first: int = 0
    cut_first: int = 0
    """Respond to this many requests with only half of the body, then close the connection."""
    ignore_range: bool = False
    wrong_bytes: bool = False
    requests: int = 0
    range_headers: list[str | None] = dataclasses.field(default_factory=list)


def _make_handler(behaviour: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            behaviour.requests += 1
            behaviour.range_headers.append(self.headers.get("Range"))
            if behaviour.requests <= behaviour.fail_first:
                self.send_error(503, "Service Unavailable")
                return
            body = behaviour.files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            if behaviour.wrong_bytes:
                body = b"x" * len(body)

            start = 0
            range_header = self.headers.get("Range")
            if range_header and not behaviour.ignore_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_error(416, "Range Not Satisfiable")
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            chunk = body[start:]
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            if behaviour.requests <= behaviour.fail_first + behaviour.cut_first:
                self.wfile.write(chunk[: len(chunk) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(chunk)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    """Yield the base URL of a local server and the behaviour object that drives it."""
    behaviour = Behaviour(files={"/data.bin": PAYLOAD})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(behaviour))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", behaviour
    finally:
        httpd.shutdown()
        httpd.server_close()


def _remote(base: str, **checksums: object) -> RemoteFile:
    return RemoteFile("data.bin", urls=(f"{base}/data.bin",), **checksums)


def test_checksum_functions_match_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(PAYLOAD * 3)
    assert md5_file(path) == hashlib.md5(PAYLOAD * 3).hexdigest()
    assert sha256_file(path) == hashlib.sha256(PAYLOAD * 3).hexdigest()


def test_download_checks_md5(server, tmp_path: Path) -> None:
    base, behaviour = server
    path = download_file(_remote(base, md5=PAYLOAD_MD5), tmp_path, progress=False)
    assert path == tmp_path / "data.bin"
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()
    assert behaviour.requests == 1


def test_download_skips_valid_existing_file(server, tmp_path: Path) -> None:
    base, behaviour = server
    (tmp_path / "data.bin").write_bytes(PAYLOAD)
    download_file(_remote(base, sha256=PAYLOAD_SHA256), tmp_path, progress=False)
    assert behaviour.requests == 0


def test_download_replaces_invalid_existing_file(server, tmp_path: Path) -> None:
    base, behaviour = server
    (tmp_path / "data.bin").write_bytes(b"old")
    path = download_file(_remote(base, sha256=PAYLOAD_SHA256), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert behaviour.requests == 1


def test_download_retries_server_errors(server, tmp_path: Path) -> None:
    base, behaviour = server
    behaviour.fail_first = 2
    path = download_file(_remote(base, md5=PAYLOAD_MD5), tmp_path, progress=False, backoff=0)
    assert path.read_bytes() == PAYLOAD
    assert behaviour.requests == 3


def test_download_resumes_cut_transfer(server, tmp_path: Path) -> None:
    base, behaviour = server
    behaviour.cut_first = 1
    path = download_file(_remote(base, md5=PAYLOAD_MD5), tmp_path, progress=False, backoff=0)
    assert path.read_bytes() == PAYLOAD
    assert behaviour.requests == 2
    assert behaviour.range_headers[0] is None
    assert behaviour.range_headers[1] == f"bytes={len(PAYLOAD) // 2}-"


def test_download_resumes_existing_part_file(server, tmp_path: Path) -> None:
    base, behaviour = server
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:1000])
    path = download_file(_remote(base, md5=PAYLOAD_MD5), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert behaviour.range_headers == ["bytes=1000-"]


def test_download_restarts_corrupt_part_file(server, tmp_path: Path) -> None:
    base, behaviour = server
    (tmp_path / "data.bin.part").write_bytes(b"\0" * 1000)
    path = download_file(_remote(base, md5=PAYLOAD_MD5), tmp_path, progress=False, backoff=0)
    assert path.read_bytes() == PAYLOAD
    assert behaviour.range_headers == ["bytes=1000-", None]


def test_download_restarts_when_range_ignored(server, tmp_path: Path) -> None:
    base, behaviour = server
    behaviour.ignore_range = True
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:1000])
    path = download_file(_remote(base, md5=PAYLOAD_MD5), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD


def test_download_completed_part_file(server, tmp_path: Path) -> None:
    base, behaviour = server
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    path = download_file(_remote(base, md5=PAYLOAD_MD5), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert behaviour.requests == 1


def test_download_falls_back_to_next_mirror(server, tmp_path: Path) -> None:
    base, behaviour = server
    remote = RemoteFile("data.bin", urls=(f"{base}/missing.bin", f"{base}/data.bin"),
                        md5=PAYLOAD_MD5)
    path = download_file(remote, tmp_path, progress=False, backoff=0)
    assert path.read_bytes() == PAYLOAD
    assert behaviour.requests == 2  # a 404 is not retried on the same mirror


def test_download_wrong_bytes_raise_checksum_error(server, tmp_path: Path) -> None:
    base, behaviour = server
    behaviour.wrong_bytes = True
    actual = hashlib.md5(b"x" * len(PAYLOAD)).hexdigest()
    pattern = (
        rf"data\.bin downloaded from {base}/data\.bin has md5 {actual}, expected {PAYLOAD_MD5}"
    )
    with pytest.raises(ChecksumError, match=pattern):
        download_file(_remote(base, md5=PAYLOAD_MD5), tmp_path, progress=False, backoff=0)
    assert not (tmp_path / "data.bin").exists()
    assert not (tmp_path / "data.bin.part").exists()


def test_download_wrong_size_raise_checksum_error(server, tmp_path: Path) -> None:
    base, _ = server
    remote = _remote(base, size=len(PAYLOAD) + 1)
    pattern = rf"has size {len(PAYLOAD)}, expected {len(PAYLOAD) + 1}"
    with pytest.raises(ChecksumError, match=pattern):
        download_file(remote, tmp_path, progress=False)


def test_download_gives_up_after_retries(server, tmp_path: Path) -> None:
    base, behaviour = server
    behaviour.fail_first = 100
    pattern = (
        r"could not download data\.bin after up to 3 attempts per mirror: "
        r"http://127\.0\.0\.1:\d+/data\.bin: HTTP 503"
    )
    with pytest.raises(DownloadError, match=pattern):
        download_file(_remote(base, md5=PAYLOAD_MD5), tmp_path, retries=2, progress=False,
                      backoff=0)
    assert behaviour.requests == 3


def test_download_failure_keeps_part_file(server, tmp_path: Path) -> None:
    base, behaviour = server
    behaviour.cut_first = 100
    pattern = r"connection closed after \d+ of 1048576 bytes.*it resumes from .*data\.bin\.part\.$"
    with pytest.raises(DownloadError, match=pattern):
        download_file(_remote(base, md5=PAYLOAD_MD5), tmp_path, retries=1, progress=False,
                      backoff=0)
    assert (tmp_path / "data.bin.part").stat().st_size == len(PAYLOAD) * 3 // 4


def test_download_without_urls_raises(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"data\.bin has no download URL; download it by hand"):
        download_file(RemoteFile("data.bin", urls=()), tmp_path, progress=False)


def test_download_without_checksum_logs_sha256(server, tmp_path: Path, caplog) -> None:
    base, _ = server
    with caplog.at_level(logging.WARNING, logger="harness.download"):
        download_file(_remote(base), tmp_path, progress=False)
    assert f"has no published checksum; accepted it with SHA-256 {PAYLOAD_SHA256}" in caplog.text


def _register_served_toy(base: str) -> None:
    version = SPEC.version("1.1")
    remote = dataclasses.replace(version.files[0], urls=(f"{base}/toy/train.csv",))
    spec = dataclasses.replace(
        SPEC,
        name="served-toy",
        versions=(SPEC.version("1.0"), dataclasses.replace(version, files=(remote,))),
    )
    register_dataset("served-toy", type("ServedToy", (ToyPlugin,), {"spec": spec}))


def test_download_dataset_saves_under_data_home(server, isolated_homes: Path) -> None:
    base, behaviour = server
    behaviour.files["/toy/train.csv"] = csv_text("train", 4).encode()
    _register_served_toy(base)
    paths = download_dataset("served-toy", progress=False)
    assert paths == [isolated_homes / "downloads" / "served-toy" / "1.1" / "train.csv"]
    assert md5_file(paths[0]) == SPEC.version("1.1").files[0].md5


def test_download_dataset_unknown_file(server) -> None:
    base, _ = server
    _register_served_toy(base)
    with pytest.raises(UnknownNameError, match=r"unknown file of served-toy 1\.1 'nope\.csv'; "
                                               r"valid values are: train\.csv"):
        download_dataset("served-toy", files=["nope.csv"])


def test_download_dataset_without_files(server) -> None:
    base, _ = server
    _register_served_toy(base)
    with pytest.raises(FieldHarnessError, match=r"served-toy 1\.0 has no public download; get it "
                                                r"from https://example\.org/toy"):
        download_dataset("served-toy", version="1.0")
