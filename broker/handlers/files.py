"""/api/kernels/{id}/files/...: upload, download, list and delete files in a kernel.

Uploads stream: the body is read piece by piece and each piece goes on to the kernel
before the next is read (``data_received`` is awaited), so the broker holds about one
chunk per upload whatever the file's size. A request refused before or while its body
arrives (bad token, unknown kernel, bad path, the kernel failing) reads the rest of
the body without keeping it and answers at the end, so the client sees the answer
instead of a reset connection; only a body over the limit is cut short with 413.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from typing import Any
from urllib.parse import quote

from tornado.iostream import StreamClosedError

from ..errors import BrokerError
from ..files.multipart import MultipartUpload
from ..files.paths import request_path
from ..files.transfer import KernelFiles, Upload, listing
from .base import CHUNKED_CAP, BaseHandler, allowed_methods, log_error

log = logging.getLogger("broker.files")
_background: set[asyncio.Task[None]] = set()  # aborts scheduled when a client leaves
_UPLOADS = ("PUT", "POST")


def upload_too_large(limit: int) -> BrokerError:
    return BrokerError(
        413,
        f"Upload over the limit of {limit} bytes; send a smaller file, or have the operator "
        "raise --FileLimits.max_upload_bytes.",
    )


def content_disposition(name: str) -> str:
    """An attachment header that names the file in ASCII and, exactly, in UTF-8."""
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


class FilesHandler(BaseHandler):
    """The working directory itself: GET lists it, POST uploads files into it (multipart)."""

    def initialize(self) -> None:
        super().initialize()
        self._sink: Upload | MultipartUpload | None = None
        self._refusal: BrokerError | None = None
        self._client_left = False

    # --- uploads: the body streams into the kernel ----------------------------

    async def prepare(self) -> None:
        if self.request.method not in _UPLOADS or not self._implements(self.request.method):
            super().prepare()
            return
        limit = self.broker.file_limits.max_upload_bytes
        length = self.request.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > limit:
            raise upload_too_large(limit)
        self.request.connection.set_max_body_size(limit + 1 if length else CHUNKED_CAP)
        try:
            self._sink = await self._open_sink()
        except BrokerError as e:
            self._refusal = e
        if self._client_left:  # it left while the upload began: nothing will follow
            self.on_connection_close()

    async def _open_sink(self) -> Upload | MultipartUpload:
        self.user = self.authenticate()
        files = await self._files(self.path_kwargs["kernel_id"])
        path = request_path(self.path_kwargs.get("path") or "")
        if self.request.method == "PUT":
            upload = files.upload(path)
            await upload.begin()
            return upload
        content_type = self.request.headers.get("Content-Type", "")
        limit = self.broker.file_limits.max_files_per_request
        return MultipartUpload(files, path, content_type, limit)

    @classmethod
    def _implements(cls, method: str) -> bool:
        return method in allowed_methods(cls).split(", ")

    async def data_received(self, chunk: bytes) -> None:
        if self.request.method not in _UPLOADS or not self._implements(self.request.method):
            super().data_received(chunk)
            return
        if self._finished:  # 413 already sent
            return
        self._received += len(chunk)
        limit = self.broker.file_limits.max_upload_bytes
        if self._received > limit:
            error = upload_too_large(limit)
            await self._refuse(error)
            log_error(self.request, error)
            self.send_error(413, exc_info=(BrokerError, error, None))
            return
        if self._sink is None:
            return  # refused: the rest of the body is read and dropped
        try:
            await self._sink.feed(chunk)
        except BrokerError as e:
            await self._refuse(e)

    async def _refuse(self, error: BrokerError) -> None:
        """Stop the upload: the request will be answered with ``error``."""
        self._refusal = self._refusal or error
        sink, self._sink = self._sink, None
        if sink is not None:
            await _abort(sink, self.request.path)

    async def _committed(self) -> Any:
        if self._refusal is not None:
            raise self._refusal
        sink, self._sink = self._sink, None
        try:
            return await sink.commit()
        except BrokerError:
            await _abort(sink, self.request.path)
            raise

    async def post(self, kernel_id: str, path: str = "") -> None:
        docs = await self._committed()
        log.info("files written kernel=%s count=%d", kernel_id, len(docs))
        self.write_json({"files": docs}, status=201)

    def on_connection_close(self) -> None:
        """A client that leaves mid-upload leaves no temporary file behind."""
        self._client_left = True
        sink, self._sink = self._sink, None
        if sink is not None:
            task = asyncio.ensure_future(_abort(sink, self.request.path))
            _background.add(task)
            task.add_done_callback(_background.discard)

    # --- downloads, listings, deletes -----------------------------------------

    async def _files(self, kernel_id: str) -> KernelFiles:
        kernel = await self.broker.registry.find(kernel_id, self.user)
        return KernelFiles(kernel, self.broker.file_limits)

    async def get(self, kernel_id: str, path: str = "") -> None:
        files = await self._files(kernel_id)
        rel = request_path(path)
        doc = await files.describe(rel)
        if doc["type"] == "directory":
            self.write_json(listing(doc))
            return
        name = doc["name"]
        self.set_header("Content-Type", mimetypes.guess_type(name)[0] or "application/octet-stream")
        self.set_header("Content-Length", str(doc["size"]))
        self.set_header("Content-Disposition", content_disposition(name))
        # the broker's origin must not run what a kernel wrote (HTML, SVG with scripts)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "sandbox")
        try:
            async for data in files.chunks(rel, doc):
                self.write(data)
                await self.flush()
        except StreamClosedError:
            return  # the client left
        except BrokerError as e:  # the headers are out: all we can do is cut the body short
            log.warning("download cut short kernel=%s path=%s: %s", kernel_id, rel, e.message)
            self.detach().close()
            return
        log.info("file read kernel=%s path=%s bytes=%d", kernel_id, rel, doc["size"])
        self.finish()


class FileHandler(FilesHandler):
    """A path inside the working directory: GET downloads a file or lists a directory,
    PUT writes one file from the raw body, POST uploads into a directory, DELETE."""

    async def put(self, kernel_id: str, path: str = "") -> None:
        doc = await self._committed()
        log.info("file written kernel=%s path=%s bytes=%d", kernel_id, doc["path"], doc["size"])
        self.set_header("Location", f"/api/kernels/{quote(kernel_id)}/files/{quote(doc['path'])}")
        self.write_json(doc, status=201 if doc["created"] else 200)

    async def delete(self, kernel_id: str, path: str = "") -> None:
        files = await self._files(kernel_id)
        rel = request_path(path)
        await files.delete(rel)
        log.info("file deleted kernel=%s path=%s", kernel_id, rel)
        self.set_status(204)
        self.finish()


async def _abort(sink: Upload | MultipartUpload, where: str) -> None:
    """Have the kernel remove an unfinished upload's temporary files (best effort)."""
    try:
        await sink.abort()
    except Exception as e:  # the kernel went away meanwhile: nothing of it to clean
        log.warning("upload abandoned %s: its temporary file may remain: %s", where, e)
