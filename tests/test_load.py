"""Correctness under load: several kernels, several websockets each, all sending at once.

Small enough for two cores; what is checked is that nothing is lost and nothing is mixed
up between clients, never how fast (bench/load.py measures that).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from broker.client import ChannelsConnection
from broker.wire import Message

from .broker_process import RunningBroker

KERNELS = 2
PROTOCOLS = ("v1", "legacy", "v1")  # the websockets of each kernel
EXECUTES = 8  # per websocket, all sent before any reply is read
LINES = 15  # flushed prints per execute: one iopub message each, mostly


@dataclass
class Client:
    """One websocket and everything it received, in order."""

    conn: ChannelsConnection
    sent: list[str] = field(default_factory=list)  # msg_ids of its execute_requests
    received: list[Message] = field(default_factory=list)
    idle: set[str] = field(default_factory=set)  # requests whose status: idle arrived
    replied: set[str] = field(default_factory=set)  # requests whose shell reply arrived

    async def receive(self) -> None:
        msg = await self.conn.recv()
        self.received.append(msg)
        if msg.channel == "shell":
            self.replied.add(msg.parent_msg_id)
        elif msg.is_type("status") and msg.content_dict()["execution_state"] == "idle":
            self.idle.add(msg.parent_msg_id)

    def replies(self) -> list[Message]:
        return [m for m in self.received if m.channel == "shell"]

    def iopub(self, parents: set[str]) -> list[str]:
        """msg_ids of the iopub messages received for ``parents``, in order of arrival."""
        return [
            m.msg_id for m in self.received if m.channel == "iopub" and m.parent_msg_id in parents
        ]

    def stdout(self, parent: str) -> str:
        return "".join(
            m.content_dict()["text"]
            for m in self.received
            if m.msg_type == "stream" and m.parent_msg_id == parent
        )


def code_for(tag: str) -> str:
    return f"for j in range({LINES}):\n    print('{tag}', j, flush=True)"


def expected_stdout(tag: str) -> str:
    return "".join(f"{tag} {j}\n" for j in range(LINES))


async def read_until_idle(client: Client, parents: set[str]) -> None:
    """Receive until ``parents`` all went idle and the client's own ones were answered: the
    kernel has sent everything for them (a reply and its idle status come on different
    sockets, in either order)."""
    async with asyncio.timeout(120):
        while not (parents <= client.idle and set(client.sent) <= client.replied):
            await client.receive()


@pytest.fixture
async def clients(broker: RunningBroker) -> AsyncIterator[dict[str, list[Client]]]:
    """Per kernel, its websockets, open before any of them sends."""
    kernels = await asyncio.gather(
        *(asyncio.to_thread(broker.start_kernel) for _ in range(KERNELS))
    )
    opened: dict[str, list[Client]] = {}
    try:
        for kernel in kernels:
            opened[kernel] = [
                Client(
                    await ChannelsConnection.connect(broker.url, kernel, broker.token, protocol=p)
                )
                for p in PROTOCOLS
            ]
        yield opened
    finally:
        for group in opened.values():
            await asyncio.gather(*(c.conn.close() for c in group))
        await asyncio.gather(*(asyncio.to_thread(broker.delete_kernel, k) for k in kernels))


async def run_everything(clients: dict[str, list[Client]]) -> dict[str, str]:
    """Every client sends all its executes at once, on every kernel at once; then each reads
    until every execute of its kernel went idle. Returns the tag each request printed."""
    tags: dict[str, str] = {}

    async def send_all(client: Client, name: str) -> None:
        for i in range(EXECUTES):
            tag = f"{name}-{i}"
            request = await client.conn.request(
                "shell", "execute_request", {"code": code_for(tag), "silent": False}
            )
            client.sent.append(request.msg_id)
            tags[request.msg_id] = tag

    await asyncio.gather(
        *(
            send_all(c, f"k{k}c{n}")
            for k, group in enumerate(clients.values())
            for n, c in enumerate(group)
        )
    )
    await asyncio.gather(
        *(
            read_until_idle(c, {msg_id for other in group for msg_id in other.sent})
            for group in clients.values()
            for c in group
        )
    )
    return tags


@pytest.mark.slow
async def test_every_client_gets_exactly_its_own_replies(
    clients: dict[str, list[Client]],
) -> None:
    await run_everything(clients)
    for group in clients.values():
        for client in group:
            replies = client.replies()
            assert sorted(r.parent_msg_id for r in replies) == sorted(client.sent)
            assert all(r.content_dict()["status"] == "ok" for r in replies)


@pytest.mark.slow
async def test_every_iopub_message_reaches_every_connection_of_its_kernel_in_order(
    clients: dict[str, list[Client]],
) -> None:
    tags = await run_everything(clients)
    for group in clients.values():
        parents = {msg_id for c in group for msg_id in c.sent}
        first = group[0].iopub(parents)
        assert len(first) >= len(parents) * 3  # busy, execute_input, output..., idle
        for client in group[1:]:
            assert client.iopub(parents) == first
        for msg_id in parents:  # and nothing of any execute was lost on the way
            assert {c.stdout(msg_id) for c in group} == {expected_stdout(tags[msg_id])}
