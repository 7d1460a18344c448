"""Pod kernels driven by jupyter_client's AsyncKernelManager through the real client library."""

from __future__ import annotations

import asyncio

import pytest

from broker.provisioners.pod import LABEL_KERNEL_ID

from .conftest import NAMESPACE

pytestmark = [pytest.mark.k8s, pytest.mark.asyncio]


async def execute(client, code: str, timeout: float = 20) -> tuple[dict, list[str]]:
    """Run code; returns the execute_reply content and the stream texts printed."""
    out: list[str] = []

    def on_output(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = await client.execute_interactive(code, timeout=timeout, output_hook=on_output)
    return reply["content"], out


def assert_nothing_left(plane) -> None:
    assert plane.objects("pods") == []
    assert plane.objects("secrets") == []


async def test_pod_kernel_starts_executes_and_shuts_down(control_plane, pod_kernel):
    km = pod_kernel()
    await km.start_kernel(env={"KERNEL_USERNAME": "alice"})
    try:
        pods = control_plane.objects("pods", NAMESPACE)
        assert len(pods) == 1
        assert pods[0]["metadata"]["labels"][LABEL_KERNEL_ID] == km.kernel_id
        assert km.ip == pods[0]["status"]["podIP"] and km.ip.startswith("127.42.")
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=20)
        reply, out = await execute(client, "import os; print(os.environ['POD_IP'], 6 * 7)")
        assert reply["status"] == "ok"
        assert "".join(out).split() == [km.ip, "42"]
        client.stop_channels()
    finally:
        await km.shutdown_kernel()
    assert_nothing_left(control_plane)
