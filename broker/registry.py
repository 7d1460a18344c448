"""The kernels this broker serves: start, restart, interrupt, shutdown, limits, culling."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import zmq.asyncio
from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Float, Int, List, Unicode, default
from traitlets.config import LoggingConfigurable

from .auth import User
from .bridge import Bridge, KernelUnavailable
from .errors import BrokerError, not_found
from .executions import Executions
from .kernel_env import kernel_environment, launch_timeout, validate_request_env
from .kernelspecs import KernelSpecs
from .metrics import Metrics

_ENV_INHERIT = ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "TMPDIR", "SYSTEMROOT"]


def format_time(ts: float) -> str:
    """The timestamp format Jupyter clients parse: microseconds and Z are mandatory."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(eq=False)
class ManagedKernel:
    """One kernel: its manager (and provisioner), its bridge, its owner."""

    id: str
    name: str
    owner: str
    manager: AsyncKernelManager
    bridge: Bridge
    created: float = field(default_factory=time.time)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    restarts: int = 0
    reason: str = ""
    dead: bool = False
    executions: Executions | None = None

    @property
    def execution_state(self) -> str:
        return "dead" if self.dead else self.bridge.execution_state

    def model(self) -> dict[str, Any]:
        model = {
            "id": self.id,
            "name": self.name,
            "last_activity": format_time(self.bridge.last_activity),
            "execution_state": self.execution_state,
            "connections": len(self.bridge.connections),
            "owner": self.owner,
        }
        if self.reason:
            model["reason"] = self.reason
        return model


