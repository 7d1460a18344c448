"""Copy files into and out of a kernel's working directory: the broker's file API.

The broker moves the bytes through the kernel protocol in bounded chunks, so this
works alike for local and pod kernels; here it is a thin layer over
``broker.client.files`` for a ``KernelSession``. A refused transfer is a TransferError
naming the file and the broker's reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from broker.client import files
from broker.client.files import Producer
from broker.client.rest import BrokerAPIError

from .kernel import KernelSession

# A transfer that streams from a person's browser may be slow: allow it an hour.
STREAM_TIMEOUT = 3600.0


class TransferError(Exception):
    """The broker refused to write or read a file; the message names it and says why."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status  # the broker's HTTP status (404: no such file, 413: too large)


@contextmanager
def _transfer(what: str, path: str) -> Iterator[None]:
    try:
        yield
    except BrokerAPIError as e:  # a 404 here is the file's, not the kernelspec's: say so
        raise TransferError(f"cannot {what} {path}: {e.message} ({e.status})", e.status) from e


async def upload(kernel: KernelSession, data: bytes, remote_path: str) -> None:
    """Write ``data`` to ``remote_path`` (relative to the kernel's working directory)."""
    with _transfer("upload", remote_path):
        await files.upload(kernel.rest, kernel.kernel_id, remote_path, data)


async def upload_file(kernel: KernelSession, local: Path, remote_path: str | None = None) -> str:
    """Stream a local file to the kernel; returns the path it has there."""
    with _transfer("upload", str(local)):
        doc = await files.upload_file(kernel.rest, kernel.kernel_id, local, remote_path)
    return doc["path"]


async def upload_stream(
    kernel: KernelSession, produce: Producer, size: int, remote_path: str
) -> dict[str, Any]:
    """Stream ``size`` bytes that ``produce`` writes to ``remote_path``; the file's model."""
    with _transfer("upload", remote_path):
        return await files.upload_stream(
            kernel.rest, kernel.kernel_id, remote_path, produce, size, STREAM_TIMEOUT
        )


async def download(kernel: KernelSession, remote_path: str) -> bytes:
    """The bytes of ``remote_path`` in the kernel."""
    with _transfer("download", remote_path):
        return await files.download(kernel.rest, kernel.kernel_id, remote_path)


async def download_file(kernel: KernelSession, remote_path: str, local: Path) -> Path:
    """Stream ``remote_path`` from the kernel to ``local``."""
    with _transfer("download", remote_path):
        await files.download_file(kernel.rest, kernel.kernel_id, remote_path, local)
    return local


async def download_to(kernel: KernelSession, remote_path: str, sink: IO[bytes]) -> int:
    """Stream ``remote_path`` from the kernel into ``sink``; the bytes written."""
    with _transfer("download", remote_path):
        return await files.download_to(
            kernel.rest, kernel.kernel_id, remote_path, sink, STREAM_TIMEOUT
        )


async def list_files(kernel: KernelSession, remote_path: str = "") -> dict[str, Any]:
    """The kernel's working directory (or a directory in it) with its ``entries``."""
    with _transfer("list", remote_path or "the working directory"):
        return await files.list_files(kernel.rest, kernel.kernel_id, remote_path)
