"""Files in a kernel's working directory, over the broker's REST file API.

``upload``/``download`` move bytes held in memory; ``upload_file``/``download_file``
stream a local file from or to disk, and ``upload_stream``/``download_to`` any source
or sink (a request body being received, a response being sent), so their size is
bounded by neither side's memory. Every failure is a BrokerAPIError with the broker's
status and message (a download the broker had to cut short is a 599).
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .rest import BrokerAPIError, BrokerREST, api_error

_PIECE = 1024 * 1024  # bytes read from disk at a time by upload_file
_NO_LIMIT = 2**40  # Tornado's client refuses bodies over 100 MB unless told otherwise

# Tornado's body_producer: called with an async ``write``, it writes the body piece by piece
Producer = Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[None]]


def files_path(kernel_id: str, path: str = "") -> str:
    """The API path of ``path`` (relative to the kernel's working directory)."""
    return f"/api/kernels/{quote(kernel_id, safe='')}/files/{quote(path)}"


def _client() -> AsyncHTTPClient:
    """A client of its own, without Tornado's 100 MB limit on bodies; close it after use."""
    return AsyncHTTPClient(force_instance=True, max_body_size=_NO_LIMIT)


async def upload(
    rest: BrokerREST, kernel_id: str, path: str, data: bytes, timeout: float | None = None
) -> dict[str, Any]:
    """Write ``data`` to ``path`` in the kernel; the file's model (``created`` if new)."""
    return await _put(rest, kernel_id, path, timeout, {"body": data})


async def upload_file(
    rest: BrokerREST,
    kernel_id: str,
    local: Path,
    path: str | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Stream a local file to ``path`` (its own name by default) in the kernel."""

    async def produce(write: Callable[[bytes], Awaitable[None]]) -> None:
        with open(local, "rb") as f:
            while piece := f.read(_PIECE):
                await write(piece)

    return await upload_stream(
        rest, kernel_id, path or local.name, produce, os.path.getsize(local), timeout
    )


async def upload_stream(
    rest: BrokerREST,
    kernel_id: str,
    path: str,
    produce: Producer,
    size: int,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Write the ``size`` bytes ``produce`` writes to ``path``, as they come; the model.

    The broker reads on only when the kernel has what it read, so a producer that
    awaits ``write`` goes at the pace of the whole path into the kernel.
    """
    body = {"body_producer": produce, "size": size}
    return await _put(rest, kernel_id, path, timeout, body)


async def _put(
    rest: BrokerREST, kernel_id: str, path: str, timeout: float | None, body: dict[str, Any]
) -> dict[str, Any]:
    """PUT a body (``body``, or ``body_producer`` with its ``size``) to the file API."""
    headers = {**rest.headers, "Content-Type": "application/octet-stream"}
    if "size" in body:  # a length, so that the broker can refuse a file too large at once
        headers["Content-Length"] = str(body.pop("size"))
    request = HTTPRequest(
        rest.base_url + files_path(kernel_id, path),
        method="PUT",
        headers=headers,
        request_timeout=timeout or rest.timeout,
        **body,
    )
    return await _json(rest, request)


async def upload_files(
    rest: BrokerREST,
    kernel_id: str,
    files: Mapping[str, bytes],
    directory: str = "",
    timeout: float | None = None,
) -> list[dict[str, Any]]:
    """Write several files (name to bytes) in one multipart request; their models.

    Either all of them are written or, when the request fails, none.
    """
    boundary = uuid.uuid4().hex
    body = bytearray()
    for name, data in files.items():
        body += _part_header(boundary, name) + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    request = HTTPRequest(
        rest.base_url + files_path(kernel_id, directory),
        method="POST",
        headers={**rest.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        body=bytes(body),
        request_timeout=timeout or rest.timeout,
    )
    return (await _json(rest, request))["files"]


def _part_header(boundary: str, name: str) -> bytes:
    if any(c in name for c in "\r\n\0"):
        raise ValueError(f"file name {name!r} holds a line break or NUL")
    quoted = name.replace('"', "%22")  # as browsers encode it (WHATWG form submission)
    return (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


async def download(
    rest: BrokerREST, kernel_id: str, path: str, timeout: float | None = None
) -> bytes:
    """The bytes of ``path`` in the kernel."""
    sink = io.BytesIO()
    await download_to(rest, kernel_id, path, sink, timeout)
    return sink.getvalue()


async def download_file(
    rest: BrokerREST, kernel_id: str, path: str, local: Path, timeout: float | None = None
) -> int:
    """Stream ``path`` in the kernel to the local file ``local``; the bytes written.

    When the download fails, ``local`` is removed rather than left half written.
    """
    try:
        with open(local, "wb") as f:
            return await download_to(rest, kernel_id, path, f, timeout)
    except BaseException:
        local.unlink(missing_ok=True)
        raise


async def download_to(
    rest: BrokerREST, kernel_id: str, path: str, sink: IO[bytes], timeout: float | None = None
) -> int:
    """Stream ``path`` in the kernel to ``sink`` (anything with ``write(bytes)``) as it
    arrives; the bytes written. Nothing is written when the broker refuses."""
    status: list[int] = []
    attachment: list[bool] = [False]  # a file comes as an attachment, a listing does not
    error = bytearray()  # an error answer's JSON, which never goes to the sink
    written = 0

    def header(line: str) -> None:
        if line.startswith("HTTP/"):
            status[:] = [int(line.split()[1])]
        elif line.lower().startswith("content-disposition:"):
            attachment[0] = True

    def body(piece: bytes) -> None:
        nonlocal written
        if status == [200] and attachment[0]:
            sink.write(piece)
            written += len(piece)
        else:
            error.extend(piece[: 65536 - len(error)])

    request = HTTPRequest(
        rest.base_url + files_path(kernel_id, path),
        headers=rest.headers,
        header_callback=header,
        streaming_callback=body,
        request_timeout=timeout or rest.timeout,
    )
    http = _client()
    try:
        await http.fetch(request)
    except HTTPClientError as e:
        raise api_error(e, bytes(error)) from None
    finally:
        http.close()
    if not attachment[0]:
        raise BrokerAPIError(409, "Conflict", f"{path!r} is a directory; use list_files")
    return written


async def list_files(rest: BrokerREST, kernel_id: str, path: str = "") -> dict[str, Any]:
    """A directory's model with its ``entries`` (``truncated`` when some were left out)."""
    request = HTTPRequest(
        rest.base_url + files_path(kernel_id, path),
        headers=rest.headers,
        request_timeout=rest.timeout,
    )
    response = await rest.fetch(request)
    if "Content-Disposition" in response.headers:
        raise BrokerAPIError(409, "Conflict", f"{path!r} is a file; use download")
    return json.loads(response.body)


async def delete_file(rest: BrokerREST, kernel_id: str, path: str) -> None:
    """Remove a file or an empty directory in the kernel."""
    await rest.call("DELETE", files_path(kernel_id, path))


async def _json(rest: BrokerREST, request: HTTPRequest) -> Any:
    http = _client()
    try:
        response = await rest.fetch(request, http)
    finally:
        http.close()
    return json.loads(response.body)
