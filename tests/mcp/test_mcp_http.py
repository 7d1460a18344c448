"""The MCP server at /mcp, driven by the official MCP Python client over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import io
import time

import pytest
import requests
from mcp import ClientSession
from mcp_types import CallToolResult, ImageContent
from PIL import Image

from ..broker_process import RunningBroker
from ..conftest import SLOW_START
from ..test_pools import pool_requests, wait_for_pool
from .conftest import ALICE, BOB, as_user, mcp_session

TOOLS = {
    "list_kernelspecs",
    "start_kernel",
    "list_kernels",
    "execute",
    "get_execution",
    "interrupt",
    "restart",
    "snapshot",
    "restore",
    "upload_file",
    "download_file",
    "shutdown_kernel",
}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"},
    },
}


def text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


async def run(session: ClientSession, kernel_id: str, code: str, **kw: object) -> CallToolResult:
    result = await session.call_tool("execute", {"kernel_id": kernel_id, "code": code, **kw})
    assert not result.is_error, text(result)
    return result


async def test_tools_list_has_every_tool_with_a_description_and_schema(mcp_broker: RunningBroker):
    async with as_user(mcp_broker, ALICE) as alice:
        tools = {tool.name: tool for tool in (await alice.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert len(tool.description) > 40, tool.name
            assert tool.input_schema["type"] == "object"
        execute = tools["execute"].input_schema
        assert set(execute["required"]) == {"kernel_id", "code"}
        assert {"timeout", "background"} <= set(execute["properties"])
        assert all(p.get("description") for p in execute["properties"].values())


def test_request_without_token_is_refused_with_401(mcp_broker: RunningBroker):
    r = requests.post(f"{mcp_broker.url}/mcp", json=INITIALIZE, timeout=30)
    assert r.status_code == 401
    assert set(r.json()) == {"reason", "message"}
    assert "token" in r.json()["message"]


def test_request_with_a_wrong_token_is_refused_with_401(mcp_broker: RunningBroker):
    headers = {"Authorization": "Bearer not-a-token"}
    r = requests.post(f"{mcp_broker.url}/mcp", json=INITIALIZE, headers=headers, timeout=30)
    assert r.status_code == 401


def test_a_body_that_is_not_json_is_refused_with_415(mcp_broker: RunningBroker):
    headers = {**mcp_broker.headers(), "Content-Type": "text/plain"}
    r = requests.post(f"{mcp_broker.url}/mcp", data="hello", headers=headers, timeout=30)
    assert r.status_code == 415
    assert "application/json" in r.json()["message"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_mcp_answers_only_post(mcp_broker: RunningBroker, method: str):
    r = requests.request(method, f"{mcp_broker.url}/mcp", headers=mcp_broker.headers(), timeout=30)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    "path, headers",
    [
        ("/mcp", {"Authorization": f"token {ALICE}"}),
        (f"/mcp?token={ALICE}", {}),
    ],
    ids=["token-header", "query"],
)
async def test_token_is_accepted_as_token_header_and_query(
    mcp_broker: RunningBroker, path: str, headers: dict[str, str]
):
    async with mcp_session(mcp_broker.url + path, headers) as session:
        listed = await session.call_tool("list_kernels", {})
    assert not listed.is_error


async def test_list_kernelspecs_names_the_default(mcp_broker: RunningBroker):
    async with as_user(mcp_broker, ALICE) as alice:
        result = await alice.call_tool("list_kernelspecs", {})
        assert result.structured_content["default"] == "python3"
        assert result.structured_content["kernelspecs"]["python3"]["language"] == "python"


async def test_start_kernel_returns_an_id_that_execute_and_shutdown_take(mcp_broker: RunningBroker):
    async with as_user(mcp_broker, ALICE) as alice:
        started = await alice.call_tool("start_kernel", {})
        assert not started.is_error, text(started)
        kernel_id = started.structured_content["id"]
        try:
            listed = await alice.call_tool("list_kernels", {})
            assert kernel_id in [k["id"] for k in listed.structured_content["kernels"]]
            assert text(await run(alice, kernel_id, "print(6 * 7)")) == "42"
        finally:
            stopped = await alice.call_tool("shutdown_kernel", {"kernel_id": kernel_id})
        assert not stopped.is_error, text(stopped)
        listed = await alice.call_tool("list_kernels", {})
        assert kernel_id not in [k["id"] for k in listed.structured_content["kernels"]]


async def test_start_kernel_takes_a_warm_kernel_from_the_pool(mcp_broker: RunningBroker):
    await wait_for_pool(mcp_broker, 1)
    hits = pool_requests(mcp_broker, "hit")
    async with as_user(mcp_broker, ALICE) as alice:
        started = await alice.call_tool("start_kernel", {})
        kernel_id = started.structured_content["id"]
        try:
            assert pool_requests(mcp_broker, "hit") == hits + 1
            assert started.structured_content["owner"] == "alice"
            assert (
                text(await run(alice, kernel_id, "import os; print(os.environ['KERNEL_USERNAME'])"))
                == "alice"
            )
        finally:
            await alice.call_tool("shutdown_kernel", {"kernel_id": kernel_id})


async def test_execute_returns_stdout_stderr_and_the_last_value(
    mcp_broker: RunningBroker, kernel_id: str
):
    async with as_user(mcp_broker, ALICE) as alice:
        code = "import sys; print('out'); print('err', file=sys.stderr); 6 * 7"
        result = await run(alice, kernel_id, code)
        assert text(result) == "out\n[stderr]\nerr\nOut[1]: 42"
        assert result.structured_content["status"] == "ok"


async def test_execute_keeps_variables_between_calls(mcp_broker: RunningBroker, kernel_id: str):
    async with as_user(mcp_broker, ALICE) as alice:
        await run(alice, kernel_id, "x = 21")
        assert text(await run(alice, kernel_id, "print(x * 2)")) == "42"


async def test_matplotlib_plot_comes_back_as_png_image_content(
    mcp_broker: RunningBroker, kernel_id: str
):
    async with as_user(mcp_broker, ALICE) as alice:
        code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"
        result = await run(alice, kernel_id, code)
        images = [c for c in result.content if isinstance(c, ImageContent)]
        assert len(images) == 1
        assert images[0].mime_type == "image/png"
        with Image.open(io.BytesIO(base64.b64decode(images[0].data))) as image:
            assert image.format == "PNG" and image.width > 100


async def test_long_output_keeps_head_and_tail_and_states_the_full_size(
    mcp_broker: RunningBroker, kernel_id: str
):
    async with as_user(mcp_broker, ALICE) as alice:
        result = await run(alice, kernel_id, "print('head' + 'x' * 100000 + 'tail')")
        out = text(result)
        assert out.startswith("head") and out.endswith("tail")
        assert "the full output was 100008 characters" in out
        assert len(out) < 21000


async def test_exception_comes_back_with_its_traceback(mcp_broker: RunningBroker, kernel_id: str):
    async with as_user(mcp_broker, ALICE) as alice:
        result = await run(alice, kernel_id, "1 / 0")
        assert "ZeroDivisionError" in text(result)
        assert "\x1b[" not in text(result)
        assert result.structured_content["status"] == "error"


async def test_background_execution_is_read_later_by_its_id(
    mcp_broker: RunningBroker, kernel_id: str
):
    async with as_user(mcp_broker, ALICE) as alice:
        started = await run(
            alice, kernel_id, "import time; time.sleep(1); print('done')", background=True
        )
        execution_id = started.structured_content["execution_id"]
        assert started.structured_content["status"] in ("queued", "running")
        result = await alice.call_tool(
            "get_execution", {"kernel_id": kernel_id, "execution_id": execution_id, "wait": 60}
        )
        assert result.structured_content["status"] == "ok"
        assert text(result) == "done"


async def test_interrupt_stops_a_sleep_and_keeps_the_variables(
    mcp_broker: RunningBroker, kernel_id: str
):
    async with as_user(mcp_broker, ALICE) as alice:
        await run(alice, kernel_id, "kept = 1")
        code = "import time\nprint('sleeping', flush=True)\ntime.sleep(120)"
        started = await run(alice, kernel_id, code, background=True)
        execution_id = started.structured_content["execution_id"]
        read = {"kernel_id": kernel_id, "execution_id": execution_id, "wait": 0}
        async with asyncio.timeout(60):  # each read is a round trip; it printed: it sleeps
            while "sleeping" not in text(await alice.call_tool("get_execution", read)):
                pass
        interrupted = await alice.call_tool("interrupt", {"kernel_id": kernel_id})
        assert not interrupted.is_error, text(interrupted)
        result = await alice.call_tool("get_execution", {**read, "wait": 60})
        assert result.structured_content["status"] == "error"
        assert "KeyboardInterrupt" in text(result)
        assert text(await run(alice, kernel_id, "print(kept)")) == "1"


async def test_restart_loses_the_variables(mcp_broker: RunningBroker, kernel_id: str):
    async with as_user(mcp_broker, ALICE) as alice:
        await run(alice, kernel_id, "gone = 1")
        restarted = await alice.call_tool("restart", {"kernel_id": kernel_id})
        assert not restarted.is_error, text(restarted)
        assert "NameError" in text(await run(alice, kernel_id, "gone"))


async def test_snapshot_restores_variables_into_another_kernel(
    kernel_id: str, mcp_broker: RunningBroker
):
    async with as_user(mcp_broker, ALICE) as alice:
        await run(alice, kernel_id, "data = {'rows': [1, 2, 3]}")
        taken = await alice.call_tool("snapshot", {"kernel_id": kernel_id})
        assert not taken.is_error, text(taken)
        assert "data" in taken.structured_content["saved"]
        other = mcp_broker.start_kernel()
        try:
            args = {"kernel_id": other, "snapshot_id": taken.structured_content["id"]}
            restored = await alice.call_tool("restore", args)
            assert not restored.is_error, text(restored)
            assert text(await run(alice, other, "print(data['rows'][-1])")) == "3"
        finally:
            mcp_broker.delete_kernel(other)


async def test_unknown_kernel_is_a_tool_error(mcp_broker: RunningBroker):
    async with as_user(mcp_broker, ALICE) as alice:
        result = await alice.call_tool("execute", {"kernel_id": "no-such-kernel", "code": "1"})
        assert result.is_error
        assert "No kernel 'no-such-kernel'" in text(result) and "list_kernels" in text(result)


async def test_another_users_kernel_is_a_tool_error_and_untouched(
    mcp_broker: RunningBroker, kernel_id: str
):
    async with as_user(mcp_broker, ALICE) as alice:
        await run(alice, kernel_id, "mine = 'alice'")
        async with as_user(mcp_broker, BOB) as bob:
            for tool, extra in [("execute", {"code": "mine = 'bob'"}), ("shutdown_kernel", {})]:
                result = await bob.call_tool(tool, {"kernel_id": kernel_id, **extra})
                assert result.is_error and "No kernel" in text(result), tool
            listed = await bob.call_tool("list_kernels", {})
        assert kernel_id not in [k["id"] for k in listed.structured_content["kernels"]]
        assert text(await run(alice, kernel_id, "print(mine)")) == "alice"


@pytest.mark.parametrize(
    "tool, arguments, complaint",
    [
        ("execute", {"kernel_id": "k"}, "code: Field required"),
        ("execute", {"kernel_id": "k", "code": 1}, "code: Input should be a valid string"),
        ("execute", {"kernel_id": "k", "code": "1", "timeout": "soon"}, "timeout:"),
        ("execute", {"kernel_id": "k", "code": "1", "timout": 5}, "timout: Extra inputs"),
        ("start_kernel", {"env": ["A=1"]}, "env:"),
        ("get_execution", {"kernel_id": "k", "execution_id": "e", "wait": -1}, "wait:"),
        ("no_such_tool", {}, "Unknown tool 'no_such_tool'"),
    ],
)
async def test_malformed_arguments_are_tool_errors_naming_the_field(
    mcp_broker: RunningBroker, tool: str, arguments: dict, complaint: str
):
    async with as_user(mcp_broker, ALICE) as alice:
        result = await alice.call_tool(tool, arguments)
        assert result.is_error
        assert complaint in text(result)


async def test_timeout_out_of_range_is_a_tool_error(mcp_broker: RunningBroker, kernel_id: str):
    async with as_user(mcp_broker, ALICE) as alice:
        result = await alice.call_tool(
            "execute", {"kernel_id": kernel_id, "code": "1", "timeout": 0}
        )
        assert result.is_error and "timeout" in text(result)


async def test_execution_timeout_interrupts_and_says_so(mcp_broker: RunningBroker, kernel_id: str):
    async with as_user(mcp_broker, ALICE) as alice:
        result = await run(alice, kernel_id, "import time; time.sleep(60)", timeout=1)
        assert result.structured_content["status"] == "timeout"
        assert "timed out" in text(result)


async def test_bad_calls_leave_the_broker_serving(mcp_broker: RunningBroker):
    async with as_user(mcp_broker, ALICE) as alice:
        for arguments in ({}, {"kernel_id": None}, {"kernel_id": "x" * 10000, "code": "1"}):
            assert (await alice.call_tool("execute", arguments)).is_error
        assert mcp_broker.request("GET", "/api/status").status_code == 200


def test_a_start_whose_client_left_still_completes_and_is_listed(mcp_broker: RunningBroker):
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "start_kernel", "arguments": {"name": SLOW_START}},
    }
    headers = {**mcp_broker.headers(), "Content-Type": "application/json"}
    before = {k["id"] for k in mcp_broker.request("GET", "/api/kernels").json()}
    # the kernel takes two seconds to start: the client's 0.3 s read timeout ends first
    with pytest.raises(requests.exceptions.ReadTimeout):  # gone before the kernel is up
        requests.post(f"{mcp_broker.url}/mcp", json=call, headers=headers, timeout=(10, 0.3))
    deadline = time.monotonic() + 60
    while not (new := {k["id"] for k in mcp_broker.request("GET", "/api/kernels").json()} - before):
        assert time.monotonic() < deadline, "the departed client's kernel never appeared"
        time.sleep(0.2)  # nothing to await from outside: the kernel list is the signal
    for kernel_id in new:
        assert mcp_broker.stdout(kernel_id, "print(1)") == "1\n"
        mcp_broker.delete_kernel(kernel_id)


def test_client_that_leaves_mid_execute_interrupts_the_code(
    mcp_broker: RunningBroker, kernel_id: str
):
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "execute",
            "arguments": {"kernel_id": kernel_id, "code": "import time; time.sleep(120)"},
        },
    }
    headers = {
        **mcp_broker.headers(),
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    with pytest.raises(requests.exceptions.ReadTimeout):  # the client gives up, closing
        requests.post(f"{mcp_broker.url}/mcp", json=call, headers=headers, timeout=(10, 3))
    # queued behind the sleep: it runs as soon as the sleep was interrupted, not after 120 s
    assert mcp_broker.stdout(kernel_id, "print('next')") == "next\n"
    statuses = [
        e["status"]
        for e in mcp_broker.request("GET", f"/api/kernels/{kernel_id}/executions").json()
    ]
    assert statuses == ["cancelled", "ok"]
