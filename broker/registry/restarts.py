"""Restarting a kernel in place: same id, same bridge and clients, a fresh process."""

from __future__ import annotations

from ..replicas import Replicas
from .managed_kernel import ManagedKernel
from .records import KernelRecords


class KernelRestarts:
    """Restarts kernels, on request or after a death, and records the new connection."""

    def __init__(self, replicas: Replicas, records: KernelRecords, launch_timeout: float) -> None:
        self.replicas = replicas
        self.records = records
        self.launch_timeout = launch_timeout

    async def restart(self, kernel: ManagedKernel, now: bool) -> None:
        """Restart ``kernel``, whose lock the caller holds, and wait until it answers."""
        kernel.bridge.reset()
        await self.replicas.ending(kernel.manager, restart=True)
        await kernel.manager.restart_kernel(now=now)
        info = kernel.manager.get_connection_info(session=False)
        if info != kernel.bridge.info:
            kernel.bridge.reconnect(info)
        await kernel.bridge.ready(self.launch_timeout)
        kernel.dead = False
        kernel.reason = ""
        await self.records.save(kernel)