class KernelRegistry(LoggingConfigurable):
    """Starts and tracks kernels through jupyter_client's AsyncKernelManager and provisioners."""

    max_kernels = Int(0, config=True, help="Most kernels at once (0: no limit).")
    max_kernels_per_user = Int(0, config=True, help="Most kernels one user may run (0: no limit).")
    max_concurrent_starts = Int(
        16, config=True, help="Starts in progress at once; more wait their turn."
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
        config=True, help="Working directory of local kernels when KERNEL_WORKING_DIR is unset."
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
        64 * 1024 * 1024, config=True, help="Bytes kept per disconnected session for replay."
    )
    replay_buffer_messages = Int(
        10_000, config=True, help="Messages kept per disconnected session for replay."
    )

    @default("working_dir")
    def _default_working_dir(self) -> str:
        return os.getcwd()

    def __init__(self, specs: KernelSpecs, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.specs = specs
        self.metrics = metrics
        self.kernels: dict[str, ManagedKernel] = {}
        self.accepting = True
        self._context = zmq.asyncio.Context()
        self._runtime_dir = tempfile.mkdtemp(prefix="kernel-broker-")
        os.chmod(self._runtime_dir, 0o700)
        self._starting = 0
        self._start_slots = asyncio.Semaphore(self.max_concurrent_starts)
        self._tasks: list[asyncio.Task[None]] = []

    def start_background(self) -> None:
        """Start the liveness monitor and the culler."""
        self._tasks.append(asyncio.ensure_future(self._monitor()))
        if self.cull_idle_timeout > 0:
            self._tasks.append(asyncio.ensure_future(self._cull()))

    # --- lookup ----------------------------------------------------------------

    def get(self, kernel_id: str, user: User) -> ManagedKernel:
        """The kernel, or 404 when it does not exist or belongs to someone else."""
        kernel = self.kernels.get(kernel_id)
        if kernel is None or not user.owns(kernel.owner):
            raise not_found("kernel", kernel_id)
        return kernel

    def list(self, user: User) -> list[ManagedKernel]:
        return [k for k in self.kernels.values() if user.owns(k.owner)]

    # --- start -----------------------------------------------------------------

    def _check_limits(self, owner: str) -> None:
        if not self.accepting:
            raise BrokerError(503, "The broker is shutting down; start the kernel on another one.")
        total = len(self.kernels) + self._starting
        if self.max_kernels and total >= self.max_kernels:
            raise BrokerError(
                429,
                f"The broker runs its maximum of {self.max_kernels} kernels; "
                "shut one down or try later.",
            )
        mine = sum(1 for k in self.kernels.values() if k.owner == owner)
        if self.max_kernels_per_user and mine >= self.max_kernels_per_user:
            raise BrokerError(
                429,
                f"User {owner!r} already runs {mine} kernels, the most allowed; shut one down.",
            )

    def _owner(self, user: User, env: dict[str, str]) -> str:
        requested = env.get("KERNEL_USERNAME")
        if requested and user.impersonate:
            return requested
        return user.name

    async def start(
        self, name: str | None, request_env: Any, user: User, kernel_id: str | None = None
    ) -> ManagedKernel:
        """Start a kernel and return once it answers kernel_info with iopub subscribed."""
        env = validate_request_env(request_env, self.env_allowlist)
        owner = self._owner(user, env)
        env["KERNEL_USERNAME"] = owner
        name = name or self.specs.default_name
        self.specs.authorize(name, owner)
        timeout = launch_timeout(env, self.launch_timeout, self.max_launch_timeout)
        cwd = self._working_dir(env)
        self._check_limits(owner)
        kernel_id = kernel_id or str(uuid.uuid4())
        self._starting += 1
        began = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                async with self._start_slots:
                    kernel = await self._launch(kernel_id, name, owner, env, cwd, timeout)
        except TimeoutError:
            self.metrics.observe_start(0, ok=False)
            raise BrokerError(
                504,
                f"Kernel {name!r} did not start within {timeout:g} s; raise "
                "KERNEL_LAUNCH_TIMEOUT or check the kernelspec's command.",
            ) from None
        except BaseException:
            self.metrics.observe_start(0, ok=False)
            raise
        finally:
            self._starting -= 1
        self.metrics.observe_start(time.perf_counter() - began, ok=True)
        self.log.info("kernel started id=%s spec=%s owner=%s", kernel_id, name, owner)
        return kernel

    def _working_dir(self, env: dict[str, str]) -> str:
        requested = env.get("KERNEL_WORKING_DIR")
        if not requested or not self.allow_working_dir_override:
            return self.working_dir
        if not os.path.isdir(requested):
            raise BrokerError(
                400, f"KERNEL_WORKING_DIR {requested!r} is not an existing directory."
            )
        return requested

    def _new_manager(self, kernel_id: str, name: str) -> AsyncKernelManager:
        kernel_dir = os.path.join(self._runtime_dir, kernel_id)
        os.makedirs(kernel_dir, mode=0o700, exist_ok=True)
        ipc = self.transport == "ipc"
        return AsyncKernelManager(
            parent=self,
            kernel_name=name,
            kernel_spec_manager=self.specs.manager,
            transport="ipc" if ipc else "tcp",
            ip=os.path.join(kernel_dir, "k") if ipc else "127.0.0.1",
            connection_file=os.path.join(kernel_dir, "connection.json"),
            cache_ports=not ipc,  # the port cache binds TCP ports; ipc needs none
        )

    async def _launch(
        self, kernel_id: str, name: str, owner: str, env: dict[str, str], cwd: str, timeout: float
    ) -> ManagedKernel:
        km = self._new_manager(kernel_id, name)
        full_env = kernel_environment(env, self.env_inherit)
        bridge: Bridge | None = None
        try:
            await km.start_kernel(kernel_id=kernel_id, env=full_env, cwd=cwd)
            bridge = self._new_bridge(kernel_id, km)
            await bridge.ready(timeout)
        except BaseException as e:
            await self._discard(km, bridge)
            if isinstance(e, KernelUnavailable | TimeoutError | asyncio.CancelledError):
                raise
            raise BrokerError(500, f"Kernel {name!r} failed to start: {e}") from e
        kernel = ManagedKernel(kernel_id, name, owner, km, bridge)
        self.kernels[kernel_id] = kernel
        return kernel

    def _new_bridge(self, kernel_id: str, km: AsyncKernelManager) -> Bridge:
        bridge = Bridge(
            kernel_id,
            km.get_connection_info(session=False),
            self._context,
            self.metrics,
            replay_bytes=self.replay_buffer_bytes,
            replay_messages=self.replay_buffer_messages,
        )
        bridge.open()
        return bridge

    async def _discard(self, km: AsyncKernelManager, bridge: Bridge | None) -> None:
        if bridge is not None:
            await bridge.close()
        try:
            await km.shutdown_kernel(now=True)
        except Exception as e:  # a kernel that never started has nothing to shut down
            self.log.debug("cleanup after a failed start: %s", e)
        shutil.rmtree(os.path.dirname(km.connection_file), ignore_errors=True)

    # --- lifecycle -------------------------------------------------------------

    async def shutdown(self, kernel: ManagedKernel, now: bool = False) -> None:
        """Stop a kernel and forget it; safe at any moment, also during a restart."""
        async with kernel.lock:
            if self.kernels.pop(kernel.id, None) is None:
                return
            if kernel.executions is not None:
                kernel.executions.close()
            await kernel.bridge.close(1001, "kernel shut down")
            try:
                await kernel.manager.shutdown_kernel(now=now or kernel.dead)
            except Exception as e:
                self.log.warning("kernel %s: shutdown error %s; killing it", kernel.id, e)
                await kernel.manager.shutdown_kernel(now=True)
            shutil.rmtree(os.path.dirname(kernel.manager.connection_file), ignore_errors=True)
        self.log.info("kernel shut down id=%s", kernel.id)

    async def restart(self, kernel: ManagedKernel, reason: str = "requested") -> None:
        """Restart a kernel (same id and connection info); clients see ``restarting``."""
        async with kernel.lock:
            if kernel.id not in self.kernels:
                raise not_found("kernel", kernel.id)
            await self._restart_locked(kernel, now=reason != "requested")
        self.log.info("kernel restarted id=%s reason=%s", kernel.id, reason)

    async def _restart_locked(self, kernel: ManagedKernel, now: bool) -> None:
        kernel.bridge.emit_status("restarting")
        kernel.bridge.reset()
        await kernel.manager.restart_kernel(now=now)
        info = kernel.manager.get_connection_info(session=False)
        if info != kernel.bridge.info:
            kernel.bridge.reconnect(info)
        await kernel.bridge.ready(self.launch_timeout)
        kernel.dead = False
        kernel.reason = ""

    def executions(self, kernel: ManagedKernel) -> Executions:
        """The kernel's HTTP execution queue, created on first use."""
        if kernel.executions is None:
            kernel.executions = Executions(kernel.bridge, lambda: self.interrupt(kernel))
        return kernel.executions

    async def interrupt(self, kernel: ManagedKernel) -> None:
        if kernel.dead:
            raise BrokerError(409, f"Kernel {kernel.id} is dead; restart or shut it down.")
        await kernel.manager.interrupt_kernel()

    async def shutdown_all(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(
            *(self.shutdown(k, now=True) for k in list(self.kernels.values())),
            return_exceptions=True,
        )
        shutil.rmtree(self._runtime_dir, ignore_errors=True)
        # Pod provisioners share one API client and watch per cluster; close them if used.
        cluster = sys.modules.get("broker.provisioners.cluster")
        if cluster is not None:
            await cluster.close_clusters()

    # --- background ------------------------------------------------------------

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(self.monitor_interval)
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
            if self.autorestart and kernel.restarts < self.restart_limit:
                kernel.restarts += 1
                self.log.warning("kernel died id=%s; restarting (%d)", kernel.id, kernel.restarts)
                try:
                    await self._restart_locked(kernel, now=True)
                    return
                except Exception as e:
                    self.log.error("kernel %s: automatic restart failed: %s", kernel.id, e)
            kernel.dead = True
            kernel.reason = "The kernel died and could not be restarted; restart or shut it down."
            kernel.bridge.emit_status("dead")
            self.log.error("kernel dead id=%s", kernel.id)

    async def _cull(self) -> None:
        while True:
            await asyncio.sleep(self.cull_interval)
            now = time.time()
            for kernel in list(self.kernels.values()):
                idle = now - kernel.bridge.last_activity
                if idle < self.cull_idle_timeout:
                    continue
                if kernel.bridge.connections and not self.cull_connected:
                    continue
                if kernel.execution_state == "busy" and not self.cull_busy:
                    continue
                self.log.info("culling kernel id=%s idle=%.0fs", kernel.id, idle)
                await self.shutdown(kernel, now=True)
