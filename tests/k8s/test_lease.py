"""The Lease that elects the replica doing shared chores, and the API server's lease rules."""

from __future__ import annotations

import asyncio

import pytest

from broker.provisioners.cluster import get_cluster
from broker.provisioners.k8s import ClusterConfig, KubeError
from broker.provisioners.lease import LeaseElector

from .conftest import NAMESPACE

pytestmark = [pytest.mark.k8s]


def lease(name: str = "chores", holder: str = "a") -> dict:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    }


async def kube_for(control_plane):
    return (await get_cluster(ClusterConfig(kubeconfig=str(control_plane.kubeconfig)))).kube


async def test_lease_create_conflicts_and_stale_updates_as_the_real_api(control_plane):
    kube = await kube_for(control_plane)
    created = await kube.create_lease(NAMESPACE, lease())
    with pytest.raises(KubeError) as exists:
        await kube.create_lease(NAMESPACE, lease(holder="b"))
    assert exists.value.status == 409 and exists.value.reason == "AlreadyExists"
    updated = await kube.replace_lease(NAMESPACE, {**created, "spec": {"holderIdentity": "b"}})
    assert updated["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    with pytest.raises(KubeError) as stale:  # written from an old read: someone else won
        await kube.replace_lease(NAMESPACE, {**created, "spec": {"holderIdentity": "c"}})
    assert stale.value.status == 409 and stale.value.reason == "Conflict"
    unconditional = {**lease(), "metadata": {"name": "chores"}}
    with pytest.raises(KubeError) as missing:  # leases allow no unconditional update
        await kube.replace_lease(NAMESPACE, unconditional)
    assert missing.value.status == 422
    assert (await kube.read_lease(NAMESPACE, "chores"))["spec"]["holderIdentity"] == "b"


async def test_one_replica_leads_and_another_takes_over_after_the_duration(control_plane):
    kube = await kube_for(control_plane)
    changes: list[tuple[str, bool]] = []

    def elector(identity: str) -> LeaseElector:
        return LeaseElector(
            kube,
            NAMESPACE,
            "chores",
            identity,
            duration=1.0,
            retry=0.1,
            on_change=lambda leading: changes.append((identity, leading)),
        )

    first, second = elector("first"), elector("second")
    await first.start()
    await second.start()
    try:
        assert first.leading and not second.leading
        await first.stop(release=False)  # as if killed: the Lease is left to expire
        async with asyncio.timeout(10):
            while not await second.step():
                await asyncio.sleep(0.1)
        record = await kube.read_lease(NAMESPACE, "chores")
        assert record["spec"]["holderIdentity"] == "second"
        assert record["spec"]["leaseTransitions"] == 1
        assert ("second", True) in changes
    finally:
        await second.stop()


async def test_a_released_lease_is_taken_over_at_once(control_plane):
    kube = await kube_for(control_plane)
    first = LeaseElector(kube, NAMESPACE, "chores", "first", duration=60, retry=60)
    second = LeaseElector(kube, NAMESPACE, "chores", "second", duration=60, retry=60)
    await first.start()
    await second.start()
    try:
        assert not second.leading
        await first.stop(release=True)  # a broker draining on SIGTERM
        assert await second.step()
    finally:
        await second.stop()


async def test_the_holder_renews_with_one_request_and_loses_the_lease_to_a_newer_write(
    control_plane,
):
    kube = await kube_for(control_plane)
    holder = LeaseElector(kube, NAMESPACE, "chores", "holder", duration=60, retry=60)
    assert await holder.step()
    path = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/chores"
    before = len(control_plane.api.requests)
    for _ in range(3):
        assert await holder.step()
    assert control_plane.api.requests[before:] == [("PUT", path)] * 3  # no read first
    record = await kube.read_lease(NAMESPACE, "chores")  # an operator hands it over
    await kube.replace_lease(
        NAMESPACE, {**record, "spec": {**record["spec"], "holderIdentity": "x"}}
    )
    assert not await holder.step()  # its write conflicts; it reads and sees another holder
    assert (await kube.read_lease(NAMESPACE, "chores"))["spec"]["holderIdentity"] == "x"
