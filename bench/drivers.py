"""How the benchmark talks to a kernel: through a gateway's REST and websocket, or ZMQ directly.

Every driver starts a kernel that is *ready* (it answered kernel_info) and runs code until
the execute_reply and the idle status have both arrived, so the figures of different
targets measure the same thing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any, Protocol

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from broker.client import BrokerREST, ChannelsConnection
from broker.wire import unpack_legacy, unpack_v1

from .kernelspec import SPEC_NAME
from .targets import Server

START_TIMEOUT = 120.0


@dataclass
class Output:
    """One iopub message an execution produced (not its status messages)."""

    msg_type: str
    content: dict[str, Any]


class Kernel(Protocol):
    """A ready kernel the measurements drive."""

    async def execute(self, code: str, timeout: float = 120.0) -> list[Output]: ...

    async def close(self) -> None: ...


class Driver(Protocol):
    """Starts ready kernels on one target, speaking one protocol."""

    label: str

    async def start_kernel(self) -> Kernel: ...

    async def close_all(self) -> None:
        """Shut down every kernel this driver started that is still running."""


class ExecuteFailed(RuntimeError):
    """The kernel answered an execute_request with an error."""


def _check_reply(content: dict[str, Any]) -> None:
    if content.get("status") != "ok":
        raise ExecuteFailed(f"{content.get('ename')}: {content.get('evalue')}")


async def _when_ready(kernel: Any) -> Any:
    """The kernel once it answered kernel_info; shut down if it never does."""
    try:
        await kernel.kernel_info()
    except BaseException:
        await kernel.close()
        raise
    return kernel


# --- through a gateway ---------------------------------------------------------------------


def _decode(data: str | bytes, v1: bool) -> tuple[str, str, str | None, dict[str, Any]]:
    """``(channel, msg_type, parent msg_id, content)`` of one websocket frame.

    Legacy text frames are decoded with a single json.loads: ``unpack_legacy`` re-encodes
    every part for forwarding, which would charge the gateways for client work.
    """
    if v1:
        msg = unpack_v1(data)
        return msg.channel, msg.msg_type, msg.parent_msg_id, msg.content_dict()
    if isinstance(data, str):
        doc = json.loads(data)
        parent = doc.get("parent_header") or {}
        return (
            doc.get("channel", ""),
            doc["header"]["msg_type"],
            parent.get("msg_id"),
            doc["content"],
        )
    msg = unpack_legacy(data)
    return msg.channel, msg.msg_type, msg.parent_msg_id, msg.content_dict()


class GatewayKernel:
    """A kernel started over REST and driven over one websocket."""

    def __init__(self, driver: GatewayDriver, kernel_id: str, conn: ChannelsConnection) -> None:
        self.driver = driver
        self.kernel_id = kernel_id
        self.conn = conn

    async def _until_reply(self, msg_id: str, outputs: list[Output] | None) -> None:
        reply: dict[str, Any] | None = None
        idle = outputs is None  # kernel_info: the reply alone proves readiness
        while reply is None or not idle:
            channel, msg_type, parent, content = _decode(await self.conn.ws.recv(), self.conn.v1)
            if parent != msg_id:
                continue
            if channel in ("shell", "control"):
                reply = content
            elif msg_type == "status":
                idle = content.get("execution_state") == "idle"
            elif outputs is not None:
                outputs.append(Output(msg_type, content))
        _check_reply(reply)

    async def kernel_info(self, timeout: float = START_TIMEOUT) -> None:
        request = await self.conn.request("shell", "kernel_info_request", {})
        async with asyncio.timeout(timeout):
            await self._until_reply(request.msg_id, None)

    async def execute(self, code: str, timeout: float = 120.0) -> list[Output]:
        request = await self.conn.request(
            "shell", "execute_request", {"code": code, "silent": False, "allow_stdin": False}
        )
        outputs: list[Output] = []
        async with asyncio.timeout(timeout):
            await self._until_reply(request.msg_id, outputs)
        return outputs

    async def close(self) -> None:
        await self.conn.close()
        await self.driver.shutdown(self.kernel_id)


class GatewayDriver:
    """Kernels on a gateway server, over the websocket protocol ``"v1"`` or ``"legacy"``."""

    def __init__(self, server: Server, protocol: str) -> None:
        self.server = server
        self.protocol = protocol
        self.label = f"{server.name}/{protocol}"
        self.rest = BrokerREST(server.url, server.token, timeout=START_TIMEOUT)
        self.negotiated: str | None = None  # the protocol the server actually selected
        self.live: set[str] = set()

    async def shutdown(self, kernel_id: str) -> None:
        self.live.discard(kernel_id)
        await self.rest.shutdown_kernel(kernel_id)

    async def close_all(self) -> None:
        await asyncio.gather(*(self.shutdown(k) for k in list(self.live)), return_exceptions=True)

    async def start_kernel(self) -> GatewayKernel:
        model = await self.rest.start_kernel(SPEC_NAME)
        self.live.add(model["id"])
        try:
            conn = await ChannelsConnection.connect(
                self.server.url,
                model["id"],
                self.server.token,
                protocol=self.protocol,
                open_timeout=START_TIMEOUT,
            )
        except BaseException:
            await self.shutdown(model["id"])
            raise
        self.negotiated = "v1" if conn.v1 else "legacy"
        kernel = GatewayKernel(self, model["id"], conn)
        return await _when_ready(kernel)


# --- directly over ZMQ ------------------------------------------------------------------------


class DirectKernel:
    """A kernel this process launched, driven with jupyter_client over ZMQ."""

    def __init__(self, driver: DirectDriver, manager: AsyncKernelManager) -> None:
        self.driver = driver
        self.manager = manager
        self.client = manager.client()
        self.client.start_channels()

    async def kernel_info(self, timeout: float = START_TIMEOUT) -> None:
        """Retry kernel_info until a reply and an iopub message arrive (iopub is subscribed).

        This is the readiness a gateway proves before it answers. jupyter_client's
        wait_for_ready proves the same and then waits for 0.2 s of iopub silence on top,
        which would flatter every gateway by that much.
        """
        async with asyncio.timeout(timeout):
            while True:
                msg_id = self.client.kernel_info()
                try:
                    while (await self.client.get_shell_msg(timeout=1.0))["parent_header"].get(
                        "msg_id"
                    ) != msg_id:
                        pass
                    await self.client.get_iopub_msg(timeout=0.5)
                    return
                except Empty:  # not up yet (or iopub not yet subscribed): ask again
                    if not await self.manager.is_alive():
                        raise RuntimeError("kernel died before replying to kernel_info") from None

    async def execute(self, code: str, timeout: float = 120.0) -> list[Output]:
        msg_id = self.client.execute(code, allow_stdin=False)
        outputs: list[Output] = []
        async with asyncio.timeout(timeout):
            while True:
                reply = await self.client.get_shell_msg()
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            while True:
                msg = await self.client.get_iopub_msg()
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "status":
                    if msg["content"]["execution_state"] == "idle":
                        break
                else:
                    outputs.append(Output(msg["msg_type"], msg["content"]))
        _check_reply(reply["content"])
        return outputs

    async def close(self) -> None:
        self.driver.live.discard(self)
        self.client.stop_channels()
        await self.manager.shutdown_kernel(now=True)


class DirectDriver:
    """Kernels launched in-process by AsyncKernelManager: the floor every gateway is held to."""

    label = "direct/zmq"

    def __init__(self, jupyter_path: Path, runtime_dir: Path, log_path: Path) -> None:
        self.specs = KernelSpecManager(kernel_dirs=[str(jupyter_path / "kernels")])
        self.runtime_dir = runtime_dir
        self.log_path = log_path  # kernels' output, as a gateway's kernels write to its log
        self.live: set[DirectKernel] = set()

    async def close_all(self) -> None:
        await asyncio.gather(*(k.close() for k in list(self.live)), return_exceptions=True)

    async def start_kernel(self) -> DirectKernel:
        manager = AsyncKernelManager(kernel_name=SPEC_NAME, kernel_spec_manager=self.specs)
        manager.connection_file = str(self.runtime_dir / f"kernel-{uuid.uuid4()}.json")
        try:
            with open(self.log_path, "ab") as log:
                await manager.start_kernel(stdout=log, stderr=log)
        except BaseException:
            await manager.shutdown_kernel(now=True)  # a launch cancelled half-way leaves a process
            raise
        kernel = DirectKernel(self, manager)
        self.live.add(kernel)
        return await _when_ready(kernel)
