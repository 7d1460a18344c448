"""Processes known by pid: their exit awaited as an event, and what command they run.

A pidfd (Linux 5.3+) becomes readable the moment its process exits, whether or not the
process is our child (a kernel adopted from an earlier broker is not), so nothing here
polls. Used by the local provisioner, the shutdown path and the watchdog process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
from pathlib import Path


def _pidfd(pid: int) -> int | None:
    """A pidfd for ``pid``, None when no such process exists any more."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


async def exited(pid: int) -> None:
    """Return once process ``pid`` has exited (a zombie counts as exited)."""
    fd = _pidfd(pid)
    if fd is None:
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(None))
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def wait_exited(pid: int, timeout: float) -> bool:
    """Block until process ``pid`` has exited or ``timeout`` seconds passed; whether it did."""
    fd = _pidfd(pid)
    if fd is None:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(max(0.0, timeout) * 1000))
    finally:
        os.close(fd)


def command_line(pid: int) -> list[str]:
    """The arguments process ``pid`` runs with; empty when it is gone or not readable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def kill_group(pgid: int | None, signum: int = signal.SIGKILL) -> None:
    """Signal a process group that is not the caller's own; gone already is fine."""
    if not pgid or pgid == os.getpgrp():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
