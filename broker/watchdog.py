"""The watchdog: ends a dead broker's kernels when no broker adopts them in time.

One small process per broker with a state directory, started by it in a session of its
own (a Ctrl-C in the broker's terminal does not reach it). Its stdin is the read end of
a pipe whose write end only the broker holds (not inherited by kernels), so it reads EOF
the moment the broker is gone, however it went: SIGTERM drain, crash, ``kill -9``. If
records remain, it waits ``orphan_timeout`` seconds, then takes the state directory's
lock and, if no broker took over meanwhile (the lock still names its broker's instance),
ends every recorded local kernel's process group and removes the records. A broker that
takes over stands the previous watchdog down with SIGTERM first (:func:`retire`).

Standard library only (and the broker's light modules): it must start fast and small.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .processes import command_line, kill_group, wait_exited
from .state_lock import lock_file, read_lock, write_lock
from .store import KernelStore

MODULE = "broker.watchdog"
LOG_FILE = "watchdog.log"
_TERM_GRACE = 5.0  # seconds between SIGTERM and SIGKILL of an orphaned kernel's group


def spawn(directory: Path, orphan_timeout: float, instance: str) -> tuple[int, int]:
    """Start the watchdog of this broker; its pid, and the pipe end the broker keeps open."""
    read_end, write_end = os.pipe()  # both close-on-exec: kernels inherit neither
    with open(directory / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", MODULE, str(directory), repr(orphan_timeout), instance],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    os.close(read_end)
    return proc.pid, write_end


def retire(pid: Any, directory: Path) -> bool:
    """Stand down the watchdog ``pid`` of an earlier broker on ``directory``, if it runs."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    args = command_line(pid)
    if MODULE not in args or str(directory) not in args:
        return False  # gone, or the pid now belongs to another process
    os.kill(pid, signal.SIGTERM)
    return True


def _say(text: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        print(f"{stamp} watchdog pid {os.getpid()}: {text}", file=sys.stderr, flush=True)
    except OSError:
        pass  # the log is gone: the work matters more than the words


def end_kernel(record: dict[str, Any]) -> str:
    """End one recorded local kernel's process group; what happened, for the log."""
    info = record.get("provisioner_info") or {}
    pid, connection_file = info.get("pid"), record.get("connection_file") or ""
    if not pid:
        return "no process id (a pod kernel): left to the next broker"
    # The kernel's command line names its connection file: a pid reused since is left alone.
    if not connection_file or not any(connection_file in arg for arg in command_line(pid)):
        return f"pid {pid} is no longer this kernel: nothing to end"
    pgid = info.get("pgid") or pid
    kill_group(pgid, signal.SIGTERM)
    if not wait_exited(pid, _TERM_GRACE):
        kill_group(pgid, signal.SIGKILL)
        wait_exited(pid, _TERM_GRACE)
    kill_group(pgid, signal.SIGKILL)  # whatever it started and left in its group
    return f"pid {pid} and its process group ended"


def _remove_kernel_dir(directory: Path, connection_file: str) -> None:
    """Remove the kernel's sockets and connection file, if they are in the state directory."""
    kernel_dir = Path(connection_file).parent
    if connection_file and kernel_dir.parent == directory / "run":
        shutil.rmtree(kernel_dir, ignore_errors=True)


def end_orphans(directory: Path, instance: str) -> None:
    """End the recorded kernels unless a broker took over since ``instance`` was gone."""
    fd = lock_file(directory)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say("a broker holds the state directory: it adopted the kernels")
            return
        if read_lock(fd).get("instance") != instance:
            _say("a later broker ran on the state directory: its watchdog is in charge")
            return
        write_lock(fd, {"pid": os.getpid(), "role": "watchdog"})
        store = KernelStore(str(directory))
        for record in store.load_all():
            _say(f"kernel {record.get('id')}: {end_kernel(record)}")
            if (record.get("provisioner_info") or {}).get("pid"):
                store.delete(record["id"])
                _remove_kernel_dir(directory, record.get("connection_file") or "")
        write_lock(fd, {})
    finally:
        os.close(fd)  # releases the lock


def main(argv: list[str]) -> None:
    directory, orphan_timeout, instance = Path(argv[0]), float(argv[1]), argv[2]
    while os.read(0, 4096):
        pass  # the broker never writes: EOF is the news that it is gone
    if not KernelStore(str(directory)).load_all():
        return
    _say(
        f"the broker is gone; its kernels in {directory} are ended in {orphan_timeout:.0f} s "
        "unless a broker adopts them"
    )
    time.sleep(orphan_timeout)  # a broker that takes over ends this process with SIGTERM
    end_orphans(directory, instance)


if __name__ == "__main__":
    main(sys.argv[1:])
