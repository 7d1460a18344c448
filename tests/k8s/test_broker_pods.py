"""Pod kernels end to end: the broker's REST and websocket API over the test control plane."""

from __future__ import annotations

import asyncio

import pytest

from broker.client import BrokerREST, ChannelsConnection

from ..broker_process import start_broker
from .conftest import NAMESPACE, write_kernelspec
from .controlplane import KERNEL_IMAGE

pytestmark = [pytest.mark.k8s]


async def test_pod_kernel_through_the_broker(control_plane, tmp_path):
    root = tmp_path / "jupyter"
    config = {
        "image": KERNEL_IMAGE,
        "namespace": NAMESPACE,
        "kubeconfig": str(control_plane.kubeconfig),
        "launch_timeout": 30,
        "grace_seconds": 2,
    }
    write_kernelspec(root / "kernels", "pod", config)
    # the control plane runs on this event loop: never block it while the broker talks to it
    broker = await asyncio.to_thread(start_broker, tmp_path, env={"JUPYTER_PATH": str(root)})
    try:
        rest = BrokerREST(broker.url, broker.token)
        model = await rest.start_kernel("pod", {"KERNEL_USERNAME": "alice"})
        pods = control_plane.objects("pods", NAMESPACE)
        assert len(pods) == 1 and model["name"] == "pod"
        async with await ChannelsConnection.connect(broker.url, model["id"], broker.token) as c:
            reply, outputs = await c.execute("import os; print(os.environ['POD_IP'])")
            assert outputs[0].content_dict()["text"].startswith("127.42.")
            await c.request("shell", "execute_request", {"code": "import time; time.sleep(60)"})
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
        # a second kernel is left for the drain to clean up
        await rest.start_kernel("pod")
    finally:
        assert await asyncio.to_thread(broker.stop) == 0
    assert control_plane.objects("pods") == [] and control_plane.objects("secrets") == []
