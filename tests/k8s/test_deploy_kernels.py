"""The broker as deploy/ ships it starts no kernel inside its own pod.

Each kustomization in deploy/ is built at test time (tests/k8s/kustomize.py) and its broker
container run with the Deployment's own command, args, environment and volumes
(tests/k8s/deployed.py), in-cluster over TLS against the test control plane, with the token
read from the Secret the guide creates. The broker pod holds the service-account token that
may create pods and read Secrets: a kernel there could use it, so only pod kernels may run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from tornado.httpclient import AsyncHTTPClient

from broker.client import BrokerAPIError, BrokerREST, ChannelsConnection
from broker.pools import WARM_PREFIX
from broker.provisioners.pod import LABEL_KERNEL_ID

from ..broker_process import RunningBroker
from .controlplane import ControlPlane
from .deployed import broker_container, kernelspecs, start_deployed_broker
from .kustomize import Obj, build

# slow: each kustomization's broker and its control plane
pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUSTOMIZATIONS = ["base", "overlays/production"]


@dataclass
class Deployed:
    """A built kustomization, the control plane it runs on, and its running broker."""

    objects: list[Obj]
    plane: ControlPlane
    broker: RunningBroker
    namespace: str

    @property
    def rest(self) -> BrokerREST:
        return BrokerREST(self.broker.url, self.broker.token)

    def pods(self) -> list[Obj]:
        return self.plane.objects("pods", self.namespace)

    def arg(self, flag: str) -> str:
        """The value of ``--flag=value`` in the Deployment's args."""
        args = broker_container(self.objects)[1]["args"]
        return next(a.split("=", 1)[1] for a in args if a.startswith(f"--{flag}="))

    async def until(self, condition: Callable[[], bool], timeout: float = 60) -> None:
        """Wait for ``condition`` over the control plane's objects, woken by its writes."""
        changed = asyncio.Event()
        unsubscribe = self.plane.api.store.subscribe(lambda event: changed.set())
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    await changed.wait()
                    changed.clear()
        finally:
            unsubscribe()


async def create_token_secret(plane: ControlPlane, namespace: str) -> None:
    """``kubectl create secret generic kernel-broker-token --from-literal=token=...``,
    through the API server as kubectl would."""
    token = secrets.token_hex(32)
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "kernel-broker-token", "namespace": namespace},
        "data": {"token": base64.b64encode(token.encode()).decode()},
    }
    await AsyncHTTPClient().fetch(
        f"https://127.0.0.1:{plane.api.port}/api/v1/namespaces/{namespace}/secrets",
        method="POST",
        body=json.dumps(body),
        headers={
            "Authorization": f"Bearer {plane.admin_token}",
            "Content-Type": "application/json",
        },
        ca_certs=str(plane.ca_file),
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=KUSTOMIZATIONS)
async def deployed(request, tmp_path_factory) -> AsyncIterator[Deployed]:
    root = tmp_path_factory.mktemp("deployed")
    objects = build(DEPLOY / request.param)
    namespace = broker_container(objects)[0]["metadata"]["namespace"]
    plane = ControlPlane(root / "cluster", namespace=namespace)
    await plane.start()
    await create_token_secret(plane, namespace)
    try:
        # the control plane runs on this event loop: never block it while the broker starts
        broker = await asyncio.to_thread(start_deployed_broker, objects, plane, root / "node")
    except BaseException:
        await plane.stop()
        raise
    yield Deployed(objects, plane, broker, namespace)
    try:
        assert await asyncio.to_thread(broker.stop) == 0, broker.log()
    finally:
        await plane.stop()


async def test_only_the_pod_kernelspecs_are_offered(deployed):
    listed = await deployed.rest.kernelspecs()
    assert set(listed["kernelspecs"]) == set(kernelspecs(deployed.objects))
    assert listed["default"] == deployed.arg("default-kernel") in listed["kernelspecs"]
    for model in listed["kernelspecs"].values():
        provisioner = model["spec"]["metadata"]["kernel_provisioner"]["provisioner_name"]
        assert provisioner == "kubernetes-provisioner"


async def test_a_start_without_a_name_makes_a_pod(deployed):
    model = await deployed.rest.start_kernel()
    try:
        assert model["name"] == deployed.arg("default-kernel")
        ids = [p["metadata"]["labels"][LABEL_KERNEL_ID] for p in deployed.pods()]
        assert model["id"] in ids
        async with await ChannelsConnection.connect(
            deployed.broker.url, model["id"], deployed.broker.token
        ) as conn:
            reply, outputs = await conn.execute("import os; print(os.environ['POD_IP'])")
            assert reply.content_dict()["status"] == "ok"
    finally:
        await deployed.rest.shutdown_kernel(model["id"])


async def test_the_warm_pool_is_made_of_pods(deployed):
    spec, size = deployed.arg("KernelPools.sizes").split("=")
    assert spec in kernelspecs(deployed.objects)

    def warm() -> list[Obj]:
        return [
            p
            for p in deployed.pods()
            if p["metadata"]["labels"][LABEL_KERNEL_ID].startswith(WARM_PREFIX)
            and p.get("status", {}).get("podIP")
        ]

    await deployed.until(lambda: len(warm()) >= int(size))
    metrics = await AsyncHTTPClient().fetch(
        f"{deployed.broker.url}/metrics", headers=deployed.broker.headers()
    )
    ready = re.search(rf'^broker_pool_ready{{spec="{spec}"}} (\S+)$', metrics.body.decode(), re.M)
    assert ready and float(ready.group(1)) >= 1


async def test_the_native_python3_kernelspec_is_refused_with_a_clear_error(deployed):
    # jupyter_client always finds it (ipykernel's own kernelspec): it would run in the broker
    with pytest.raises(BrokerAPIError) as refused:
        await deployed.rest.start_kernel("python3")
    assert refused.value.status == 403 and refused.value.reason == "Forbidden"
    assert "BROKER_LOCAL_KERNELS" in refused.value.message
    assert deployed.arg("default-kernel") in refused.value.message


async def test_the_broker_starts_no_process(deployed):
    model = await deployed.rest.start_kernel()
    with pytest.raises(BrokerAPIError):
        await deployed.rest.start_kernel("python3")
    await deployed.rest.shutdown_kernel(model["id"])
    pid = deployed.broker.proc.pid
    children = [
        child
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]
    assert children == [], "a kernel process runs inside the broker's container"
