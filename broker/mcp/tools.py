"""The MCP tools: each one a thin call into the registry, the executions or the snapshots.

Every tool that acts on a kernel takes its id (``kernel_id``) as an argument, so no
session state is needed and any replica can serve any call. Arguments are pydantic
models: their JSON schemas are what ``tools/list`` advertises, and a call whose
arguments do not match is answered as a tool error naming the field.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp_types import CallToolResult, ImageContent, TextContent
from pydantic import BaseModel, ConfigDict, Field
from traitlets import Int
from traitlets.config import Configurable

from ..client.results import execution_from_events
from ..client.tool_output import render
from ..errors import BrokerError
from ..executions import FINAL, Execution
from ..handlers.executions import requested_timeout

if TYPE_CHECKING:
    from ..app import Broker
    from ..auth import User
    from ..registry.managed_kernel import ManagedKernel


class McpLimits(Configurable):
    """How much of an execution's output an MCP tool result carries."""

    output_chars = Int(
        20000,
        config=True,
        help="Characters of text output per execute result; longer output keeps its head and "
        "tail around a note giving the full size.",
    )
    image_bytes = Int(
        512 * 1024,
        config=True,
        help="Bytes of each PNG/JPEG image in a result; larger images are scaled down (JPEG).",
    )
    download_bytes = Int(
        8 * 1024 * 1024,
        config=True,
        help="Largest file download_file returns (base64 in the message for binary files); "
        "larger files are fetched over the REST file API, which streams.",
    )


@dataclass(frozen=True)
class Call:
    """One tool call: the broker and the authenticated caller."""

    broker: Broker
    user: User

    async def kernel(self, kernel_id: str) -> ManagedKernel:
        """The caller's kernel (404, as a tool error, for an unknown or foreign one)."""
        try:
            return await self.broker.registry.find(kernel_id, self.user)
        except BrokerError as error:
            if error.status_code != 404:
                raise
            raise BrokerError(
                404,
                f"No kernel {kernel_id[:80]!r} of yours; list_kernels lists them, "
                "start_kernel starts one.",
            ) from None


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoArgs(Args):
    pass


class KernelArgs(Args):
    kernel_id: str = Field(
        description="The kernel's id, as start_kernel or list_kernels returned it."
    )


class StartArgs(Args):
    name: str | None = Field(
        None, description="Kernelspec name (see list_kernelspecs); omit for the default (python3)."
    )
    env: dict[str, str] | None = Field(
        None,
        description="Environment variables for the kernel: KERNEL_* variables such as "
        "KERNEL_WORKING_DIR, and those the operator allows.",
    )


class ExecuteArgs(KernelArgs):
    code: str = Field(description="Source code to run, in the kernel's language.")
    timeout: float | None = Field(
        None,
        description="Seconds the code may run (from submission) before the kernel is "
        "interrupted; default 600.",
    )
    background: bool = Field(
        False,
        description="Return at once with an execution_id; read the output later with "
        "get_execution. For code that runs longer than you want to wait.",
    )


class ExecutionArgs(KernelArgs):
    execution_id: str = Field(description="The execution_id that execute returned.")
    wait: float = Field(
        0,
        ge=0,
        le=300,
        description="Seconds to wait for the execution to finish before answering with what "
        "it produced so far (0: answer at once).",
    )


class RestoreArgs(KernelArgs):
    snapshot_id: str = Field(description="The id a snapshot call returned.")


def json_result(doc: dict[str, Any]) -> CallToolResult:
    """A JSON document both as text (for the model) and as structured content."""
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(doc, indent=1))], structured_content=doc
    )


def execution_result(call: Call, ex: Execution, kernel_id: str) -> CallToolResult:
    """An execution as text (head and tail kept) plus its PNG/JPEG images."""
    limits: McpLimits = call.broker.mcp_limits
    output = render(
        execution_from_events(ex.model()["events"]),
        max_chars=limits.output_chars,
        accepts_images=True,
        max_image_bytes=limits.image_bytes,
    )
    text = output.text
    if ex.status not in FINAL:
        text = (
            f"[execution {ex.id} is {ex.status}; output so far below. Call get_execution "
            f"with kernel_id {kernel_id} and this execution_id to read more.]\n{text}"
        )
    content: list[TextContent | ImageContent] = [TextContent(type="text", text=text)]
    content += [ImageContent(type="image", data=b64, mime_type=m) for m, b64 in output.images]
    status = {"execution_id": ex.id, "status": ex.status, "execution_count": ex.execution_count}
    return CallToolResult(content=content, structured_content=status)


async def _until_done(ex: Execution, seconds: float | None) -> None:
    """Wait for the execution's end event, at most ``seconds`` (None: no limit)."""

    async def ended() -> None:
        async for _ in ex.follow():
            pass

    try:
        await asyncio.wait_for(ended(), seconds)
    except TimeoutError:
        pass


async def list_kernelspecs(call: Call, _: NoArgs) -> CallToolResult:
    user = call.user
    models = call.broker.specs.list_models(None if user.admin else user.name)
    specs = {
        name: {
            "display_name": model["spec"].get("display_name", name),
            "language": model["spec"].get("language", ""),
        }
        for name, model in models["kernelspecs"].items()
    }
    return json_result({"default": models["default"], "kernelspecs": specs})


async def start_kernel(call: Call, args: StartArgs) -> CallToolResult:
    kernel = await call.broker.registry.start(args.name, args.env, call.user)
    return json_result(kernel.model())


async def list_kernels(call: Call, _: NoArgs) -> CallToolResult:
    return json_result({"kernels": call.broker.registry.models(call.user)})


async def execute(call: Call, args: ExecuteArgs) -> CallToolResult:
    kernel = await call.kernel(args.kernel_id)
    timeout = requested_timeout({"timeout": args.timeout}, call.broker.execution_limits)
    kernel.check_alive()
    executions = call.broker.registry.executions(kernel)
    ex = executions.submit(args.code, timeout)
    if not args.background:
        try:
            await _until_done(ex, None)
        finally:
            if ex.status not in FINAL:  # the client went away: stop the code, as REST does
                await executions.cancel(ex)
    return execution_result(call, ex, kernel.id)


async def get_execution(call: Call, args: ExecutionArgs) -> CallToolResult:
    kernel = await call.kernel(args.kernel_id)
    ex = call.broker.registry.executions(kernel).get(args.execution_id)
    if args.wait:
        await _until_done(ex, args.wait)
    return execution_result(call, ex, kernel.id)


async def interrupt(call: Call, args: KernelArgs) -> CallToolResult:
    kernel = await call.kernel(args.kernel_id)
    await call.broker.registry.interrupt(kernel)
    return json_result(kernel.model())


async def restart(call: Call, args: KernelArgs) -> CallToolResult:
    kernel = await call.kernel(args.kernel_id)
    await call.broker.registry.restart(kernel)
    return json_result(kernel.model())


async def shutdown_kernel(call: Call, args: KernelArgs) -> CallToolResult:
    kernel = await call.kernel(args.kernel_id)
    await call.broker.registry.shutdown(kernel)
    return json_result({"id": kernel.id, "shut_down": True})


async def snapshot(call: Call, args: KernelArgs) -> CallToolResult:
    kernel = await call.kernel(args.kernel_id)
    return json_result(await call.broker.snapshots.take(kernel))


async def restore(call: Call, args: RestoreArgs) -> CallToolResult:
    kernel = await call.kernel(args.kernel_id)
    return json_result(await call.broker.snapshots.restore(args.snapshot_id, kernel, call.user))
