"""`kernel-broker mcp --url URL`: the broker's MCP tools over stdio, for desktop agents.

An MCP stdio server whose tools are the broker's: it lists and calls them on the broker's
``/mcp`` endpoint (streamable HTTP, with the token), so the tools, their schemas and their
answers are exactly the HTTP endpoint's. Nothing about kernels lives in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp_types import CallToolRequestParams, CallToolResult, ListToolsResult, PaginatedRequestParams

from .. import __version__

CONNECT_TIMEOUT = 30.0  # seconds; reads have no limit: an execute may run for many minutes


def endpoint(url: str) -> str:
    """The MCP endpoint of a broker given by its base URL (or by the endpoint itself)."""
    url = url.rstrip("/")
    return url if url.endswith("/mcp") else f"{url}/mcp"


def bridge_server(remote: ClientSession, instructions: str | None) -> Server[Any]:
    """A stdio-side server that forwards tools/list and tools/call to ``remote``."""

    async def on_list_tools(
        ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        return await remote.list_tools()

    async def on_call_tool(
        ctx: ServerRequestContext[Any], params: CallToolRequestParams
    ) -> CallToolResult:
        return await remote.call_tool(params.name, params.arguments or {})

    return Server(
        "kernel-broker",
        version=__version__,
        instructions=instructions,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


async def serve(url: str, token: str) -> None:
    """Connect to the broker, then serve its tools on stdin/stdout until stdin closes."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx2.Timeout(CONNECT_TIMEOUT, read=None)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        await check_access(http, url)
        async with (
            streamable_http_client(endpoint(url), http_client=http) as (read, write),
            ClientSession(read, write) as remote,
        ):
            await _serve_remote(remote)


async def check_access(http: httpx2.AsyncClient, url: str) -> None:
    """Fail at once, with the broker's own reason, when the URL or the token is wrong."""
    response = await http.get(endpoint(url).removesuffix("/mcp") + "/api/status")
    if response.status_code >= 400:
        try:
            reason = response.json().get("message", "")
        except ValueError:
            reason = response.text[:200]
        raise BrokerRefused(f"HTTP {response.status_code}: {reason}")


class BrokerRefused(Exception):
    """The broker answered, but not with what a working MCP connection needs."""


async def _serve_remote(remote: ClientSession) -> None:
    init = await remote.initialize()
    server = bridge_server(remote, init.instructions)
    async with stdio_server() as (stdin, stdout):
        await server.run(stdin, stdout, server.create_initialization_options())


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="kernel-broker mcp",
        description="Serve a broker's MCP tools over stdio (for desktop agents such as "
        "Claude Desktop). Logs go to stderr; stdout carries the protocol.",
    )
    p.add_argument("--url", required=True, help="the broker, e.g. http://127.0.0.1:8889")
    p.add_argument("--token", default=os.environ.get("BROKER_TOKEN", ""), help="env BROKER_TOKEN")
    return p.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args.url, args.token))
    except KeyboardInterrupt:
        pass
    except Exception as error:  # noqa: BLE001 - one line on stderr, not a traceback
        reason = _root_cause(error)
        print(
            f"kernel-broker mcp: cannot serve the MCP tools of {endpoint(args.url)}: "
            f"{reason.rstrip('.')}. "
            "Check --url, --token (or BROKER_TOKEN) and that the broker runs.",
            file=sys.stderr,
        )
        sys.exit(1)


def _root_cause(error: BaseException) -> str:
    # anyio wraps failures of the transport's tasks in exception groups
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"
