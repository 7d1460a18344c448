"""Copy files into and out of a kernel's working directory: the broker's file API.

The broker moves the bytes through the kernel protocol in bounded chunks, so this
works alike for local and pod kernels; here it is a thin layer over
``broker.client.files`` for a ``KernelSession``. Failures are BrokerAPIError.
"""

from __future__ import annotations

from pathlib import Path

from broker.client import files

from .kernel import KernelSession


async def upload(kernel: KernelSession, data: bytes, remote_path: str) -> None:
    """Write ``data`` to ``remote_path`` (relative to the kernel's working directory)."""
    await files.upload(kernel.rest, kernel.kernel_id, remote_path, data)


async def upload_file(kernel: KernelSession, local: Path, remote_path: str | None = None) -> str:
    """Stream a local file to the kernel; returns the path it has there."""
    doc = await files.upload_file(kernel.rest, kernel.kernel_id, local, remote_path)
    return doc["path"]


async def download(kernel: KernelSession, remote_path: str) -> bytes:
    """The bytes of ``remote_path`` in the kernel."""
    return await files.download(kernel.rest, kernel.kernel_id, remote_path)


async def download_file(kernel: KernelSession, remote_path: str, local: Path) -> Path:
    """Stream ``remote_path`` from the kernel to ``local``."""
    await files.download_file(kernel.rest, kernel.kernel_id, remote_path, local)
    return local
