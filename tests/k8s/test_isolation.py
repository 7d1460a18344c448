"""Runtime isolation per kernelspec: a RuntimeClass (gVisor, Kata) for its pods, and an
egress NetworkPolicy allowing only the destinations it names.

The control plane validates what the broker creates (the official schema) and enforces
the deploy Role; it cannot run gVisor or enforce a NetworkPolicy (kubernetes.md says so).
"""

from __future__ import annotations

import asyncio

import kubernetes_validate
import pytest

from broker.client import BrokerAPIError, BrokerREST
from broker.provisioners.egress import egress_policy
from broker.provisioners.podsettings import PodSettings

from .conftest import NAMESPACE
from .test_broker_pods import start_pod_broker
from .test_manifests import VERSIONS
from .test_replicas import rbac_requests, role_grants

pytestmark = [pytest.mark.k8s]

PYPI = {
    "to": [{"ipBlock": {"cidr": "151.101.0.0/16"}}],
    "ports": [{"protocol": "TCP", "port": 443}],
}
DNS = {
    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}


def policies(control_plane) -> list[dict]:
    return control_plane.objects("networkpolicies", NAMESPACE)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_egress_policy_is_valid_for_the_oldest_and_newest_kubernetes(version):
    settings = PodSettings(
        image="i",
        namespace="kernels",
        broker="Broker_A",
        kernelspec="Python3.pod",
        egress={"pypi": PYPI, "dns": DNS},
    )
    policy = egress_policy(settings)
    kubernetes_validate.validate(policy, version, strict=True)
    assert policy["metadata"]["name"] == "broker-a-python3-pod-egress"
    assert policy["spec"]["egress"] == [DNS, PYPI]  # by name, so replicas agree
    assert egress_policy(PodSettings(image="i", namespace="k", broker="b", kernelspec="s")) is None


@pytest.mark.slow
async def test_a_kernelspec_runs_its_pods_under_its_runtime_class_and_egress_policy(
    control_plane, tmp_path
):
    control_plane.api.runtime_classes.add("gvisor")
    broker = await start_pod_broker(
        control_plane, tmp_path, runtime_class="gvisor", egress={"pypi": PYPI, "dns": DNS}
    )
    try:
        (policy,) = policies(control_plane)
        selector = policy["spec"]["podSelector"]["matchLabels"]
        model = await BrokerREST(broker.url, broker.token).start_kernel("pod")
        (pod,) = control_plane.objects("pods", NAMESPACE)
        assert pod["spec"]["runtimeClassName"] == "gvisor"
        assert selector.items() <= pod["metadata"]["labels"].items()  # the policy selects it
        assert len(policy["spec"]["egress"]) == 2
        await BrokerREST(broker.url, broker.token).shutdown_kernel(model["id"])
    finally:
        await asyncio.to_thread(broker.stop)
    # a changed kernelspec changes the policy (one object per kernelspec, updated in place)
    again = await start_pod_broker(control_plane, tmp_path, egress={"pypi": PYPI})
    await asyncio.to_thread(again.stop)
    (policy,) = policies(control_plane)
    assert policy["spec"]["egress"] == [PYPI]
    assert "egress policy kernel-broker-pod-egress updated" in again.log()
    assert rbac_requests(control_plane.api.requests) <= role_grants()


@pytest.mark.slow
async def test_a_runtime_class_the_cluster_lacks_fails_the_start_saying_so(control_plane, tmp_path):
    broker = await start_pod_broker(control_plane, tmp_path, runtime_class="kata")
    try:
        with pytest.raises(BrokerAPIError) as refused:
            await BrokerREST(broker.url, broker.token).start_kernel("pod")
        assert refused.value.status == 500
        assert 'RuntimeClass "kata" not found' in refused.value.message
        assert "runtime_class" in refused.value.message  # what to check next
        assert control_plane.objects("pods") == []
    finally:
        await asyncio.to_thread(broker.stop)


@pytest.mark.slow
async def test_an_invalid_egress_rule_is_refused_and_its_kernels_reach_nothing(
    control_plane, tmp_path
):
    bad = {"to": [{"ipBlock": {"cidr": 10}}]}  # the schema wants a string
    broker = await start_pod_broker(control_plane, tmp_path, egress={"anything": bad})
    try:
        assert policies(control_plane) == []
        assert "egress policy kernel-broker-pod-egress not applied" in broker.log()
        assert "reach no destination" in broker.log()
        model = await BrokerREST(broker.url, broker.token).start_kernel("pod")
        await BrokerREST(broker.url, broker.token).shutdown_kernel(model["id"])
    finally:
        await asyncio.to_thread(broker.stop)
