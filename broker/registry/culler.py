"""Culling: shutting down kernels idle longer than the operator allows, once for all
replicas (by the Lease holder)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from ..replicas import Replicas
from .managed_kernel import ManagedKernel


class KernelCuller:
    """Every ``interval`` seconds, shuts down the kernels idle ``idle_timeout`` seconds;
    those with connections only if ``cull_connected``, busy ones only if ``cull_busy``."""

    def __init__(
        self,
        kernels: dict[str, ManagedKernel],
        replicas: Replicas,
        survey: Callable[[], Awaitable[None]],
        shutdown: Callable[[ManagedKernel], Awaitable[None]],
        *,
        idle_timeout: float,
        interval: float,
        cull_connected: bool,
        cull_busy: bool,
        log: logging.Logger,
    ) -> None:
        """``survey`` adopts the kernels other replicas started; ``shutdown`` ends one
        kernel at once."""
        self.kernels = kernels
        self.replicas = replicas
        self.survey = survey
        self.shutdown = shutdown
        self.idle_timeout = idle_timeout
        self.interval = interval
        self.cull_connected = cull_connected
        self.cull_busy = cull_busy
        self.log = log

    async def run(self) -> None:
        """Cull forever; cancel the task to stop."""
        while True:
            await asyncio.sleep(self.interval)
            if not self.replicas.leading:
                continue  # the Lease holder culls, once for all replicas
            await self.survey()  # it must know kernels that other replicas started
            now = time.time()
            for kernel in list(self.kernels.values()):
                idle = now - kernel.bridge.last_activity
                if idle < self.idle_timeout:
                    continue
                if kernel.bridge.connections and not self.cull_connected:
                    continue
                if kernel.execution_state == "busy" and not self.cull_busy:
                    continue
                self.log.info("culling kernel id=%s idle=%.0fs", kernel.id, idle)
                await self.shutdown(kernel)
