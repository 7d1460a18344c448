"""Kernel records that outlive the broker process: one JSON file per kernel, mode 0600.

A record holds what a later broker needs to adopt the kernel: its spec and owner, the
connection info (with its HMAC key, hence the file mode), the provisioner's own info
(pid, or pod name) and the launch arguments a restart repeats.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("broker.store")


class KernelStore:
    """Records in ``directory/kernels/{id}.json``."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory) / "kernels"
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)

    def _path(self, kernel_id: str) -> Path:
        if "/" in kernel_id or kernel_id.startswith("."):
            raise ValueError(f"invalid kernel id {kernel_id!r}")
        return self.directory / f"{kernel_id}.json"

    def save(self, record: dict[str, Any]) -> None:
        """Write atomically, readable by the broker's user only."""
        path = self._path(record["id"])
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, default=_bytes_as_text)
        os.replace(tmp, path)

    def delete(self, kernel_id: str) -> None:
        self._path(kernel_id).unlink(missing_ok=True)

    def load_all(self) -> list[dict[str, Any]]:
        records = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, ValueError) as e:
                log.warning("unreadable kernel record %s: %s; removing it", path.name, e)
                path.unlink(missing_ok=True)
        return records


def _bytes_as_text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    raise TypeError(f"cannot store {type(value).__name__}")
