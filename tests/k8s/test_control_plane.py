"""The fake API server behaves as a strict real one, seen through the real client library."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from broker.provisioners.k8s import ClusterConfig, KubeClient, KubeError
from broker.provisioners.reflector import PodReflector

from .objects import ApiError

pytestmark = [pytest.mark.k8s, pytest.mark.asyncio]

NS = "kernels"


RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pod(name: str, **labels: str) -> dict:
    """A pod the restricted namespace admits (its image is unknown: it never runs)."""
    container = {"name": "c", "image": "unknown:1", "securityContext": dict(RESTRICTED)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [container]},
    }


@pytest.fixture
async def kube(control_plane):
    client = await KubeClient.connect(ClusterConfig(kubeconfig=str(control_plane.kubeconfig)))
    yield client
    await client.close()


async def test_create_fills_server_fields(kube):
    created = await kube.create_pod(NS, pod("p1", app="a"))
    meta = created["metadata"]
    assert meta["namespace"] == NS and meta["uid"] and meta["creationTimestamp"]
    assert int(meta["resourceVersion"]) > 1
    assert created["status"]["phase"] == "Pending"


async def test_unknown_field_is_422_with_status_body(control_plane):
    # Sent raw: the client library's own model check would refuse it before the server.
    body = pod("p1")
    body["spec"]["containers"][0]["imagePullPolice"] = "Always"
    url = f"{control_plane.url}/api/v1/namespaces/{NS}/pods"
    headers = {"Authorization": f"Bearer {control_plane.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(url, json=body, ssl=control_plane.client_ssl()) as resp:
            status = await resp.json()
    assert resp.status == 422 and status["kind"] == "Status" and status["reason"] == "Invalid"
    assert "imagePullPolice" in status["message"]


async def test_invalid_label_value_is_422(kube):
    with pytest.raises(KubeError) as e:
        await kube.create_pod(NS, pod("p1", owner="alice@example.com"))
    assert e.value.status == 422


async def test_duplicate_name_is_409(kube):
    await kube.create_pod(NS, pod("p1"))
    with pytest.raises(KubeError) as e:
        await kube.create_pod(NS, pod("p1"))
    assert e.value.status == 409 and e.value.reason == "AlreadyExists"


async def test_list_filters_by_selector(kube):
    await kube.create_pod(NS, pod("p1", app="a"))
    await kube.create_pod(NS, pod("p2", app="b"))
    listed = await kube.list_pods(NS, "app in (a)")
    assert [p["metadata"]["name"] for p in listed["items"]] == ["p1"]


async def test_merge_patch_changes_labels_but_not_spec(kube, control_plane):
    await kube.create_pod(NS, pod("p1", app="a"))
    patched = await kube.patch_pod_metadata(NS, "p1", {"labels": {"app": None, "x": "y"}})
    assert patched["metadata"]["labels"] == {"x": "y"}
    with pytest.raises(ApiError, match="Forbidden"):
        control_plane.api.patch(NS, "pods", "p1", {"spec": {"hostname": "h"}}, False)


async def test_secret_owned_by_pod_goes_with_it(kube, control_plane):
    created = await kube.create_pod(NS, pod("p1"))
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "p1", "uid": created["metadata"]["uid"]}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s1", "ownerReferences": [owner]},
        "stringData": {"k": "v"},
    }
    stored = await kube.create_secret(NS, secret)
    assert stored["data"] == {"k": "dg=="}
    await kube.delete_pod(NS, "p1", grace_seconds=0)
    assert control_plane.objects("secrets") == []


async def test_secret_with_missing_owner_is_collected(kube, control_plane):
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "ghost", "uid": "no-such-uid"}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "ownerReferences": [owner]},
    }
    await kube.create_secret(NS, secret)
    await asyncio.sleep(0)  # the garbage collector runs on the next loop turn
    assert control_plane.objects("secrets") == []


async def test_watch_resumes_after_drop_and_relists_after_410(kube, control_plane):
    reflector = PodReflector(kube, NS, "app=a", retry_delay=0.05)
    await reflector.start()
    try:
        await kube.create_pod(NS, pod("p1", app="a"))
        assert await reflector.wait_for(lambda: "p1" in reflector.pods, 5)
        control_plane.api.drop_watches()
        await kube.create_pod(NS, pod("p2", app="a"))
        assert await reflector.wait_for(lambda: "p2" in reflector.pods, 5)
        control_plane.api.store.compact()
        control_plane.api.drop_watches()
        await kube.delete_pod(NS, "p1", grace_seconds=0)
        assert await reflector.wait_for(lambda: "p1" not in reflector.pods, 5)
        await kube.patch_pod_metadata(NS, "p2", {"labels": {"app": "b"}})
        assert await reflector.wait_for(lambda: "p2" not in reflector.pods, 5)
    finally:
        await reflector.stop()


async def test_watch_from_expired_version_gets_410_error_event(kube, control_plane):
    await kube.create_pod(NS, pod("p1"))
    control_plane.api.store.compact()
    with pytest.raises(KubeError) as e:
        async for _ in kube.watch_pods(NS, "", "1", timeout_seconds=5):
            pass
    assert e.value.status == 410


async def test_watch_sends_bookmarks_and_ends_at_timeout(kube, control_plane):
    control_plane.api.bookmark_interval = 0.2
    listed = await kube.list_pods(NS, "")
    rv = listed["metadata"]["resourceVersion"]
    events = [kind async for kind, _ in kube.watch_pods(NS, "", rv, timeout_seconds=1)]
    assert "BOOKMARK" in events


async def test_requests_without_the_token_are_401(control_plane):
    async with aiohttp.ClientSession() as session:
        url = f"{control_plane.url}/api/v1/namespaces/{NS}/pods"
        async with session.get(url, ssl=control_plane.client_ssl()) as resp:
            assert resp.status == 401
            assert (await resp.json())["kind"] == "Status"
