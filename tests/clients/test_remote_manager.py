"""RemoteKernelManager and RemoteKernelClient have none of the defects seen in Jupyter Server's
gateway classes: each test names one."""

from __future__ import annotations

import subprocess
import time

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from websockets.exceptions import InvalidStatus

from broker.client import BrokerAPIError, RemoteKernelClient, RemoteKernelManager

from ..broker_process import RunningBroker
from .conftest import MARKED_SPEC, PYTHON, manager_config, subprocess_env

pytestmark = pytest.mark.slow


def notebook(*sources: str, kernel: str = "python3") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata.kernelspec = {"name": kernel, "display_name": kernel, "language": "python"}
    return nb


async def execute_reply(kc: RemoteKernelClient, msg_id: str) -> dict:
    while True:
        msg = await kc.get_shell_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


async def test_notebook_kernelspec_is_the_one_started(clients_broker: RunningBroker) -> None:
    nb = notebook("import os; print(os.environ.get('KB_SPEC'))", kernel=MARKED_SPEC)
    client = NotebookClient(
        nb, kernel_manager_class=RemoteKernelManager, config=manager_config(clients_broker)
    )
    await client.async_execute()
    assert nb.cells[0].outputs[0]["text"] == f"{MARKED_SPEC}\n"


async def test_waiting_for_a_cell_does_not_busy_loop(clients_broker: RunningBroker) -> None:
    nb = notebook("import time; time.sleep(2)")
    client = NotebookClient(
        nb, kernel_manager_class=RemoteKernelManager, config=manager_config(clients_broker)
    )
    async with client.async_setup_kernel():
        cpu, wall = time.process_time(), time.monotonic()
        await client.async_execute_cell(nb.cells[0], 0)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    assert wall >= 2
    assert cpu < 0.25 * wall, f"{cpu:.2f}s of CPU while waiting {wall:.2f}s"


async def test_wrong_token_is_rejected_by_rest(clients_broker: RunningBroker) -> None:
    km = RemoteKernelManager(url=clients_broker.url, token="wrong")
    with pytest.raises(BrokerAPIError) as info:
        await km.start_kernel()
    assert info.value.status in (401, 403)


async def test_websocket_sends_the_token(
    clients_broker: RunningBroker, remote_km: RemoteKernelManager
) -> None:
    wrong = RemoteKernelClient(clients_broker.url, remote_km.kernel_id, "wrong")
    with pytest.raises(InvalidStatus) as info:
        await wrong.start_channels()
    assert info.value.response.status_code in (401, 403)
    kc = remote_km.client()
    await kc.start_channels()  # the broker requires a token, so this proves it was sent
    await kc.wait_for_ready(timeout=30)
    await kc.stop_channels()


async def test_session_id_reaches_the_broker(
    clients_broker: RunningBroker, remote_km: RemoteKernelManager
) -> None:
    """The broker counts the connection, and replays what the session missed on reconnect."""
    kc = remote_km.client()
    await kc.start_channels()
    await kc.wait_for_ready(timeout=30)
    model = clients_broker.request("GET", f"/api/kernels/{remote_km.kernel_id}").json()
    assert model["connections"] == 1
    msg_id = kc.execute("import time; time.sleep(0.5); print('missed')")
    await kc.stop_channels()
    again = RemoteKernelClient(
        clients_broker.url, remote_km.kernel_id, clients_broker.token, session_id=kc.session_id
    )
    await again.start_channels()
    reply = await execute_reply(again, msg_id)
    assert reply["content"]["status"] == "ok"
    texts = [m["content"].get("text") for m in await again.iopub_channel.get_msgs()]
    assert "missed\n" in texts
    await again.stop_channels()


@pytest.mark.parametrize("protocol", ["v1", "legacy"])
async def test_channel_is_sent_with_each_message(
    remote_km: RemoteKernelManager, protocol: str
) -> None:
    """A control request is answered on control: the broker saw which channel it was for."""
    kc = remote_km.client(protocol=protocol)
    await kc.start_channels()
    msg_id = kc.send("control", "kernel_info_request", {})
    reply = await kc.get_control_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["channel"] == "control"
    assert not await kc.shell_channel.msg_ready()
    await kc.stop_channels()


async def test_process_exits_when_the_caller_owns_the_manager(
    clients_broker: RunningBroker,
) -> None:
    """nbclient leaves a caller's manager and client open; the script must still end."""
    script = f"""
import nbformat
from nbclient import NotebookClient
from broker.client import RemoteKernelManager
km = RemoteKernelManager(url={clients_broker.url!r}, token={clients_broker.token!r})
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('ran')")])
NotebookClient(nb, km=km).execute()
print(km.kernel_id, nb.cells[0].outputs[0]["text"].strip())
"""
    done = subprocess.run(
        [PYTHON, "-c", script], capture_output=True, text=True, timeout=60, env=subprocess_env()
    )
    assert done.returncode == 0, done.stderr
    kernel_id, text = done.stdout.split()
    assert text == "ran"
    clients_broker.delete_kernel(kernel_id)  # the caller owned it, so it is still running


async def test_is_alive_answers_false_instead_of_raising(
    clients_broker: RunningBroker,
) -> None:
    km = RemoteKernelManager(url=clients_broker.url, token=clients_broker.token)
    assert await km.is_alive() is False  # never started
    await km.start_kernel()
    assert await km.is_alive() is True
    clients_broker.delete_kernel(km.kernel_id)  # gone behind its back
    assert await km.is_alive() is False
    await km.shutdown_kernel()  # already gone: not an error
    assert await km.is_alive() is False
    unreachable = RemoteKernelManager(url="http://127.0.0.1:9", token="t", kernel_id=km.kernel_id)
    assert await unreachable.is_alive() is False


async def test_interrupt_stops_a_running_cell(remote_km: RemoteKernelManager) -> None:
    kc = remote_km.client()
    await kc.start_channels()
    await kc.wait_for_ready(timeout=30)
    msg_id = kc.execute("import time; print('sleeping', flush=True); time.sleep(60)")
    while (await kc.get_iopub_msg(timeout=30))["content"].get("text") != "sleeping\n":
        pass
    await remote_km.interrupt_kernel()
    reply = await execute_reply(kc, msg_id)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    await kc.stop_channels()


async def test_restart_keeps_the_client_connected(remote_km: RemoteKernelManager) -> None:
    kc = remote_km.client()
    await kc.start_channels()
    await kc.wait_for_ready(timeout=30)
    await execute_reply(kc, kc.execute("x = 1"))
    await remote_km.restart_kernel()
    assert await kc.is_alive()
    await kc.wait_for_ready(timeout=30)
    reply = await execute_reply(kc, kc.execute("x"))
    assert reply["content"]["ename"] == "NameError"  # a new kernel process
    await kc.stop_channels()


async def test_kernel_death_ends_the_run_within_seconds(clients_broker: RunningBroker) -> None:
    nb = notebook("import os; os._exit(1)", "print('never')")
    client = NotebookClient(
        nb, kernel_manager_class=RemoteKernelManager, config=manager_config(clients_broker)
    )
    started = time.monotonic()
    with pytest.raises(DeadKernelError):
        await client.async_execute()
    assert time.monotonic() - started < 20


async def test_requested_restart_is_not_announced_as_a_crash(
    remote_km: RemoteKernelManager,
) -> None:
    kc = remote_km.client()
    await kc.start_channels()
    await kc.wait_for_ready(timeout=30)
    await remote_km.rest.restart_kernel(remote_km.kernel_id)  # not via the manager
    await kc.wait_for_ready(timeout=30)
    assert not kc.lost_reason
    await kc.stop_channels()
