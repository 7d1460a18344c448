"""The websocket bridge with real kernels, in both protocols, driven with `websockets`."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from broker.client import ChannelsConnection, stream_text
from broker.client.channels import channels_url
from broker.wire import V1_SUBPROTOCOL, make_message, pack_v1

from .broker_process import RunningBroker

PROTOCOLS = ["v1", "legacy"]


async def close_code(conn: ChannelsConnection) -> int:
    """Read until the broker closes the connection; its close code."""
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(10):
            while True:
                await conn.recv()
    return info.value.rcvd.code


async def open_channels(broker: RunningBroker, kernel: str, **kw) -> ChannelsConnection:
    return await ChannelsConnection.connect(broker.url, kernel, broker.token, **kw)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_execute_round_trip(broker: RunningBroker, kernel: str, protocol: str) -> None:
    async with await open_channels(broker, kernel, protocol=protocol) as conn:
        assert conn.v1 == (protocol == "v1")
        reply, outputs = await conn.execute("print('hi'); 6*7")
        assert reply.content_dict()["status"] == "ok"
        kinds = {m.msg_type: m.content_dict() for m in outputs}
        assert stream_text(outputs) == "hi\n"
        assert kinds["execute_result"]["data"]["text/plain"] == "42"


async def test_v1_is_selected_when_offered(broker: RunningBroker, kernel: str) -> None:
    url = channels_url(broker.url, kernel, "s1")
    async with connect(
        url, subprotocols=["other", V1_SUBPROTOCOL], additional_headers=broker.headers()
    ) as ws:
        assert ws.subprotocol == V1_SUBPROTOCOL


async def test_token_in_query_is_accepted(broker: RunningBroker, kernel: str) -> None:
    url = channels_url(broker.url, kernel, "s1") + f"&token={broker.token}"
    async with connect(url) as ws:
        assert ws.subprotocol is None


@pytest.mark.parametrize("token", ["", "wrong"])
async def test_websocket_refuses_bad_tokens(broker: RunningBroker, kernel: str, token: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        await ChannelsConnection.connect(broker.url, kernel, token or None)
    assert info.value.response.status_code == 401
    assert set(json.loads(info.value.response.body)) == {"reason", "message"}


async def test_websocket_to_unknown_kernel_is_404(broker: RunningBroker) -> None:
    with pytest.raises(InvalidStatus) as info:
        await ChannelsConnection.connect(broker.url, "nope", broker.token)
    assert info.value.response.status_code == 404


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_binary_buffers_reach_the_kernel_and_come_back(
    broker: RunningBroker, kernel: str, protocol: str
) -> None:
    setup = (
        "from ipykernel.comm import Comm\n"
        "def _echo(comm, msg):\n"
        "    def on_msg(m):\n"
        "        back = [bytes(b)[::-1] for b in m['buffers']]\n"
        "        comm.send({'n': len(m['buffers'])}, buffers=back)\n"
        "    comm.on_msg(on_msg)\n"
        "get_ipython().kernel.comm_manager.register_target('echo', _echo)\n"
    )
    async with await open_channels(broker, kernel, protocol=protocol) as conn:
        await conn.execute(setup)
        await conn.request(
            "shell", "comm_open", {"comm_id": "c1", "target_name": "echo", "data": {}}
        )
        await conn.request(
            "shell", "comm_msg", {"comm_id": "c1", "data": {}}, buffers=[b"\x00\x01\x02", b"abc"]
        )
        while True:
            msg = await conn.recv(timeout=30)
            if msg.msg_type == "comm_msg":
                break
        assert msg.content_dict()["data"] == {"n": 2}
        assert [bytes(b) for b in msg.buffers] == [b"\x02\x01\x00", b"cba"]


async def test_replies_go_only_to_the_asking_connection(broker: RunningBroker, kernel: str) -> None:
    async with await open_channels(broker, kernel) as a, await open_channels(broker, kernel) as b:
        request = await a.request("shell", "kernel_info_request", {})
        reply = await a.recv(timeout=30)
        while reply.channel != "shell":
            reply = await a.recv(timeout=30)
        assert reply.parent_msg_id == request.msg_id
        # b sees the iopub status traffic of a's request, never the shell reply
        seen = []
        try:
            while True:
                seen.append(await b.recv(timeout=1))
        except TimeoutError:
            pass
        assert seen and all(m.channel == "iopub" for m in seen)


async def test_iopub_fans_out_to_every_connection(broker: RunningBroker, kernel: str) -> None:
    async with await open_channels(broker, kernel) as a, await open_channels(broker, kernel) as b:
        reply, _ = await a.execute("print('to everyone')")
        seen = []
        while not stream_text(seen).endswith("\n"):
            seen.append(await b.recv(timeout=30))
        assert stream_text(seen) == "to everyone\n"


async def test_connections_are_counted_in_the_model(broker: RunningBroker, kernel: str) -> None:
    async with await open_channels(broker, kernel), await open_channels(broker, kernel):
        assert broker.request("GET", f"/api/kernels/{kernel}").json()["connections"] == 2


async def test_reconnect_with_same_session_replays_missed_output(
    broker: RunningBroker, kernel: str, tmp_path
) -> None:
    go = tmp_path / "go"
    conn = await open_channels(broker, kernel, session_id="replay-me")
    request = await conn.request(
        "shell",
        "execute_request",
        {
            "code": f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
            "for i in range(5): print(i, flush=True)"
        },
    )
    await conn.close()
    async with asyncio.timeout(30):  # output starts only once the broker saw the disconnect
        while broker.request("GET", f"/api/kernels/{kernel}").json()["connections"]:
            await asyncio.sleep(0.05)
    go.touch()
    # queued behind it on the kernel: when this answers, the first one has ended too
    assert broker.stdout(kernel, "print('after')") == "after\n"
    async with await open_channels(broker, kernel, session_id="replay-me") as again:
        texts, idle = "", False
        while not idle:  # on iopub, idle comes after all of the request's output
            msg = await again.recv(timeout=30)
            if msg.parent_msg_id != request.msg_id:
                continue  # iopub of the later execution is replayed too, in between
            if msg.msg_type == "stream":
                texts += msg.content_dict()["text"]
            idle = msg.msg_type == "status" and msg.content_dict()["execution_state"] == "idle"
        assert texts == "0\n1\n2\n3\n4\n"


@pytest.mark.slow
async def test_replay_buffer_overflow_says_what_was_dropped(tmp_path, broker_env) -> None:
    from .broker_process import start_broker

    small = start_broker(tmp_path, "--KernelRegistry.replay_buffer_messages=3", env=broker_env)
    try:
        kernel = small.start_kernel()
        conn = await ChannelsConnection.connect(small.url, kernel, small.token, session_id="s")
        await conn.close()
        small.request(
            "POST",
            f"/api/kernels/{kernel}/execute",
            {"code": "for i in range(20): print(i, flush=True)"},
        )
        async with await ChannelsConnection.connect(
            small.url, kernel, small.token, session_id="s"
        ) as c:
            first = await c.recv(timeout=30)
            assert first.msg_type == "stream" and "dropped" in first.content_dict()["text"]
    finally:
        small.stop()


@pytest.mark.parametrize(
    "frame",
    [b"\x00\x01", b"\xff" * 64, "not json", json.dumps({"header": {"msg_type": "x"}})],
)
async def test_malformed_frames_close_with_1007_and_the_kernel_lives(
    broker: RunningBroker, kernel: str, frame
) -> None:
    protocol = "v1" if isinstance(frame, bytes) else "legacy"
    conn = await open_channels(broker, kernel, protocol=protocol)
    await conn.ws.send(frame)
    assert await close_code(conn) == 1007
    async with await open_channels(broker, kernel) as ok:
        reply, _ = await ok.execute("1")
        assert reply.content_dict()["status"] == "ok"


async def test_client_cannot_send_on_iopub(broker: RunningBroker, kernel: str) -> None:
    conn = await open_channels(broker, kernel)
    await conn.ws.send(pack_v1(make_message("iopub", "status", {}, session="s")))
    assert await close_code(conn) == 1007


async def test_legacy_message_without_channel_goes_to_shell(
    broker: RunningBroker, kernel: str
) -> None:
    async with await open_channels(broker, kernel, protocol="legacy") as conn:
        await conn.ws.send(
            json.dumps(
                {
                    "header": {"msg_id": "m1", "msg_type": "kernel_info_request", "date": 1.5},
                    "parent_header": {},
                    "metadata": {},
                    "content": {},
                }
            )
        )
        while True:
            msg = await conn.recv(timeout=30)
            if msg.channel == "shell":
                break
        assert msg.msg_type == "kernel_info_reply" and msg.parent_msg_id == "m1"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_large_output_arrives_whole_in_parts_under_10_mib(
    broker: RunningBroker, kernel: str, protocol: str
) -> None:
    async with await open_channels(broker, kernel, protocol=protocol, max_size=10 * 2**20) as conn:
        reply, outputs = await conn.execute("print('x' * 25_000_000)", timeout=120)
        text = "".join(m.content_dict()["text"] for m in outputs if m.msg_type == "stream")
        assert len(text) == 25_000_001 and len(outputs) > 2


async def test_many_messages_in_flight_keep_order(broker: RunningBroker, kernel: str) -> None:
    async with await open_channels(broker, kernel) as conn:
        requests = [
            await conn.request("shell", "execute_request", {"code": f"{i}", "silent": False})
            for i in range(30)
        ]
        replies = []
        while len(replies) < 30:
            msg = await conn.recv(timeout=30)
            if msg.channel == "shell":
                replies.append(msg.parent_msg_id)
        assert replies == [r.msg_id for r in requests]
