"""The websocket endpoint /api/kernels/{id}/channels: one client of a kernel's bridge."""

from __future__ import annotations

import json
import logging
import re
import socket
import uuid
from collections.abc import Callable
from typing import Any

from tornado import web, websocket
from tornado.iostream import IOStream, StreamClosedError

from ..bridge import MsgIdInUse
from ..errors import BrokerError
from ..origin import origin_allowed
from ..wire import (
    V1_SUBPROTOCOL,
    Message,
    Parts,
    WireError,
    legacy_parts,
    make_message,
    normalize_inbound,
    split_stream,
    unpack_legacy,
    unpack_v1,
    v1_parts,
    websocket_frame,
)
from .base import AuthMixin, error_body, log_error

log = logging.getLogger("broker.channels")

CLOSE_UNSUPPORTED = 1003  # RFC 6455: a kind of frame (text, binary) this endpoint cannot take
CLOSE_INVALID = 1007  # RFC 6455: the message does not follow the protocol
CLOSE_POLICY = 1008  # RFC 6455: the message breaks a rule (another client's msg_id)
CLOSE_TOO_BIG = 1009  # RFC 6455: the message is over the size limit
# msg_ids are UUIDs, jupyter_client's "{session}_{pid}_{count}", or pieces "{msg_id}-{n}"
RESUME_AFTER = re.compile(r"[\w.:-]{1,256}", re.ASCII)


class _Protocol(websocket.WebSocketProtocol13):
    """Tornado's protocol, whose 1009 close reason names the limit and how to raise it."""

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if code == CLOSE_TOO_BIG:
            limit = self.params.max_message_size
            reason = f"message over {limit} bytes (--Broker.max_message_bytes)"
        super().close(code, reason)


