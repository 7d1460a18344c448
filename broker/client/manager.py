"""RemoteKernelManager: a broker kernel behind the AsyncKernelManager surface nbclient uses."""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets import Dict, Enum, Float, Unicode, default

from .kernel_client import RemoteKernelClient
from .rest import BrokerAPIError, BrokerREST

log = logging.getLogger("broker.client")


class RemoteKernelManager(AsyncKernelManager):
    """Start, restart, interrupt and shut down one kernel on a broker (or any Jupyter gateway).

    Works with nbclient both as ``NotebookClient(nb, km=RemoteKernelManager(url=...))`` and
    as ``NotebookClient(nb, kernel_manager_class=RemoteKernelManager, config=...)``; in the
    latter case nbclient passes the notebook's kernelspec name, which is what gets started.
    Set ``kernel_id`` to attach to a kernel that already runs instead of starting one.
    Nothing here uses threads, so a process never hangs on a manager it forgot to close.
    """

    url = Unicode(config=True, help="The broker's base URL (default: $BROKER_URL).")
    token = Unicode(config=True, help="The broker's token (default: $BROKER_TOKEN).")
    kernel_env = Dict(
        config=True,
        help="Environment sent with the start request: KERNEL_* variables "
        "(KERNEL_LAUNCH_TIMEOUT, KERNEL_USERNAME, ...) and what the broker allows.",
    )
    request_timeout = Float(120.0, config=True, help="Seconds a REST call may take.")
    protocol = Enum(["v1", "legacy"], "v1", config=True, help="Websocket protocol of clients.")

    @default("url")
    def _url_default(self) -> str:
        return os.environ.get("BROKER_URL", "")

    @default("token")
    def _token_default(self) -> str:
        return os.environ.get("BROKER_TOKEN", "")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model: dict[str, Any] | None = None
        self._shut_down = False
        self._clients: weakref.WeakSet[RemoteKernelClient] = weakref.WeakSet()

    @property
    def rest(self) -> BrokerREST:
        """A REST client for the running event loop (Tornado's HTTP client is per loop)."""
        if not self.url:
            raise ValueError("RemoteKernelManager needs the broker's url (or $BROKER_URL)")
        return BrokerREST(self.url, self.token or None, timeout=self.request_timeout)

    @property
    def kernel_spec(self) -> None:
        """The spec lives on the broker, not here: never look it up locally."""
        return None

    @property
    def has_kernel(self) -> bool:
        return bool(self.kernel_id) and not self._shut_down

    async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
        """Ask the broker for a kernel of ``kernel_name``; returns when it answers kernel_info.

        ``env`` is sent along; local-process options nbclient passes (``cwd``,
        ``extra_arguments``) have no meaning for a remote kernel and are ignored.
        """
        env = {**self.kernel_env, **(kw.get("env") or {})}
        self.model = await self.rest.start_kernel(self.kernel_name or None, env)
        self.kernel_id = self.model["id"]
        self._shut_down = False
        log.info("started kernel %s (%s) on %s", self.kernel_id, self.kernel_name, self.url)

    async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:  # type: ignore[override]
        """Delete the kernel on the broker; a kernel that is already gone is not an error."""
        if not self.has_kernel:
            return
        try:
            await self.rest.shutdown_kernel(self.kernel_id)
        except BrokerAPIError as e:
            if e.status != 404:
                raise
        self._shut_down = True

    async def restart_kernel(self, now: bool = False, newports: bool = False, **kw: Any) -> None:  # type: ignore[override]
        """Restart the kernel (same id); this manager's clients keep their connections."""
        if not self.has_kernel:
            raise RuntimeError("Cannot restart the kernel. No kernel is running!")
        clients = list(self._clients)
        for kc in clients:
            kc.expecting_restart = True
        try:
            self.model = await self.rest.restart_kernel(self.kernel_id)
        finally:
            for kc in clients:
                kc.expecting_restart = False
                kc.lost_reason = "" if kc.channels_running else kc.lost_reason

    async def interrupt_kernel(self) -> None:  # type: ignore[override]
        if not self.has_kernel:
            raise RuntimeError("Cannot interrupt kernel. No kernel is running!")
        await self.rest.interrupt_kernel(self.kernel_id)

    async def is_alive(self) -> bool:  # type: ignore[override]
        """Whether the broker still runs this kernel; False (never an exception) otherwise."""
        if not self.has_kernel:
            return False
        try:
            self.model = await self.rest.get_kernel(self.kernel_id)
        except BrokerAPIError as e:
            if e.status != 404:
                log.warning("kernel %s: status check failed: %s", self.kernel_id, e)
            return False
        except OSError as e:
            log.warning("kernel %s: broker unreachable: %s", self.kernel_id, e)
            return False
        return self.model.get("execution_state") != "dead"

    async def cleanup_resources(self, restart: bool = False) -> None:  # type: ignore[override]
        """Nothing local to clean: no process, ports or connection file on this side."""

    def client(self, **kwargs: Any) -> RemoteKernelClient:  # type: ignore[override]
        """A client connected (after ``start_channels``) to this manager's kernel."""
        if not self.kernel_id:
            raise RuntimeError("No kernel: start_kernel() first, or set kernel_id")
        kc = RemoteKernelClient(
            self.url,
            self.kernel_id,
            self.token or None,
            protocol=kwargs.pop("protocol", self.protocol),
            kernel_name=self.kernel_name,
            **kwargs,
        )
        self._clients.add(kc)
        return kc
