"""Warm kernels handed out by any replica, claimed once.

The Lease holder keeps the warm pools of pod kernelspecs (refills happen once); every
replica hands them out. The holder takes a warm kernel from its own pool, any other
replica one of the warm pods it sees in its watch-fed cache, which it then attaches (the
Secret, one ``kernel_info``). Either way the pod is claimed first, atomically
(``provisioners/podclaim.py``), so two replicas never hand out the same pod; the loser
forgets that kernel, without deleting its pod, and tries the next one. The holder follows
its cache and drops from its pool, and refills, what another replica claimed.

Local kernels' pools are each replica's own: claiming one is renaming it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from ..launch import KernelLauncher
from ..pools import KernelPools, WarmKernel
from ..replicas import Replicas
from .records import KernelRecords


class WarmPods:
    """Claims warm kernels for requests, here or from the holder's pods."""

    def __init__(
        self,
        replicas: Replicas,
        pools: KernelPools,
        launcher: KernelLauncher,
        records: KernelRecords,
        *,
        log: logging.Logger,
    ) -> None:
        self.replicas = replicas
        self.pools = pools
        self.launcher = launcher
        self.records = records
        self.log = log

    async def claim(self, warm: WarmKernel, kernel_id: str, owner: str) -> bool:
        """Make a warm kernel of this replica's pool ``kernel_id``, ``owner``'s; False when
        another replica claimed its pod first (it is then forgotten here)."""
        old_id = warm.manager.kernel_id
        bind = getattr(warm.manager.provisioner, "bind_kernel", None)
        if bind is not None and not await bind(kernel_id, owner):
            self.log.info("pool kernel claimed elsewhere id=%s", old_id)
            await self.forget(warm)
            return False
        self.records.delete(old_id)
        warm.manager.kernel_id = kernel_id
        warm.bridge.kernel_id = kernel_id
        return True

    async def forget(self, warm: WarmKernel) -> None:
        """Let a warm kernel go without stopping it: its pod is someone else's now."""
        await warm.bridge.close()
        self.launcher.remove_files(warm.manager)

    async def claim_elsewhere(
        self, spec: str, kernel_id: str, owner: str, timeout: float
    ) -> WarmKernel | None:
        """A warm pod of ``spec`` that the Lease holder started, claimed for ``kernel_id``
        and attached here; None when there is none (or none answers)."""
        from ..provisioners.podclaim import WARM_MARK, claim_pod
        from ..provisioners.podrecords import Verdict, kernel_record, verdict

        candidates = [
            (kube, pod)
            for kube, pod in self.replicas.kernel_pods()
            if (pod["metadata"].get("annotations") or {}).get(WARM_MARK) == "ready"
            and kernel_record(pod)["name"] == spec
            and verdict(pod) is Verdict.ADOPT
        ]
        random.shuffle(candidates)  # replicas claiming at once seldom pick the same pod
        for kube, pod in candidates:
            warm_id = kernel_record(pod)["id"]
            if not await claim_pod(kube, pod, warm_id, kernel_id, owner):
                continue
            warm = await self.launcher.adopt(_claimed(pod, kernel_id, owner), timeout)
            if warm is not None:
                self.log.info("pool kernel claimed id=%s from %s", kernel_id, warm_id)
                return warm
        return None

    async def run(self) -> None:
        """Follow the caches: drop from this replica's pools the warm pods that another
        replica claimed (or that are gone), and refill. Cancel the task to stop."""
        await asyncio.gather(
            *(self._follow(reflector) for _, reflector in self.replicas.reflectors)
        )

    async def _follow(self, reflector: Any) -> None:
        while True:
            await reflector.wait_for(lambda: bool(self._stale()), None)
            for spec, warm in self._stale():
                if warm not in self.pools.ready[spec]:
                    continue  # a start took it meanwhile (and found it claimed too)
                self.pools.ready[spec].remove(warm)
                self.log.info("pool kernel claimed elsewhere id=%s", warm.manager.kernel_id)
                await self.forget(warm)
            self.pools.refill_all()

    def _stale(self) -> list[tuple[str, WarmKernel]]:
        from ..provisioners.podclaim import still_warm

        return [
            (spec, warm)
            for spec in self.replicas.pod_specs
            for warm in self.pools.ready.get(spec, [])
            if not still_warm(warm.manager.provisioner.cached_pod(), warm.manager.kernel_id)
        ]


def _claimed(pod: dict[str, Any], kernel_id: str, owner: str) -> dict[str, Any]:
    """The kernel record of a warm pod just claimed for ``kernel_id`` (the cached pod
    still carries its warm id)."""
    from ..provisioners.podrecords import kernel_record

    record = kernel_record(pod)
    record.update(id=kernel_id, owner=owner)
    record["provisioner_info"] = {**record["provisioner_info"], "kernel_id": kernel_id}
    return record
