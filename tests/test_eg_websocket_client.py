"""The ``websocket-client`` library (what Enterprise Gateway's Python clients use) against a
real broker: its default ``Origin`` is the broker's own and is accepted, foreign ones are not."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from .broker_process import RunningBroker, start_broker


def channels_url(broker: RunningBroker, kernel_id: str) -> str:
    return broker.url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"


def execute(ws: websocket.WebSocket, code: str) -> tuple[dict, str]:
    """Send an execute_request in the legacy JSON framing; (its reply's content, its stdout)."""
    msg_id = uuid.uuid4().hex
    request = {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "eg-client",
            "session": uuid.uuid4().hex,
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False},
        "channel": "shell",
    }
    ws.send(json.dumps(request))
    stdout = ""
    while True:
        msg = json.loads(ws.recv())
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            stdout += msg["content"]["text"]
        if msg["msg_type"] == "execute_reply":
            return msg["content"], stdout


def refusal(url: str, **options: object) -> websocket.WebSocketBadStatusException:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=30, **options)
    return refused.value


def test_default_origin_of_websocket_client_connects_and_executes(
    broker: RunningBroker, kernel: str
) -> None:
    ws = websocket.create_connection(
        channels_url(broker, kernel), header=[f"Authorization: token {broker.token}"], timeout=30
    )
    try:
        reply, stdout = execute(ws, "print(6 * 7)")
    finally:
        ws.close()
    assert reply["status"] == "ok"
    assert stdout == "42\n"


def test_foreign_origin_is_refused_with_a_json_403_naming_the_setting(
    broker: RunningBroker, kernel: str
) -> None:
    error = refusal(
        channels_url(broker, kernel),
        header=[f"Authorization: token {broker.token}"],
        origin="https://evil.example",
    )
    assert error.status_code == 403
    body = json.loads(error.resp_body)
    assert set(body) == {"reason", "message"}
    assert "--Broker.allow_origin=https://evil.example" in body["message"]


def test_same_host_on_another_port_is_a_foreign_origin(broker: RunningBroker, kernel: str) -> None:
    error = refusal(
        channels_url(broker, kernel),
        header=[f"Authorization: token {broker.token}"],
        origin="http://127.0.0.1:1",
    )
    assert error.status_code == 403


@pytest.fixture(scope="module")
def lab_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    """A broker that allows websockets from one other origin."""
    tmp: Path = tmp_path_factory.mktemp("allow-origin")
    running = start_broker(tmp, "--Broker.allow_origin=https://lab.example.org")
    yield running
    running.stop()


@pytest.mark.slow  # a broker of its own
def test_origin_the_operator_allows_connects(lab_broker: RunningBroker) -> None:
    kernel = lab_broker.start_kernel()
    try:
        ws = websocket.create_connection(
            channels_url(lab_broker, kernel),
            header=[f"Authorization: token {lab_broker.token}"],
            origin="https://lab.example.org",
            timeout=30,
        )
        try:
            reply, _ = execute(ws, "1 + 1")
        finally:
            ws.close()
        assert reply["status"] == "ok"
        error = refusal(
            channels_url(lab_broker, kernel),
            header=[f"Authorization: token {lab_broker.token}"],
            origin="https://other.example.org",
        )
        assert error.status_code == 403
    finally:
        lab_broker.delete_kernel(kernel)