class ChannelsHandler(AuthMixin, websocket.WebSocketHandler):
    """Frames bridge messages for one websocket in the protocol it negotiated."""

    session_id = ""
    resume_after: str | None = None

    async def get(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
        try:
            user = self.authenticate()
            kernel = await self.broker.registry.find(kernel_id, user)
            self._check_upgrade()
            self.resume_after = self._resume_point()
            if kernel.dead:
                raise BrokerError(409, f"Kernel {kernel_id} is dead; restart or shut it down.")
            await kernel.bridge.ready(self.broker.registry.launch_timeout)
        except web.HTTPError as e:
            log_error(self.request, e)
            self.set_status(e.status_code)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(error_body(e.status_code, e)))
            return
        self.kernel = kernel
        self.session_id = self.get_argument("session_id", "") or uuid.uuid4().hex
        await super().get(kernel_id, *args, **kwargs)

    def _check_upgrade(self) -> None:
        """Refuse what Tornado would refuse, but as JSON errors like every other endpoint."""
        headers = self.request.headers
        if headers.get("Upgrade", "").lower() != "websocket":
            raise BrokerError(400, "This endpoint is a websocket: send 'Upgrade: websocket'.")
        if "upgrade" not in (p.strip().lower() for p in headers.get("Connection", "").split(",")):
            raise BrokerError(400, "A websocket upgrade needs 'Connection: Upgrade'.")
        if not origin_allowed(headers, self.broker.allow_origin):
            origin = headers.get("Origin") or headers.get("Sec-Websocket-Origin")
            raise BrokerError(
                403,
                f"Websockets from origin {origin!r} are not allowed: it is not this server's "
                f"own origin (Host: {headers.get('Host', '')!r}). Start the broker with "
                f"--Broker.allow_origin={origin} to allow it ('*' allows any origin).",
            )

    def _resume_point(self) -> str | None:
        """The ``resume_after`` query parameter: the last msg_id the client received."""
        value = self.get_argument("resume_after", "")
        if not value:
            return None
        if not RESUME_AFTER.fullmatch(value):
            raise BrokerError(
                400,
                "resume_after must be the msg_id of the last message received: 1 to 256 "
                "ASCII letters, digits, '_', '.', ':' or '-'.",
            )
        return value

    def check_origin(self, origin: str) -> bool:
        # One policy for every Tornado version (6.6 no longer compares Origin with Host
        # here); _check_upgrade has already applied it, with a JSON answer.
        return origin_allowed(self.request.headers, self.broker.allow_origin)

    def get_websocket_protocol(self) -> websocket.WebSocketProtocol | None:
        protocol = super().get_websocket_protocol()
        if isinstance(protocol, websocket.WebSocketProtocol13):
            return _Protocol(self, False, protocol.params)
        return protocol

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return V1_SUBPROTOCOL if V1_SUBPROTOCOL in subprotocols else None

    def open(self, kernel_id: str) -> None:
        # Tornado turns TCP_NODELAY off after the upgrade; small replies would then wait
        # for the client's delayed ACK (~40 ms per round trip).
        self.set_nodelay(True)
        self.v1 = self.selected_subprotocol == V1_SUBPROTOCOL
        self.frame_limit = self.broker.legacy_max_frame_bytes
        self.chunk = self.broker.stream_chunk_bytes
        if not self.v1:
            self.chunk = min(self.chunk, self.frame_limit - 4096)
        replayed = self.kernel.bridge.attach(self, self.resume_after)
        log.info(
            "websocket open kernel=%s session=%s protocol=%s resume_after=%s replayed=%d",
            kernel_id,
            self.session_id,
            "v1" if self.v1 else "legacy",
            self.resume_after or "-",
            replayed,
        )

    async def on_message(self, data: str | bytes) -> None:
        if self.v1 and isinstance(data, str):
            log.warning("websocket kernel=%s: text frame on the v1 protocol", self.kernel.id)
            self.close(CLOSE_UNSUPPORTED, "the v1 protocol takes binary frames only")
            return
        try:
            msg = normalize_inbound(unpack_v1(data) if self.v1 else unpack_legacy(data))
            await self.kernel.bridge.send(msg, self)
        except WireError as e:
            log.warning("websocket kernel=%s: invalid frame: %s", self.kernel.id, e)
            self.close(CLOSE_INVALID, f"invalid message: {e}"[:120])
        except MsgIdInUse as e:
            log.warning("websocket kernel=%s: %s", self.kernel.id, e)
            self.close(CLOSE_POLICY, str(e)[:120])

    def on_close(self) -> None:
        kernel = getattr(self, "kernel", None)
        if kernel is not None:
            kernel.bridge.detach(self)

    # --- the bridge's Connection protocol ----------------------------------------

    def deliver(self, msg: Message) -> None:
        for writes in _framed(msg, (self.v1, self.chunk, self.frame_limit), self._frames):
            if not self._write(writes):
                return

    def _frames(self, msg: Message) -> list[Parts]:
        """The websocket frames that carry ``msg`` to this connection, each as its writes."""
        return [
            websocket_frame(*((v1_parts(part), True) if self.v1 else legacy_parts(part)))
            for part in self._parts(msg)
        ]

    def _write(self, writes: Parts) -> bool:
        """Write one frame's pieces in order; False once the connection is closed.

        While Tornado has nothing queued, the pieces go straight to the socket: its
        IOStream.write costs a Future and a few calls per write, as much as the send
        itself, for every message to every connection. What the socket does not take at
        once is queued with Tornado, and so is everything after it.
        """
        conn = self.ws_connection
        if conn is None or conn.is_closing() or conn.stream.closed():
            return False
        stream = conn.stream
        try:
            if type(stream) is IOStream and not stream.writing():  # TLS streams: Tornado's way
                writes = _send_now(stream.socket, writes)
            for piece in writes:
                stream.write(piece)
        except StreamClosedError:
            return False
        return True

    def _parts(self, msg: Message) -> list[Message]:
        """Big stream output goes as several messages, so the client starts on the first
        while the rest is on its way; legacy clients (Jupyter Server's gateway client)
        also drop any frame over their limit, so other oversized messages become a notice."""
        if msg.size <= self.chunk:
            return [msg]
        parts = split_stream(msg, self.chunk)
        if len(parts) > 1 or self.v1 or msg.size <= self.frame_limit:
            return parts
        notice = (
            f"[kernel-broker] a {msg.msg_type} message of {msg.size} bytes was not sent: "
            f"it exceeds this client's frame limit ({self.frame_limit} bytes; "
            "--Broker.legacy_max_frame_bytes). Clients using the v1 protocol receive it.\n"
        )
        return [
            make_message(
                "iopub",
                "stream",
                {"name": "stderr", "text": notice},
                session=self.kernel.bridge.session,
                parent=msg.parent_dict,
            )
        ]


def _send_now(sock: socket.socket, writes: Parts) -> Parts:
    """Send what the socket takes without blocking; what is left, in order."""
    for i, piece in enumerate(writes):
        try:
            sent = sock.send(piece)
        except BlockingIOError:
            sent = 0
        except OSError:  # the peer is gone: Tornado's write finds out and closes the stream
            return writes[i:]
        if sent < len(piece):
            return [memoryview(piece)[sent:], *writes[i + 1 :]]
    return []


class _LastFramed:
    """The frames of the message being fanned out, per framing (protocol and sizes), so
    that its N connections encode it once; only the newest message is kept."""

    def __init__(self) -> None:
        self._last: dict[tuple[bool, int, int], tuple[Message, list[Parts]]] = {}

    def __call__(
        self, msg: Message, key: tuple[bool, int, int], encode: Callable[[Message], list[Parts]]
    ) -> list[Parts]:
        last = self._last.get(key)
        if last is None or last[0] is not msg:
            last = self._last[key] = (msg, encode(msg))
        return last[1]


_framed = _LastFramed()
