"""Taking over kernels that run but that this broker does not serve yet.

They are the kernels a previous broker recorded (adopted at startup), the kernel pods of
this broker instance (surveyed at startup, by a replica that gains the Lease, and before
each cull) and the one pod another replica started when a request names it. A kernel
that does not answer in time is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..auth import User
from ..launch import KernelLauncher
from ..pools import KernelPools, WarmKernel
from ..replicas import Replicas
from .managed_kernel import ManagedKernel


class Adoption:
    """Adopts each found kernel once, into the served kernels or, unowned, into its pool."""

    def __init__(
        self,
        kernels: dict[str, ManagedKernel],
        launcher: KernelLauncher,
        pools: KernelPools,
        replicas: Replicas,
        *,
        adopt_timeout: float,
        max_concurrent: int,
        log: logging.Logger,
    ) -> None:
        """``max_concurrent``: kernels attached at once."""
        self.kernels = kernels
        self.launcher = launcher
        self.pools = pools
        self.replicas = replicas
        self.adopt_timeout = adopt_timeout
        self.log = log
        self._adopting: dict[str, asyncio.Future[None]] = {}  # kernel id: adoption done
        self._slots = asyncio.Semaphore(max_concurrent)

    def known(self, kernel_id: str) -> bool:
        """Whether this broker serves, starts, adopts or keeps warm a kernel of this id."""
        pooled = (w.manager.kernel_id for ready in self.pools.ready.values() for w in ready)
        return (
            kernel_id in self.kernels
            or kernel_id in self.launcher.spawning
            or kernel_id in self._adopting
            or kernel_id in pooled
        )

    async def attach(self, kernel_id: str, user: User) -> None:
        """Adopt the kernel pod of this id that another replica started, if ``user`` owns
        it: the pod's owner annotation is checked before anything is attached."""
        record = await self.replicas.find(kernel_id)
        if record is not None and record["owner"] and user.owns(record["owner"]):
            await self.adopt([record], lambda _: None)

    async def survey(self) -> None:
        """Adopt the kernel pods of this broker instance that no one here serves yet."""
        try:
            records, dropped = await self.replicas.survey(self.known)
        except Exception as e:  # noqa: BLE001 - the API server may be briefly unreachable
            self.log.warning("could not list kernel pods: %s", e)
            return
        for kernel_id in dropped:
            self.log.warning("kernel pod dropped id=%s: its kernel exited", kernel_id)
        await self.adopt(records, lambda _: None)

    async def adopt(self, records: list[dict[str, Any]], forget: Callable[[str], Any]) -> None:
        """Take over recorded kernels (or kernel pods); ``forget`` the ids of those that do
        not answer.

        Each kernel is adopted once: concurrent calls for the same id (a survey, lookups)
        wait for the first one.
        """
        waits = {self._adopting[r["id"]] for r in records if r["id"] in self._adopting}
        records = [r for r in records if not self.known(r["id"])]
        done = asyncio.get_running_loop().create_future()
        self._adopting.update((r["id"], done) for r in records)
        try:
            await self._adopt_now(records, forget)
        finally:
            for record in records:
                del self._adopting[record["id"]]
            done.set_result(None)
        await asyncio.gather(*waits)

    async def _adopt_now(self, records: list[dict[str, Any]], forget: Callable[[str], Any]) -> None:
        results = await asyncio.gather(
            *(self._adopt_one(r) for r in records),
            return_exceptions=True,
        )
        for record, warm in zip(records, results, strict=True):
            if isinstance(warm, WarmKernel) and record["owner"] is None:
                self.pools.ready.setdefault(warm.spec, []).append(warm)
                self.log.info("pool kernel adopted id=%s spec=%s", record["id"], warm.spec)
            elif isinstance(warm, WarmKernel):
                kernel = ManagedKernel(
                    record["id"],
                    warm.spec,
                    record["owner"],
                    warm.manager,
                    warm.bridge,
                    created=warm.created,
                )
                if record.get("last_activity"):  # attaching is no activity of its user
                    kernel.bridge.last_activity = record["last_activity"]
                self.kernels[kernel.id] = kernel
                self.log.info("kernel adopted id=%s owner=%s", kernel.id, kernel.owner)
            elif self._left_to_holder(record):
                self.log.warning(
                    "kernel not attached id=%s: %s; the Lease holder decides whether it is "
                    "gone, a request for it tries again",
                    record["id"],
                    warm or f"it did not answer kernel_info within {self.adopt_timeout:g} s",
                )
            else:
                forget(record["id"])
                self.log.warning(
                    "kernel record dropped id=%s: %s",
                    record["id"],
                    warm or "it did not answer kernel_info",
                )

    async def _adopt_one(self, record: dict[str, Any]) -> WarmKernel | None:
        """Attach one kernel, a bounded number at a time: the timeout then measures the
        kernel's answer, not a queue of a thousand handshakes on a busy host."""
        async with self._slots:
            stop = not self._left_to_holder(record)
            return await self.launcher.adopt(record, self.adopt_timeout, stop_unanswered=stop)

    def _left_to_holder(self, record: dict[str, Any]) -> bool:
        """A kernel pod that does not answer this replica is deleted by the Lease holder
        only: another replica may be serving it, and a slow answer on a busy host is no
        proof that the kernel is gone."""
        return "pod_name" in record["provisioner_info"] and not self.replicas.leading
