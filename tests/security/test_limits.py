"""Each resource limit answers with a clear error that names the option to change.

Also covered elsewhere: kernels in total and per user (429) in
tests/test_auth_and_limits.py, websocket messages over max_message_bytes (1009) in
test_ws_fuzz.py, the replay buffer's message count in tests/test_websocket.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from broker.client import ChannelsConnection

from ..broker_process import RunningBroker, start_broker
from ..conftest import write_kernelspec

pytestmark = pytest.mark.slow

BODY_LIMIT = 1024


@pytest.fixture(scope="module")
def small_broker(tmp_path_factory, broker_env) -> Iterator[RunningBroker]:
    b = start_broker(
        tmp_path_factory.mktemp("limits"),
        f"--Broker.max_body_bytes={BODY_LIMIT}",
        "--KernelRegistry.replay_buffer_bytes=4000",
        env=broker_env,
    )
    yield b
    b.stop()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_max_body_bytes_is_413(small_broker: RunningBroker, chunked: bool) -> None:
    body = b'{"env": {"KERNEL_X": "' + b"x" * BODY_LIMIT + b'"}}'
    data = iter([body[:100], body[100:]]) if chunked else body
    r = requests.post(
        small_broker.url + "/api/kernels", data=data, headers=small_broker.headers(), timeout=30
    )
    assert r.status_code == 413
    assert f"limit of {BODY_LIMIT} bytes" in r.json()["message"]


def test_a_body_at_the_limit_is_read(small_broker: RunningBroker) -> None:
    body = b'{"name": "' + b"x" * (BODY_LIMIT - 12) + b'"}'
    assert len(body) == BODY_LIMIT
    r = small_broker.request("POST", "/api/kernels", data=body)
    assert r.status_code == 404  # read and parsed: no such kernelspec


async def test_replay_buffer_bytes_drop_oldest_with_a_marker(small_broker: RunningBroker) -> None:
    kernel = small_broker.start_kernel()
    token = small_broker.token
    conn = await ChannelsConnection.connect(small_broker.url, kernel, token, session_id="s")
    await conn.close()
    small_broker.execute(kernel, "for i in range(200): print('line', i, flush=True)")
    async with await ChannelsConnection.connect(
        small_broker.url, kernel, small_broker.token, session_id="s"
    ) as again:
        marker = (await again.recv(timeout=30)).content_dict()["text"]
    small_broker.delete_kernel(kernel)
    assert "were dropped" in marker and "bytes" in marker
    assert "--KernelRegistry.replay_buffer_bytes" in marker


def test_a_start_waiting_for_a_start_slot_times_out_with_504(
    tmp_path: Path, spec_root: Path, broker_env: dict[str, str]
) -> None:
    """--KernelRegistry.max_concurrent_starts=1: a second start queues behind the first."""
    fifo = tmp_path / "launched"
    os.mkfifo(fifo)
    write_kernelspec(spec_root, "hangs", argv=["sh", "-c", f"echo up > {fifo}; exec sleep 600"])
    b = start_broker(tmp_path, "--KernelRegistry.max_concurrent_starts=1", env=broker_env)
    try:
        hanging = asyncio.run(_start_hanging_then_queued(b, fifo))
        assert hanging.status_code == 504
        assert b.request("POST", "/api/kernels", {}).status_code == 201  # the slot is free again
    finally:
        b.stop()


async def _start_hanging_then_queued(b: RunningBroker, fifo: Path) -> requests.Response:
    """Start a kernel that never answers, then, once it holds the slot, a normal one."""
    loop = asyncio.get_running_loop()
    body = {"name": "hangs", "env": {"KERNEL_LAUNCH_TIMEOUT": "8"}}
    url, headers = b.url + "/api/kernels", b.headers()
    hanging = loop.run_in_executor(
        None, lambda: requests.post(url, json=body, headers=headers, timeout=60)
    )
    await loop.run_in_executor(None, fifo.read_text)  # the first start holds the only slot
    queued = b.request("POST", "/api/kernels", {"env": {"KERNEL_LAUNCH_TIMEOUT": "2"}})
    assert queued.status_code == 504
    assert "did not start within 2 s" in queued.json()["message"]
    return await hanging
