"""A rolling update of the replicas loses no kernel, and its clients carry on.

As ``kubectl rollout restart`` with ``maxSurge: 1, maxUnavailable: 0`` does it: a new
replica starts, then an old one gets SIGTERM, twice over, while kernels run and clients
are connected to the replicas that go away. Each client reconnects (code 1012: service
restart) to a replica that is up, as it would through the Service, and finds its kernel
with its variables.
"""

from __future__ import annotations

import asyncio

import pytest

from broker.client import BrokerREST, ChannelsConnection, stream_text
from broker.pools import WARM_PREFIX
from broker.provisioners.pod import LABEL_KERNEL_ID

from .conftest import NAMESPACE
from .test_broker_pods import start_pod_broker
from .test_replicas import FAST_LEASE, stop, until_closed

pytestmark = [pytest.mark.k8s, pytest.mark.slow]


async def test_a_rolling_update_loses_no_kernel_and_clients_carry_on(control_plane, tmp_path):
    args = (*FAST_LEASE, "--KernelPools.sizes=pod=1")
    old = [await start_pod_broker(control_plane, tmp_path, *args) for _ in range(2)]
    new = []
    try:
        kernels, clients = [], []
        for n, broker in enumerate(old):
            kernel = (await BrokerREST(broker.url, broker.token).start_kernel("pod"))["id"]
            conn = await ChannelsConnection.connect(
                broker.url, kernel, broker.token, session_id=f"client-{n}"
            )
            await conn.execute(f"n = {n * 10}")
            kernels.append(kernel)
            clients.append(conn)
        for n, going in enumerate(old):
            coming = await start_pod_broker(control_plane, tmp_path, *args)  # surge one
            new.append(coming)
            assert await asyncio.to_thread(going.stop) == 0  # then SIGTERM an old one
            assert (await until_closed(clients[n])).rcvd.code == 1012
            clients[n] = await ChannelsConnection.connect(
                coming.url, kernels[n], coming.token, session_id=f"client-{n}"
            )
            _, outputs = await clients[n].execute("n += 1; print(n)")
            assert stream_text(outputs) == f"{n * 10 + 1}\n"
        for conn in clients:
            await conn.close()
        rest = BrokerREST(new[0].url, new[0].token)
        assert sorted(k["id"] for k in await rest.list_kernels()) == sorted(kernels)
        ids = [p["metadata"]["labels"][LABEL_KERNEL_ID] for p in control_plane.objects("pods")]
        assert sorted(i for i in ids if not i.startswith(WARM_PREFIX)) == sorted(kernels)
        for log in (b.log() for b in old + new):
            assert "kernel died" not in log and "kernel record dropped" not in log
        for kernel in kernels:
            await rest.shutdown_kernel(kernel)
        assert all(
            p["metadata"]["labels"][LABEL_KERNEL_ID].startswith(WARM_PREFIX)
            for p in control_plane.objects("pods", NAMESPACE)
        )
    finally:
        await stop(*old, *new)
