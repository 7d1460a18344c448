"""Local kernel processes with operating-system resource limits, adoptable by a new broker.

A jupyter_client provisioner (the broker's default): LocalProvisioner plus
- per-kernel limits applied with setrlimit in the child before exec (address space,
  CPU seconds, open files), configured as traitlets;
- kernels recorded by pid, so that a broker started later can adopt a kernel it did
  not launch (it has no Popen object then, and signals and polls the pid itself).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
from functools import partial
from pathlib import Path
from typing import Any

from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import Int

from ..processes import exited, kill_group


def apply_limits(limits: list[tuple[int, int]]) -> None:
    """Runs in the kernel's process between fork and exec."""
    for which, value in limits:
        resource.setrlimit(which, (value, value))


def pid_alive(pid: int | None) -> bool:
    """Whether the process runs; a zombie does not (and is reaped when it is ours: an
    adopted kernel becomes the broker's child when the broker is PID 1 or a subreaper)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # no procfs here, or it just ended: kill(0) has spoken
        return True
    if state != "Z":
        return True
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return False


class BrokerLocalProvisioner(LocalProvisioner):  # type: ignore[misc]
    """Local kernels with resource limits; adopted kernels are managed by pid."""

    memory_limit = Int(
        0, config=True, help="Address-space limit of each kernel in bytes (0: none)."
    )
    cpu_time_limit = Int(0, config=True, help="CPU seconds a kernel may use (0: no limit).")
    open_files_limit = Int(0, config=True, help="Open files a kernel may have (0: no limit).")

    def _limits(self) -> list[tuple[int, int]]:
        wanted = [
            (resource.RLIMIT_AS, self.memory_limit),
            (resource.RLIMIT_CPU, self.cpu_time_limit),
            (resource.RLIMIT_NOFILE, self.open_files_limit),
        ]
        return [(which, value) for which, value in wanted if value > 0]

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        limits = self._limits()
        if limits:
            kwargs["preexec_fn"] = partial(apply_limits, limits)
        return await super().launch_kernel(cmd, **kwargs)

    # An adopted kernel has a pid but no Popen object: manage it through the pid.

    async def poll(self) -> int | None:
        if self.process is not None:
            return await super().poll()
        return None if pid_alive(self.pid) else 0

    async def send_signal(self, signum: int) -> None:
        if self.process is not None:
            await super().send_signal(signum)
            return
        try:
            if self.pgid:
                os.killpg(self.pgid, signum)
            elif self.pid:
                os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    async def kill(self, restart: bool = False) -> None:
        if self.process is not None:
            await super().kill(restart)
        else:
            await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        if self.process is not None:
            await super().terminate(restart)
        else:
            await self.send_signal(signal.SIGTERM)

    async def wait(self) -> int | None:
        """The kernel's exit, awaited as an event (a pidfd), not jupyter_client's 0.1 s polls."""
        if self.pid:
            await exited(self.pid)
        if self.process is not None:
            return await super().wait()  # it has exited: this reaps it without sleeping
        pid_alive(self.pid)  # reaps it if it is ours after all (the broker is a subreaper)
        return 0

    async def cleanup(self, restart: bool = False) -> None:
        """Also end what the kernel left running in its process group (its own session:
        jupyter_client starts every local kernel with a new one), so nothing outlives it."""
        kill_group(self.pgid)
        await super().cleanup(restart)

    @property
    def has_process(self) -> bool:
        return self.process is not None or pid_alive(self.pid)
