"""The MCP server: tools/list from the tool table, tools/call with every failure a tool error.

Built on the SDK's low-level ``Server``. A failed call (unknown kernel, another user's
kernel, malformed arguments, a limit) is answered as a result with ``isError`` and a
message saying what to do next, never as a protocol error or a crash; it is logged once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from mcp.server import Server, ServerRequestContext
from mcp_types import (
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
)
from mcp_types import Tool as McpTool
from pydantic import ValidationError

from .. import __version__
from ..errors import BrokerError
from .catalog import TOOLS, Tool
from .tools import Call

if TYPE_CHECKING:
    from ..app import Broker
    from ..auth import User

log = logging.getLogger("broker.mcp")

USER_SCOPE_KEY = "kernel_broker.user"  # where the HTTP layer puts the authenticated caller
INSTRUCTIONS = (
    "Kernel Broker runs code in Jupyter kernels. Start a kernel with start_kernel, run code "
    "with execute (pass the kernel's id as kernel_id; variables persist between calls), and "
    "shut it down with shutdown_kernel when done."
)
_BY_NAME = {tool.name: tool for tool in TOOLS}
_detached: set[asyncio.Task[CallToolResult]] = set()  # tools running on for a departed caller


def tool_error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def validation_message(tool: str, error: ValidationError) -> str:
    """One line per bad field: where, and what was wrong."""
    problems = []
    for item in error.errors()[:10]:
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        problems.append(f"{where}: {item['msg']}")
    return (
        f"Invalid arguments for {tool}: " + "; ".join(problems) + ". See the tool's input schema."
    )


def listed_tools() -> list[McpTool]:
    """The tools as ``tools/list`` shows them."""
    return [
        McpTool(
            name=tool.name,
            description=tool.description,
            input_schema=tool.args.model_json_schema(),
            annotations=tool.annotations,
        )
        for tool in TOOLS
    ]


async def call_tool(
    broker: Broker, user: User, name: str, arguments: dict[str, Any]
) -> CallToolResult:
    """Run one tool for ``user``; every failure becomes a tool error."""
    tool = _BY_NAME.get(name)
    if tool is None:
        log.warning("mcp tool %r: unknown", name[:80])
        return tool_error(f"Unknown tool {name[:80]!r}; the tools are {', '.join(_BY_NAME)}.")
    try:
        args = tool.args.model_validate(arguments)
    except ValidationError as error:
        message = validation_message(name, error)
        log.warning("mcp tool %s: %s", name, message)
        return tool_error(message)
    try:
        return await _run(tool, Call(broker, user), args)
    except BrokerError as error:
        log.warning("mcp tool %s: %d %s", name, error.status_code, error.message)
        return tool_error(error.message)
    except Exception:
        log.exception("mcp tool %s failed", name)
        return tool_error("The broker hit an unexpected error; it is logged. Retry, or report it.")


async def _run(tool: Tool, call: Call, args: Any) -> CallToolResult:
    """Run the tool; one that is not cancellable finishes even if its caller is gone."""
    if tool.cancellable:
        return await tool.run(call, args)
    task = asyncio.ensure_future(tool.run(call, args))
    _detached.add(task)
    task.add_done_callback(_finished)
    return await asyncio.shield(task)


def _finished(task: asyncio.Task[CallToolResult]) -> None:
    _detached.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved here: the caller, if still there, reports it


def build_server(broker: Broker) -> Server[Any]:
    """The SDK server whose tools act on ``broker``'s kernels as the requesting user."""

    async def on_list_tools(
        ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        return ListToolsResult(tools=listed_tools())

    async def on_call_tool(
        ctx: ServerRequestContext[Any], params: CallToolRequestParams
    ) -> CallToolResult:
        user = ctx.request.scope[USER_SCOPE_KEY]  # set by McpHandler after the token check
        return await call_tool(broker, user, params.name, params.arguments or {})

    return Server(
        "kernel-broker",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )
