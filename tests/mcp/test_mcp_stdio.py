"""`kernel-broker mcp --url URL`: the broker's tools over stdio, driven by the official client."""

from __future__ import annotations

import base64
import subprocess
import sys

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import ImageContent

from ..broker_process import RunningBroker
from .conftest import ALICE
from .test_mcp_http import TOOLS, text


def bridge(broker: RunningBroker, token: str) -> StdioServerParameters:
    command = ["-m", "broker", "mcp", "--url", broker.url, "--token", token]
    return StdioServerParameters(command=sys.executable, args=command)


async def test_stdio_bridge_serves_the_brokers_tools(mcp_broker: RunningBroker):
    async with (
        stdio_client(bridge(mcp_broker, ALICE)) as (read, write),
        ClientSession(read, write) as session,
    ):
        init = await session.initialize()
        assert "start_kernel" in init.instructions
        assert {t.name for t in (await session.list_tools()).tools} == TOOLS
        started = await session.call_tool("start_kernel", {})
        kernel_id = started.structured_content["id"]
        try:
            code = "import matplotlib.pyplot as plt\nprint('plotted')\nplt.plot([1, 2])\nplt.show()"
            result = await session.call_tool("execute", {"kernel_id": kernel_id, "code": code})
            assert text(result).startswith("plotted")
            image = next(c for c in result.content if isinstance(c, ImageContent))
            assert base64.b64decode(image.data).startswith(b"\x89PNG")
            missing = await session.call_tool("execute", {"kernel_id": "nope", "code": "1"})
            assert missing.is_error and "No kernel 'nope'" in text(missing)
        finally:
            await session.call_tool("shutdown_kernel", {"kernel_id": kernel_id})
    assert kernel_id not in mcp_broker.request("GET", "/api/kernels").text


def test_stdio_bridge_with_a_wrong_token_exits_saying_why(mcp_broker: RunningBroker):
    command = [sys.executable, "-m", "broker", "mcp", "--url", mcp_broker.url, "--token", "bad"]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert done.returncode == 1
    assert b"HTTP 401" in done.stderr and b"--token" in done.stderr
    assert done.stdout == b""  # stdout is the protocol's: nothing else is written there


def test_stdio_bridge_without_url_is_a_usage_error():
    command = [sys.executable, "-m", "broker", "mcp"]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert done.returncode == 2 and b"--url" in done.stderr
