"""One ZMQ socket of a kernel, driven by the event loop's readiness callbacks.

pyzmq's asyncio sockets make a Future, a poller registration and a dozen enum conversions
for every message received: a third of the broker's CPU per bridged message in a profile
of back-to-back executes. Here the socket's file descriptor wakes one callback that
receives every message waiting, and a send goes out at once unless the socket is full,
when it waits its turn. ZMQ's descriptor signals edges, not levels: after every receive
and send the socket's EVENTS are read again, as libzmq's documentation requires.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

Receive = Callable[[list[zmq.Frame]], None]
_BATCH = 64  # messages received per wake-up before other callbacks get their turn
# Plain ints: pyzmq's enum flags cost an enum construction per test (a third of the calls
# in this module's profile).
_EVENTS, _POLLIN, _POLLOUT, _NOBLOCK = (
    int(zmq.EVENTS),
    int(zmq.POLLIN),
    int(zmq.POLLOUT),
    int(zmq.NOBLOCK),
)


class KernelSocket:
    """A plain (non-asyncio) ZMQ socket whose messages are handed to ``on_message``, which
    must not raise: an exception would stop the draining until the next message."""

    def __init__(self, context: zmq.Context[Any], kind: int, on_message: Receive) -> None:
        self.sock: zmq.Socket[Any] = zmq.Socket(context, kind)
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._waiting: deque[tuple[list[Any], asyncio.Future[None]]] = deque()
        self._scheduled = False
        self._fd = self.sock.FD
        self._loop.add_reader(self._fd, self._check)

    def connect(self, url: str) -> None:
        self.sock.connect(url)
        self._recheck()

    async def send_multipart(self, frames: list[Any]) -> None:
        """Queue ``frames`` as one message; returns once libzmq took it (at once, unless the
        socket is at its high-water mark; messages keep their order either way)."""
        if not self._waiting:
            try:
                self.sock.send_multipart(frames, _NOBLOCK)
            except zmq.Again:
                pass
            else:
                self._recheck()
                return
        sent = self._loop.create_future()
        self._waiting.append((frames, sent))
        self._recheck()
        await sent

    def close(self) -> None:
        if self.sock.closed:
            return
        self._loop.remove_reader(self._fd)
        for _, sent in self._waiting:
            sent.cancel()
        self._waiting.clear()
        self.sock.close(linger=0)

    def _recheck(self) -> None:
        """Read EVENTS again soon: a send or receive may have consumed the edge that would
        have told us about a message waiting."""
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._check)

    def _check(self) -> None:
        self._scheduled = False
        for _ in range(_BATCH):
            if self.sock.closed:
                return
            events = self.sock.get(_EVENTS)
            if self._waiting and events & _POLLOUT:
                self._send_waiting()
            if not events & _POLLIN:
                return
            # Frames, not bytes: a large part (50 MB of output) stays where ZMQ received it
            # instead of being copied (~100 ms); small ones cost ~1.5 us more each this way.
            self._on_message(self.sock.recv_multipart(_NOBLOCK, copy=False))
        self._recheck()  # more are waiting: let other callbacks run first

    def _send_waiting(self) -> None:
        while self._waiting:
            frames, sent = self._waiting[0]
            if sent.cancelled():
                self._waiting.popleft()
                continue
            try:
                self.sock.send_multipart(frames, _NOBLOCK)
            except zmq.Again:
                return
            self._waiting.popleft()
            sent.set_result(None)
