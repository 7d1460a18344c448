"""A multipart/form-data body streamed into uploads, one per file part.

python-multipart parses the body as it arrives (callbacks, no buffering of parts); its
events are played against the kernel after each piece, so the broker holds one piece
of the body plus one chunk per file. Every file is written to its temporary place
first; only a complete body commits them, in order, so a failed request leaves
nothing behind but the files committed before the failure (none, unless a commit
itself fails).
"""

from __future__ import annotations

from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ..errors import BrokerError
from .paths import request_path
from .transfer import KernelFiles, Upload


class MultipartUpload:
    """The files of one multipart/form-data request body, written into ``directory``."""

    def __init__(
        self, files: KernelFiles, directory: str, content_type: str, max_files: int
    ) -> None:
        kind, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise BrokerError(
                400,
                "Send the files as multipart/form-data with a boundary (curl -F "
                "file=@data.csv), or PUT one file's bytes to .../files/NAME.",
            )
        self.files = files
        self.directory = directory
        self.max_files = max_files
        self.uploads: list[Upload] = []
        self._events: list[tuple[str, Any]] = []
        self._header: list[bytes] = [b"", b""]
        self._headers: dict[bytes, bytes] = {}
        self._ended = False
        try:
            self._parser = MultipartParser(boundary, callbacks=self._callbacks())
        except ValueError as e:  # python-multipart refuses an over-long boundary
            raise BrokerError(400, f"Bad multipart boundary: {e}") from None

    def _callbacks(self) -> Any:
        def header_field(data: bytes, start: int, end: int) -> None:
            self._header[0] += data[start:end]

        def header_value(data: bytes, start: int, end: int) -> None:
            self._header[1] += data[start:end]

        def header_end() -> None:
            self._headers[self._header[0].strip().lower()] = self._header[1].strip()
            self._header = [b"", b""]

        def headers_finished() -> None:
            self._events.append(("part", self._headers))
            self._headers = {}

        def part_data(data: bytes, start: int, end: int) -> None:
            self._events.append(("data", data[start:end]))

        def end() -> None:
            self._ended = True

        return {
            "on_header_field": header_field,
            "on_header_value": header_value,
            "on_header_end": header_end,
            "on_headers_finished": headers_finished,
            "on_part_data": part_data,
            "on_end": end,
        }

    async def feed(self, piece: bytes) -> None:
        """Parse a piece of the body and write what it holds to the kernel."""
        try:
            self._parser.write(piece)
        except MultipartParseError as e:
            raise BrokerError(400, f"Malformed multipart body: {e}") from None
        events, self._events = self._events, []
        for kind, value in events:
            if kind == "part":
                await self._begin(value)
            else:
                await self.uploads[-1].feed(value)

    async def _begin(self, headers: dict[bytes, bytes]) -> None:
        _, params = parse_options_header(headers.get(b"content-disposition", b""))
        name = params.get(b"filename")
        if not name:
            field = params.get(b"name", b"").decode("latin-1")
            raise BrokerError(
                400, f"Part {field!r} has no filename; send every part as a file (curl -F f=@x)."
            )
        if len(self.uploads) >= self.max_files:
            raise BrokerError(
                400,
                f"Over {self.max_files} files in one request "
                "(--FileLimits.max_files_per_request); send them in several.",
            )
        try:
            filename = _whatwg_unescape(name.decode())
        except UnicodeDecodeError:
            raise BrokerError(400, "A part's filename is not UTF-8.") from None
        path = request_path(f"{self.directory}/{filename}" if self.directory else filename)
        upload = self.files.upload(path)
        self.uploads.append(upload)
        await upload.begin()

    async def commit(self) -> list[dict[str, Any]]:
        """Commit every file, once the whole body has arrived; their models."""
        if not self._ended:
            raise BrokerError(400, "The multipart body ends before its closing boundary.")
        if not self.uploads:
            raise BrokerError(400, "The multipart body holds no file.")
        return [await upload.commit() for upload in self.uploads]

    async def abort(self) -> None:
        for upload in self.uploads:
            await upload.abort()


def _whatwg_unescape(filename: str) -> str:
    """Undo the escapes browsers apply to a form's filenames (WHATWG's multipart/form-data
    encoding: ``"`` as ``%22``, CR as ``%0D``, LF as ``%0A``; nothing else)."""
    return filename.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")
