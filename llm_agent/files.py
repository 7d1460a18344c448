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

from broker.client import files
from broker.client.rest import BrokerAPIError

from .kernel import KernelSession


class TransferError(Exception):
    """The broker refused to write or read a file; the message names it and says why."""


@contextmanager
def _transfer(what: str, path: str) -> Iterator[None]:
    try:
        yield
    except BrokerAPIError as e:  # a 404 here is the file's, not the kernelspec's: say so
        raise TransferError(f"cannot {what} {path}: {e.message} ({e.status})") from e


async def upload(kernel: KernelSession, data: bytes, remote_path: str) -> None:
    """Write ``data`` to ``remote_path`` (relative to the kernel's working directory)."""
    with _transfer("upload", remote_path):
        await files.upload(kernel.rest, kernel.kernel_id, remote_path, data)


async def upload_file(kernel: KernelSession, local: Path, remote_path: str | None = None) -> str:
    """Stream a local file to the kernel; returns the path it has there."""
    with _transfer("upload", str(local)):
        doc = await files.upload_file(kernel.rest, kernel.kernel_id, local, remote_path)
    return doc["path"]


async def download(kernel: KernelSession, remote_path: str) -> bytes:
    """The bytes of ``remote_path`` in the kernel."""
    with _transfer("download", remote_path):
        return await files.download(kernel.rest, kernel.kernel_id, remote_path)


async def download_file(kernel: KernelSession, remote_path: str, local: Path) -> Path:
    """Stream ``remote_path`` from the kernel to ``local``."""
    with _transfer("download", remote_path):
        await files.download_file(kernel.rest, kernel.kernel_id, remote_path, local)
    return local
