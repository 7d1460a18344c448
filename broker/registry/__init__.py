"""The kernels this broker serves, and the one door to them: KernelRegistry.

Handlers call it to start, find, list, restart, interrupt and shut down kernels; it holds
the operator's settings (``--KernelRegistry.*``) and the kernels, and hands each job to a
module of this package:

- ``managed_kernel.py``: one served kernel and its REST model
- ``admission.py``: whether a start may go ahead, and with what (limits, environment)
- ``starts.py``: a warm kernel from the pool or a new one; ``late_env.py``: a pooled
  kernel's late environment
- ``records.py``: the state directory's records, in step with what runs
- ``restarts.py``, ``monitor.py`` (deaths, automatic restarts), ``culler.py``
- ``adoption.py``: kernels found running; ``leadership.py``: what the Lease holder does
- ``activity.py``: activity shared between replicas; ``elsewhere.py``: kernels other
  replicas serve, listed; ``warm_pods.py``: warm pods claimed from any replica

Below it, ``launch.py`` makes one kernel run through its provisioner (``provisioners/``)
and ``bridge.py`` carries its messages.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Float, Int, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..auth import User
from ..errors import BrokerError, not_found
from ..executions import Executions
from ..kernelspecs import KernelSpecs
from ..launch import KernelLauncher
from ..metrics import Metrics
from ..replicas import Replicas
from ..state_dir import kernel_work_dir
from ..store import KernelStore
from .activity import ActivityRecorder
from .admission import Admission
from .adoption import Adoption
from .culler import KernelCuller
from .elsewhere import models_elsewhere
from .leadership import Leadership
from .managed_kernel import CLOSE_RESTART, ManagedKernel
from .monitor import KernelMonitor
from .records import KernelRecords
from .restarts import KernelRestarts
from .starts import KernelStarts

_ENV_INHERIT = ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "TMPDIR", "SYSTEMROOT"]


class KernelRegistry(LoggingConfigurable):
    """The kernels this broker serves, started through jupyter_client's AsyncKernelManager
    and provisioners; each call is handed to the module of its job."""

    max_kernels = Int(0, config=True, help="Most kernels at once (0: no limit).")
    max_kernels_per_user = Int(0, config=True, help="Most kernels one user may run (0: no limit).")
    max_concurrent_starts = Int(
        16,
        config=True,
        help="Starts in progress at once, and kernels attached at once (adoption); more "
        "wait their turn.",
    )
    launch_timeout = Float(
        60.0, config=True, help="Seconds a start may take unless KERNEL_LAUNCH_TIMEOUT says less."
    )
    max_launch_timeout = Float(
        600.0, config=True, help="Upper bound on a client's KERNEL_LAUNCH_TIMEOUT."
    )
    env_allowlist = List(
        Unicode(), config=True, help="Variables besides KERNEL_* a client may set for its kernel."
    )
    env_inherit = List(
        Unicode(),
        default_value=_ENV_INHERIT,
        config=True,
        help="Variables copied from the broker's environment into kernels; nothing else is.",
    )
    working_dir = Unicode(
        config=True,
        help="Working directory of local kernels when KERNEL_WORKING_DIR is unset; default "
        "$XDG_DATA_HOME/kernel-broker/work (~/.local/share/kernel-broker/work), not the "
        "broker's own.",
    )
    allow_working_dir_override = Bool(
        True, config=True, help="Honour a client's KERNEL_WORKING_DIR (it must exist)."
    )
    transport = Unicode(
        "ipc",
        config=True,
        help="ZMQ transport for local kernels: ipc (Unix sockets, no ports to race) or tcp.",
    )
    autorestart = Bool(True, config=True, help="Restart kernels that die unexpectedly.")
    restart_limit = Int(5, config=True, help="Automatic restarts before a kernel is declared dead.")
    monitor_interval = Float(1.0, config=True, help="Seconds between checks that kernels live.")
    cull_idle_timeout = Float(
        0.0, config=True, help="Shut down kernels idle this many seconds (0: never)."
    )
    cull_interval = Float(60.0, config=True, help="Seconds between idle checks.")
    cull_connected = Bool(False, config=True, help="Cull idle kernels that have connections.")
    cull_busy = Bool(False, config=True, help="Cull kernels that are busy.")
    replay_buffer_bytes = Int(
        64 * 1024 * 1024,
        config=True,
        help="Bytes of the newest messages each websocket session keeps for a reconnect "
        "(shared between sessions: about this much per kernel; 0 keeps none).",
    )
    replay_buffer_messages = Int(
        10_000, config=True, help="Messages each websocket session keeps for a reconnect."
    )
    adopt_timeout = Float(
        10.0, config=True, help="Seconds a recorded kernel has to answer before it is dropped."
    )

    @default("working_dir")
    def _default_working_dir(self) -> str:
        return kernel_work_dir()

    def __init__(
        self,
        specs: KernelSpecs,
        metrics: Metrics,
        state_dir: str = "",
        pool_owner: str = "",
        **kwargs: Any,
    ) -> None:
        """``state_dir``: where kernel records live (state_dir.py), none if empty.
        ``pool_owner``: the only user of this broker, if it has one (pool kernels are
        then started as theirs, so handing one out needs no late environment)."""
        super().__init__(**kwargs)
        self.state_dir = state_dir
        self.specs = specs
        self.metrics = metrics
        self.kernels: dict[str, ManagedKernel] = {}
        self.accepting = True
        self.store = KernelStore(self.state_dir) if self.state_dir else None
        if self.state_dir:
            runtime_dir = os.path.join(self.state_dir, "run")
            os.makedirs(runtime_dir, mode=0o700, exist_ok=True)
        else:
            runtime_dir = tempfile.mkdtemp(prefix="kernel-broker-")
        self.launcher = KernelLauncher(
            self,
            specs.manager,
            metrics,
            runtime_dir,
            transport=self.transport,
            env_inherit=list(self.env_inherit),
            replay_bytes=self.replay_buffer_bytes,
            replay_messages=self.replay_buffer_messages,
            independent=self.store is not None,
        )
        self.records = KernelRecords(self.store, self.launcher)
        self.admission = Admission(
            specs,
            self.kernels,
            env_allowlist=self.env_allowlist,
            launch_timeout=self.launch_timeout,
            max_launch_timeout=self.max_launch_timeout,
            working_dir=self.working_dir,
            allow_working_dir_override=self.allow_working_dir_override,
            max_kernels=self.max_kernels,
            max_kernels_per_user=self.max_kernels_per_user,
        )
        self.replicas = Replicas(specs, parent=self)
        self.starts = KernelStarts(
            self.admission,
            self.records,
            self.kernels,
            metrics,
            self.replicas,
            pool_owner=pool_owner,
            launch_timeout=self.launch_timeout,
            max_concurrent_starts=self.max_concurrent_starts,
            log=self.log,
            parent=self,
        )
        self.pools = self.starts.pools
        self.adoption = Adoption(
            self.kernels,
            self.launcher,
            self.pools,
            self.replicas,
            adopt_timeout=self.adopt_timeout,
            max_concurrent=self.max_concurrent_starts,
            log=self.log,
        )
        self.restarts = KernelRestarts(self.replicas, self.records, self.launch_timeout)
        self.leadership = Leadership(
            self.replicas, self.pools, self.adoption.survey, self._background
        )
        self.monitor = KernelMonitor(
            self.kernels,
            self.replicas,
            self.launcher,
            self.restarts,
            interval=self.monitor_interval,
            autorestart=self.autorestart,
            restart_limit=self.restart_limit,
            log=self.log,
        )
        self.activity_interval = self.replicas.recording_interval(self.cull_idle_timeout)
        self.activity = ActivityRecorder(
            self.kernels, self.replicas, interval=self.activity_interval, log=self.log
        )
        self.culler = KernelCuller(
            self.kernels,
            self.replicas,
            self.adoption.survey,
            lambda kernel: self.shutdown(kernel, now=True),
            idle_timeout=self.cull_idle_timeout,
            interval=self.cull_interval,
            cull_connected=self.cull_connected,
            cull_busy=self.cull_busy,
            activity_interval=self.activity_interval,
            log=self.log,
        )
        self._tasks: list[asyncio.Future[None]] = []

    async def start_background(self) -> None:
        """Adopt recorded kernels and kernel pods, fill the pools, start the monitor and the
        culler."""
        await self.replicas.start(self.leadership.changed)
        began = time.perf_counter()
        if self.store is not None:
            await self.adoption.adopt(self.store.load_all(), self.store.delete)
        await self.adoption.survey()
        if self.kernels or self.replicas.targets:
            self.log.info(
                "adoption done kernels=%d in %.3fs", len(self.kernels), time.perf_counter() - began
            )
        self.pools.start(self.specs.default_name)
        self.leadership.started = True
        self._background(self.monitor.run())
        self._background(self.activity.run())
        self._background(self.starts.warm_pods.run())
        if self.cull_idle_timeout > 0:
            self._background(self.culler.run())

    def _background(self, work: Awaitable[None]) -> None:
        """Run ``work`` until it ends or the broker drains."""
        self._tasks.append(asyncio.ensure_future(work))

    # --- lookup ----------------------------------------------------------------

    def get(self, kernel_id: str, user: User) -> ManagedKernel:
        """The kernel, or 404 when it does not exist or belongs to someone else."""
        kernel = self.kernels.get(kernel_id)
        if kernel is None or not user.owns(kernel.owner):
            raise not_found("kernel", kernel_id)
        return kernel

    async def find(self, kernel_id: str, user: User) -> ManagedKernel:
        """As :meth:`get`, but a kernel pod another replica started is attached first."""
        if kernel_id not in self.kernels:
            await self.adoption.attach(kernel_id, user)
        return self.get(kernel_id, user)

    def list(self, user: User) -> list[ManagedKernel]:
        """The kernels this replica serves that ``user`` may see."""
        return [k for k in self.kernels.values() if user.owns(k.owner)]

    def models(self, user: User) -> list[dict[str, Any]]:
        """REST models of every kernel ``user`` may see: those served here, and the pod
        kernels other replicas serve (read from the pods, nothing attached)."""
        served = [k.model() for k in self.list(user)]
        known = set(self.kernels)
        return served + models_elsewhere(self.replicas, known, user, self.activity_interval)

    # --- lifecycle -------------------------------------------------------------

    async def start(
        self, name: str | None, request_env: Any, user: User, kernel_id: str | None = None
    ) -> ManagedKernel:
        """Start a kernel and return once it answers kernel_info with iopub subscribed."""
        request = self.admission.admit(name, request_env, user, self.accepting)
        kernel_id = kernel_id or str(uuid.uuid4())
        with self.admission.in_progress():
            began = time.perf_counter()
            try:
                async with asyncio.timeout(request.timeout):
                    warm = await self.starts.warm_or_cold(kernel_id, request)
            except TimeoutError:
                self.metrics.observe_start(0, ok=False)
                raise BrokerError(
                    504,
                    f"Kernel {request.name!r} did not start within {request.timeout:g} s; "
                    "raise KERNEL_LAUNCH_TIMEOUT or check the kernelspec's command.",
                ) from None
            except BaseException:
                self.metrics.observe_start(0, ok=False)
                raise
        kernel = await self.starts.bind(kernel_id, warm, request.owner)
        self.metrics.observe_start(time.perf_counter() - began, ok=True)
        self.log.info(
            "kernel started id=%s spec=%s owner=%s", kernel_id, request.name, request.owner
        )
        return kernel

    async def shutdown(self, kernel: ManagedKernel, now: bool = False) -> None:
        """Stop a kernel and forget it; safe at any moment, also during a restart."""
        async with kernel.lock:
            if self.kernels.pop(kernel.id, None) is None:
                return
            if kernel.executions is not None:
                kernel.executions.close()
            await self.replicas.ending(kernel.manager, restart=False)
            await self.launcher.stop(kernel.manager, kernel.bridge, now=now or kernel.dead)
            await kernel.bridge.close(1001, "kernel shut down")
            self.launcher.remove_files(kernel.manager)
            self.records.delete(kernel.id)
        self.log.info("kernel shut down id=%s", kernel.id)

    async def restart(self, kernel: ManagedKernel) -> None:
        """Restart a kernel on request (same id); its state is gone, its clients stay."""
        async with kernel.lock:
            if kernel.id not in self.kernels:
                raise not_found("kernel", kernel.id)
            await self.restarts.restart(kernel, now=False)
        self.log.info("kernel restarted id=%s", kernel.id)

    def executions(self, kernel: ManagedKernel) -> Executions:
        """The kernel's HTTP execution queue, created on first use."""
        if kernel.executions is None:
            kernel.executions = Executions(kernel.bridge, lambda: self.interrupt(kernel))
        return kernel.executions

    async def interrupt(self, kernel: ManagedKernel) -> None:
        kernel.check_alive()
        await kernel.manager.interrupt_kernel()

    # --- drain -----------------------------------------------------------------

    def _outlives_broker(self, km: AsyncKernelManager) -> bool:
        """Recorded kernels and pods (their own record) keep running for the next broker."""
        return self.store is not None or self.replicas.is_pod_kernel(km)

    async def drain(self) -> None:
        """Stop for good. Kernels that outlive the broker keep running (clients are told to
        reconnect); the others are shut down."""
        self.accepting = False
        for task in self._tasks:
            task.cancel()
        await self.replicas.stop()
        await self.pools.close(keep=lambda warm: self._outlives_broker(warm.manager))
        kernels = list(self.kernels.values())
        kept = [k for k in kernels if self._outlives_broker(k.manager)]
        for kernel in kept:
            await kernel.bridge.close(CLOSE_RESTART, "broker restarting; reconnect")
        await asyncio.gather(
            *(self.shutdown(k, now=True) for k in kernels if k not in kept),
            return_exceptions=True,
        )
        if not kept and self.store is None:
            shutil.rmtree(self.launcher.runtime_dir, ignore_errors=True)
        # Pod provisioners share one API client and watch per cluster; close them if used.
        cluster = sys.modules.get("broker.provisioners.cluster")
        if cluster is not None:
            await cluster.close_clusters()
