"""Per-channel inboxes with jupyter_client's channel surface (get_msg, get_msgs, msg_ready)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from queue import Empty
from typing import Any

from jupyter_client.jsonutil import extract_dates

from ..wire import Message


def message_dict(msg: Message) -> dict[str, Any]:
    """The dict jupyter_client's Session.deserialize would give: dates parsed, buffers as views."""
    out = msg.to_dict()
    out["header"] = extract_dates(out["header"])
    out["parent_header"] = extract_dates(out["parent_header"])
    out["buffers"] = [memoryview(b) for b in msg.buffers]
    return out


class Inbox:
    """Messages received on one channel, waited for without polling.

    ``get_msg`` raises ``queue.Empty`` on timeout, as jupyter_client's channels do, because
    nbclient relies on exactly that exception.
    """

    def __init__(self, channel: str, send: Callable[[dict[str, Any]], None]) -> None:
        self.channel = channel
        self._send = send
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def send(self, msg: dict[str, Any]) -> None:
        """Send a jupyter_client-style message dict on this channel."""
        self._send(msg)

    def put(self, msg: dict[str, Any]) -> None:
        self._queue.put_nowait(msg)

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message; waits up to ``timeout`` seconds (None: for ever)."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            raise Empty from None

    async def get_msgs(self) -> list[dict[str, Any]]:
        """Every message already received, without waiting."""
        msgs = []
        while not self._queue.empty():
            msgs.append(self._queue.get_nowait())
        return msgs

    async def msg_ready(self) -> bool:
        return not self._queue.empty()
