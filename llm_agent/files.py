"""Copy files into and out of a kernel's working directory through the kernel protocol.

The kernel itself writes and reads the file (base64 in code, base64 on stdout), so
this works for a local process and a pod alike and needs no permission beyond
running code. Large files travel in chunks, each one execute request.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from .kernel import KernelSession
from broker.client.results import Execution

CHUNK_BYTES = 4 * 1024 * 1024


class TransferError(Exception):
    """The kernel could not write or read the file; the message says why."""


async def _run(kernel: KernelSession, code: str, what: str) -> Execution:
    # silent: transfers stay out of the kernel's history and execution count
    result = await kernel.execute(code, silent=True)
    if result.error:
        raise TransferError(f"{what}: {result.error.name}: {result.error.value}")
    if not result.ok:
        raise TransferError(f"{what}: {result.notice() or 'the kernel did not finish'}")
    return result


async def upload(
    kernel: KernelSession, data: bytes, remote_path: str, chunk_bytes: int = CHUNK_BYTES
) -> None:
    """Write ``data`` to ``remote_path`` (relative paths: the kernel's working directory)."""
    target = json.dumps(remote_path)
    for start in range(0, max(len(data), 1), chunk_bytes):
        chunk = base64.b64encode(data[start : start + chunk_bytes]).decode()
        mode = "wb" if start == 0 else "ab"
        code = (
            f"import base64 as _b64\nwith open({target}, {mode!r}) as _f:\n"
            f"    _f.write(_b64.b64decode({chunk!r}))\ndel _b64, _f"
        )
        await _run(kernel, code, f"writing {remote_path}")
    digest = await _remote_digest(kernel, remote_path)
    if digest != hashlib.sha256(data).hexdigest():
        raise TransferError(f"{remote_path}: checksum mismatch after upload")


async def upload_file(kernel: KernelSession, local: Path, remote_path: str | None = None) -> str:
    """Upload a local file; returns the path it has in the kernel."""
    remote = remote_path or local.name
    await upload(kernel, local.read_bytes(), remote)
    return remote


async def _remote_digest(kernel: KernelSession, remote_path: str) -> str:
    code = (
        "import hashlib as _h\n"
        f"with open({json.dumps(remote_path)}, 'rb') as _f:\n"
        "    print(_h.sha256(_f.read()).hexdigest())\ndel _h, _f"
    )
    return (await _run(kernel, code, f"checking {remote_path}")).stdout.strip()


async def download(
    kernel: KernelSession, remote_path: str, chunk_bytes: int = CHUNK_BYTES
) -> bytes:
    """Read ``remote_path`` from the kernel's filesystem."""
    target = json.dumps(remote_path)
    size_code = f"import os as _os\nprint(_os.path.getsize({target}))\ndel _os"
    size = int((await _run(kernel, size_code, f"reading {remote_path}")).stdout.strip())
    parts = []
    for start in range(0, size, chunk_bytes):
        code = (
            f"import base64 as _b64\nwith open({target}, 'rb') as _f:\n"
            f"    _f.seek({start})\n"
            f"    print(_b64.b64encode(_f.read({chunk_bytes})).decode())\ndel _b64, _f"
        )
        result = await _run(kernel, code, f"reading {remote_path}")
        parts.append(base64.b64decode(result.stdout.strip()))
    data = b"".join(parts)
    if len(data) != size:
        raise TransferError(f"{remote_path}: read {len(data)} of {size} bytes")
    return data
