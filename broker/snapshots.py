"""Kernel state snapshots: a kernel's picklable variables saved to a file, restored later.

Everything travels through the kernel protocol, so pod kernels need no shared volume:
the broker sends a silent execute_request whose one user expression runs the code of
broker/snapshot_kernel.py; the kernel pickles its variables (cloudpickle) and hands
the compressed bytes back base64-encoded in the execute_reply. A restore sends the
bytes as the request's buffer. Replies travel on the shell channel to the broker
alone: unlike iopub output, they neither reach other clients nor fill replay buffers.

Files live in ``<dir>/<id>.bin`` (the compressed pickles) beside ``<id>.json`` (who
owns it, what was saved and skipped), both mode 0600.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from traitlets import Float, Int, Unicode, default
from traitlets.config import LoggingConfigurable

from . import snapshot_kernel
from .auth import User
from .bridge import Bridge
from .errors import BrokerError, not_found
from .registry import ManagedKernel
from .timestamps import format_time
from .wire import Message, make_message

_KERNEL_SOURCE = Path(snapshot_kernel.__file__).read_text()
_ID = re.compile(r"^[0-9a-f]{32}$")


def kernel_expression(call: str) -> str:
    """An expression that loads the kernel-side module into a private namespace and calls
    ``call`` there, leaving the user's namespace untouched."""
    return f"(lambda ns: (exec({_KERNEL_SOURCE!r}, ns), eval({call!r}, ns))[1])({{}})"


async def evaluate(
    bridge: Bridge, expression: str, timeout: float, buffers: list[bytes] | None = None
) -> dict[str, Any]:
    """The JSON document a kernel-side ``Result`` expression evaluates to.

    Silent and kept out of the history; the kernel runs it after the code it is busy with.
    """
    reply: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    def consume(msg: Message) -> None:
        if reply.done():
            return
        if msg.channel == "iopub":
            state = msg.content_dict().get("execution_state") if msg.msg_type == "status" else None
            if state in ("restarting", "dead"):
                reply.set_exception(BrokerError(409, "The kernel restarted or died; try again."))
        elif msg.msg_type == "execute_reply":
            reply.set_result(msg)

    content = {
        "code": "",
        "silent": True,
        "store_history": False,
        "user_expressions": {"result": expression},
        "allow_stdin": False,
        "stop_on_error": False,
    }
    request = make_message(
        "shell", "execute_request", content, session=bridge.session, buffers=buffers
    )
    await bridge.request(request, consume)
    try:
        msg = await asyncio.wait_for(reply, timeout)
    except TimeoutError:
        raise BrokerError(
            504, f"The kernel did not answer within {timeout:g} s; it may be busy running code."
        ) from None
    finally:
        bridge.release(request.msg_id)
    # A snapshot reply is tens of megabytes of JSON: parse it off the event loop.
    return _result(await asyncio.to_thread(msg.content_dict))


def _result(reply: dict[str, Any]) -> dict[str, Any]:
    result = (reply.get("user_expressions") or {}).get("result") or {}
    if reply.get("status") != "ok" or result.get("status") != "ok":
        failure = result if result.get("ename") else reply
        raise BrokerError(
            409,
            f"The kernel could not take or restore the snapshot: "
            f"{failure.get('ename', reply.get('status'))}: {failure.get('evalue', '')}",
        )
    doc = result.get("data", {}).get(snapshot_kernel.MIME)
    if not isinstance(doc, dict):
        raise BrokerError(409, "The kernel answered without a snapshot result.")
    return doc


