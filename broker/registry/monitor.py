"""Watching that kernels live, and what happens when one dies: restarted automatically
(up to a limit), forgotten when it was ended elsewhere, or declared dead."""

from __future__ import annotations

import asyncio
import logging

from ..launch import KernelLauncher
from ..replicas import Replicas
from .managed_kernel import CLOSE_RESTART, ManagedKernel
from .restarts import KernelRestarts


class KernelMonitor:
    """Checks every kernel every ``interval`` seconds and handles the deaths it finds."""

    def __init__(
        self,
        kernels: dict[str, ManagedKernel],
        replicas: Replicas,
        launcher: KernelLauncher,
        restarts: KernelRestarts,
        *,
        interval: float,
        autorestart: bool,
        restart_limit: int,
        log: logging.Logger,
    ) -> None:
        self.kernels = kernels
        self.replicas = replicas
        self.launcher = launcher
        self.restarts = restarts
        self.interval = interval
        self.autorestart = autorestart
        self.restart_limit = restart_limit
        self.log = log

    async def run(self) -> None:
        """Check forever; cancel the task to stop."""
        while True:
            await asyncio.sleep(self.interval)
            for kernel in list(self.kernels.values()):
                if kernel.dead or kernel.lock.locked():
                    continue
                try:
                    alive = await kernel.manager.is_alive()
                except Exception:
                    alive = False
                if not alive:
                    await self._on_death(kernel)

    async def _on_death(self, kernel: ManagedKernel) -> None:
        async with kernel.lock:
            if kernel.id not in self.kernels or await kernel.manager.is_alive():
                return
            if not self.replicas.may_restart(kernel.manager):
                await self._forget(kernel)
                return
            if self.autorestart and kernel.restarts < self.restart_limit:
                kernel.restarts += 1
                self.log.warning("kernel died id=%s; restarting (%d)", kernel.id, kernel.restarts)
                # Only automatic restarts are announced, as Jupyter Server does: JupyterLab
                # reads `restarting` as "the kernel appears to have died".
                kernel.bridge.emit_status("restarting")
                try:
                    await self.restarts.restart(kernel, now=True)
                    return
                except Exception as e:
                    self.log.error("kernel %s: automatic restart failed: %s", kernel.id, e)
            kernel.dead = True
            kernel.reason = "The kernel died and could not be restarted; restart or shut it down."
            kernel.bridge.emit_status("dead")
            self.log.error("kernel dead id=%s", kernel.id)

    async def _forget(self, kernel: ManagedKernel) -> None:
        """Ended by a broker (maybe another replica), or a pod crash the Lease holder
        repairs: clients reconnect and find it again if it still exists."""
        self.kernels.pop(kernel.id, None)
        if kernel.executions is not None:
            kernel.executions.close()
        await kernel.bridge.close(CLOSE_RESTART, "kernel ended elsewhere; reconnect")
        self.launcher.remove_files(kernel.manager)
        self.log.info("kernel forgotten id=%s: ended or restarted elsewhere", kernel.id)
