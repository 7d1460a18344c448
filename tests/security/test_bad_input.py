"""Regressions for the bad input the fuzzers found: each answers a clear JSON error."""

from __future__ import annotations

import asyncio

import pytest
import requests
from websockets.exceptions import ConnectionClosed

from broker.client import ChannelsConnection

from ..broker_process import RunningBroker


def test_405_says_which_methods_are_allowed(broker: RunningBroker) -> None:
    # Its own connection: Tornado closes one after refusing a method it does not know,
    # and the shared session would reuse it.
    r = requests.request("TRACE", broker.url + "/api/kernels", headers=broker.headers(), timeout=30)
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, POST"
    assert set(r.json()) == {"reason", "message"}


def test_plain_get_on_the_websocket_endpoint_is_a_json_400(
    broker: RunningBroker, kernel: str
) -> None:
    r = broker.request("GET", f"/api/kernels/{kernel}/channels")
    assert r.status_code == 400
    assert r.headers["Content-Type"] == "application/json"
    assert "websocket" in r.json()["message"]


def test_cross_origin_websocket_is_a_json_403(broker: RunningBroker, kernel: str) -> None:
    headers = {
        **broker.headers(),
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Origin": "https://evil.example",
    }
    r = requests.get(f"{broker.url}/api/kernels/{kernel}/channels", headers=headers, timeout=30)
    assert r.status_code == 403
    assert "evil.example" in r.json()["message"]


@pytest.mark.parametrize("kernel_field", [False, 0, "", []])
def test_session_kernel_must_be_an_object(broker: RunningBroker, kernel_field: object) -> None:
    r = broker.request("POST", "/api/sessions", {"path": "x.ipynb", "kernel": kernel_field})
    assert r.status_code == 400, r.text
    assert "kernel" in r.json()["message"]


@pytest.mark.parametrize("path", ["/api/kernels", "/api/sessions"])
def test_deeply_nested_json_body_is_a_400_not_a_500(broker: RunningBroker, path: str) -> None:
    r = broker.request("POST", path, data="[" * 100_000 + "]" * 100_000)
    assert r.status_code == 400
    assert "nested too deeply" in r.json()["message"]


async def test_text_frame_on_the_v1_protocol_closes_with_1003(
    broker: RunningBroker, kernel: str
) -> None:
    conn = await ChannelsConnection.connect(broker.url, kernel, broker.token, protocol="v1")
    await conn.ws.send('{"header": {}}')
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(30):
            while True:  # a pooled kernel's last iopub messages may come first
                await conn.recv()
    assert info.value.rcvd.code == 1003


def test_an_unknown_method_on_the_execute_endpoint_logs_no_error(
    broker: RunningBroker, kernel: str
) -> None:
    url = f"{broker.url}/api/kernels/{kernel}/execute"
    before = len(broker.log())
    r = requests.request("TRACE", url, headers=broker.headers(), timeout=30)
    assert r.status_code == 405
    broker.execute(kernel, "1")  # a later request: the closed connection has been handled
    assert "Traceback" not in broker.log()[before:]
