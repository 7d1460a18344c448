"""The files of a chat session's kernel: upload into it, list them, download them.

``PUT /api/chat/{id}/files/{path}`` writes the raw body into the kernel's working
directory, ``GET /api/chat/{id}/files/`` lists it and ``GET /api/chat/{id}/files/{path}``
downloads a file. Nothing is held whole here: an upload's body goes on to the broker
piece by piece as it arrives, and this server reads the next piece only once the broker
took the last one, so a browser's upload progress is the pace of the whole path into the
kernel; a download is written to the client as the broker sends it. The transfers are
``llm_agent.files`` (the broker's file API); an upload is told to the model next turn.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath
from typing import Any

from tornado import web

from . import files
from .api import APIHandler, attachment, broker_call

MAX_UPLOAD_BYTES = 1 << 30  # as the broker's own default (--FileLimits.max_upload_bytes)


class FilesHandler(APIHandler):
    """GET /api/chat/{id}/files/: the kernel's working directory, ``{"entries": [...]}``."""

    async def get(self, session_id: str) -> None:
        kernel = self.session(session_id).agent.kernel
        with broker_call("list the files"):
            listing = await files.list_files(kernel)
        self.finish(listing)


class _BodyPipe:
    """A request body's pieces handed to the broker upload one at a time."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)

    async def produce(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        """The upload's body producer: write pieces until the end (None)."""
        while (piece := await self._queue.get()) is not None:
            await write(piece)

    async def feed(self, piece: bytes | None, upload: asyncio.Future[Any]) -> None:
        """Hand ``piece`` on once the upload took the previous one; an upload that ended
        (refused, failed) takes nothing more, and the rest of the body is dropped."""
        put = asyncio.ensure_future(self._queue.put(piece))
        await asyncio.wait([put, upload], return_when=asyncio.FIRST_COMPLETED)
        put.cancel()


@web.stream_request_body
class FileHandler(APIHandler):
    """PUT /api/chat/{id}/files/{path} uploads the body; GET downloads the file."""

    _upload: asyncio.Future[dict[str, Any]] | None = None
    _download: asyncio.Future[int] | None = None

    async def prepare(self) -> None:
        super().prepare()
        if self.request.method != "PUT":
            return
        session_id, path = self.path_args
        agent = self.session(session_id).agent
        size = self._declared_size()
        self.request.connection.set_max_body_size(size)
        self._pipe = _BodyPipe()
        self._upload = asyncio.ensure_future(agent.upload_stream(path, self._pipe.produce, size))
        # read its outcome even when the client left first
        self._upload.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _declared_size(self) -> int:
        length = self.request.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise web.HTTPError(411, "send the file's size as Content-Length")
        size = int(length)
        if size > self.max_upload_bytes:
            raise web.HTTPError(
                413,
                f"the file has {size} bytes, over this server's limit of "
                f"{self.max_upload_bytes} (llm-agent serve --max-upload-bytes)",
            )
        return size

    async def data_received(self, chunk: bytes) -> None:
        if self._upload is not None:
            await self._pipe.feed(chunk, self._upload)

    async def put(self, session_id: str, path: str) -> None:
        assert self._upload is not None
        await self._pipe.feed(None, self._upload)
        with broker_call(f"take {path}"):
            model = await self._upload
        self.set_status(201 if model.get("created") else 200)
        self.finish(model)

    async def get(self, session_id: str, path: str) -> None:
        kernel = self.session(session_id).agent.kernel
        sink = _ResponseSink(self, path)
        self._download = asyncio.ensure_future(files.download_to(kernel, path, sink))
        # (a failure once the file has started is too late for an error answer: Tornado
        # closes the connection instead, and the browser sees the download fail)
        with broker_call(f"send {path}"):
            await self._download
        sink.start()  # an empty file has its headers too
        self.finish()

    def on_connection_close(self) -> None:
        for transfer in (self._upload, self._download):
            if transfer is not None and not transfer.done():
                transfer.cancel()


class _ResponseSink:
    """A file download's body, written to the client piece by piece."""

    def __init__(self, handler: web.RequestHandler, path: str) -> None:
        self.handler = handler
        self.path = path
        self.started = False

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        name = PurePosixPath(self.path).name
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        self.handler.set_header("Content-Type", kind)
        self.handler.set_header("Content-Disposition", attachment(name))
        # what the code wrote is never run as a page of this origin, whatever it holds
        self.handler.set_header("Content-Security-Policy", "sandbox")
        self.handler.set_header("X-Content-Type-Options", "nosniff")

    def write(self, piece: bytes) -> None:
        self.start()
        self.handler.write(piece)
        # the broker's client delivers pieces through a plain callback: the flush is not
        # awaited, and a client that left is noticed by on_connection_close
        self.handler.flush().add_done_callback(lambda f: f.exception())


def routes(session: str, args: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    """The file endpoints under a session's URL pattern ``session``."""
    return [
        (session + r"/files/?", FilesHandler, args),
        (session + r"/files/(.+)", FileHandler, args),
    ]
