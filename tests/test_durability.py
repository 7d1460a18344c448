"""Kernels outlive the broker when it has a state directory: kill -9, SIGTERM, adoption."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat

import pytest
from websockets.exceptions import ConnectionClosed

from broker.client import ChannelsConnection

from .broker_process import start_broker


@pytest.fixture
def state_dir(tmp_path):
    return tmp_path / "state"


def start(tmp_path, state_dir, broker_env, *args):
    return start_broker(tmp_path, f"--state-dir={state_dir}", *args, env=broker_env)


async def test_kill_9_during_execution_keeps_kernel_and_variables(
    tmp_path, state_dir, broker_env
) -> None:
    first = start(tmp_path, state_dir, broker_env)
    kernel = first.start_kernel()
    first.execute(kernel, "answer = 42")
    conn = await ChannelsConnection.connect(first.url, kernel, first.token, session_id="s1")
    request = await conn.request(
        "shell", "execute_request", {"code": "import time; time.sleep(1); done = True"}
    )
    while True:  # the kernel is running it: the broker dies in the middle of the execution
        msg = await conn.recv(timeout=30)
        if msg.msg_type == "execute_input" and msg.parent_msg_id == request.msg_id:
            break
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await conn.recv()

    second = start(tmp_path, state_dir, broker_env)
    try:
        assert kernel in [k["id"] for k in second.request("GET", "/api/kernels").json()]
        assert "kernel adopted id=" + kernel in second.log()
        async with await ChannelsConnection.connect(
            second.url, kernel, second.token, session_id="s1"
        ) as again:
            reply, outputs = await again.execute("print(answer, done)")
            assert outputs[-1].content_dict().get("text") == "42 True\n"
    finally:
        second.delete_kernel(kernel)
        second.stop()


async def test_sigterm_keeps_kernels_and_tells_clients_to_reconnect(
    tmp_path, state_dir, broker_env
) -> None:
    first = start(tmp_path, state_dir, broker_env)
    kernel = first.start_kernel()
    first.execute(kernel, "x = 'kept'")
    conn = await ChannelsConnection.connect(first.url, kernel, first.token)
    assert first.stop() == 0
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(10):
            while True:
                await conn.recv()
    assert info.value.rcvd.code == 1012
    second = start(tmp_path, state_dir, broker_env)
    try:
        assert second.stdout(kernel, "print(x)") == "kept\n"
    finally:
        second.delete_kernel(kernel)
        second.stop()


def test_records_are_private_and_removed_on_shutdown(tmp_path, state_dir, broker_env) -> None:
    b = start(tmp_path, state_dir, broker_env, "--pool-size=0")
    try:
        kernel = b.start_kernel()
        record = state_dir / "kernels" / f"{kernel}.json"
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        assert json.loads(record.read_text())["owner"] == "default"
        b.delete_kernel(kernel)
        assert not record.exists()
    finally:
        b.stop()


def test_a_record_whose_kernel_is_gone_is_dropped(tmp_path, state_dir, broker_env) -> None:
    first = start(tmp_path, state_dir, broker_env, "--pool-size=0")
    kernel = first.start_kernel()
    pid = int(first.stdout(kernel, "import os; print(os.getpid())"))
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    os.kill(pid, signal.SIGKILL)
    second = start(tmp_path, state_dir, broker_env, "--pool-size=0")
    try:
        assert second.request("GET", "/api/kernels").json() == []
        assert f"kernel record dropped id={kernel}" in second.log()
        assert not (state_dir / "kernels" / f"{kernel}.json").exists()
    finally:
        second.stop()


def test_pool_kernels_survive_a_restart_too(tmp_path, state_dir, broker_env) -> None:
    first = start(tmp_path, state_dir, broker_env, "--pool-size=1")
    from .test_pools import wait_for_pool

    asyncio.run(wait_for_pool(first, 1))
    assert first.stop() == 0
    second = start(tmp_path, state_dir, broker_env, "--pool-size=1")
    try:
        assert "pool kernel adopted" in second.log()
        kernel = second.start_kernel()
        assert second.stdout(kernel, "print(1)") == "1\n"
        second.delete_kernel(kernel)
    finally:
        second.request("GET", "/api/kernels")
        second.stop()
    # without a state directory the drain leaves nothing running; here the pool remains
    records = list((state_dir / "kernels").glob("*.json"))
    assert len(records) >= 1
    third = start(tmp_path, state_dir, broker_env, "--pool-size=0")
    third.stop()  # adopts the pool kernels and, with no pool configured, shuts them down
