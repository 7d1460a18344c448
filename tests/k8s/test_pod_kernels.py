"""Pod kernels driven by jupyter_client's AsyncKernelManager through the real client library."""

from __future__ import annotations

import asyncio

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from broker.provisioners.pod import LABEL_KERNEL_ID

from .conftest import NAMESPACE

pytestmark = [pytest.mark.k8s, pytest.mark.asyncio, pytest.mark.slow]


async def execute(client, code: str, timeout: float = 20) -> tuple[dict, list[str]]:
    """Run code; returns the execute_reply content and the stream texts printed."""
    out: list[str] = []

    def on_output(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = await client.execute_interactive(code, timeout=timeout, output_hook=on_output)
    return reply["content"], out


def assert_nothing_left(plane) -> None:
    assert plane.objects("pods") == []
    assert plane.objects("secrets") == []


async def test_pod_kernel_starts_executes_and_shuts_down(control_plane, pod_kernel):
    km = pod_kernel()
    await km.start_kernel(env={"KERNEL_USERNAME": "alice"})
    try:
        pods = control_plane.objects("pods", NAMESPACE)
        assert len(pods) == 1
        assert pods[0]["metadata"]["labels"][LABEL_KERNEL_ID] == km.kernel_id
        assert km.ip == pods[0]["status"]["podIP"] and km.ip.startswith("127.42.")
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=20)
        reply, out = await execute(client, "import os; print(os.environ['POD_IP'], 6 * 7)")
        assert reply["status"] == "ok"
        assert "".join(out).split() == [km.ip, "42"]
        client.stop_channels()
    finally:
        await km.shutdown_kernel()
    assert_nothing_left(control_plane)


def handshake(url: str, serverkey: str | None) -> str:
    """Connect a DEALER (as a CurveZMQ client when given the server key); the ZMTP outcome."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    if serverkey:
        sock.curve_serverkey = serverkey.encode()
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
    monitor = sock.get_monitor_socket()
    sock.connect(url)
    try:
        while monitor.poll(10_000):
            event = recv_monitor_message(monitor)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                return "ok"
            if event in (
                zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
                zmq.EVENT_DISCONNECTED,
            ):
                return "failed"
        return "timeout"
    finally:
        sock.disable_monitor()
        monitor.close(0)
        sock.close(0)


async def started(km, **env):
    await km.start_kernel(env={"KERNEL_USERNAME": "alice", **env})
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=20)
    return client


async def test_kernel_traffic_is_curve_encrypted(control_plane, pod_kernel):
    km = pod_kernel()
    client = await started(km)
    try:
        info = km.get_connection_info()
        assert info["curve_publickey"] and info["curve_secretkey"]
        assert km.provisioner.connection_info["curve_serverkey"] == info["curve_publickey"]
        assert handshake(f"tcp://{km.ip}:{km.shell_port}", None) == "failed"
        assert handshake(f"tcp://{km.ip}:{km.shell_port}", info["curve_publickey"]) == "ok"
    finally:
        client.stop_channels()
        await km.shutdown_kernel()


async def test_interrupt_stops_a_sleeping_cell(control_plane, pod_kernel):
    km = pod_kernel()
    client = await started(km)
    try:
        running = asyncio.ensure_future(execute(client, "import time; time.sleep(60)", 30))
        await asyncio.sleep(0.5)  # let the cell begin; there is no event for "now sleeping"
        await km.interrupt_kernel()
        reply, _ = await asyncio.wait_for(running, 20)
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    finally:
        client.stop_channels()
        await km.shutdown_kernel()
    assert_nothing_left(control_plane)


async def test_restart_replaces_the_pod(control_plane, pod_kernel):
    km = pod_kernel()
    client = await started(km)
    first = control_plane.objects("pods", NAMESPACE)[0]["metadata"]["name"]
    client.stop_channels()
    try:
        await km.restart_kernel()
        pods = control_plane.objects("pods", NAMESPACE)
        assert [p["metadata"]["name"] for p in pods] != [first] and len(pods) == 1
        assert len(control_plane.objects("secrets", NAMESPACE)) == 1
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=20)
        reply, out = await execute(client, "print('again')")
        assert out == ["again\n"]
        client.stop_channels()
    finally:
        await km.shutdown_kernel()
    assert_nothing_left(control_plane)


async def test_forced_shutdown_deletes_pod_and_secret(control_plane, pod_kernel):
    km = pod_kernel()
    client = await started(km)
    client.stop_channels()
    await km.shutdown_kernel(now=True)
    assert_nothing_left(control_plane)


async def test_pod_carries_owner_spec_and_broker_labels(control_plane, pod_kernel):
    km = pod_kernel(broker_name="broker-a")
    client = await started(km)
    client.stop_channels()
    try:
        pod = control_plane.objects("pods", NAMESPACE)[0]
        labels, notes = pod["metadata"]["labels"], pod["metadata"]["annotations"]
        assert labels["kernel-broker.jupyter.org/owner"] == "alice"
        assert labels["kernel-broker.jupyter.org/broker"] == "broker-a"
        assert notes["kernel-broker.jupyter.org/kernelspec"] == "pod"
        secret = control_plane.objects("secrets", NAMESPACE)[0]
        assert secret["metadata"]["ownerReferences"][0]["uid"] == pod["metadata"]["uid"]
    finally:
        await km.shutdown_kernel()


async def test_provisioner_info_reattaches_from_pod_and_secret(control_plane, pod_kernel):
    km = pod_kernel()
    client = await started(km)
    client.stop_channels()
    try:
        saved = await km.provisioner.get_provisioner_info()
        other = pod_kernel()
        other.kernel_id = km.kernel_id
        spec = other.kernel_spec
        from jupyter_client.provisioning.factory import KernelProvisionerFactory

        prov = KernelProvisionerFactory.instance().create_provisioner_instance(
            km.kernel_id, spec, parent=other
        )
        await prov.load_provisioner_info(
            {"kernel_id": saved["kernel_id"], **{k: saved[k] for k in ("namespace", "pod_name")}}
        )
        assert prov.connection_info["key"] == km.session.key
        assert prov.connection_info["ip"] == km.ip
        assert await prov.poll() is None
    finally:
        await km.shutdown_kernel()
