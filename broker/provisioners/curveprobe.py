"""Whether a kernel speaks CurveZMQ: one ZMTP handshake, watched on a socket monitor.

A kernel that does not know the ``curve_*`` keys of its connection file (ipykernel < 7,
IRkernel, most other kernels) binds plain ZMQ sockets; a Curve client's handshake with
them fails at once with a mechanism mismatch, which without this check would surface
only as a start that times out waiting for ``kernel_info``.
"""

from __future__ import annotations

import asyncio

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
)


async def speaks_curve(url: str, server_key: str, timeout: float = 10.0) -> bool | None:
    """True when a Curve handshake with the ZMQ socket at ``url`` succeeds, False when the
    peer refuses it, None when neither happened within ``timeout`` seconds."""
    sock = zmq.asyncio.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.curve_serverkey = server_key.encode()
    sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | sum(_FAILED))
    sock.connect(url)
    try:
        async with asyncio.timeout(timeout):
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())["event"]
                if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    return True
                if event in _FAILED:
                    return False
    except TimeoutError:
        return None
    finally:
        sock.disable_monitor()
        monitor.close(0)
        sock.close(0)
