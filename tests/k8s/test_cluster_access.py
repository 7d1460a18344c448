"""How the broker reaches the cluster: in-cluster over TLS, and pods in network namespaces."""

from __future__ import annotations

import socket

import pytest

from broker.provisioners.cluster import close_clusters

from .controlplane import ControlPlane
from .test_pod_kernels import assert_nothing_left, execute, started

pytestmark = [pytest.mark.k8s, pytest.mark.asyncio, pytest.mark.slow]


@pytest.fixture
async def tls_plane(tmp_path, monkeypatch):
    plane = ControlPlane(tmp_path / "tls-cluster")
    await plane.start()
    for name, value in plane.incluster_env.items():
        monkeypatch.setenv(name, value)
    yield plane
    await close_clusters()
    await plane.stop()


async def test_in_cluster_config_over_tls(tls_plane, pod_kernel_factory):
    km = pod_kernel_factory(
        tls_plane,
        in_cluster=True,
        token_file=str(tls_plane.token_file),
        ca_file=str(tls_plane.ca_file),
    )
    client = await started(km)
    try:
        reply, out = await execute(client, "print(1 + 1)")
        assert out == ["2\n"]
    finally:
        client.stop_channels()
        await km.shutdown_kernel()
    assert_nothing_left(tls_plane)


async def test_kernel_in_own_network_namespace_binds_pod_ip_and_has_no_route_out(
    netns_plane, pod_kernel_factory
):
    km = pod_kernel_factory(netns_plane)
    client = await started(km)
    try:
        assert km.ip.startswith("10.244.")
        code = (
            "import socket\ns = socket.socket()\n"
            "try:\n    s.connect(('192.0.2.1', 80))\nexcept OSError as e:\n    print(e.errno)"
        )
        reply, out = await execute(client, code)
        assert out == ["101\n"]  # ENETUNREACH: no default route in the pod's namespace
        with socket.create_connection((km.ip, km.hb_port), timeout=5):
            pass
    finally:
        client.stop_channels()
        await km.shutdown_kernel()
    assert_nothing_left(netns_plane)
