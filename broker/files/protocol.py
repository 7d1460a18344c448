"""What every kernel-side file helper implements, whatever its language.

A helper offers the functions in ``CALLS``, each answering one JSON object (see
broker/kernel_calls.py for how the answer travels) under ``MIME``:

- ``describe(path, max_entries, first_bytes)``: a directory's model with ``entries``
  (models, sorted by name, at most ``max_entries``, uploads in progress left out) and
  ``truncated``; or a regular file's model with ``ident`` (what tells it from a changed
  or replaced file, opaque to the broker) and ``data``, its first ``first_bytes``
  base64-encoded.
- ``read(path, offset, length, ident)``: ``{"data"}``, ``length`` bytes at ``offset``
  base64-encoded, refused with ``changed`` when the file is not the one ``ident`` names.
- ``begin_upload(path, transfer)``: creates the upload's temporary file
  ``.NAME{TEMP_MARK}{transfer}`` beside its target (and missing directories);
  ``{"temp"}``, its path.
- ``write_chunk(temp, offset)``: writes the call's bytes at ``offset``; ``{"written"}``.
- ``commit_upload(temp, path)``: renames the finished upload over its target; its model
  and ``created`` (whether the target is new).
- ``abort_upload(path, transfer)``: removes the temporary file, if there is one; ``{}``.
- ``delete(path)``: removes a file, a symbolic link (not its target) or an empty
  directory; ``{}``.

A model is ``{"name", "path", "type": "file"|"directory", "size" (null for a directory),
"mtime" (seconds since the epoch)}``. Paths are relative to the kernel's working
directory, resolved with every symbolic link followed and refused outside it.

What a helper refuses it answers as ``{"error": {"reason", "path", "errno", "detail"}}``:
a reason of ``REASONS`` (``os`` for a filesystem error, with its ``errno`` name such as
``ENOENT``), the path concerned; the broker turns it into the status and message below,
so every language says the same.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Protocol

from ..errors import BrokerError
from ..kernel_calls import KernelCall
from . import kernel_python

# Defined in the Python helper, which runs as it is in the kernel; the others get them here.
MIME = kernel_python.MIME
TEMP_MARK = kernel_python.TEMP_MARK

CALLS: dict[str, tuple[str, ...]] = {
    "describe": ("path", "max_entries", "first_bytes"),
    "read": ("path", "offset", "length", "ident"),
    "begin_upload": ("path", "transfer"),
    "write_chunk": ("temp", "offset"),
    "commit_upload": ("temp", "path"),
    "abort_upload": ("path", "transfer"),
    "delete": ("path",),
}

# reason: (status, message); {path} is the path concerned, quoted
REASONS: dict[str, tuple[int, str]] = {
    "bad_path": (400, "{path} is not a path inside the kernel's working directory."),
    "outside": (
        403,
        "{path} leads outside the kernel's working directory (through a symbolic link); "
        "use a path that stays inside it.",
    ),
    "not_regular": (409, "{path} is not a regular file; only files can be downloaded."),
    "changed": (409, "{path} changed while it was downloaded; download it again."),
    "not_upload": (400, "Not an upload of this kernel's working directory."),
    "no_name": (400, "Name the file to write: PUT .../files/NAME."),
    "is_directory": (409, "{path} is a directory; name a file inside it."),
    "became_directory": (409, "{path} became a directory during the upload; name a file."),
    "root": (400, "The working directory itself cannot be deleted; name a file."),
}

# errno name: (status, message) for filesystem errors; others are 409 with their text
ERRNOS: dict[str, tuple[int, str]] = {
    "ENOENT": (404, "No file or directory {path} in the kernel's working directory."),
    "EACCES": (403, "The kernel's user may not access {path}."),
    "EPERM": (403, "The kernel's user may not access {path}."),
    "EROFS": (403, "The kernel's user may not access {path}: the file system is read-only."),
    "ENOSPC": (507, "No space left for {path} in the kernel; delete files first."),
    "EDQUOT": (507, "No space left for {path} in the kernel; delete files first."),
    "ENOTEMPTY": (409, "Directory {path} is not empty; delete its files first."),
    "ELOOP": (409, "{path} goes through too many symbolic links."),
}
_DETAIL_CHARS = 300


class FileHelper(Protocol):
    """The kernel-side file helper of one language, as the broker calls it."""

    max_chunk_bytes: int  # the most bytes per call its kernel handles well; 0: no limit

    def call(self, function: str, args: tuple[Any, ...], data: bytes | None) -> KernelCall:
        """The request that runs ``function(*args)`` in the kernel, ``data`` its bytes."""
        ...


def encoded_call(function: str, args: tuple[Any, ...], data: bytes | None) -> tuple[str, str]:
    """A call as base64 of its JSON (``{"function", "args"}``) and its bytes as base64:
    string literals that need no escaping in any language, whatever the paths hold."""
    if function not in CALLS or len(args) != len(CALLS[function]):
        raise ValueError(f"not a file helper call: {function}{args!r}")
    doc = json.dumps({"function": function, "args": list(args)}, ensure_ascii=False)
    call = base64.b64encode(doc.encode("utf-8", "surrogateescape")).decode()
    return call, base64.b64encode(data or b"").decode()


def refusal(error: dict[str, Any]) -> BrokerError:
    """The status and message for a helper's ``error`` answer."""
    path = error.get("path")
    quoted = repr(path) if isinstance(path, str) and path else "the path"
    reason = error.get("reason")
    if reason == "os":
        status, message = ERRNOS.get(str(error.get("errno")), (409, "{path}: {detail}."))
    else:
        status, message = REASONS.get(str(reason), (409, "The kernel refused: {detail}."))
    detail = str(error.get("detail") or reason or "no reason given")[:_DETAIL_CHARS]
    return BrokerError(status, message.format(path=quoted, detail=detail))
