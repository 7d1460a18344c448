"""Kernel state snapshots: a kernel's picklable variables saved to a file, restored later.

Everything travels through the kernel protocol, so pod kernels need no shared volume:
a silent call into the kernel (broker/kernel_calls.py) runs the code of
broker/snapshot_kernel.py; the kernel pickles its variables (cloudpickle) and hands
the compressed bytes back base64-encoded in the execute_reply. A restore sends the
bytes as the request's buffer.

Files live in ``<dir>/<id>.bin`` (the compressed pickles) beside ``<id>.json`` (who
owns it, what was saved and skipped), both mode 0600.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from traitlets import Float, Int, Unicode, default
from traitlets.config import LoggingConfigurable

from . import snapshot_kernel
from .auth import User
from .bridge import Bridge
from .errors import BrokerError, not_found
from .kernel_calls import KernelCall, evaluate, helper_expression, kernel_language
from .registry.managed_kernel import ManagedKernel
from .timestamps import format_time

_KERNEL_SOURCE = Path(snapshot_kernel.__file__).read_text()
_ID = re.compile(r"^[0-9a-f]{32}$")


def kernel_expression(call: str) -> str:
    """An expression that calls ``call`` in the kernel-side module, in a private namespace."""
    return helper_expression(_KERNEL_SOURCE, call)


async def _evaluate(
    bridge: Bridge, expression: str, timeout: float, buffers: list[bytes] | None = None
) -> dict[str, Any]:
    return await evaluate(
        bridge,
        KernelCall(expression=expression, buffers=buffers),
        mime=snapshot_kernel.MIME,
        timeout=timeout,
        what="take or restore the snapshot",
        timeout_setting="--SnapshotStore.timeout",
    )


class SnapshotStore(LoggingConfigurable):
    """Snapshot files in one directory, and the operations that fill and use them."""

    directory = Unicode(
        config=True,
        help="Directory of kernel state snapshots (env BROKER_SNAPSHOT_DIR); by default "
        "STATE_DIR/snapshots when --state-dir is given, else "
        "$XDG_DATA_HOME/kernel-broker/snapshots (~/.local/share/...); empty: snapshots off. "
        "A Kubernetes volume mounted here keeps them across broker pods.",
    )
    max_bytes = Int(
        64 * 1024 * 1024, config=True, help="Largest snapshot (compressed); 413 beyond."
    )
    timeout = Float(
        300.0, config=True, help="Seconds a kernel has to take or restore a snapshot (504 after)."
    )

    def __init__(self, default_directory: str, **kwargs: Any) -> None:
        """``default_directory``: where snapshots go unless configured (state_dir.py)."""
        self._default = default_directory
        super().__init__(**kwargs)

    @default("directory")
    def _default_directory(self) -> str:
        return os.environ.get("BROKER_SNAPSHOT_DIR", self._default)

    # --- files -----------------------------------------------------------------

    def _dir(self) -> Path:
        if not self.directory:
            raise BrokerError(
                409,
                "Snapshots are off (--snapshot-dir is empty): start the broker with "
                "--snapshot-dir DIR (BROKER_SNAPSHOT_DIR).",
            )
        path = Path(self.directory)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _write(self, path: Path, data: bytes) -> None:
        """Atomically, readable by the broker's user only: pickles hold the user's data."""
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def get(self, snapshot_id: str, user: User) -> dict[str, Any]:
        """A snapshot's description, or 404 when it is missing or someone else's."""
        path = self._dir() / f"{snapshot_id}.json"
        if not _ID.match(snapshot_id) or not path.exists():  # the id never reaches the path
            raise not_found("snapshot", snapshot_id)
        meta = json.loads(path.read_text())
        if not user.owns(meta["owner"]):
            raise not_found("snapshot", snapshot_id)
        return meta

    def list(self, user: User) -> list[dict[str, Any]]:
        metas = (json.loads(p.read_text()) for p in self._dir().glob("*.json"))
        return sorted((m for m in metas if user.owns(m["owner"])), key=lambda m: m["created"])

    def delete(self, snapshot_id: str, user: User) -> None:
        self.get(snapshot_id, user)
        directory = self._dir()
        (directory / f"{snapshot_id}.json").unlink(missing_ok=True)
        (directory / f"{snapshot_id}.bin").unlink(missing_ok=True)

    # --- kernels ---------------------------------------------------------------

    async def take(self, kernel: ManagedKernel) -> dict[str, Any]:
        """Snapshot a kernel's variables into a new file; its description."""
        directory = self._dir()
        _check_python(kernel)
        expression = kernel_expression(f"snapshot({self.max_bytes})")
        doc = await _evaluate(kernel.bridge, expression, self.timeout)
        if "payload" not in doc:
            largest = ", ".join(f"{n} ({s} bytes pickled)" for n, s in doc["largest"].items())
            raise BrokerError(
                413,
                f"The snapshot takes {doc['size']} bytes, over the limit of {self.max_bytes} "
                "(--SnapshotStore.max_bytes); "
                f"the largest variables are {largest}. Delete some and try again.",
            )
        meta = {
            "id": uuid.uuid4().hex,
            "kernel_id": kernel.id,
            "owner": kernel.owner,
            "created": format_time(time.time()),
            **{key: doc[key] for key in ("size", "compression", "python", "saved", "skipped")},
        }
        await asyncio.to_thread(self._store, directory, meta, doc["payload"])
        self.log.info(
            "snapshot saved id=%s kernel=%s size=%d names=%d skipped=%d",
            meta["id"],
            kernel.id,
            meta["size"],
            len(meta["saved"]),
            len(meta["skipped"]),
        )
        return meta

    def _store(self, directory: Path, meta: dict[str, Any], payload: str) -> None:
        data = base64.b64decode(payload)
        if len(data) > self.max_bytes:  # the kernel is the user's: do not trust its check
            raise BrokerError(
                413,
                f"The snapshot is over the limit of {self.max_bytes} bytes "
                "(--SnapshotStore.max_bytes).",
            )
        self._write(directory / f"{meta['id']}.bin", data)
        self._write(directory / f"{meta['id']}.json", json.dumps(meta).encode())

    async def restore(self, snapshot_id: str, kernel: ManagedKernel, user: User) -> dict[str, Any]:
        """Load a snapshot into a kernel; which variables came back and which failed."""
        meta = self.get(snapshot_id, user)
        _check_python(kernel)
        path = self._dir() / f"{snapshot_id}.bin"
        data = await asyncio.to_thread(path.read_bytes)
        expression = kernel_expression(f"restore({meta['compression']!r})")
        doc = await _evaluate(kernel.bridge, expression, self.timeout, [data])
        self.log.info(
            "snapshot restored id=%s kernel=%s restored=%d failed=%d",
            snapshot_id,
            kernel.id,
            len(doc["restored"]),
            len(doc["failed"]),
        )
        return {"snapshot": snapshot_id, "kernel_id": kernel.id, **doc}


def _check_python(kernel: ManagedKernel) -> None:
    """A live Python kernel: the snapshot code runs in IPython (cloudpickle); 501 otherwise,
    as for every per-language helper (files too)."""
    kernel.check_alive()
    language = kernel_language(kernel.bridge.kernel_info)
    if language != "python":
        raise BrokerError(
            501,
            f"Snapshots need a Python kernel (ipykernel); kernel {kernel.id} runs "
            f"{language or 'an unknown language'}. Save its state with the language's own "
            "tools (for example saveRDS in R) instead.",
        )
