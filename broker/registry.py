"""The kernels this broker serves: start, restart, interrupt, shutdown, limits, culling."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Float, Int, List, Unicode, default
from traitlets.config import LoggingConfigurable

from .auth import User
from .bridge import Bridge
from .errors import BrokerError, not_found
from .executions import Executions
from .kernel_env import launch_timeout, validate_request_env
from .kernelspecs import KernelSpecs
from .launch import KernelLauncher
from .metrics import Metrics
from .pools import WARM_PREFIX, KernelPools, WarmKernel
from .replicas import Replicas
from .state_dir import kernel_work_dir
from .store import KernelStore
from .timestamps import format_time
from .wire import make_message

CLOSE_RESTART = 1012  # websocket close code: service restarting, reconnect
_ENV_INHERIT = ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "TMPDIR", "SYSTEMROOT"]


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

    def check_alive(self) -> None:
        """409 for a kernel that is dead: nothing can run until it is restarted."""
        if self.dead:
            raise BrokerError(409, f"Kernel {self.id} is dead; restart or shut it down.")

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
        self.pool_owner = pool_owner
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
        self.pools = KernelPools(self._spawn_warm, self._discard_warm, metrics, parent=self)
        self.replicas = Replicas(specs, parent=self)
        self.pools.may_refill = self.replicas.leads
        self._adopting: dict[str, asyncio.Future[None]] = {}  # kernel id: adoption done
        self._starting = 0
        self._started = False
        self._start_slots = asyncio.Semaphore(self.max_concurrent_starts)
        self._tasks: list[asyncio.Task[None]] = []

    async def start_background(self) -> None:
        """Adopt recorded kernels and kernel pods, fill the pools, start the monitor and the
        culler."""
        await self.replicas.start(self._on_leadership)
        began = time.perf_counter()
        if self.store is not None:
            await self._adopt(self.store.load_all(), self.store.delete)
        await self._survey()
        if self.kernels or self.replicas.targets:
            self.log.info(
                "adoption done kernels=%d in %.3fs", len(self.kernels), time.perf_counter() - began
            )
        self.pools.start(self.specs.default_name)
        self._started = True
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

    async def find(self, kernel_id: str, user: User) -> ManagedKernel:
        """As :meth:`get`, but a kernel pod another replica started is attached first.

        The pod's owner annotation is checked before anything is attached.
        """
        if kernel_id not in self.kernels:
            record = await self.replicas.find(kernel_id)
            if record is not None and record["owner"] and user.owns(record["owner"]):
                await self._adopt([record], lambda _: None)
        return self.get(kernel_id, user)

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
                f"The broker runs its maximum of {self.max_kernels} kernels "
                "(--max-kernels); shut one down or try later.",
            )
        mine = sum(1 for k in self.kernels.values() if k.owner == owner)
        if self.max_kernels_per_user and mine >= self.max_kernels_per_user:
            raise BrokerError(
                429,
                f"User {owner!r} already runs {mine} kernels, the most allowed "
                "(--max-kernels-per-user); shut one down.",
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
        cwd = self._working_dir(name, env)
        self._check_limits(owner)
        kernel_id = kernel_id or str(uuid.uuid4())
        self._starting += 1
        began = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                warm = await self._warm_or_cold(kernel_id, name, env, cwd, timeout)
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
        kernel = await self._register(kernel_id, warm, owner)
        self.metrics.observe_start(time.perf_counter() - began, ok=True)
        self.log.info("kernel started id=%s spec=%s owner=%s", kernel_id, name, owner)
        return kernel

    async def _warm_or_cold(
        self, kernel_id: str, name: str, env: dict[str, str], cwd: str, timeout: float
    ) -> WarmKernel:
        """A pooled kernel with the request's late variables applied, else a new one.

        Late variables are applied by Python code: a kernelspec of another language takes
        a pooled kernel only when the request wants nothing the pool kernel lacks.
        """
        late = (env, cwd) != (self._warm_env(), self.working_dir)
        late_ok = not late or self.specs.manager.get_kernel_spec(name).language == "python"
        warm = await self.pools.take(name, env, late_ok)
        if warm is not None:
            if (warm.env, warm.cwd) != (env, cwd):
                await self._apply_late_env(warm, env, cwd)
            return warm
        async with self._start_slots:
            return await self._spawn(name, env, cwd, timeout, kernel_id, env["KERNEL_USERNAME"])

    async def _apply_late_env(self, warm: WarmKernel, env: dict[str, str], cwd: str) -> None:
        """Set a pooled kernel's environment variables and working directory, silently.

        Not awaited: the kernel handles shell requests in order and every client's requests
        go through the same shell socket, so this runs before any code of the new owner.
        """
        code = f"__import__('os').environ.update({json.dumps(env)})"
        if cwd:
            code += f"; __import__('os').chdir({json.dumps(cwd)})"
        request = make_message(
            "shell",
            "execute_request",
            {"code": code, "silent": True, "store_history": False, "allow_stdin": False},
            session=warm.bridge.session,
        )

        def on_reply(msg: Any) -> None:
            if msg.msg_type == "execute_reply":
                warm.bridge.release(request.msg_id)
                if msg.content_dict().get("status") != "ok":
                    self.log.warning(
                        "kernel %s: could not apply %s", warm.manager.kernel_id, sorted(env)
                    )

        await warm.bridge.request(request, on_reply)

    def _warm_env(self) -> dict[str, str]:
        """The environment pool kernels start with."""
        return {"KERNEL_USERNAME": self.pool_owner} if self.pool_owner else {}

    async def _spawn_warm(self, name: str) -> WarmKernel:
        """A pool kernel; recorded too, so that a broker killed with -9 leaves no orphan."""
        kernel_id = f"{WARM_PREFIX}{uuid.uuid4()}"
        cwd = self._working_dir(name, {})
        return await self._spawn(name, self._warm_env(), cwd, self.launch_timeout, kernel_id, None)

    async def _spawn(
        self,
        name: str,
        env: dict[str, str],
        cwd: str,
        timeout: float,
        kernel_id: str,
        owner: str | None,
    ) -> WarmKernel:
        """Start a kernel, recorded from the moment its process exists: a broker killed
        with -9 in the middle of a start leaves a record that the next one adopts or
        ends, never an orphan process."""
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

    async def _discard_warm(self, warm: WarmKernel) -> None:
        if self.store is not None:
            self.store.delete(warm.manager.kernel_id)
        await self.launcher.discard(warm.manager, warm.bridge)

    async def _register(self, kernel_id: str, warm: WarmKernel, owner: str) -> ManagedKernel:
        if warm.manager.kernel_id != kernel_id:  # a pool kernel: bind it to this request
            if self.store is not None:
                self.store.delete(warm.manager.kernel_id)
            bind = getattr(warm.manager.provisioner, "bind_kernel", None)
            if bind is not None:
                await bind(kernel_id, owner)
        warm.manager.kernel_id = kernel_id
        warm.bridge.kernel_id = kernel_id
        kernel = ManagedKernel(kernel_id, warm.spec, owner, warm.manager, warm.bridge)
        self.kernels[kernel_id] = kernel
        await self._save(kernel)
        return kernel

    async def _save(self, kernel: ManagedKernel) -> None:
        if self.store is not None:
            self.store.save(
                await self.launcher.record(
                    kernel.id, kernel.name, kernel.manager, kernel.created, kernel.owner
                )
            )

    def _working_dir(self, name: str, env: dict[str, str]) -> str:
        """Where a local kernel starts; "" for a kernel elsewhere (a pod), whose provisioner
        reads KERNEL_WORKING_DIR itself: the broker's own directories mean nothing there."""
        if not self.specs.runs_in_broker(name):
            return ""
        requested = env.get("KERNEL_WORKING_DIR")
        if not requested or not self.allow_working_dir_override:
            return self.working_dir
        if not os.path.isdir(requested):
            raise BrokerError(
                400, f"KERNEL_WORKING_DIR {requested!r} is not an existing directory."
            )
        return requested

    # --- lifecycle -------------------------------------------------------------

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
            if self.store is not None:
                self.store.delete(kernel.id)
        self.log.info("kernel shut down id=%s", kernel.id)

    async def restart(self, kernel: ManagedKernel) -> None:
        """Restart a kernel on request (same id); its state is gone, its clients stay."""
        async with kernel.lock:
            if kernel.id not in self.kernels:
                raise not_found("kernel", kernel.id)
            await self._restart_locked(kernel, now=False)
        self.log.info("kernel restarted id=%s", kernel.id)

    async def _restart_locked(self, kernel: ManagedKernel, now: bool) -> None:
        kernel.bridge.reset()
        await self.replicas.ending(kernel.manager, restart=True)
        await kernel.manager.restart_kernel(now=now)
        info = kernel.manager.get_connection_info(session=False)
        if info != kernel.bridge.info:
            kernel.bridge.reconnect(info)
        await kernel.bridge.ready(self.launch_timeout)
        kernel.dead = False
        kernel.reason = ""
        await self._save(kernel)

    def executions(self, kernel: ManagedKernel) -> Executions:
        """The kernel's HTTP execution queue, created on first use."""
        if kernel.executions is None:
            kernel.executions = Executions(kernel.bridge, lambda: self.interrupt(kernel))
        return kernel.executions

    async def interrupt(self, kernel: ManagedKernel) -> None:
        kernel.check_alive()
        await kernel.manager.interrupt_kernel()

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

    async def _survey(self) -> None:
        """Adopt the kernel pods of this broker instance that no one here serves yet."""
        try:
            records, dropped = await self.replicas.survey(self._known)
        except Exception as e:  # noqa: BLE001 - the API server may be briefly unreachable
            self.log.warning("could not list kernel pods: %s", e)
            return
        for kernel_id in dropped:
            self.log.warning("kernel pod dropped id=%s: its kernel exited", kernel_id)
        await self._adopt(records, lambda _: None)

    def _on_leadership(self, leading: bool) -> None:
        """The Lease holder keeps the pod pools; a replica losing it stops handing them out."""
        if leading and self._started:  # at startup, start_background surveys and fills
            self._tasks.append(asyncio.ensure_future(self._lead()))
        else:
            for name in self.replicas.pod_specs:
                for warm in self.pools.release(name):
                    self._tasks.append(asyncio.ensure_future(warm.bridge.close()))

    async def _lead(self) -> None:
        await self._survey()  # warm pods the previous holder left
        self.pools.refill_all()

    def _known(self, kernel_id: str) -> bool:
        """Whether this broker serves, starts, adopts or keeps warm a kernel of this id."""
        pooled = (w.manager.kernel_id for ready in self.pools.ready.values() for w in ready)
        return (
            kernel_id in self.kernels
            or kernel_id in self.launcher.spawning
            or kernel_id in self._adopting
            or kernel_id in pooled
        )

    async def _adopt(self, records: list[dict[str, Any]], forget: Callable[[str], Any]) -> None:
        """Take over recorded kernels (or kernel pods); drop those that do not answer.

        Each kernel is adopted once: concurrent calls for the same id (a survey, lookups)
        wait for the first one.
        """
        waits = {self._adopting[r["id"]] for r in records if r["id"] in self._adopting}
        records = [r for r in records if not self._known(r["id"])]
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
            *(self.launcher.adopt(r, self.adopt_timeout) for r in records),
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
                self.kernels[kernel.id] = kernel
                self.log.info("kernel adopted id=%s owner=%s", kernel.id, kernel.owner)
            else:
                forget(record["id"])
                self.log.warning(
                    "kernel record dropped id=%s: %s",
                    record["id"],
                    warm or "it did not answer kernel_info",
                )

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
            if not self.replicas.may_restart(kernel.manager):
                # ended by a broker (maybe another replica), or a pod crash the Lease
                # holder repairs: clients reconnect and find it again if it still exists
                self.kernels.pop(kernel.id, None)
                if kernel.executions is not None:
                    kernel.executions.close()
                await kernel.bridge.close(CLOSE_RESTART, "kernel ended elsewhere; reconnect")
                self.launcher.remove_files(kernel.manager)
                self.log.info("kernel forgotten id=%s: ended or restarted elsewhere", kernel.id)
                return
            if self.autorestart and kernel.restarts < self.restart_limit:
                kernel.restarts += 1
                self.log.warning("kernel died id=%s; restarting (%d)", kernel.id, kernel.restarts)
                # Only automatic restarts are announced, as Jupyter Server does: JupyterLab
                # reads `restarting` as "the kernel appears to have died".
                kernel.bridge.emit_status("restarting")
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
            if not self.replicas.leading:
                continue  # the Lease holder culls, once for all replicas
            await self._survey()  # it must know kernels that other replicas started
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
