"""The test control plane refuses what a cluster refuses, and pod kernels start under it."""

from __future__ import annotations

import json
import os

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from broker.provisioners.kubernetes import KernelLaunchError

from . import podsecurity
from .conftest import NAMESPACE
from .test_pod_kernels import execute

pytestmark = [pytest.mark.k8s, pytest.mark.asyncio]
as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="the kubelet changes a container's user only as root"
)


async def api(plane, method: str, path: str, token: str, body: dict | None = None) -> dict:
    """One request to the fake API server as a client with ``token``; the JSON answer."""
    try:
        r = await AsyncHTTPClient().fetch(
            plane.url + path,
            method=method,
            body=None if body is None else json.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            ssl_options=plane.client_ssl(),
        )
    except HTTPClientError as failure:
        assert failure.response is not None
        return {"code": failure.code, **json.loads(failure.response.body)}
    return {"code": r.code, **json.loads(r.body)}


async def test_a_request_outside_the_brokers_role_is_forbidden(control_plane):
    answer = await api(control_plane, "GET", "/api/v1/nodes", control_plane.token)
    assert answer["code"] == 403 and answer["reason"] == "Forbidden"
    assert 'cannot list resource "nodes"' in answer["message"]


async def test_a_privileged_pod_is_refused_by_pod_security(control_plane):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root-shell", "namespace": NAMESPACE},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }
    path = f"/api/v1/namespaces/{NAMESPACE}/pods"
    answer = await api(control_plane, "POST", path, control_plane.admin_token, pod)
    assert answer["code"] == 403
    assert 'violates PodSecurity "restricted:latest"' in answer["message"]
    assert "privileged" in answer["message"]
    assert control_plane.objects("pods") == []


@as_root
async def test_a_pod_kernel_runs_as_its_user_and_passes_restricted(control_plane, pod_kernel):
    km = pod_kernel()
    await km.start_kernel(env={"KERNEL_USERNAME": "alice"})
    try:
        (pod,) = control_plane.objects("pods", NAMESPACE)
        assert podsecurity.violations(pod) == []
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=20)
        reply, out = await execute(client, "import os; print(os.getuid(), os.getgid())")
        assert reply["status"] == "ok" and "".join(out).split() == ["1000", "1000"]
        client.stop_channels()
    finally:
        await km.shutdown_kernel()


@as_root
async def test_without_fs_group_the_kernel_cannot_read_its_connection_file(
    control_plane, pod_kernel
):
    # The pod spec before December 2026: a real kubelet writes the Secret's files as
    # root, so the kernel's user cannot read them without the pod's fsGroup.
    km = pod_kernel(fs_group=None, run_as_group=None)
    with pytest.raises(KernelLaunchError) as failure:
        await km.start_kernel(env={"KERNEL_USERNAME": "alice"})
    assert "exited with code" in str(failure.value)
    assert control_plane.objects("pods") == []
