"""File operations on one kernel, each a private call into its file helper.

Transfers are chunked both ways: an upload sends ``chunk_bytes`` per call (how depends
on the kernel's helper: a raw buffer for Python, base64 in the code for the others), a
download reads ``chunk_bytes`` per call (base64 in the answer). Each chunk is one
request in the kernel's shell queue, so code submitted meanwhile by any client may run
between two chunks: an upload becomes visible only when it is complete (renamed over
its target), and a download fails with 409 when the file changes under it.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ..errors import BrokerError
from ..kernel_calls import evaluate, send_call
from ..registry.managed_kernel import ManagedKernel
from ..timestamps import format_time
from .languages import helper_for
from .limits import FileLimits
from .protocol import MIME, refusal


def model(doc: dict[str, Any]) -> dict[str, Any]:
    """A file or directory as the API shows it: ``mtime`` seconds become ``modified``."""
    out = {k: doc[k] for k in ("name", "path", "type", "size")}
    out["modified"] = format_time(doc["mtime"])
    return out


def listing(doc: dict[str, Any]) -> dict[str, Any]:
    """A described directory as the API shows it: its model and its entries' models."""
    entries = [model(e) for e in doc["entries"]]
    return {**model(doc), "entries": entries, "truncated": doc["truncated"]}


def _data(doc: dict[str, Any]) -> bytes:
    """The bytes of a helper's answer; 409 when it holds none."""
    try:
        return base64.b64decode(doc["data"], validate=True)
    except (KeyError, TypeError, ValueError) as e:
        raise BrokerError(
            409, f"The kernel's file helper answered without readable data ({e}); retry."
        ) from None


class KernelFiles:
    """The file API of one live kernel."""

    def __init__(self, kernel: ManagedKernel, limits: FileLimits) -> None:
        kernel.check_alive()
        self.kernel = kernel
        self.limits = limits
        self.helper = helper_for(kernel.bridge.kernel_info, kernel.name)
        # bytes per call: the operator's setting, or less where the kernel needs it
        self.chunk_bytes = min(
            limits.chunk_bytes, self.helper.max_chunk_bytes or limits.chunk_bytes
        )

    async def call(self, function: str, *args: Any, data: bytes | None = None) -> dict[str, Any]:
        """One call into the kernel; its refusals become the statuses it names."""
        doc = await evaluate(
            self.kernel.bridge,
            self.helper.call(function, args, data),
            mime=MIME,
            timeout=self.limits.timeout,
            what="handle the file request",
            timeout_setting="--FileLimits.timeout",
        )
        error = doc.get("error")
        if isinstance(error, dict):
            raise refusal(error)
        return doc

    async def send(self, function: str, *args: Any) -> None:
        """A call whose answer nobody waits for (see ``send_call``)."""
        await send_call(self.kernel.bridge, self.helper.call(function, args, None))

    async def describe(self, path: str) -> dict[str, Any]:
        """A directory's listing, or a file's description with its first chunk."""
        return await self.call("describe", path, self.limits.max_list_entries, self.chunk_bytes)

    async def chunks(self, path: str, described: dict[str, Any]) -> AsyncIterator[bytes]:
        """A described file's bytes, chunk by chunk, the first one from the description."""
        offset = 0
        data = _data(described)
        while True:
            if data:
                yield data
            offset += len(data)
            if offset >= described["size"] or not data:
                return
            reply = await self.call("read", path, offset, self.chunk_bytes, described["ident"])
            data = _data(reply)

    async def delete(self, path: str) -> None:
        await self.call("delete", path)

    def upload(self, path: str) -> Upload:
        return Upload(self, path)


class Upload:
    """One file being written: chunks buffered up to the kernel's chunk size, then committed."""

    def __init__(self, files: KernelFiles, path: str) -> None:
        self.files = files
        self.path = path
        self.size = 0  # bytes received
        self._buffer = bytearray()
        self._sent = 0
        self._transfer = uuid.uuid4().hex
        self._temp: str | None = None
        self._begun = False  # begin_upload was sent: the kernel may have a temporary file

    async def begin(self) -> None:
        """Create the temporary file (and check the path) in the kernel."""
        self._begun = True
        try:
            reply = await self.files.call("begin_upload", self.path, self._transfer)
        except BrokerError as e:
            if e.status_code == 504:  # it still runs when the kernel gets to it: undo it then
                await self.abort()
            self._begun = False  # otherwise the kernel refused, or lost it in a restart
            raise
        self._temp = reply["temp"]

    async def feed(self, data: bytes) -> None:
        """Take the next bytes of the file; full chunks go to the kernel."""
        self._buffer += data
        self.size += len(data)
        chunk = self.files.chunk_bytes
        while len(self._buffer) >= chunk:
            await self._send(bytes(self._buffer[:chunk]))
            del self._buffer[:chunk]

    async def _send(self, data: bytes) -> None:
        await self.files.call("write_chunk", self._temp, self._sent, data=data)
        self._sent += len(data)

    async def flush(self) -> None:
        """Send what is buffered; the file is complete in its temporary place."""
        if self._buffer:
            await self._send(bytes(self._buffer))
            self._buffer.clear()

    async def commit(self) -> dict[str, Any]:
        """Rename the complete file over its target; its model, and whether it is new."""
        await self.flush()
        reply = await self.files.call("commit_upload", self._temp, self.path)
        self._begun = False
        return {**model(reply), "created": reply["created"]}

    async def abort(self) -> None:
        """Have the kernel remove the temporary file once it is done with the calls before.

        Not awaited: calls that timed out still run in the kernel, and this one after them.
        """
        self._buffer.clear()
        if self._begun:
            self._begun = False
            await self.files.send("abort_upload", self.path, self._transfer)
