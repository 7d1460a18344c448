"""Jupyter Server's gateway client against the broker: its classes, and a real server process
driven over its own REST and websocket API as JupyterLab drives it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from jupyter_server.gateway.gateway_client import GatewayClient
from jupyter_server.gateway.managers import GatewayKernelManager

from broker.client import ChannelsConnection, stream_text

from ..broker_process import (
    RunningBroker,
    default_state_dir,
    free_port,
    kill_9,
    kill_recorded_kernels,
    serve_with_generated_token,
)
from .conftest import MARKED_SPEC
from .jupyter_process import RunningJupyter, start_jupyter

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway(clients_broker: RunningBroker) -> Iterator[GatewayClient]:
    client = GatewayClient.instance(url=clients_broker.url, auth_token=clients_broker.token)
    client.init_connection_args()
    yield client
    GatewayClient.clear_instance()


async def test_gateway_kernel_manager_lifecycle(gateway: GatewayClient) -> None:
    km = GatewayKernelManager()
    await km.start_kernel(kernel_name="python3")
    assert km.kernel_id and await km.is_alive()
    await km.interrupt_kernel()
    await km.restart_kernel()
    await km.refresh_model()
    assert km.kernel["execution_state"] != "dead"
    await km.shutdown_kernel()


@pytest.fixture(scope="module")
def jupyter_server(
    clients_broker: RunningBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningJupyter]:
    root = tmp_path_factory.mktemp("jupyter-root")
    running = start_jupyter("server", clients_broker, root)
    yield running
    running.stop()


def server_call(server: RunningJupyter, method: str, path: str, body: dict | None = None):
    r = requests.request(
        method,
        server.url + path,
        json=body,
        headers={"Authorization": f"token {server.token}"},
        timeout=120,
    )
    assert r.ok, (r.status_code, r.text, server.log()[-3000:])
    return r.json() if r.content else None


def test_jupyter_server_lists_the_broker_kernelspecs(jupyter_server: RunningJupyter) -> None:
    specs = server_call(jupyter_server, "GET", "/api/kernelspecs")
    assert {"python3", MARKED_SPEC} <= set(specs["kernelspecs"])


@pytest.mark.parametrize("protocol", ["v1", "legacy"])
async def test_jupyter_server_session_executes_on_broker(
    jupyter_server: RunningJupyter, clients_broker: RunningBroker, protocol: str
) -> None:
    session = server_call(
        jupyter_server,
        "POST",
        "/api/sessions",
        {"path": "t.ipynb", "type": "notebook", "name": "t", "kernel": {"name": "python3"}},
    )
    kernel_id = session["kernel"]["id"]
    try:
        on_broker = clients_broker.request("GET", f"/api/kernels/{kernel_id}")
        assert on_broker.status_code == 200  # the kernel lives on the broker
        async with await ChannelsConnection.connect(
            jupyter_server.url, kernel_id, jupyter_server.token, protocol=protocol
        ) as conn:
            reply, outputs = await conn.execute("print('through jupyter server'); 6 * 7")
        assert reply.content_dict()["status"] == "ok"
        by_type = {m.msg_type: m.content_dict() for m in outputs}
        assert stream_text(outputs) == "through jupyter server\n"
        assert by_type["execute_result"]["data"]["text/plain"] == "42"
    finally:
        server_call(jupyter_server, "DELETE", f"/api/sessions/{session['id']}")
    assert clients_broker.request("GET", f"/api/kernels/{kernel_id}").status_code == 404


async def test_a_notebook_behind_jupyter_server_keeps_its_kernel_across_a_broker_kill_9(
    tmp_path: Path,
) -> None:
    """The README's serve command, Jupyter Server pointed at it with the token it printed, a
    variable set through Jupyter Server; the broker killed with -9 and run again: the same
    token still works and the notebook's kernel still holds the variable."""
    port = free_port()
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg" / "data")}
    first = serve_with_generated_token(tmp_path, port, env)
    root = tmp_path / "root"
    root.mkdir()
    server = start_jupyter("server", first, root)
    second = None
    try:
        body = {"path": "t.ipynb", "type": "notebook", "name": "t", "kernel": {"name": "python3"}}
        kernel_id = server_call(server, "POST", "/api/sessions", body)["kernel"]["id"]
        async with await ChannelsConnection.connect(server.url, kernel_id, server.token) as conn:
            await conn.execute("answer = 42")
        kill_9(first)
        second = serve_with_generated_token(tmp_path, port, env)
        assert second.token == first.token
        async with await ChannelsConnection.connect(server.url, kernel_id, server.token) as conn:
            _, outputs = await conn.execute("print(answer)")
        assert stream_text(outputs) == "42\n"
        assert kernel_id in [s["kernel"]["id"] for s in server_call(server, "GET", "/api/sessions")]
    finally:
        server.stop()
        if second is not None:
            second.stop()
        kill_recorded_kernels(default_state_dir(tmp_path, port))
