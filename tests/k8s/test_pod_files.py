"""The file API on a pod kernel: the same kernel-protocol path as for local kernels, so it
needs nothing of the cluster (no pods/exec); here over the test control plane."""

from __future__ import annotations

import asyncio
import os

import pytest

from broker.client import BrokerREST, ChannelsConnection, stream_text
from broker.client import files as kfiles

from .test_broker_pods import start_pod_broker

pytestmark = [pytest.mark.k8s, pytest.mark.slow]


async def round_trip(rest: BrokerREST, kernel: str) -> bytes:
    """Upload 200 kB of random bytes to ``in/data.bin`` (several 64 KiB chunks each way),
    download and list them; the bytes."""
    data = os.urandom(200_000)
    model = await kfiles.upload(rest, kernel, "in/data.bin", data)
    assert (model["path"], model["size"]) == ("in/data.bin", len(data))
    assert await kfiles.download(rest, kernel, "in/data.bin") == data
    listing = await kfiles.list_files(rest, kernel, "in")
    assert [e["name"] for e in listing["entries"]] == ["data.bin"]
    return data


async def test_files_round_trip_on_a_pod_kernel(control_plane, tmp_path):
    broker = await start_pod_broker(control_plane, tmp_path, "--FileLimits.chunk_bytes=65536")
    try:
        rest = BrokerREST(broker.url, broker.token)
        kernel = (await rest.start_kernel("pod", {"KERNEL_USERNAME": "alice"}))["id"]
        data = await round_trip(rest, kernel)
        async with await ChannelsConnection.connect(broker.url, kernel, broker.token) as c:
            code = "import os; print(os.path.getsize('in/data.bin'))"
            _, outputs = await c.execute(code)
            assert stream_text(outputs) == f"{len(data)}\n"
        await kfiles.delete_file(rest, kernel, "in/data.bin")
        assert (await kfiles.list_files(rest, kernel, "in"))["entries"] == []
    finally:
        await asyncio.to_thread(broker.stop)
