"""A websocket connection to a kernel's channels, in the v1 or the legacy protocol."""

from __future__ import annotations

import asyncio
import uuid
from ssl import SSLContext
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect

from ..wire import (
    V1_SUBPROTOCOL,
    Message,
    make_message,
    pack_legacy,
    pack_v1,
    unpack_legacy,
    unpack_v1,
)


def channels_url(
    base_url: str, kernel_id: str, session_id: str, resume_after: str | None = None
) -> str:
    """The websocket URL; ``resume_after`` asks for what followed that msg_id (see connect)."""
    ws = "wss" + base_url[5:] if base_url.startswith("https") else "ws" + base_url[4:]
    url = f"{ws.rstrip('/')}/api/kernels/{quote(kernel_id)}/channels?session_id={session_id}"
    return f"{url}&resume_after={quote(resume_after)}" if resume_after else url


def stream_text(outputs: list[Message], name: str = "stdout") -> str:
    """The text a stream printed, joined: a kernel may flush one print in several messages."""
    return "".join(
        m.content_dict()["text"]
        for m in outputs
        if m.msg_type == "stream" and m.content_dict().get("name") == name
    )


class ChannelsConnection:
    """Send and receive Jupyter messages of one kernel over the broker's websocket."""

    def __init__(
        self, ws: ClientConnection, session_id: str, v1: bool, last_msg_id: str | None = None
    ) -> None:
        self.ws = ws
        self.session_id = session_id
        self.v1 = v1
        # What to pass as ``resume_after`` when reconnecting: the last message received, or
        # (nothing received yet) the resume point this connection itself started from.
        self.last_msg_id = last_msg_id

    @classmethod
    async def connect(
        cls,
        base_url: str,
        kernel_id: str,
        token: str | None = None,
        *,
        session_id: str | None = None,
        protocol: str = "v1",
        max_size: int | None = 2**30,
        open_timeout: float = 60.0,
        ssl: SSLContext | None = None,
        resume_after: str | None = None,
    ) -> ChannelsConnection:
        """Open the websocket; ``protocol`` is ``"v1"`` or ``"legacy"``.

        ``resume_after`` (a dropped connection's ``last_msg_id``, with its ``session_id``)
        makes the broker send everything of the session after that message first.
        ``ssl`` verifies a wss:// broker against other CAs than the system's.
        """
        session_id = session_id or uuid.uuid4().hex
        ws = await connect(
            channels_url(base_url, kernel_id, session_id, resume_after),
            subprotocols=[V1_SUBPROTOCOL] if protocol == "v1" else None,
            additional_headers={"Authorization": f"token {token}"} if token else None,
            max_size=max_size,
            open_timeout=open_timeout,
            ping_interval=None,
            **({"ssl": ssl} if ssl is not None else {}),
        )
        return cls(ws, session_id, ws.subprotocol == V1_SUBPROTOCOL, resume_after)

    async def send(self, msg: Message) -> None:
        if self.v1:
            await self.ws.send(pack_v1(msg))
        else:
            data, binary = pack_legacy(msg)
            await self.ws.send(data, text=not binary)

    async def request(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any],
        *,
        buffers: list[bytes] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Build, send and return a new message (its msg_id matches the replies)."""
        msg = make_message(
            channel, msg_type, content, session=self.session_id, metadata=metadata, buffers=buffers
        )
        await self.send(msg)
        return msg

    async def recv(self, timeout: float | None = None) -> Message:
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        msg = unpack_v1(data) if self.v1 else unpack_legacy(data)
        self.last_msg_id = msg.msg_id
        return msg

    async def execute(self, code: str, timeout: float = 60.0) -> tuple[Message, list[Message]]:
        """Run code; return its execute_reply and its outputs (iopub, less status and input)."""
        request = await self.request(
            "shell", "execute_request", {"code": code, "silent": False, "allow_stdin": False}
        )
        reply: Message | None = None
        outputs: list[Message] = []
        idle = False
        async with asyncio.timeout(timeout):
            while reply is None or not idle:
                msg = await self.recv()
                if msg.parent_msg_id != request.msg_id:
                    continue
                if msg.channel == "shell":
                    reply = msg
                elif msg.msg_type == "status":
                    idle = msg.content_dict().get("execution_state") == "idle"
                elif msg.msg_type != "execute_input":
                    outputs.append(msg)
        return reply, outputs

    async def close(self) -> None:
        await self.ws.close()

    async def __aenter__(self) -> ChannelsConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
