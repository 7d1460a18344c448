"""Where an admitted start gets its kernel: a warm one from the pool (its late environment
applied), else a new one, started in turn; then bound to the request's kernel id."""

from __future__ import annotations

import asyncio
import logging
import uuid

from traitlets.config import LoggingConfigurable

from ..metrics import Metrics
from ..pools import WARM_PREFIX, KernelPools, WarmKernel
from ..replicas import Replicas
from .admission import Admission, StartRequest
from .late_env import apply_late_env, first_execution
from .managed_kernel import ManagedKernel
from .records import KernelRecords
from .warm_pods import WarmPods


class KernelStarts:
    """Warm or cold starts, and the pools' own starts."""

    def __init__(
        self,
        admission: Admission,
        records: KernelRecords,
        kernels: dict[str, ManagedKernel],
        metrics: Metrics,
        replicas: Replicas,
        *,
        pool_owner: str,
        launch_timeout: float,
        max_concurrent_starts: int,
        log: logging.Logger,
        parent: LoggingConfigurable,
    ) -> None:
        """``pool_owner``: the only user of this broker, if it has one (pool kernels are
        then started as theirs, so handing one out needs no late environment).
        ``parent``: where the pools read their configuration."""
        self.admission = admission
        self.records = records
        self.kernels = kernels
        self.pool_owner = pool_owner
        self.launch_timeout = launch_timeout
        self.log = log
        self.pools = KernelPools(self.spawn_warm, records.discard, metrics, parent=parent)
        self.pools.may_refill = replicas.leads
        self.warm_pods = WarmPods(replicas, self.pools, records.launcher, records, log=log)
        self._start_slots = asyncio.Semaphore(max_concurrent_starts)

    async def warm_or_cold(self, kernel_id: str, request: StartRequest) -> WarmKernel:
        """A pooled kernel with the request's late variables applied, else a new one.

        Late variables are applied by Python code: a kernelspec of another language takes
        a pooled kernel only when the request wants nothing the pool kernel lacks.
        """
        env, cwd, name = request.env, request.cwd, request.name
        late = (env, cwd) != (self._warm_env(), self.admission.working_dir_for(name, {}))
        late_ok = not late or self.admission.specs.language(name) == "python"
        owner = env["KERNEL_USERNAME"]
        warm = await self.pools.take(
            name,
            env,
            late_ok,
            claim=lambda warm: self.warm_pods.claim(warm, kernel_id, owner),
            elsewhere=lambda name: self._claim_elsewhere(name, kernel_id, owner, request.timeout),
        )
        if warm is not None:
            if (warm.env, warm.cwd) != (env, cwd):
                await apply_late_env(warm, env, cwd, self.log)
            return warm
        async with self._start_slots:
            return await self.records.spawn(
                request.name, env, cwd, request.timeout, kernel_id, owner
            )

    async def spawn_warm(self, name: str) -> WarmKernel:
        """A pool kernel; recorded too, so that a broker killed with -9 leaves no orphan."""
        kernel_id = f"{WARM_PREFIX}{uuid.uuid4()}"
        cwd = self.admission.working_dir_for(name, {})
        warm = await self.records.spawn(
            name, self._warm_env(), cwd, self.launch_timeout, kernel_id, None
        )
        try:
            if self.admission.specs.language(name) == "python":
                await first_execution(warm, self.launch_timeout)
            mark_warm = getattr(warm.manager.provisioner, "mark_warm", None)
            if mark_warm is not None:  # proven: from now on any replica may claim its pod
                await mark_warm()
        except BaseException:
            await self.records.discard(warm)
            raise
        return warm

    async def _claim_elsewhere(
        self, name: str, kernel_id: str, owner: str, timeout: float
    ) -> WarmKernel | None:
        """A warm pod another replica keeps; it was started as this replica's would be."""
        warm = await self.warm_pods.claim_elsewhere(name, kernel_id, owner, timeout)
        if warm is not None:
            warm.env, warm.cwd = self._warm_env(), self.admission.working_dir_for(name, {})
        return warm

    def _warm_env(self) -> dict[str, str]:
        """The environment pool kernels start with."""
        return {"KERNEL_USERNAME": self.pool_owner} if self.pool_owner else {}

    async def bind(self, kernel_id: str, warm: WarmKernel, owner: str) -> ManagedKernel:
        """The started kernel (claimed already if it was a pool kernel), served and recorded
        as its owner's."""
        kernel = ManagedKernel(kernel_id, warm.spec, owner, warm.manager, warm.bridge)
        self.kernels[kernel_id] = kernel
        await self.records.save(kernel)
        return kernel
