"""Kernel lifecycle: interrupt, restart, automatic restart, death, environment, drain."""

from __future__ import annotations

import asyncio
import os

import pytest

from broker.client import ChannelsConnection
from broker.processes import wait_exited

from .broker_process import RunningBroker, sleeping, start_broker

pytestmark = pytest.mark.slow


async def statuses_until(conn: ChannelsConnection, wanted: str, timeout: float = 60) -> list[str]:
    """Execution states seen on iopub until ``wanted`` arrives."""
    seen: list[str] = []
    async with asyncio.timeout(timeout):
        while wanted not in seen:
            msg = await conn.recv()
            if msg.msg_type == "status":
                seen.append(msg.content_dict()["execution_state"])
    return seen


async def test_interrupt_stops_a_long_sleep(broker: RunningBroker, kernel: str) -> None:
    async with await ChannelsConnection.connect(broker.url, kernel, broker.token) as conn:
        request = await sleeping(conn)
        r = broker.request("POST", f"/api/kernels/{kernel}/interrupt")
        assert r.status_code == 204
        async with asyncio.timeout(20):
            while True:
                msg = await conn.recv()
                if msg.channel == "shell" and msg.parent_msg_id == request.msg_id:
                    break
        assert msg.content_dict()["ename"] == "KeyboardInterrupt"


async def test_restart_forgets_state(broker: RunningBroker, kernel: str) -> None:
    async with await ChannelsConnection.connect(broker.url, kernel, broker.token) as conn:
        await conn.execute("x = 41")
        r = broker.request("POST", f"/api/kernels/{kernel}/restart")
        assert r.status_code == 200
        reply, outputs = await conn.execute("'x' in globals()")
        assert outputs[-1].content_dict()["data"]["text/plain"] == "False"


async def test_dead_kernel_restarts_automatically(broker: RunningBroker, kernel: str) -> None:
    async with await ChannelsConnection.connect(broker.url, kernel, broker.token) as conn:
        await conn.execute("y = 1")
        await conn.request("shell", "execute_request", {"code": "import os; os._exit(1)"})
        await statuses_until(conn, "restarting")
    # the websocket handshake waits for the restarted kernel to answer kernel_info
    async with await ChannelsConnection.connect(broker.url, kernel, broker.token) as conn:
        reply, outputs = await conn.execute("'y' in globals()")
        assert outputs[-1].content_dict()["data"]["text/plain"] == "False"
    assert broker.request("GET", f"/api/kernels/{kernel}").json()["execution_state"] != "dead"


async def test_requests_sent_during_a_restart_reach_the_new_kernel(
    broker: RunningBroker, kernel: str
) -> None:
    """What a client sends between ``restarting`` and the new kernel's first answer is
    held by the broker and delivered, in order, to the new kernel (not to the dead one)."""
    async with await ChannelsConnection.connect(broker.url, kernel, broker.token) as conn:
        await conn.request("shell", "execute_request", {"code": "import os; os._exit(1)"})
        await statuses_until(conn, "restarting")
        first = await conn.request("shell", "execute_request", {"code": "n = 1"})
        reply, outputs = await conn.execute("n + 1")
        assert reply.content_dict()["status"] == "ok"
        assert outputs[-1].content_dict()["data"]["text/plain"] == "2"
        assert reply.content_dict()["execution_count"] == 2, first.msg_id


async def test_kernel_past_restart_limit_is_reported_dead(tmp_path, broker_env) -> None:
    b = start_broker(tmp_path, "--KernelRegistry.restart_limit=0", env=broker_env)
    try:
        kernel = b.start_kernel()
        async with await ChannelsConnection.connect(b.url, kernel, b.token) as conn:
            await conn.request("shell", "execute_request", {"code": "import os; os._exit(1)"})
            await statuses_until(conn, "dead")
        model = b.request("GET", f"/api/kernels/{kernel}").json()
        assert model["execution_state"] == "dead" and "restart" in model["reason"]
        assert b.request("POST", f"/api/kernels/{kernel}/interrupt").status_code == 409
        assert b.request("POST", f"/api/kernels/{kernel}/restart").status_code == 200
        assert b.request("DELETE", f"/api/kernels/{kernel}").status_code == 204
    finally:
        b.stop()


