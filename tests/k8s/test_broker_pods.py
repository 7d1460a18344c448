"""Pod kernels end to end: the broker's REST and websocket API over the test control plane."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from tornado.httpclient import AsyncHTTPClient

from broker.client import BrokerAPIError, BrokerREST, ChannelsConnection, stream_text
from broker.pools import WARM_PREFIX
from broker.provisioners.pod import LABEL_KERNEL_ID, LABEL_OWNER

from ..broker_process import sleeping, start_broker
from .conftest import NAMESPACE, write_kernelspec
from .controlplane import KERNEL_IMAGE

pytestmark = [pytest.mark.k8s, pytest.mark.slow]


async def start_pod_broker(control_plane, tmp_path, *args: str, **pod_config):
    """A broker whose kernelspec "pod" runs kernels on the test control plane (with
    ``pod_config`` added to its provisioner config), and whose "no-image" names an image
    that cannot be pulled."""
    root = tmp_path / "jupyter"
    config = {
        "image": KERNEL_IMAGE,
        "namespace": NAMESPACE,
        "kubeconfig": str(control_plane.kubeconfig),
        "launch_timeout": 30,
        "grace_seconds": 2,
    }
    write_kernelspec(root / "kernels", "pod", {**config, **pod_config})
    write_kernelspec(root / "kernels", "no-image", {**config, "image": "registry.example/no:1"})
    # the control plane runs on this event loop: never block it while the broker talks to it
    return await asyncio.to_thread(
        start_broker, tmp_path, "--pool-size=0", *args, env={"JUPYTER_PATH": str(root)}
    )


async def pool_ready(broker, spec: str) -> float:
    response = await AsyncHTTPClient().fetch(f"{broker.url}/metrics", headers=broker.headers())
    found = re.search(rf'^broker_pool_ready{{spec="{spec}"}} (\S+)$', response.body.decode(), re.M)
    return float(found.group(1)) if found else 0.0


async def pool_filled(broker, spec: str, timeout: float = 60) -> None:
    """Wait until the broker's pool of ``spec`` has a ready kernel."""
    async with asyncio.timeout(timeout):
        while await pool_ready(broker, spec) < 1:
            await asyncio.sleep(0.1)  # the pool fills in the background; /metrics says when


async def test_pod_kernel_through_the_broker(control_plane, tmp_path):
    broker = await start_pod_broker(control_plane, tmp_path)
    try:
        rest = BrokerREST(broker.url, broker.token)
        model = await rest.start_kernel("pod", {"KERNEL_USERNAME": "alice"})
        pods = control_plane.objects("pods", NAMESPACE)
        assert len(pods) == 1 and model["name"] == "pod"
        async with await ChannelsConnection.connect(broker.url, model["id"], broker.token) as c:
            reply, outputs = await c.execute("import os; print(os.environ['POD_IP'])")
            assert stream_text(outputs).startswith("127.42.")
            await sleeping(c)
            await rest.interrupt_kernel(model["id"])
            while True:
                msg = await c.recv(timeout=30)
                if msg.msg_type == "execute_reply":
                    break
            assert msg.content_dict()["ename"] == "KeyboardInterrupt"
        await rest.restart_kernel(model["id"])
        async with await ChannelsConnection.connect(broker.url, model["id"], broker.token) as c:
            reply, _ = await c.execute("1")
            assert reply.content_dict()["status"] == "ok"
        await rest.shutdown_kernel(model["id"])
        assert control_plane.objects("pods") == [] and control_plane.objects("secrets") == []
        # a second kernel outlives the drain: SIGTERM keeps pod kernels for the next broker
        kept = await rest.start_kernel("pod")
    finally:
        assert await asyncio.to_thread(broker.stop) == 0
    pods = control_plane.objects("pods", NAMESPACE)
    assert [p["metadata"]["labels"][LABEL_KERNEL_ID] for p in pods] == [kept["id"]]


async def test_pooled_pod_is_relabelled_at_hand_out(control_plane, tmp_path):
    broker = await start_pod_broker(control_plane, tmp_path, "--KernelPools.sizes=pod=1")
    try:
        rest = BrokerREST(broker.url, broker.token)
        await pool_filled(broker, "pod")
        began = time.perf_counter()
        model = await rest.start_kernel("pod", {"KERNEL_USERNAME": "alice"})
        pooled = time.perf_counter() - began
        pod = next(
            p
            for p in control_plane.objects("pods", NAMESPACE)
            if p["metadata"]["labels"][LABEL_KERNEL_ID] == model["id"]
        )
        assert pod["metadata"]["labels"][LABEL_OWNER] == "alice"
        async with await ChannelsConnection.connect(broker.url, model["id"], broker.token) as c:
            _, outputs = await c.execute("import os; print(os.environ['KERNEL_USERNAME'])")
            assert stream_text(outputs) == "alice\n"
        began = time.perf_counter()
        cold = await rest.start_kernel("pod", {"KERNEL_USERNAME": "bob", "KERNEL_CPUS": "1"})
        cold_time = time.perf_counter() - began
        print(f"pod start: pooled {pooled * 1000:.0f} ms, cold {cold_time * 1000:.0f} ms")
        for kernel in (model, cold):
            await rest.shutdown_kernel(kernel["id"])
    finally:
        assert await asyncio.to_thread(broker.stop) == 0
    # only the refilled warm pod is left, for the next broker to adopt into its pool
    ids = [p["metadata"]["labels"][LABEL_KERNEL_ID] for p in control_plane.objects("pods")]
    assert len(ids) <= 1 and all(i.startswith(WARM_PREFIX) for i in ids)


async def test_pod_failures_are_clear_http_errors_and_leave_nothing(control_plane, tmp_path):
    broker = await start_pod_broker(control_plane, tmp_path)
    try:
        rest = BrokerREST(broker.url, broker.token)
        with pytest.raises(BrokerAPIError) as pull:
            await rest.start_kernel("no-image")
        assert pull.value.status == 500 and "image" in pull.value.message.lower()
        with pytest.raises(BrokerAPIError) as bounds:
            await rest.start_kernel("pod", {"KERNEL_MEMORY": "100Ti"})
        assert bounds.value.status == 400 and "KERNEL_MEMORY" in bounds.value.message
        assert control_plane.objects("pods") == [] and control_plane.objects("secrets") == []
        assert await rest.list_kernels() == []
    finally:
        await asyncio.to_thread(broker.stop)
