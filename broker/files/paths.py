"""Request paths: relative to the kernel's working directory, checked before any call.

The kernel-side helper checks again, resolving symbolic links, which only the kernel
can see; this refuses the paths that cannot be right whatever the kernel's disk holds.
"""

from __future__ import annotations

from ..errors import BrokerError

MAX_PATH_CHARS = 4096


def request_path(raw: str) -> str:
    """``raw`` (URL-decoded) as ``a/b/c``, ``""`` for the working directory itself.

    400 for an absolute path, a ``..`` component, an empty component (``a//b``), a
    control character or a path over ``MAX_PATH_CHARS``. ``.`` components and one
    trailing ``/`` (a directory) are dropped.
    """
    if len(raw) > MAX_PATH_CHARS:
        raise BrokerError(400, f"The path is over {MAX_PATH_CHARS} characters.")
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise BrokerError(400, "The path holds a control character; name the file plainly.")
    if raw.startswith("/"):
        raise BrokerError(
            400,
            f"{raw[:200]!r} is absolute; paths are relative to the kernel's working "
            "directory (GET .../files/ lists it).",
        )
    parts = raw.removesuffix("/").split("/") if raw else []
    if ".." in parts:
        raise BrokerError(
            400, f"{raw[:200]!r} climbs out with '..'; paths stay inside the working directory."
        )
    if "" in parts:
        raise BrokerError(400, f"{raw[:200]!r} has an empty component ('//').")
    return "/".join(p for p in parts if p != ".")
