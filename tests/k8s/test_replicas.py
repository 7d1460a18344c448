"""Pod kernels outlive their broker and are shared by replicas: kill -9, SIGTERM, two brokers.

The pods and their Secrets are the only record: no broker here has a state directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml
from websockets.exceptions import ConnectionClosed

from broker.client import BrokerAPIError, BrokerREST, ChannelsConnection, stream_text
from broker.provisioners.pod import LABEL_KERNEL_ID

from ..broker_process import running
from .conftest import NAMESPACE
from .test_broker_pods import start_pod_broker

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

ROLE = Path(__file__).parents[2] / "deploy" / "base" / "role.yaml"
# A short Lease so that a replica's death is noticed within a test's patience.
FAST_LEASE = ("--Replicas.lease_duration=3", "--Replicas.lease_retry=0.5")


async def kill_9(broker) -> None:
    broker.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(broker.proc.wait)


async def until_closed(conn: ChannelsConnection) -> ConnectionClosed:
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(10):
            while True:
                await conn.recv()
    return closed.value


def rbac_requests(requests: list[tuple[str, str]]) -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of each namespaced request the API server received."""
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    used = set()
    for method, path in requests:
        parts = path.strip("/").split("/")
        if "namespaces" not in parts:
            continue
        group = "" if parts[0] == "api" else parts[1]
        rest = parts[parts.index("namespaces") + 2 :]
        resource = "/".join(rest[::2])  # pods, pods/status (names are the odd parts)
        verb = verbs.get(method) or ("get" if len(rest) > 1 else "list")
        used.add((group, resource, verb))
    return used


def role_grants() -> set[tuple[str, str, str]]:
    rules = yaml.safe_load(ROLE.read_text())["rules"]
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


async def stop(*brokers) -> None:
    for broker in brokers:
        await asyncio.to_thread(broker.stop)


@pytest.mark.slow
async def test_kill_9_during_an_execution_keeps_the_pod_kernel_and_its_variables(
    control_plane, tmp_path
):
    first = await start_pod_broker(control_plane, tmp_path, *FAST_LEASE)
    kernel = (await BrokerREST(first.url, first.token).start_kernel("pod"))["id"]
    conn = await ChannelsConnection.connect(first.url, kernel, first.token, session_id="s1")
    await conn.execute("answer = 42")
    await running(conn, "import time; time.sleep(2); done = True")
    await kill_9(first)
    await until_closed(conn)

    began = time.perf_counter()
    second = await start_pod_broker(control_plane, tmp_path, *FAST_LEASE)
    print(f"restarted broker ready, pod kernel adopted, in {time.perf_counter() - began:.2f} s")
    try:
        assert f"kernel adopted id={kernel}" in second.log()
        async with await ChannelsConnection.connect(
            second.url, kernel, second.token, session_id="s1"
        ) as again:
            _, outputs = await again.execute("print(answer, done)")
            assert stream_text(outputs) == "42 True\n"
    finally:
        await BrokerREST(second.url, second.token).shutdown_kernel(kernel)
        await stop(second)
    assert control_plane.objects("pods") == [] and control_plane.objects("secrets") == []


async def test_sigterm_keeps_pod_kernels_and_the_next_broker_adopts_them(control_plane, tmp_path):
    first = await start_pod_broker(control_plane, tmp_path)
    rest = BrokerREST(first.url, first.token)
    kernels = [(await rest.start_kernel("pod"))["id"] for _ in range(2)]
    async with await ChannelsConnection.connect(first.url, kernels[0], first.token) as conn:
        await conn.execute("kept = 'yes'")
        assert await asyncio.to_thread(first.stop) == 0
        assert (await until_closed(conn)).rcvd.code == 1012  # reconnect
    second = await start_pod_broker(control_plane, tmp_path)
    try:
        rest = BrokerREST(second.url, second.token)
        assert sorted(k["id"] for k in await rest.list_kernels()) == sorted(kernels)
        async with await ChannelsConnection.connect(second.url, kernels[0], second.token) as c:
            _, outputs = await c.execute("print(kept)")
            assert stream_text(outputs) == "yes\n"
        for kernel in kernels:
            await rest.shutdown_kernel(kernel)
    finally:
        await stop(second)


async def test_a_kernel_pod_that_does_not_answer_is_deleted_by_the_lease_holder_only(
    control_plane, tmp_path
):
    first = await start_pod_broker(control_plane, tmp_path, *FAST_LEASE)
    kernel = (await BrokerREST(first.url, first.token).start_kernel("pod"))["id"]
    async with await ChannelsConnection.connect(first.url, kernel, first.token) as conn:
        _, outputs = await conn.execute("import os; print(os.getpid())")
    # The kernel process stops answering; its pod still looks ready (the port listens).
    # Stopped from here: a kernel stopping itself may never flush what it published.
    os.kill(int(stream_text(outputs)), signal.SIGSTOP)
    patient = ("--KernelRegistry.adopt_timeout=2", *FAST_LEASE)
    second = await start_pod_broker(control_plane, tmp_path, *patient)
    try:
        # a replica without the Lease lets it be: slow is not gone, and others may serve it
        assert f"kernel not attached id={kernel}" in second.log()
        assert len(control_plane.objects("pods")) == 1
        await kill_9(first)  # the second takes the Lease over, and decides
        async with asyncio.timeout(30):
            while f"kernel record dropped id={kernel}" not in second.log():
                await asyncio.sleep(0.1)  # the log is the only signal of the decision
        assert await BrokerREST(second.url, second.token).list_kernels() == []
        async with asyncio.timeout(10):
            while control_plane.objects("pods"):
                await asyncio.sleep(0.1)
    finally:
        await stop(second)


