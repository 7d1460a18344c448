"""The watchdog's decision when a dead broker's orphan timeout has passed: end the recorded
kernels only if no broker took the state directory over since.

A real process stands in for a kernel: its command line names its connection file, as a
kernel's does (that is how the watchdog recognises it). The full path, a broker killed
with -9 and its kernels ending, is in test_durable_by_default.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.processes import wait_exited
from broker.state_lock import lock_file, write_lock
from broker.store import KernelStore
from broker.watchdog import end_orphans


@pytest.fixture
def orphan(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen]]:
    """A state directory recording one 'kernel' (a sleeping process in its own session)."""
    connection_file = tmp_path / "run" / "x1y2z3w4" / "connection.json"
    connection_file.parent.mkdir(parents=True)
    connection_file.write_text("{}")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", str(connection_file)],
        start_new_session=True,
    )
    KernelStore(str(tmp_path)).save(
        {
            "id": "k1",
            "connection_file": str(connection_file),
            "provisioner_info": {"pid": proc.pid, "pgid": proc.pid},
        }
    )
    yield tmp_path, proc
    proc.kill()
    proc.wait()


def lock_says(directory: Path, doc: dict) -> None:
    fd = lock_file(directory)
    write_lock(fd, doc)
    os.close(fd)


def test_the_kernels_of_the_last_broker_are_ended(orphan) -> None:
    directory, proc = orphan
    lock_says(directory, {"pid": 1, "instance": "gone"})
    end_orphans(directory, "gone")
    assert proc.wait(timeout=30) is not None
    assert KernelStore(str(directory)).load_all() == []
    assert list((directory / "run").iterdir()) == []  # its sockets and connection file
    assert json.loads((directory / "broker.lock").read_text()) == {}


def test_a_later_broker_on_the_directory_keeps_them(orphan) -> None:
    """Its own watchdog is in charge: this one's timeout counted from an older death."""
    directory, proc = orphan
    lock_says(directory, {"pid": 1, "instance": "later"})
    end_orphans(directory, "gone")
    assert not wait_exited(proc.pid, 0)
    assert [r["id"] for r in KernelStore(str(directory)).load_all()] == ["k1"]


def test_a_broker_holding_the_lock_keeps_them(orphan) -> None:
    directory, proc = orphan
    lock_says(directory, {"pid": 1, "instance": "gone"})
    held = lock_file(directory)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running broker holds it
    try:
        end_orphans(directory, "gone")
    finally:
        os.close(held)
    assert not wait_exited(proc.pid, 0)
    assert [r["id"] for r in KernelStore(str(directory)).load_all()] == ["k1"]
