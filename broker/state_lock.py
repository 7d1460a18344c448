"""The lock file of a state directory: held (flock) by its broker, naming its holder.

The broker holds ``broker.lock`` locked for its whole life; the kernel releases the lock
when the process dies, however it dies. The file's content (JSON) names the holder: the
broker's pid, its instance id and its watchdog's pid, or the watchdog while it ends
orphaned kernels. Shared by the broker (state_dir.py) and its watchdog (watchdog.py),
which must stay light: standard library only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LOCK_FILE = "broker.lock"


def read_lock(fd: int) -> dict[str, Any]:
    """What the lock file says about its holder (empty when it says nothing readable)."""
    try:
        doc = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def write_lock(fd: int, doc: dict[str, Any]) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(doc).encode(), 0)


def lock_file(directory: Path) -> int:
    """The lock file's descriptor, not inherited by children (a kernel must not hold it)."""
    return os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
