"""Claiming a warm pod is atomic across replicas: a label patch preconditioned on the
resourceVersion the claimer saw, which the API server applies to that version only."""

from __future__ import annotations

import asyncio

import pytest

from broker.provisioners import pod as manifests
from broker.provisioners.cluster import get_cluster
from broker.provisioners.k8s import ClusterConfig
from broker.provisioners.podclaim import WARM_MARK, claim_pod
from broker.provisioners.podrequest import make_request
from broker.provisioners.podsettings import PodSettings

from .conftest import NAMESPACE

pytestmark = [pytest.mark.k8s]

WARM_ID = "warm-0b7c5d0e-1111-4222-8333-944455556666"


async def warm_pod(control_plane) -> tuple:
    """A pool pod as the Lease holder leaves it (its image is never pulled: the claim only
    touches metadata), and the broker's client."""
    kube = (await get_cluster(ClusterConfig(kubeconfig=str(control_plane.kubeconfig)))).kube
    settings = PodSettings(
        image="registry.example/none:1", namespace=NAMESPACE, broker="b", kernelspec="pod"
    )
    pod = manifests.make_pod(
        "kernel-warm", "kernel-warm-connection", make_request(WARM_ID, {}, [], settings), settings
    )
    pod["metadata"]["annotations"][WARM_MARK] = "ready"
    return kube, await kube.create_pod(NAMESPACE, pod)


def labels(control_plane) -> dict[str, str]:
    (pod,) = control_plane.objects("pods", NAMESPACE)
    return pod["metadata"]["labels"]


async def test_two_replicas_claiming_one_warm_pod_at_once_one_wins(control_plane):
    kube, seen = await warm_pod(control_plane)  # both replicas saw this version
    results = await asyncio.gather(
        claim_pod(kube, seen, WARM_ID, "kernel-a", "alice"),
        claim_pod(kube, seen, WARM_ID, "kernel-b", "bob"),
    )
    assert sorted(results) == [False, True]
    winner = "kernel-a" if results[0] else "kernel-b"
    assert labels(control_plane)[manifests.LABEL_KERNEL_ID] == winner
    (pod,) = control_plane.objects("pods", NAMESPACE)
    assert WARM_MARK not in pod["metadata"]["annotations"]  # nobody else may claim it now


async def test_a_claim_from_a_stale_read_of_a_still_warm_pod_succeeds(control_plane):
    kube, seen = await warm_pod(control_plane)
    # a newer version the claimer has not seen yet (the kubelet updating its status)
    await kube.patch_pod_metadata(NAMESPACE, "kernel-warm", {"annotations": {"x": "1"}})
    assert await claim_pod(kube, seen, WARM_ID, "kernel-a", "alice@example.com")
    assert labels(control_plane)[manifests.LABEL_OWNER] == "alice-example.com"


async def test_a_pod_claimed_or_deleted_meanwhile_is_not_claimed_again(control_plane):
    kube, seen = await warm_pod(control_plane)
    assert await claim_pod(kube, seen, WARM_ID, "kernel-a", "alice")
    assert not await claim_pod(kube, seen, WARM_ID, "kernel-b", "bob")
    assert labels(control_plane)[manifests.LABEL_KERNEL_ID] == "kernel-a"
    await kube.delete_pod(NAMESPACE, "kernel-warm", grace_seconds=0)
    assert not await claim_pod(kube, seen, WARM_ID, "kernel-c", "carol")