@pytest.mark.slow
async def test_two_replicas_serve_one_kernel_and_a_client_moves_when_its_replica_dies(
    control_plane, tmp_path
):
    a = await start_pod_broker(control_plane, tmp_path, *FAST_LEASE)
    b = await start_pod_broker(control_plane, tmp_path, *FAST_LEASE)
    try:
        kernel = (await BrokerREST(a.url, a.token).start_kernel("pod"))["id"]
        began = time.perf_counter()
        model = await BrokerREST(b.url, b.token).get_kernel(kernel)  # B attaches it
        print(f"unknown kernel looked up and attached by B in {time.perf_counter() - began:.3f} s")
        assert model["id"] == kernel and f"kernel adopted id={kernel}" in b.log()
        for broker, code, printed in ((a, "x = 1", ""), (b, "x += 1; print(x)", "2\n")):
            async with await ChannelsConnection.connect(broker.url, kernel, broker.token) as c:
                _, outputs = await c.execute(code)
                assert stream_text(outputs) == printed

        conn = await ChannelsConnection.connect(a.url, kernel, a.token, session_id="s")
        await conn.execute("y = 'before'")
        await kill_9(a)
        await until_closed(conn)
        async with await ChannelsConnection.connect(
            b.url, kernel, b.token, session_id="s"
        ) as moved:
            _, outputs = await moved.execute("print(x, y)")
            assert stream_text(outputs) == "2 before\n"
        await BrokerREST(b.url, b.token).shutdown_kernel(kernel)
    finally:
        await stop(a, b)
    assert control_plane.objects("pods") == []
    # everything two replicas asked of the API server, the deploy Role grants
    assert rbac_requests(control_plane.api.requests) <= role_grants()


async def test_a_replica_finds_only_valid_ids_and_only_for_their_owner(control_plane, tmp_path):
    users = {
        "users": [
            {"name": "alice", "token": "test-token"},
            {"name": "bob", "token": "bob-token"},
        ]
    }
    users_file = tmp_path / "users.json"
    users_file.write_text(json.dumps(users))
    a = await start_pod_broker(control_plane, tmp_path, f"--users-file={users_file}")
    b = await start_pod_broker(control_plane, tmp_path, f"--users-file={users_file}")
    try:
        kernel = (await BrokerREST(a.url, "test-token").start_kernel("pod"))["id"]
        for token, kernel_id in (("bob-token", kernel), ("test-token", f"{kernel},x=y")):
            with pytest.raises(BrokerAPIError) as missing:
                await BrokerREST(b.url, token).get_kernel(kernel_id)
            assert missing.value.status == 404 and missing.value.reason
        assert "kernel adopted" not in b.log()  # bob's request attached nothing
        await BrokerREST(b.url, "test-token").shutdown_kernel(kernel)  # alice's: served
        assert control_plane.objects("pods") == []
    finally:
        await stop(a, b)


async def test_a_restart_on_one_replica_is_not_repeated_by_the_lease_holder(
    control_plane, tmp_path
):
    holder = await start_pod_broker(control_plane, tmp_path)
    other = await start_pod_broker(control_plane, tmp_path)
    try:
        kernel = (await BrokerREST(holder.url, holder.token).start_kernel("pod"))["id"]
        await BrokerREST(other.url, other.token).restart_kernel(kernel)  # attaches, restarts
        async with asyncio.timeout(10):  # the holder sees the marked pod end and lets it go
            while f"kernel forgotten id={kernel}" not in holder.log():
                await asyncio.sleep(0.1)
        assert "kernel died" not in holder.log()
        async with await ChannelsConnection.connect(holder.url, kernel, holder.token) as conn:
            _, outputs = await conn.execute("print('new pod')")  # the holder finds it again
            assert stream_text(outputs) == "new pod\n"
        assert len(control_plane.objects("pods", NAMESPACE)) == 1
        await BrokerREST(holder.url, holder.token).shutdown_kernel(kernel)
    finally:
        await stop(holder, other)


@pytest.mark.slow
async def test_only_the_lease_holder_culls(control_plane, tmp_path):
    cull = ("--cull-idle-timeout=2", "--cull-interval=0.5", *FAST_LEASE)
    holder = await start_pod_broker(control_plane, tmp_path, *cull)
    other = await start_pod_broker(control_plane, tmp_path, *cull)
    try:
        # started on the other replica, which serves it: the holder learns of it by survey
        kernel = (await BrokerREST(other.url, other.token).start_kernel("pod"))["id"]
        deleted = asyncio.Event()
        unsubscribe = control_plane.api.store.subscribe(
            lambda e: (
                e.type == "DELETED"
                and e.resource == "pods"
                and e.obj["metadata"]["labels"][LABEL_KERNEL_ID] == kernel
                and deleted.set()
            )
        )
        try:
            async with asyncio.timeout(30):
                await deleted.wait()
        finally:
            unsubscribe()
        rest = BrokerREST(other.url, other.token)
        async with asyncio.timeout(10):  # the other replica sees the pod go and forgets it
            while await rest.list_kernels():
                await asyncio.sleep(0.1)
        assert holder.log().count(f"culling kernel id={kernel}") == 1
        assert "culling kernel" not in other.log()
        assert f"kernel forgotten id={kernel}" in other.log()
        assert control_plane.objects("pods", NAMESPACE) == []
    finally:
        await stop(holder, other)
