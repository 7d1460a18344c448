"""A client cannot take over another client's request by reusing its msg_id.

Every client of a kernel sees every iopub message, and with it the msg_id of other
clients' requests (in parent_header). Replies are routed by that msg_id, so a client
that sent a message with it would receive the other request's reply. The broker
closes such a connection with 1008 and the owner gets its reply.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from broker.client import ChannelsConnection
from broker.wire import Message, make_message

from ..broker_process import RunningBroker

CLOSE_POLICY = 1008


def _wait_for_file(path: Path) -> str:
    """Code that runs until the test creates ``path``: the request stays pending till then."""
    return (
        f"import os, time\nwhile not os.path.exists({str(path)!r}): time.sleep(0.01)\nprint('done')"
    )


async def _executing_msg_id(conn: ChannelsConnection) -> str:
    """The msg_id of the code being run, as every client learns it from iopub execute_input."""
    while True:
        msg = await conn.recv(timeout=60)
        if msg.msg_type == "execute_input":
            return msg.parent_msg_id


async def _forge(conn: ChannelsConnection, msg_id: str) -> int:
    """Send a kernel_info_request under a stolen msg_id; the close code it earns."""
    forged = make_message("shell", "kernel_info_request", {}, session=conn.session_id)
    forged.header = forged.header.replace(forged.msg_id.encode(), msg_id.encode())
    forged._header = None
    await conn.send(forged)
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await conn.recv(timeout=30)
    return info.value.rcvd.code


async def _reply_to(conn: ChannelsConnection, msg_id: str) -> Message:
    while True:
        msg = await conn.recv(timeout=60)
        if msg.channel == "shell" and msg.parent_msg_id == msg_id:
            return msg


async def test_another_connections_msg_id_is_refused_and_its_reply_arrives(
    broker: RunningBroker, kernel: str, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    owner = await ChannelsConnection.connect(broker.url, kernel, broker.token)
    thief = await ChannelsConnection.connect(broker.url, kernel, broker.token)
    async with owner:
        request = await owner.request("shell", "execute_request", {"code": _wait_for_file(flag)})
        stolen = await _executing_msg_id(thief)
        assert stolen == request.msg_id
        assert await _forge(thief, stolen) == CLOSE_POLICY
        flag.touch()
        reply = await _reply_to(owner, request.msg_id)
        assert reply.content_dict()["status"] == "ok"


async def test_an_http_executions_msg_id_is_refused_and_it_completes(
    broker: RunningBroker, kernel: str, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    thief = await ChannelsConnection.connect(broker.url, kernel, broker.token)
    execution = asyncio.get_running_loop().run_in_executor(
        None, broker.execute, kernel, _wait_for_file(flag)
    )
    stolen = await _executing_msg_id(thief)
    assert await _forge(thief, stolen) == CLOSE_POLICY
    flag.touch()
    events = await execution
    assert events[-1]["status"] == "ok"
    assert "".join(e["text"] for e in events if e["type"] == "stdout") == "done\n"