async def test_delete_during_automatic_restart_is_clean(broker: RunningBroker) -> None:
    kernel = broker.start_kernel()
    async with await ChannelsConnection.connect(broker.url, kernel, broker.token) as conn:
        await conn.request("shell", "execute_request", {"code": "import os; os._exit(1)"})
        await statuses_until(conn, "restarting")
        r = broker.request("DELETE", f"/api/kernels/{kernel}")
    assert r.status_code == 204
    assert broker.request("GET", f"/api/kernels/{kernel}").status_code == 404


async def test_restart_and_delete_at_once_never_500(broker: RunningBroker) -> None:
    kernel = broker.start_kernel()
    loop = asyncio.get_running_loop()
    restart = loop.run_in_executor(None, broker.request, "POST", f"/api/kernels/{kernel}/restart")
    delete = loop.run_in_executor(None, broker.request, "DELETE", f"/api/kernels/{kernel}")
    statuses = sorted(r.status_code for r in await asyncio.gather(restart, delete))
    assert all(s < 500 for s in statuses) and 204 in statuses


async def test_broker_environment_never_reaches_kernels(tmp_path, broker_env) -> None:
    env = {**broker_env, "BROKER_SECRET_THING": "hunter2", "ALLOWED_X": "ok"}
    b = start_broker(tmp_path, "--env-allowlist=ALLOWED_X", env=env)
    try:
        kernel = b.start_kernel(KERNEL_FOO="bar", ALLOWED_X="from-client")
        code = "import os; print(sorted(os.environ.items()))"
        events = b.stdout(kernel, code)
        assert "hunter2" not in events and "BROKER_SECRET_THING" not in events
        assert "KERNEL_FOO" in events and "from-client" in events
        assert "KERNEL_USERNAME" in events
    finally:
        b.stop()


def test_working_dir_is_honoured(broker: RunningBroker, tmp_path) -> None:
    kernel = broker.start_kernel(KERNEL_WORKING_DIR=str(tmp_path))
    try:
        assert broker.stdout(kernel, "import os; print(os.getcwd())") == f"{tmp_path}\n"
    finally:
        broker.delete_kernel(kernel)


def test_local_kernels_work_in_the_per_user_data_directory_by_default(
    broker: RunningBroker, kernel: str
) -> None:
    """Not the broker's own working directory (a checkout, say): its XDG_DATA_HOME's."""
    work = broker.log_path.parent / "xdg" / "data" / "kernel-broker" / "work"
    assert broker.stdout(kernel, "import os; print(os.getcwd())") == f"{work}\n"


CHILD = "import subprocess; print(subprocess.Popen(['sleep', '600']).pid)"


@pytest.mark.parametrize("state", ["idle", "busy"])
async def test_delete_leaves_no_process_behind(broker: RunningBroker, state: str) -> None:
    """The kernel and what it started in its process group are gone when DELETE answers."""
    kernel = broker.start_kernel()
    pid = int(broker.stdout(kernel, "import os; print(os.getpid())"))
    child = int(broker.stdout(kernel, CHILD))
    async with await ChannelsConnection.connect(broker.url, kernel, broker.token) as conn:
        if state == "busy":
            await sleeping(conn)
        r = broker.request("DELETE", f"/api/kernels/{kernel}")
    assert r.status_code == 204
    assert wait_exited(pid, 0), "the kernel still runs after its DELETE answered"
    assert wait_exited(child, 10), "the kernel's child outlived it"


def test_launch_timeout_is_honoured(broker: RunningBroker, spec_root) -> None:
    from .conftest import write_kernelspec

    write_kernelspec(spec_root, "never-starts", argv=["sleep", "600"])
    r = broker.request(
        "POST", "/api/kernels", {"name": "never-starts", "env": {"KERNEL_LAUNCH_TIMEOUT": "2"}}
    )
    assert r.status_code == 504 and "did not start within 2 s" in r.json()["message"]
    assert all(k["name"] != "never-starts" for k in broker.request("GET", "/api/kernels").json())


def test_kernel_that_exits_at_start_is_an_error(broker: RunningBroker, spec_root) -> None:
    from .conftest import write_kernelspec

    write_kernelspec(spec_root, "exits", argv=["false"])
    r = broker.request(
        "POST", "/api/kernels", {"name": "exits", "env": {"KERNEL_LAUNCH_TIMEOUT": "5"}}
    )
    assert r.status_code >= 500 and r.json()["message"]


def test_sigterm_drains_and_shuts_kernels_down(tmp_path, broker_env) -> None:
    b = start_broker(tmp_path, env=broker_env)
    kernel = b.start_kernel()
    pid = int(b.stdout(kernel, "import os; print(os.getpid())"))
    assert b.stop() == 0  # SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
