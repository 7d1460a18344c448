"""Warm pools: hand-out with late binding, clean kernels, refills, metrics."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import pytest

from .broker_process import RunningBroker, start_broker, start_users_broker

pytestmark = pytest.mark.slow


def pool_requests(b: RunningBroker, outcome: str) -> float:
    return metric(b, "broker_pool_requests_total", spec="python3", outcome=outcome)


def metric(b: RunningBroker, name: str, **labels: str) -> float:
    text = b.request("GET", "/metrics").text
    label = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = f"{name}{{{label}}}" if label else name
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def wait_for_pool(b: RunningBroker, size: int, spec: str = "python3") -> None:
    """The pool refills in the background; its gauge is the public signal."""
    async with asyncio.timeout(60):
        while metric(b, "broker_pool_ready", spec=spec) < size:
            await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def pooled(tmp_path_factory, broker_env) -> Iterator[RunningBroker]:
    b = start_broker(tmp_path_factory.mktemp("pool"), "--pool-size=2", env=broker_env)
    yield b
    b.stop()


async def test_pooled_start_is_a_hit_and_refills(pooled: RunningBroker) -> None:
    await wait_for_pool(pooled, 2)
    hits = pool_requests(pooled, "hit")
    began = time.perf_counter()
    kernel = pooled.start_kernel()
    elapsed = time.perf_counter() - began
    try:
        assert pool_requests(pooled, "hit") == hits + 1
        assert pooled.stdout(kernel, "print(1)") == "1\n"
        await wait_for_pool(pooled, 2)
        assert metric(pooled, "broker_pool_refill_seconds_count") >= 3
    finally:
        pooled.delete_kernel(kernel)
    print(f"pooled start took {elapsed * 1000:.0f} ms")


async def test_pooled_kernels_are_never_shared_or_dirty(pooled: RunningBroker) -> None:
    await wait_for_pool(pooled, 2)
    first = pooled.start_kernel()
    pooled.execute(first, "secret = 'alice'")
    pooled.delete_kernel(first)
    await wait_for_pool(pooled, 2)
    kernels = [pooled.start_kernel() for _ in range(3)]  # more than the pool holds
    try:
        pids = {pooled.stdout(k, "import os; print(os.getpid())") for k in kernels}
        assert len(pids) == 3 and len(set(kernels)) == 3
        for k in kernels:
            assert pooled.stdout(k, "print('secret' in globals())") == "False\n"
    finally:
        for k in kernels:
            pooled.delete_kernel(k)


async def test_a_pooled_kernels_warm_up_leaves_no_trace(pooled: RunningBroker) -> None:
    """The silent execution a pool kernel runs before joining the pool is not the owner's."""
    await wait_for_pool(pooled, 2)
    kernel = pooled.start_kernel()
    try:
        [result] = [e for e in pooled.execute(kernel, "In[1:]") if e["type"] == "execute_result"]
        assert result["execution_count"] == 1
        assert result["data"]["text/plain"] == "['In[1:]']"
    finally:
        pooled.delete_kernel(kernel)


async def test_late_variables_are_applied_to_a_pooled_kernel(pooled, tmp_path) -> None:
    await wait_for_pool(pooled, 2)
    hits = pool_requests(pooled, "hit")
    kernel = pooled.start_kernel(KERNEL_WORKING_DIR=str(tmp_path))
    try:
        assert pool_requests(pooled, "hit") == hits + 1
        code = "import os; print(os.getcwd(), os.environ['KERNEL_USERNAME'])"
        assert pooled.stdout(kernel, code) == f"{tmp_path} default\n"
    finally:
        pooled.delete_kernel(kernel)


async def test_other_variables_mean_a_cold_start(pooled: RunningBroker) -> None:
    misses = pool_requests(pooled, "miss")
    kernel = pooled.start_kernel(KERNEL_EXTRA="1")
    try:
        assert pool_requests(pooled, "miss") == (misses + 1)
        assert pooled.stdout(kernel, "import os; print(os.environ['KERNEL_EXTRA'])") == "1\n"
    finally:
        pooled.delete_kernel(kernel)


async def test_each_user_gets_their_own_name_in_a_pooled_kernel(tmp_path, broker_env) -> None:
    """With several users the pool cannot start kernels as their owner: the late
    environment sets it at hand-out (a sole user's pool kernels start as theirs)."""
    users = {"users": [{"name": n, "token": f"{n}-token"} for n in ("alice", "bob")]}
    b = start_users_broker(tmp_path, users, "alice-token", "--pool-size=2", env=broker_env)
    try:
        await wait_for_pool(b, 2)
        for name in ("alice", "bob"):
            b.token = f"{name}-token"
            kernel = b.start_kernel()
            code = "import os; print(os.environ['KERNEL_USERNAME'])"
            assert b.stdout(kernel, code) == f"{name}\n"
        assert pool_requests(b, "hit") == 2
    finally:
        b.stop()


async def test_refills_wait_for_hand_outs_to_pause(tmp_path, broker_env) -> None:
    """A kernel booting for the pool would take a core from the starts of a burst."""
    b = start_broker(tmp_path, "--pool-size=3", "--KernelPools.refill_delay=1.5", env=broker_env)
    try:
        await wait_for_pool(b, 3)
        began = time.monotonic()
        kernel = b.start_kernel()  # two of three left: above the low-water mark (1.5)
        await wait_for_pool(b, 3)
        assert time.monotonic() - began >= 1.5
        assert pool_requests(b, "hit") == 1
        b.delete_kernel(kernel)
    finally:
        b.stop()


async def test_a_pool_at_its_low_water_mark_refills_at_once(tmp_path, broker_env) -> None:
    """However busy the hand-outs, a pool drawn down to half refills without a pause."""
    b = start_broker(tmp_path, "--pool-size=3", "--KernelPools.refill_delay=600", env=broker_env)
    try:
        await wait_for_pool(b, 3)
        kernels = [b.start_kernel(), b.start_kernel()]  # one of three left
        await wait_for_pool(b, 3)  # within its 60 s, long before the 600 s pause
        assert pool_requests(b, "hit") == 2
        for kernel in kernels:
            b.delete_kernel(kernel)
    finally:
        b.stop()


def test_pool_kernels_are_not_listed_and_stop_with_the_broker(tmp_path, broker_env) -> None:
    b = start_broker(tmp_path, "--pool-size=1", env=broker_env)
    try:
        asyncio.run(wait_for_pool(b, 1))
        assert b.request("GET", "/api/kernels").json() == []
    finally:
        assert b.stop() == 0
    assert "ipykernel" not in _children_of(b.proc.pid)


def _children_of(pid: int) -> str:
    import subprocess

    return subprocess.run(
        ["ps", "-o", "args=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout
