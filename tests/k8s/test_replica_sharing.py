"""Replicas share everything a client can see: kernel lists, warm pods, activity for culling.

Two broker processes on one test control plane, as two replicas behind one Service; the
first one started holds the Lease. None has a state directory: the pods are the record.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable

import pytest
from tornado.httpclient import AsyncHTTPClient

from broker.client import BrokerREST, ChannelsConnection, stream_text
from broker.pools import WARM_PREFIX
from broker.provisioners.pod import LABEL_KERNEL_ID

from .conftest import NAMESPACE
from .test_broker_pods import pool_filled, pool_ready, start_pod_broker
from .test_replicas import FAST_LEASE, stop

pytestmark = [pytest.mark.k8s, pytest.mark.slow]


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    """Wait for what another replica learns through its watch (milliseconds, as a rule)."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.05)


async def pool_hits(broker, spec: str) -> float:
    response = await AsyncHTTPClient().fetch(f"{broker.url}/metrics", headers=broker.headers())
    pattern = rf'^broker_pool_requests_total{{outcome="hit",spec="{spec}"}} (\S+)$'
    found = re.search(pattern, response.body.decode(), re.M)
    return float(found.group(1)) if found else 0.0


def kernel_ids(plane) -> list[str]:
    return [p["metadata"]["labels"][LABEL_KERNEL_ID] for p in plane.objects("pods", NAMESPACE)]


async def test_any_replica_lists_every_kernel_its_user_owns(control_plane, tmp_path):
    users = {"users": [{"name": "alice", "token": "test-token"}, {"name": "bob", "token": "bob"}]}
    users_file = tmp_path / "users.json"
    users_file.write_text(json.dumps(users))
    a = await start_pod_broker(control_plane, tmp_path, f"--users-file={users_file}")
    b = await start_pod_broker(control_plane, tmp_path, f"--users-file={users_file}")
    alice_a, alice_b = BrokerREST(a.url, "test-token"), BrokerREST(b.url, "test-token")
    try:
        on_a = (await alice_a.start_kernel("pod"))["id"]
        on_b = (await alice_b.start_kernel("pod"))["id"]
        bobs = (await BrokerREST(a.url, "bob").start_kernel("pod"))["id"]

        async def both_list_alices() -> bool:
            lists = [{k["id"] for k in await rest.list_kernels()} for rest in (alice_a, alice_b)]
            return lists == [{on_a, on_b}] * 2

        await until(both_list_alices)
        assert [k["id"] for k in await BrokerREST(b.url, "bob").list_kernels()] == [bobs]
        model = next(k for k in await alice_b.list_kernels() if k["id"] == on_a)
        assert model["name"] == "pod" and model["execution_state"] == "idle"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", model["last_activity"])
        assert "kernel adopted" not in b.log()  # listed from the pods, nothing attached
        for rest, kernel in ((alice_b, on_a), (alice_a, on_b), (BrokerREST(b.url, "bob"), bobs)):
            await rest.shutdown_kernel(kernel)  # and each one is served where it is listed
        await until(lambda: _empty(alice_a, alice_b))
    finally:
        await stop(a, b)


async def _empty(*rests: BrokerREST) -> bool:
    for rest in rests:
        if await rest.list_kernels():
            return False
    return True


async def test_a_replica_without_the_lease_hands_out_the_holders_warm_pods(control_plane, tmp_path):
    pool = ("--KernelPools.sizes=pod=2", "--KernelPools.refill_delay=0")
    holder = await start_pod_broker(control_plane, tmp_path, *pool)
    other = await start_pod_broker(control_plane, tmp_path, *pool)
    try:
        await pool_filled(holder, "pod")
        await until(lambda: _ready(holder, 2), timeout=60)
        assert await pool_ready(other, "pod") == 0  # refills happen once, on the holder
        rest = BrokerREST(other.url, other.token)
        began = time.perf_counter()
        kernels = [await rest.start_kernel("pod") for _ in range(2)]
        print(f"two warm pods claimed by the other replica in {time.perf_counter() - began:.3f} s")
        assert await pool_hits(other, "pod") == 2
        assert other.log().count("pool kernel claimed id=") == 2
        for kernel in kernels:
            async with await ChannelsConnection.connect(other.url, kernel["id"], other.token) as c:
                _, outputs = await c.execute("print('warm', 1 + 1)")
                assert stream_text(outputs) == "warm 2\n"
        # the holder saw its pods go, and refilled: two kernels, two warm pods, no more
        await until(lambda: _ready(holder, 2), timeout=60)
        ids = kernel_ids(control_plane)
        assert sorted(i for i in ids if not i.startswith(WARM_PREFIX)) == sorted(
            k["id"] for k in kernels
        )
        assert len(ids) == 4
        for kernel in kernels:
            await rest.shutdown_kernel(kernel["id"])
    finally:
        await stop(other, holder)


async def _ready(broker, n: int) -> bool:
    return await pool_ready(broker, "pod") == n


async def test_warm_pods_claimed_from_both_replicas_at_once_go_to_one_kernel_each(
    control_plane, tmp_path
):
    pool = ("--KernelPools.sizes=pod=3", "--KernelPools.refill_delay=30")
    holder = await start_pod_broker(control_plane, tmp_path, *pool)
    other = await start_pod_broker(control_plane, tmp_path, *pool)
    try:
        await until(lambda: _ready(holder, 3), timeout=90)
        rests = [BrokerREST(b.url, b.token) for b in (holder, other)]
        kernels = await asyncio.gather(*(rest.start_kernel("pod") for rest in rests * 3))
        assert len({k["id"] for k in kernels}) == 6
        pods = control_plane.objects("pods", NAMESPACE)
        served = [p for p in pods if not p["metadata"]["labels"][LABEL_KERNEL_ID].startswith("w")]
        assert len(served) == 6  # one pod per kernel: no warm pod went to two requests
        hits = await pool_hits(holder, "pod") + await pool_hits(other, "pod")
        assert hits == 3
        for kernel, rest in zip(kernels, rests * 3, strict=True):
            await rest.shutdown_kernel(kernel["id"])
    finally:
        await stop(other, holder)


@pytest.mark.slow
async def test_a_silent_websocket_on_another_replica_keeps_its_kernel_from_the_culler(
    control_plane, tmp_path
):
    cull = (
        "--cull-idle-timeout=2",
        "--cull-interval=0.5",
        "--Replicas.activity_interval=0.5",
        *FAST_LEASE,
    )
    holder = await start_pod_broker(control_plane, tmp_path, *cull)
    other = await start_pod_broker(control_plane, tmp_path, *cull)
    try:
        kernel = (await BrokerREST(other.url, other.token).start_kernel("pod"))["id"]
        conn = await ChannelsConnection.connect(other.url, kernel, other.token)
        kept = f"kernel kept id={kernel} "

        async def holder_kept_it() -> bool:
            return kept in holder.log()

        await until(holder_kept_it)  # idle past the timeout, connected on the other replica
        assert "connected on another replica" in holder.log() and "culling" not in holder.log()
        await conn.close()  # the last websocket goes: now the holder culls it
        await until(lambda: _gone(control_plane, kernel))
        assert holder.log().count(f"culling kernel id={kernel}") == 1
    finally:
        await stop(holder, other)


async def _gone(plane, kernel: str) -> bool:
    return kernel not in kernel_ids(plane)
