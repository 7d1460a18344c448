"""Culling: shutting down kernels idle longer than the operator allows, once for all
replicas (by the Lease holder)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from ..replicas import Replicas
from .activity import use_of
from .managed_kernel import ManagedKernel


class KernelCuller:
    """Every ``interval`` seconds, shuts down the kernels idle ``idle_timeout`` seconds;
    those with connections only if ``cull_connected``, busy ones only if ``cull_busy``.

    A pod kernel's use counts every replica's: what they recorded on its pod
    (``activity.py``), so a websocket open on another replica keeps a kernel as surely
    as one open here."""

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
        activity_interval: float,
        log: logging.Logger,
    ) -> None:
        """``survey`` adopts the kernels other replicas started; ``shutdown`` ends one
        kernel at once; ``activity_interval``: how often replicas record activity."""
        self.kernels = kernels
        self.replicas = replicas
        self.survey = survey
        self.shutdown = shutdown
        self.idle_timeout = idle_timeout
        self.interval = interval
        self.cull_connected = cull_connected
        self.cull_busy = cull_busy
        self.activity_interval = activity_interval
        self.log = log
        self._kept_elsewhere: set[str] = set()  # logged once each

    async def run(self) -> None:
        """Cull forever; cancel the task to stop."""
        while True:
            await asyncio.sleep(self.interval)
            if not self.replicas.leading:
                continue  # the Lease holder culls, once for all replicas
            await self.survey()  # it must know kernels that other replicas started
            now = time.time()
            for kernel in list(self.kernels.values()):
                use = use_of(kernel, now, self.activity_interval)
                idle = now - use.last_activity
                if idle < self.idle_timeout:
                    continue
                if use.connected and not self.cull_connected:
                    self._keep(kernel, idle, "connected")
                    continue
                if use.busy and not self.cull_busy:
                    self._keep(kernel, idle, "busy")
                    continue
                self.log.info("culling kernel id=%s idle=%.0fs", kernel.id, idle)
                self._kept_elsewhere.discard(kernel.id)
                await self.shutdown(kernel)

    def _keep(self, kernel: ManagedKernel, idle: float, why: str) -> None:
        """Say once per kernel when only another replica's record keeps it."""
        here = kernel.bridge.connections if why == "connected" else kernel.execution_state == "busy"
        if here or kernel.id in self._kept_elsewhere:
            return
        self._kept_elsewhere.add(kernel.id)
        self.log.info("kernel kept id=%s idle=%.0fs: %s on another replica", kernel.id, idle, why)
