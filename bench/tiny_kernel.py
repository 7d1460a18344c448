"""A small real kernel for pod-scale benchmarks: the Jupyter protocol over ZMQ, no IPython.

An idle ipykernel costs about 50 MB, so a thousand of them do not fit this machine beside
everything else. This kernel speaks what a broker uses to start, attach, watch and stop
a kernel, on real ZMQ sockets with HMAC-signed messages and CurveZMQ when the connection
file carries keys: heartbeat echo; ``kernel_info``, ``execute`` (the code is not run: the
reply counts executions), ``interrupt`` and ``shutdown`` requests on shell and control,
each wrapped in ``status`` busy/idle on iopub. It reads its connection file from
``$KERNEL_CONNECTION_FILE`` and binds on ``$POD_IP``, as the kernel image's entrypoint
does. Run as ``python tiny_kernel.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import zmq

DELIM = b"<IDS|MSG>"
KERNEL_INFO = {
    "status": "ok",
    "protocol_version": "5.4",
    "implementation": "tiny_kernel",
    "implementation_version": "1.0",
    "language_info": {
        "name": "python",
        "version": sys.version.split()[0],
        "mimetype": "text/x-python",
        "file_extension": ".py",
    },
    "banner": "tiny_kernel: the protocol, no interpreter",
    "help_links": [],
}


class Kernel:
    """The sockets and the signing key of one kernel."""

    def __init__(self, info: dict[str, Any], ip: str) -> None:
        self.key = info["key"].encode()
        self.session = uuid.uuid4().hex
        self.count = 0
        self.ctx = zmq.Context()
        kinds = {
            "shell": zmq.ROUTER,
            "control": zmq.ROUTER,
            "stdin": zmq.ROUTER,
            "iopub": zmq.PUB,
            "hb": zmq.REP,
        }
        self.sockets = {}
        for name, kind in kinds.items():
            sock = self.ctx.socket(kind)
            if info.get("curve_secretkey"):
                sock.curve_secretkey = info["curve_secretkey"].encode()
                sock.curve_publickey = info["curve_publickey"].encode()
                sock.curve_server = True
            sock.bind(f"tcp://{ip}:{info[f'{name}_port']}")
            self.sockets[name] = sock

    def sign(self, parts: list[bytes]) -> bytes:
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(part)
        return mac.hexdigest().encode()

    def send(
        self, channel: str, idents: list[bytes], msg_type: str, content: dict, parent: dict
    ) -> None:
        header = {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "session": self.session,
            "username": "kernel",
            "date": datetime.now(UTC).isoformat(),
            "version": "5.4",
        }
        parts = [json.dumps(p).encode() for p in (header, parent, {}, content)]
        self.sockets[channel].send_multipart([*idents, DELIM, self.sign(parts), *parts])

    def handle(self, channel: str, frames: list[bytes]) -> bool:
        """Answer one request; False once asked to shut down."""
        at = frames.index(DELIM)
        idents, signature, parts = frames[:at], frames[at + 1], frames[at + 2 : at + 6]
        if not hmac.compare_digest(signature, self.sign(parts)):
            return True  # not from whoever holds the key
        header = json.loads(parts[0])
        msg_type = header["msg_type"]
        self.send("iopub", [], "status", {"execution_state": "busy"}, header)
        reply: dict[str, Any] = {"status": "ok"}
        if msg_type == "kernel_info_request":
            reply = KERNEL_INFO
        elif msg_type == "execute_request":
            self.count += 1
            reply = {
                "status": "ok",
                "execution_count": self.count,
                "user_expressions": {},
                "payload": [],
            }
        elif msg_type == "shutdown_request":
            reply = {"status": "ok", "restart": json.loads(parts[3]).get("restart", False)}
        reply_type = msg_type.replace("_request", "_reply")
        self.send(channel, idents, reply_type, reply, header)
        self.send("iopub", [], "status", {"execution_state": "idle"}, header)
        return msg_type != "shutdown_request"

    def run(self) -> None:
        poller = zmq.Poller()
        for name in ("shell", "control", "hb"):
            poller.register(self.sockets[name], zmq.POLLIN)
        while True:
            for sock, _ in poller.poll():
                if sock is self.sockets["hb"]:
                    sock.send(sock.recv())
                    continue
                channel = "shell" if sock is self.sockets["shell"] else "control"
                if not self.handle(channel, sock.recv_multipart()):
                    return


def main() -> None:
    with open(os.environ["KERNEL_CONNECTION_FILE"]) as f:
        info = json.load(f)
    Kernel(info, os.environ.get("POD_IP") or "127.0.0.1").run()


if __name__ == "__main__":
    main()
