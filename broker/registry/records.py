"""Kernel records kept in step with the kernels that run.

A kernel is recorded from the moment its process exists, recorded again when it changes
hands or restarts, and its record deleted when it ends; so a broker killed with -9 leaves
records that the next one adopts or ends, never an orphan process. Without a state
directory (no store) nothing is recorded.
"""

from __future__ import annotations

import time

from jupyter_client.manager import AsyncKernelManager

from ..launch import KernelLauncher
from ..pools import WarmKernel
from ..store import KernelStore
from .managed_kernel import ManagedKernel


class KernelRecords:
    """The store's side of starting, binding, restarting and ending kernels."""

    def __init__(self, store: KernelStore | None, launcher: KernelLauncher) -> None:
        self.store = store
        self.launcher = launcher

    async def spawn(
        self,
        name: str,
        env: dict[str, str],
        cwd: str,
        timeout: float,
        kernel_id: str,
        owner: str | None,
    ) -> WarmKernel:
        """Start a kernel, recorded from the moment its process exists."""
        if self.store is None:
            return await self.launcher.spawn(name, env, cwd, timeout, kernel_id)
        store, created = self.store, time.time()

        async def launched(km: AsyncKernelManager) -> None:
            store.save(await self.launcher.record(kernel_id, name, km, created, owner))

        try:
            return await self.launcher.spawn(name, env, cwd, timeout, kernel_id, launched)
        except BaseException:
            store.delete(kernel_id)
            raise

    async def save(self, kernel: ManagedKernel) -> None:
        """Record the kernel as it is now (its owner, its connection after a restart)."""
        if self.store is not None:
            self.store.save(
                await self.launcher.record(
                    kernel.id, kernel.name, kernel.manager, kernel.created, kernel.owner
                )
            )

    def delete(self, kernel_id: str) -> None:
        if self.store is not None:
            self.store.delete(kernel_id)

    async def discard(self, warm: WarmKernel) -> None:
        """Stop a pool kernel nobody took, and forget its record."""
        self.delete(warm.manager.kernel_id)
        await self.launcher.discard(warm.manager, warm.bridge)
