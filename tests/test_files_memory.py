"""A 200 MB file through the file API costs the broker a bounded amount of memory.

The broker's peak resident memory (VmHWM, reset through /proc/PID/clear_refs before
each transfer) is compared with its resident memory just before: a PUT, a multipart
POST and a download of 200 MB each raise it by less than ``BOUND``, a small multiple
of the 4 MiB chunk, where holding the file would cost 200 MB or more. The figures are
printed (run with ``-s`` to see them); docs/files.md quotes them.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .broker_process import RunningBroker, kernel_in, start_broker

pytestmark = pytest.mark.slow

SIZE = 200 * 1024 * 1024
PIECE = 1024 * 1024
BOUND = 64 * 1024 * 1024


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class PeakMemory:
    """How far a process's resident memory rises above where it was at the start."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> PeakMemory:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM to VmRSS
        except OSError:
            pytest.skip("cannot reset the broker's peak RSS here (/proc/PID/clear_refs)")
        self.start = status_kib(self.pid, "VmRSS") * 1024
        self.began = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.began
        self.growth = status_kib(self.pid, "VmHWM") * 1024 - self.start

    def report(self, what: str) -> str:
        rate = SIZE / 2**20 / self.seconds
        return f"{what}: peak RSS +{self.growth / 2**20:.1f} MiB, {rate:.0f} MiB/s"


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(SIZE // PIECE):
            piece = os.urandom(PIECE)
            digest.update(piece)
            f.write(piece)
    return path, digest.hexdigest()


@pytest.fixture(scope="module")
def memory_broker(tmp_path_factory, broker_env) -> Iterator[RunningBroker]:
    broker = start_broker(tmp_path_factory.mktemp("files-memory"), env=broker_env)
    yield broker
    broker.stop()


@pytest.fixture
def kernel(memory_broker: RunningBroker, workdir: Path) -> Iterator[str]:
    """A kernel of the measured broker, working in ``workdir``."""
    with kernel_in(memory_broker, workdir) as kernel_id:
        yield kernel_id


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(PIECE):
            digest.update(piece)
    return digest.hexdigest()


def multipart_body(path: Path, boundary: str) -> Iterator[bytes]:
    """A one-file form, streamed from disk (requests sends a generator chunked)."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="f"; '
        f'filename="form.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    with open(path, "rb") as f:
        while piece := f.read(PIECE):
            yield piece
    yield f"\r\n--{boundary}--\r\n".encode()


def test_a_200_mb_put_does_not_stay_in_the_broker(
    memory_broker: RunningBroker, kernel: str, workdir: Path, big_file: tuple[Path, str]
) -> None:
    path, digest = big_file
    with PeakMemory(memory_broker.proc.pid) as peak, open(path, "rb") as f:
        r = memory_broker.request("PUT", f"/api/kernels/{kernel}/files/big.bin", data=f)
    assert r.status_code == 201, r.text
    print(peak.report("PUT 200 MiB"))
    assert sha256_of(workdir / "big.bin") == digest
    assert peak.growth < BOUND


def test_a_200_mb_multipart_upload_does_not_stay_in_the_broker(
    memory_broker: RunningBroker, kernel: str, workdir: Path, big_file: tuple[Path, str]
) -> None:
    path, digest = big_file
    headers = {**memory_broker.headers(), "Content-Type": "multipart/form-data; boundary=b0und"}
    with PeakMemory(memory_broker.proc.pid) as peak:
        r = memory_broker.session.post(
            f"{memory_broker.url}/api/kernels/{kernel}/files/",
            data=multipart_body(path, "b0und"),
            headers=headers,
            timeout=300,
        )
    assert r.status_code == 201, r.text
    print(peak.report("multipart POST 200 MiB"))
    assert sha256_of(workdir / "form.bin") == digest
    assert peak.growth < BOUND


def test_a_200_mb_download_streams(
    memory_broker: RunningBroker, kernel: str, workdir: Path, big_file: tuple[Path, str]
) -> None:
    path, digest = big_file
    os.link(path, workdir / "big.bin")
    received = hashlib.sha256()
    with PeakMemory(memory_broker.proc.pid) as peak:
        r = memory_broker.request("GET", f"/api/kernels/{kernel}/files/big.bin", stream=True)
        for piece in r.iter_content(PIECE):
            received.update(piece)
    print(peak.report("GET 200 MiB"))
    assert received.hexdigest() == digest
    assert peak.growth < BOUND
