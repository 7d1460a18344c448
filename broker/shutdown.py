"""Stopping a kernel promptly: its own shutdown reply, a short grace for its exit, a kill.

jupyter_client's ``shutdown_kernel`` sends ``shutdown_request`` without awaiting the
reply and then asks every 0.1 s whether the process still lives, so a DELETE took about
320 ms although an idle ipykernel replies within 5 ms and exits within about 100 ms.
Here the reply is awaited on the kernel's control channel (through its bridge), the exit
as an event (the provisioner's ``wait``: a pidfd for local kernels, the pod watch for
pods), and whatever is still running after the bounded grace is killed: the whole
process group of a local kernel, the pod of a pod kernel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from jupyter_client.manager import AsyncKernelManager
from traitlets import Float
from traitlets.config import LoggingConfigurable

from .bridge import Bridge
from .wire import Message, make_message

_KILL_WAIT = 5.0  # a SIGKILLed process is gone at once; a pod deletion may take a moment


async def _within(awaitable: Awaitable[object], timeout: float) -> bool:
    """Whether ``awaitable`` finished within ``timeout`` seconds (it is cancelled if not)."""
    try:
        await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        return False
    return True


class KernelShutdown(LoggingConfigurable):
    """How long a kernel being shut down is given before it is killed."""

    reply_timeout = Float(
        1.0,
        config=True,
        help="Seconds a kernel has to answer shutdown_request before it is killed.",
    )
    exit_timeout = Float(
        1.0,
        config=True,
        help="Seconds a kernel that answered shutdown_request has to exit before it "
        "(with every process of its process group, or its pod) is killed.",
    )

    async def stop(self, km: AsyncKernelManager, bridge: Bridge | None, now: bool) -> None:
        """Shut the kernel down and release its resources; ``now`` kills it without asking.

        Returns once the kernel's process has exited (or its pod is gone).
        """
        km.shutting_down = True  # jupyter_client's own flag: no restart of this kernel
        began = time.perf_counter()
        replied = exited = False
        if km.has_kernel and not now and bridge is not None and bridge.is_ready:
            replied = await self._ask(km, bridge)
            exited = replied and await _within(km.provisioner.wait(), self.exit_timeout)
        if km.has_kernel and not exited:
            await km.provisioner.kill()
            if not await _within(km.provisioner.wait(), _KILL_WAIT):
                self.log.warning(
                    "kernel %s: still running %.0f s after kill", km.kernel_id, _KILL_WAIT
                )
        await km.cleanup_resources(restart=False)
        self.log.debug(
            "kernel %s stopped in %.1f ms (%s)",
            km.kernel_id,
            1000 * (time.perf_counter() - began),
            "exited" if exited else "replied, then killed" if replied else "killed",
        )

    async def _ask(self, km: AsyncKernelManager, bridge: Bridge) -> bool:
        """Send shutdown_request on the control channel; whether the reply came in time."""
        if bridge.execution_state == "busy":
            # ipykernel answers on its control thread, but its process ends only once the
            # running cell does: interrupt it first, as jupyter_client does
            await km.interrupt_kernel()
        replied = asyncio.Event()

        def on_reply(msg: Message) -> None:
            if msg.msg_type == "shutdown_reply":
                replied.set()

        request = make_message(
            "control", "shutdown_request", {"restart": False}, session=bridge.session
        )
        await bridge.request(request, on_reply)
        try:
            await km.provisioner.shutdown_requested(restart=False)
            return await _within(replied.wait(), self.reply_timeout)
        finally:
            bridge.release(request.msg_id)