class SnapshotStore(LoggingConfigurable):
    """Snapshot files in one directory, and the operations that fill and use them."""

    directory = Unicode(
        config=True,
        help="Directory of kernel state snapshots (env BROKER_SNAPSHOT_DIR); by default "
        "<state dir>/snapshots, and snapshots are off when neither is set. A Kubernetes "
        "volume mounted here keeps them across broker pods.",
    )
    max_bytes = Int(
        64 * 1024 * 1024, config=True, help="Largest snapshot (compressed); 413 beyond."
    )
    timeout = Float(
        300.0, config=True, help="Seconds a kernel has to take or restore a snapshot (504 after)."
    )

    def __init__(self, state_dir: str, **kwargs: Any) -> None:
        self._state_dir = state_dir
        super().__init__(**kwargs)

    @default("directory")
    def _default_directory(self) -> str:
        fallback = os.path.join(self._state_dir, "snapshots") if self._state_dir else ""
        return os.environ.get("BROKER_SNAPSHOT_DIR", fallback)

    # --- files -----------------------------------------------------------------

    def _dir(self) -> Path:
        if not self.directory:
            raise BrokerError(
                409,
                "Snapshots are off: start the broker with --state-dir or --snapshot-dir "
                "(BROKER_STATE_DIR, BROKER_SNAPSHOT_DIR).",
            )
        path = Path(self.directory)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _write(self, path: Path, data: bytes) -> None:
        """Atomically, readable by the broker's user only: pickles hold the user's data."""
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def get(self, snapshot_id: str, user: User) -> dict[str, Any]:
        """A snapshot's description, or 404 when it is missing or someone else's."""
        path = self._dir() / f"{snapshot_id}.json"
        if not _ID.match(snapshot_id) or not path.exists():  # the id never reaches the path
            raise not_found("snapshot", snapshot_id)
        meta = json.loads(path.read_text())
        if not user.owns(meta["owner"]):
            raise not_found("snapshot", snapshot_id)
        return meta

    def list(self, user: User) -> list[dict[str, Any]]:
        metas = (json.loads(p.read_text()) for p in self._dir().glob("*.json"))
        return sorted((m for m in metas if user.owns(m["owner"])), key=lambda m: m["created"])

    def delete(self, snapshot_id: str, user: User) -> None:
        self.get(snapshot_id, user)
        directory = self._dir()
        (directory / f"{snapshot_id}.json").unlink(missing_ok=True)
        (directory / f"{snapshot_id}.bin").unlink(missing_ok=True)

    # --- kernels ---------------------------------------------------------------

    async def take(self, kernel: ManagedKernel) -> dict[str, Any]:
        """Snapshot a kernel's variables into a new file; its description."""
        directory = self._dir()
        _check_alive(kernel)
        expression = kernel_expression(f"snapshot({self.max_bytes})")
        doc = await evaluate(kernel.bridge, expression, self.timeout)
        if "payload" not in doc:
            largest = ", ".join(f"{n} ({s} bytes pickled)" for n, s in doc["largest"].items())
            raise BrokerError(
                413,
                f"The snapshot takes {doc['size']} bytes, over the limit of {self.max_bytes} "
                "(--SnapshotStore.max_bytes); "
                f"the largest variables are {largest}. Delete some and try again.",
            )
        meta = {
            "id": uuid.uuid4().hex,
            "kernel_id": kernel.id,
            "owner": kernel.owner,
            "created": format_time(time.time()),
            **{key: doc[key] for key in ("size", "compression", "python", "saved", "skipped")},
        }
        await asyncio.to_thread(self._store, directory, meta, doc["payload"])
        self.log.info(
            "snapshot saved id=%s kernel=%s size=%d names=%d skipped=%d",
            meta["id"],
            kernel.id,
            meta["size"],
            len(meta["saved"]),
            len(meta["skipped"]),
        )
        return meta

    def _store(self, directory: Path, meta: dict[str, Any], payload: str) -> None:
        data = base64.b64decode(payload)
        if len(data) > self.max_bytes:  # the kernel is the user's: do not trust its check
            raise BrokerError(
                413,
                f"The snapshot is over the limit of {self.max_bytes} bytes "
                "(--SnapshotStore.max_bytes).",
            )
        self._write(directory / f"{meta['id']}.bin", data)
        self._write(directory / f"{meta['id']}.json", json.dumps(meta).encode())

    async def restore(self, snapshot_id: str, kernel: ManagedKernel, user: User) -> dict[str, Any]:
        """Load a snapshot into a kernel; which variables came back and which failed."""
        meta = self.get(snapshot_id, user)
        _check_alive(kernel)
        path = self._dir() / f"{snapshot_id}.bin"
        data = await asyncio.to_thread(path.read_bytes)
        expression = kernel_expression(f"restore({meta['compression']!r})")
        doc = await evaluate(kernel.bridge, expression, self.timeout, [data])
        self.log.info(
            "snapshot restored id=%s kernel=%s restored=%d failed=%d",
            snapshot_id,
            kernel.id,
            len(doc["restored"]),
            len(doc["failed"]),
        )
        return {"snapshot": snapshot_id, "kernel_id": kernel.id, **doc}


def _check_alive(kernel: ManagedKernel) -> None:
    """A live Python kernel, else 409: the snapshot code runs in IPython (cloudpickle)."""
    if kernel.dead:
        raise BrokerError(409, f"Kernel {kernel.id} is dead; restart or shut it down.")
    language = kernel.bridge.kernel_info.get("language_info", {}).get("name", "")
    if language.lower() != "python":
        raise BrokerError(
            409,
            f"Snapshots need a Python kernel (ipykernel); kernel {kernel.id} runs "
            f"{language or 'an unknown language'}. Save its state with the language's own "
            "tools (for example saveRDS in R) instead.",
        )
