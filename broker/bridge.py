"""One kernel's ZMQ sockets fanned out to many websocket connections.

The bridge owns one DEALER per request channel (shell, control, stdin) and one SUB
on iopub, shared by every connection to the kernel. Requests remember which
connection asked, so replies go back only there; iopub goes to everyone. When the
last connection of a session drops, its messages are kept in a bounded replay
buffer until the session reconnects. Internal clients (the HTTP execute endpoint,
the handshake) register a consumer for a request's msg_id instead of a connection;
a private request's iopub messages (the broker's own calls into a kernel) go to its
consumer alone, except its busy and idle statuses.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

import zmq
import zmq.asyncio

from .kernel_socket import KernelSocket
from .metrics import Metrics
from .replay import SessionLog
from .wire import Message, Part, Signer, WireError, from_zmq, keep, make_message, to_zmq

log = logging.getLogger("broker.bridge")

Consumer = Callable[[Message], None]
_MAX_ROUTES = 10_000
_MAX_HELD = 1_000  # client messages kept while a kernel restarts
# Seconds a private request's late iopub messages are still held back after it was
# released (a kernel may publish after its idle status, or answer a call nobody awaits).
PRIVATE_LINGER = 600.0
CLOSE_SUPERSEDED = 1000  # a normal close: the client resumed the session elsewhere
_SOCKET_TYPES = {"shell": zmq.DEALER, "control": zmq.DEALER, "stdin": zmq.DEALER, "iopub": zmq.SUB}


class Connection(Protocol):
    """A client attached to a bridge (a websocket)."""

    session_id: str
    chunk: int  # stream messages larger than this are sent as pieces ``{msg_id}-{n}``

    def deliver(self, msg: Message) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


class KernelUnavailable(Exception):
    """The kernel did not answer kernel_info in time."""


class MsgIdInUse(Exception):
    """A client sent a msg_id that another client's (or the broker's) pending request uses.

    Replies are routed by their parent's msg_id, so accepting it would hand that
    request's reply and outputs to the sender.
    """


def _url(info: dict[str, Any], channel: str) -> str:
    port = info[f"{channel}_port"]
    if info.get("transport", "tcp") == "ipc":
        return f"ipc://{info['ip']}-{port}"
    return f"tcp://{info['ip']}:{port}"


def _authenticated_transport(info: dict[str, Any]) -> bool:
    """Whether only the kernel itself can write to the sockets we read.

    ipc sockets live in a directory only the broker's user can open, and CurveZMQ
    authenticates the peer; the kernel holds the HMAC key anyway. There, checking each
    message's HMAC (over every byte of output) buys nothing; over plain TCP it does.
    """
    return info.get("transport") == "ipc" or bool(info.get("curve_publickey"))


def _signer(info: dict[str, Any]) -> Signer:
    key = info.get("key", b"")
    return Signer(
        key.encode() if isinstance(key, str) else key,
        info.get("signature_scheme", "hmac-sha256"),
    )


class Bridge:
    """The ZMQ side of one kernel, shared by all of its clients."""

    def __init__(
        self,
        kernel_id: str,
        connection_info: dict[str, Any],
        context: zmq.asyncio.Context,
        metrics: Metrics,
        *,
        replay_bytes: int,
        replay_messages: int,
        max_buffered_sessions: int = 4,
    ) -> None:
        self.kernel_id = kernel_id
        self._use(connection_info)
        self.session = uuid.uuid4().hex
        self.metrics = metrics
        self.replay_bytes = replay_bytes
        self.replay_messages = replay_messages
        self.max_buffered_sessions = max_buffered_sessions
        self.execution_state = "starting"
        self.last_activity = time.time()
        self.kernel_info: dict[str, Any] = {}
        self.connections: set[Connection] = set()
        self._context = context
        self._sockets: dict[str, KernelSocket] = {}
        self._logs: dict[str, SessionLog] = {}  # least recently attached or left first
        self._routes: dict[str, Connection] = {}
        self._consumers: dict[str, Consumer] = {}
        self._private: set[str] = set()
        self._ready = asyncio.Event()
        self._iopub_seen = asyncio.Event()
        self._handshake: asyncio.Task[None] | None = None
        self._held: deque[Message] = deque()

    def _use(self, info: dict[str, Any]) -> None:
        self.info = info
        self.signer = _signer(info)
        self.verify = not _authenticated_transport(info)

    # --- sockets ---------------------------------------------------------------

    def open(self) -> None:
        """Connect the four sockets and start reading them."""
        identity = self.session.encode()
        for channel, kind in _SOCKET_TYPES.items():
            socket = KernelSocket(self._context, kind, partial(self._received, channel))
            sock = socket.sock
            sock.linger = 0
            # No limit on what waits to be read: past ZMQ's default of 1,000 messages a SUB
            # drops new ones silently, and a kernel printing in a loop outruns a broker that
            # fans out to many connections; a lost status 'idle' leaves a cell busy forever.
            sock.rcvhwm = 0
            # We connect before the kernel binds: retry every 10 ms, not ZMQ's 100 ms,
            # which a cold start would otherwise wait out on each socket.
            sock.reconnect_ivl = 10
            if kind == zmq.DEALER:
                # shell and stdin share an identity so the kernel can route input_request to us
                sock.identity = identity
            else:
                sock.subscribe(b"")
            self._apply_curve(sock)
            socket.connect(_url(self.info, channel))
            self._sockets[channel] = socket

    def _apply_curve(self, sock: zmq.Socket[Any]) -> None:
        """Connect as a CurveZMQ client when the kernel's connection info carries its keys."""
        public, secret = self.info.get("curve_publickey"), self.info.get("curve_secretkey")
        if public and secret:
            sock.curve_serverkey = public.encode() if isinstance(public, str) else public
            sock.curve_publickey = public.encode() if isinstance(public, str) else public
            sock.curve_secretkey = secret.encode() if isinstance(secret, str) else secret

    def _received(self, channel: str, frames: list[zmq.Frame]) -> None:
        try:
            self._from_kernel(channel, [keep(f) for f in frames])
        except Exception:  # one bad message must not stop the kernel's traffic
            log.exception("kernel %s: error handling a %s message", self.kernel_id, channel)

    def _close_sockets(self) -> None:
        if self._handshake:
            self._handshake.cancel()
        for socket in self._sockets.values():
            socket.close()
        self._sockets.clear()

    def reconnect(self, connection_info: dict[str, Any]) -> None:
        """Point the sockets at new connection info (a restarted pod has a new IP).

        Part of a restart, after :meth:`reset`: clients stay attached, and what they sent
        meanwhile is held for the new kernel.
        """
        self._close_sockets()
        self._use(connection_info)
        self.open()

    async def close(self, code: int = 1001, reason: str = "kernel shut down") -> None:
        """Close every connection and socket."""
        for conn in list(self.connections):
            conn.close(code, reason)
        self.connections.clear()
        self._close_sockets()
        self._logs.clear()
        self._held.clear()

    # --- readiness -------------------------------------------------------------

    @property
    def is_ready(self) -> bool:
        return self._ready.is_set()

    async def ready(self, timeout: float) -> None:
        """Return once the kernel answered kernel_info and iopub is proven subscribed."""
        if self._ready.is_set():
            return
        if self._handshake is None or self._handshake.done():
            self._handshake = asyncio.ensure_future(self._run_handshake())
        try:
            await asyncio.wait_for(asyncio.shield(self._ready.wait()), timeout)
        except TimeoutError:
            raise KernelUnavailable(
                f"Kernel {self.kernel_id} did not answer kernel_info within {timeout:.0f} s."
            ) from None

    async def _run_handshake(self) -> None:
        replied = asyncio.Event()

        def on_reply(msg: Message) -> None:
            if msg.channel != "iopub" and msg.msg_type == "kernel_info_reply":
                self.kernel_info = msg.content_dict()
                replied.set()

        wait = 0.05
        while not (replied.is_set() and self._iopub_seen.is_set()):
            replied.clear()
            ids = []
            for channel in ("shell", "control"):
                msg = make_message(channel, "kernel_info_request", {}, session=self.session)
                self._consumers[msg.msg_id] = on_reply
                ids.append(msg.msg_id)
                await self._sockets[channel].send_multipart(to_zmq(msg, self.signer))
            try:
                await asyncio.wait_for(replied.wait(), wait)
                # The kernel is up. Its first statuses may have gone out before our
                # subscription reached it (ZMQ's slow joiner): then ask again at once
                # rather than after the backoff.
                await asyncio.wait_for(self._iopub_seen.wait(), 0.05)
            except TimeoutError:
                if not replied.is_set():
                    wait = min(wait * 2, 1.0)
            finally:
                for msg_id in ids:
                    self._consumers.pop(msg_id, None)
        # No await between the last check of the queue and ready: nothing can slip past it.
        while self._held:
            msg = self._held.popleft()
            await self._sockets[msg.channel].send_multipart(to_zmq(msg, self.signer))
        self._ready.set()

    def reset(self) -> None:
        """The kernel restarts: forget its requests; hold what clients send until it answers.

        Internal consumers are told with a ``restarting`` status (their requests will never
        be answered); websocket clients are not, unless the restart was automatic.
        """
        self._ready.clear()
        self._iopub_seen.clear()
        self._routes.clear()
        self._held.clear()  # what was sent to the kernel that died is gone with it
        lost = make_message(
            "iopub", "status", {"execution_state": "restarting"}, session=self.session
        )
        for consumer in list(self._consumers.values()):
            consumer(lost)

    # --- kernel -> clients -----------------------------------------------------

    def _from_kernel(self, channel: str, frames: list[Part]) -> None:
        try:
            msg = from_zmq(channel, frames, self.signer, self.verify)
        except WireError as e:
            log.warning("kernel %s: dropped a %s message: %s", self.kernel_id, channel, e)
            return
        self.last_activity = time.time()
        self.metrics.count_message("from_kernel", channel, msg.size)
        if channel == "iopub":
            self._iopub_seen.set()
            if msg.is_type("status"):
                state = msg.content_dict().get("execution_state")
                if isinstance(state, str):
                    self.execution_state = state
            if self._consumers or self._private:
                parent_id = msg.parent_msg_id or ""
                consumer = self._consumers.get(parent_id)
                if consumer:
                    consumer(msg)
                if parent_id in self._private and not msg.is_type("status"):
                    return
            self._fan_out(msg)
            return
        parent_id = msg.parent_msg_id or ""
        consumer = self._consumers.get(parent_id)
        if consumer:
            consumer(msg)
            return
        is_reply = channel != "stdin" and msg.msg_type.endswith("_reply")
        conn = self._routes.pop(parent_id, None) if is_reply else self._routes.get(parent_id)
        if conn is not None:
            self._deliver_to_session(conn, msg)

    def _fan_out(self, msg: Message) -> None:
        for conn in self.connections:
            conn.deliver(msg)
        if self._logs:
            size = msg.size
            for session_log in self._logs.values():
                session_log.append(msg, size)

    def _deliver_to_session(self, conn: Connection, msg: Message) -> None:
        """To the asking connection (if it left, its session's other one) and the session's log."""
        session_log = self._logs.get(conn.session_id)
        if session_log is not None:
            session_log.append(msg, msg.size)
        if conn not in self.connections:
            conn = next((c for c in self.connections if c.session_id == conn.session_id), None)
            if conn is None:
                return
        conn.deliver(msg)

    def emit_status(self, state: str) -> None:
        """A synthetic iopub status (``restarting``, ``dead``) to every client and consumer."""
        self.execution_state = state
        msg = make_message("iopub", "status", {"execution_state": state}, session=self.session)
        for consumer in list(self._consumers.values()):
            consumer(msg)
        self._fan_out(msg)

    # --- clients -> kernel -----------------------------------------------------

    def attach(self, conn: Connection, resume_after: str | None = None) -> int:
        """Add a connection after replaying what its session did not receive; returns how many.

        Without ``resume_after``: what was delivered since the session's last connection
        left. With it (the last msg_id the client received): everything after that. Nothing
        here awaits, so no message from the kernel can fall between the replay and the
        live messages that follow it.
        """
        sid = conn.session_id
        session_log = self._logs.pop(sid, None)
        if session_log is None:
            session_log = SessionLog(self.replay_bytes, self.replay_messages)
        self._logs[sid] = session_log
        if resume_after is None:
            missed = session_log.since_detached(self.session)
        else:
            self._supersede(sid)
            missed = session_log.after(resume_after, self.session)
        session_log.chunk = conn.chunk
        for msg in missed:
            conn.deliver(msg)
        self.connections.add(conn)
        return len(missed)

    def _supersede(self, sid: str) -> None:
        """Close the session's other connections: a client resuming says they are gone (an
        abrupt drop may not have reached us yet), and the replies to their requests must
        come to the resumed connection, not to a dead socket."""
        for old in [c for c in self.connections if c.session_id == sid]:
            self.connections.discard(old)
            old.close(CLOSE_SUPERSEDED, "another connection resumed this session")

    def detach(self, conn: Connection) -> None:
        """Remove a connection; when it was its session's last one, mark where it left."""
        self.connections.discard(conn)
        sid = conn.session_id
        session_log = self._logs.get(sid)
        if session_log is None or any(c.session_id == sid for c in self.connections):
            return
        session_log.detached()
        self._logs[sid] = self._logs.pop(sid)
        connected = {c.session_id for c in self.connections}
        idle = [s for s in self._logs if s not in connected]
        for old in idle[: max(0, len(idle) - self.max_buffered_sessions)]:
            del self._logs[old]

    async def send(self, msg: Message, conn: Connection | None = None) -> None:
        """Sign and send a client's message; remember who asked so the reply finds them."""
        sock = self._sockets.get(msg.channel)
        if sock is None:
            raise WireError(f"unknown channel {msg.channel!r}")
        if conn is not None:
            self._check_msg_id(msg.msg_id, conn)
        if conn is not None and msg.msg_type.endswith("_request"):
            self._routes[msg.msg_id] = conn
            if len(self._routes) > _MAX_ROUTES:
                self._routes.pop(next(iter(self._routes)))
        self.last_activity = time.time()
        self.metrics.count_message("to_kernel", msg.channel, msg.size)
        if not self._ready.is_set():
            self._hold(msg)
            return
        await sock.send_multipart(to_zmq(msg, self.signer))

    def _hold(self, msg: Message) -> None:
        """Keep a message until the restarting kernel answers kernel_info.

        The sockets may still point at the kernel that died (a restart can move its
        addresses and key), where the message would be lost; the handshake sends it.
        """
        if len(self._held) >= _MAX_HELD:
            dropped = self._held.popleft()
            log.warning(
                "kernel %s: restarting; dropped a held %s message", self.kernel_id, dropped.msg_type
            )
        self._held.append(msg)

    def _check_msg_id(self, msg_id: str, conn: Connection) -> None:
        """Refuse a msg_id that routes another request's replies (seen on iopub by everyone)."""
        owner = self._routes.get(msg_id)
        if msg_id in self._consumers or (owner is not None and owner is not conn):
            raise MsgIdInUse(f"msg_id {msg_id!r} belongs to another client's pending request")

    async def request(self, msg: Message, consumer: Consumer, *, private: bool = False) -> None:
        """Send a request whose replies and iopub messages go to ``consumer``, not to clients.

        ``private``: clients see none of its iopub messages but its statuses (its outputs
        are the broker's: a file helper's answer, a kernel echoing the helper's code).
        """
        self._consumers[msg.msg_id] = consumer
        if private:
            self._private.add(msg.msg_id)
        await self.send(msg)

    async def send_private(self, msg: Message) -> None:
        """Send a private request whose answer nobody awaits."""
        self._private.add(msg.msg_id)
        self._forget_later(msg.msg_id)
        await self.send(msg)

    def release(self, msg_id: str) -> None:
        """Stop routing a request's messages to its consumer."""
        self._consumers.pop(msg_id, None)
        if msg_id in self._private:
            self._forget_later(msg_id)

    def _forget_later(self, msg_id: str) -> None:
        asyncio.get_running_loop().call_later(PRIVATE_LINGER, self._private.discard, msg_id)
