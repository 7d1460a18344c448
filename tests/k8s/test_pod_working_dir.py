"""KERNEL_WORKING_DIR for pod kernels: a directory of the client's machine (what Jupyter
Server's gateway client sends) is ignored, never a failed start."""

from __future__ import annotations

import asyncio

import pytest

from broker.client import BrokerREST, ChannelsConnection, stream_text

from ..clients.jupyter_process import start_jupyter
from ..clients.test_jupyter_server import server_call
from .controlplane import NAMESPACE
from .test_broker_pods import pool_filled, start_pod_broker
from .test_pod_kernels import assert_nothing_left

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.asyncio]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_jupyter_server_notebook_session_starts_a_pod_kernel(control_plane, tmp_path):
    """Jupyter Server's gateway client sends its notebook directory as KERNEL_WORKING_DIR,
    a path of its own machine; the pod starts in its default directory instead of a 400."""
    broker = await start_pod_broker(control_plane, tmp_path)
    notebooks = tmp_path / "notebooks"
    (notebooks / "project").mkdir(parents=True)
    server = await asyncio.to_thread(start_jupyter, "server", broker, notebooks)
    try:
        body = {
            "path": "project/t.ipynb",
            "type": "notebook",
            "name": "t",
            "kernel": {"name": "pod"},
        }
        session = await asyncio.to_thread(server_call, server, "POST", "/api/sessions", body)
        pod = control_plane.objects("pods", NAMESPACE)[0]
        container = pod["spec"]["containers"][0]
        sent = {e["name"]: e.get("value") for e in container["env"]}
        assert sent["KERNEL_WORKING_DIR"] == str(notebooks / "project")
        assert container["workingDir"] == "/home/kernel"
        kernel_id = session["kernel"]["id"]
        async with await ChannelsConnection.connect(server.url, kernel_id, server.token) as c:
            _, outputs = await c.execute("print('via jupyter server')")
            assert stream_text(outputs) == "via jupyter server\n"
        await asyncio.to_thread(server_call, server, "DELETE", f"/api/sessions/{session['id']}")
    finally:
        await asyncio.to_thread(server.stop)
        assert await asyncio.to_thread(broker.stop) == 0
    assert "ignoring KERNEL_WORKING_DIR" in broker.log_path.read_text()
    assert_nothing_left(control_plane)


ELSEWHERE = "/Users/ann/project"  # a notebook directory on the client's machine only


async def cwd_is_home(broker, kernel_id: str) -> bool:
    async with await ChannelsConnection.connect(broker.url, kernel_id, broker.token) as c:
        _, outputs = await c.execute("import os; print(os.getcwd() == os.environ['HOME'])")
    return stream_text(outputs) == "True\n"


@pytest.mark.slow
@pytest.mark.asyncio
async def test_pod_kernel_ignores_a_working_dir_that_only_the_client_has(control_plane, tmp_path):
    broker = await start_pod_broker(control_plane, tmp_path)
    try:
        rest = BrokerREST(broker.url, broker.token)
        model = await rest.start_kernel("pod", {"KERNEL_WORKING_DIR": ELSEWHERE})
        container = control_plane.objects("pods", NAMESPACE)[0]["spec"]["containers"][0]
        assert container["workingDir"] == "/home/kernel"
        assert await cwd_is_home(broker, model["id"])
        await rest.shutdown_kernel(model["id"])
    finally:
        assert await asyncio.to_thread(broker.stop) == 0
    assert broker.log_path.read_text().count(f"ignoring KERNEL_WORKING_DIR: '{ELSEWHERE}'") == 1


@pytest.mark.slow
@pytest.mark.asyncio
async def test_warm_pod_kernel_handed_out_with_a_foreign_working_dir_stays_home(
    control_plane, tmp_path
):
    broker = await start_pod_broker(control_plane, tmp_path, "--KernelPools.sizes=pod=1")
    try:
        rest = BrokerREST(broker.url, broker.token)
        await pool_filled(broker, "pod")
        model = await rest.start_kernel("pod", {"KERNEL_WORKING_DIR": ELSEWHERE})
        assert await cwd_is_home(broker, model["id"])
        await rest.shutdown_kernel(model["id"])
    finally:
        assert await asyncio.to_thread(broker.stop) == 0
    assert "could not apply" not in broker.log_path.read_text()
