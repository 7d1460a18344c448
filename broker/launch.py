"""Starting, adopting and discarding kernel processes (or pods) with their bridges.

The registry decides who gets which kernel; this module only makes one run: a
jupyter_client AsyncKernelManager with the kernelspec's provisioner, plus a Bridge
that has proven the kernel answers. It also turns a running kernel into a record
for the store and a record back into a running kernel (adoption after a restart
of the broker).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import KernelProvisionerFactory
from traitlets.config import LoggingConfigurable

from .bridge import Bridge, KernelUnavailable
from .capacity import zmq_context
from .errors import BrokerError
from .kernel_env import kernel_environment
from .metrics import Metrics
from .pools import WarmKernel
from .shutdown import KernelShutdown

log = logging.getLogger("broker.launch")
_MAX_IPC_PATH = 100  # Unix socket paths are limited to 107 bytes


class KernelLauncher:
    """Makes kernels run; knows nothing of owners, limits or pools."""

    def __init__(
        self,
        parent: LoggingConfigurable,
        specs: KernelSpecManager,
        metrics: Metrics,
        runtime_dir: str,
        *,
        transport: str,
        env_inherit: list[str],
        replay_bytes: int,
        replay_messages: int,
        independent: bool,
    ) -> None:
        self.parent = parent
        self.specs = specs
        self.metrics = metrics
        self.runtime_dir = runtime_dir
        self.transport = transport
        self.env_inherit = env_inherit
        self.replay_bytes = replay_bytes
        self.replay_messages = replay_messages
        self.independent = independent
        self.context = zmq_context()  # the bridges' and the kernel managers' sockets
        self.shutdown = KernelShutdown(parent=parent)
        # ids being started: a survey of the cluster must not adopt them a second time
        self.spawning: set[str] = set()

    def _manager(self, name: str) -> AsyncKernelManager:
        # A short random name (mode 0700), not the kernel id: Unix socket paths are limited
        # to 107 bytes, and a longer one would fall back to TCP, which any local user reaches.
        kernel_dir = tempfile.mkdtemp(prefix="", dir=self.runtime_dir)
        ipc_prefix = os.path.join(kernel_dir, "k")
        ipc = self._transport(name) == "ipc" and len(ipc_prefix) + 6 < _MAX_IPC_PATH
        return AsyncKernelManager(
            parent=self.parent,
            kernel_name=name,
            kernel_spec_manager=self.specs,
            transport="ipc" if ipc else "tcp",
            ip=ipc_prefix if ipc else "127.0.0.1",
            connection_file=os.path.join(kernel_dir, "connection.json"),
            context=self.context,  # not a context (and two threads) per kernel
            cache_ports=not ipc,  # the port cache binds TCP ports; ipc needs none
        )

    def _transport(self, name: str) -> str:
        """The kernelspec's ``metadata.kernel_broker.transport`` (a kernel that speaks only
        TCP, such as Deno's, says ``tcp``), else the broker's default."""
        try:
            metadata = self.specs.get_kernel_spec(name).metadata
        except Exception:  # an unknown spec: the start itself reports it
            return self.transport
        return (metadata.get("kernel_broker") or {}).get("transport") or self.transport

    def bridge_for(self, kernel_id: str, km: AsyncKernelManager) -> Bridge:
        bridge = Bridge(
            kernel_id,
            km.get_connection_info(session=False),
            self.context,
            self.metrics,
            replay_bytes=self.replay_bytes,
            replay_messages=self.replay_messages,
        )
        bridge.open()
        return bridge

    async def spawn(
        self,
        name: str,
        env: dict[str, str],
        cwd: str,
        timeout: float,
        kernel_id: str = "",
        launched: Callable[[AsyncKernelManager], Awaitable[None]] | None = None,
    ) -> WarmKernel:
        """Start a kernel and wait until it answers kernel_info with iopub subscribed.

        Pool kernels get an id of their own until they are handed out. ``launched`` is
        called as soon as the process (or pod) exists, before it answers.
        """
        spawn_id = kernel_id or str(uuid.uuid4())
        km = self._manager(name)
        bridge: Bridge | None = None
        self.spawning.add(spawn_id)
        try:
            await km.start_kernel(
                kernel_id=spawn_id,
                env=kernel_environment(env, self.env_inherit),
                cwd=cwd,
                independent=self.independent,
            )
            if launched is not None:
                await launched(km)
            bridge = self.bridge_for(spawn_id, km)
            await bridge.ready(timeout)
        except BaseException as e:
            await self.discard(km, bridge)
            if isinstance(e, KernelUnavailable | TimeoutError | asyncio.CancelledError):
                raise
            # provisioners may say whose fault it was (400: the request; 500: the launch)
            status = getattr(e, "status", 500)
            status = status if status in (400, 403, 500, 503) else 500
            raise BrokerError(status, f"Kernel {name!r} failed to start: {e}") from e
        finally:
            self.spawning.discard(spawn_id)
        return WarmKernel(name, km, bridge, env=dict(env), cwd=cwd)

    async def discard(self, km: AsyncKernelManager, bridge: Bridge | None = None) -> None:
        """Stop a kernel and remove its files (a failed start, a pool kernel, a dead record)."""
        if bridge is not None:
            await bridge.close()
        try:
            await self.shutdown.stop(km, None, now=True)
        except Exception as e:  # a kernel that never started has nothing to shut down
            log.debug("cleanup after a failed start: %s", e)
        self.remove_files(km)

    async def stop(self, km: AsyncKernelManager, bridge: Bridge, now: bool) -> None:
        """Shut a kernel down promptly (see shutdown.py), killing it if asking fails."""
        try:
            await self.shutdown.stop(km, bridge, now)
        except Exception as e:
            log.warning("kernel %s: shutdown error %s; killing it", km.kernel_id, e)
            await self.shutdown.stop(km, bridge, now=True)

    @staticmethod
    def remove_files(km: AsyncKernelManager) -> None:
        shutil.rmtree(os.path.dirname(km.connection_file), ignore_errors=True)

    # --- records ---------------------------------------------------------------

    @staticmethod
    async def record(
        kernel_id: str, spec: str, km: AsyncKernelManager, created: float, owner: str | None
    ) -> dict[str, Any]:
        """What a later broker needs to adopt this kernel (see store.py)."""
        launch_args = {k: v for k, v in km._launch_args.items() if k in ("env", "cwd")}
        return {
            "id": kernel_id,
            "name": spec,
            "owner": owner,
            "created": created,
            "connection_file": km.connection_file,
            "connection_info": km.get_connection_info(session=False),
            "provisioner_info": await km.provisioner.get_provisioner_info(),
            "launch_args": {**launch_args, "independent": True},
        }

    async def adopt(
        self, record: dict[str, Any], timeout: float, stop_unanswered: bool = True
    ) -> WarmKernel | None:
        """The recorded kernel if it still answers kernel_info; otherwise stop what is left
        (or, with ``stop_unanswered`` off, only let it go: another broker may serve it).

        A record without ``connection_info`` (a pod's, see ``podrecords.py``) takes it from
        the provisioner, which reads it where the kernel keeps it (the pod's Secret).
        """
        connection_file = record.get("connection_file") or os.path.join(
            self.runtime_dir, record["id"], "connection.json"
        )
        # a restart writes the new connection file there
        os.makedirs(os.path.dirname(connection_file), mode=0o700, exist_ok=True)
        km = AsyncKernelManager(
            parent=self.parent,
            kernel_name=record["name"],
            kernel_spec_manager=self.specs,
            connection_file=connection_file,
        )
        km.kernel_id = record["id"]
        km._launch_args = dict(record["launch_args"])
        # it was started (by an earlier broker): a restart then gets fresh `ready` futures
        km._attempted_start = True
        factory = KernelProvisionerFactory.instance(parent=self.parent)
        km.provisioner = factory.create_provisioner_instance(record["id"], km.kernel_spec, km)
        await km.provisioner.load_provisioner_info(record["provisioner_info"])
        km.load_connection_info(record["connection_info"] or km.provisioner.connection_info)
        bridge = self.bridge_for(record["id"], km)
        warm = WarmKernel(record["name"], km, bridge, created=record.get("created", 0))
        try:
            await bridge.ready(timeout)
        except KernelUnavailable:
            if stop_unanswered:
                await self.discard(km, bridge)
            else:
                await bridge.close()
                self.remove_files(km)
            return None
        return warm
