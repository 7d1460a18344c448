"""The MCP file tools: upload_file and download_file, over the broker's file API.

They use the same kernel-side helper as ``/api/kernels/{id}/files/...`` (through the
kernel protocol, so local and pod kernels alike, paths kept inside the working
directory). An MCP message carries a file whole, so these suit data files and results
of moderate size; big files go over the REST API, which streams.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import mimetypes
from typing import Literal
from urllib.parse import quote

from mcp_types import (
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    TextContent,
    TextResourceContents,
)
from pydantic import Field

from ..client.results import IMAGE_TYPES
from ..errors import BrokerError
from ..files.paths import request_path
from ..files.transfer import KernelFiles, listing, model
from .tools import Call, KernelArgs, json_result


class UploadArgs(KernelArgs):
    path: str = Field(
        description="Where to write, relative to the kernel's working directory "
        "(e.g. 'data.csv' or 'input/data.csv'); an existing file is replaced."
    )
    content: str = Field(description="The file's content: text, or base64 (see encoding).")
    encoding: Literal["text", "base64"] = Field(
        "text", description="'text' writes content as UTF-8; 'base64' decodes it first (binary)."
    )


class DownloadArgs(KernelArgs):
    path: str = Field(
        "",
        description="A file or directory relative to the kernel's working directory; "
        "'' lists the working directory itself.",
    )


def _decoded(args: UploadArgs) -> bytes:
    if args.encoding == "text":
        return args.content.encode()
    try:
        return base64.b64decode(args.content, validate=True)
    except (binascii.Error, ValueError):
        raise BrokerError(
            400, "content is not valid base64; send it so, or use encoding 'text'."
        ) from None


async def upload_file(call: Call, args: UploadArgs) -> CallToolResult:
    kernel = await call.kernel(args.kernel_id)
    path = request_path(args.path)
    if not path:
        raise BrokerError(400, "path names no file; give a file name such as 'data.csv'.")
    data = _decoded(args)
    limit = call.broker.file_limits.max_upload_bytes
    if len(data) > limit:
        raise BrokerError(413, f"The file is over the upload limit of {limit} bytes.")
    upload = KernelFiles(kernel, call.broker.file_limits).upload(path)
    await upload.begin()
    try:
        await upload.feed(data)
        doc = await upload.commit()
    except BaseException:
        with contextlib.suppress(BrokerError):
            await upload.abort()
        raise
    return json_result(doc)


async def download_file(call: Call, args: DownloadArgs) -> CallToolResult:
    kernel = await call.kernel(args.kernel_id)
    path = request_path(args.path)
    files = KernelFiles(kernel, call.broker.file_limits)
    doc = await files.describe(path)
    if doc["type"] == "directory":
        return json_result(listing(doc))
    limit = call.broker.mcp_limits.download_bytes
    if doc["size"] > limit:
        raise BrokerError(
            413,
            f"{path} is {doc['size']} bytes, over the MCP download limit of {limit} "
            f"(--McpLimits.download_bytes); fetch it with GET /api/kernels/{kernel.id}/files/"
            f"{quote(path)}, or read part of it with execute.",
        )
    data = b"".join([chunk async for chunk in files.chunks(path, doc)])
    return CallToolResult(
        content=[
            TextContent(type="text", text=json.dumps(model(doc))),
            _content(f"kernel://{kernel.id}/{quote(path)}", data),
        ],
        structured_content=model(doc),
    )


def _content(uri: str, data: bytes) -> ImageContent | EmbeddedResource:
    """Images as image content; other files as an embedded resource, text when UTF-8."""
    mime = mimetypes.guess_type(uri)[0] or "application/octet-stream"
    b64 = base64.b64encode(data).decode()
    if mime in IMAGE_TYPES:
        return ImageContent(type="image", data=b64, mime_type=mime)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        contents = BlobResourceContents(uri=uri, blob=b64, mime_type=mime)
    else:
        text_mime = mime if mime.startswith("text/") or "json" in mime else "text/plain"
        contents = TextResourceContents(uri=uri, text=text, mime_type=text_mime)
    return EmbeddedResource(type="resource", resource=contents)
