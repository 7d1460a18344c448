"""The half of the file API that runs inside a Python kernel (the calls of
broker/files/protocol.py).

The broker never imports this module: broker/files/python.py sends its source with
every call (see broker/kernel_calls.py), so a kernel needs nothing installed. It
therefore uses only the standard library and IPython, and it defines ``MIME`` and
``TEMP_MARK`` for every helper (broker/files/protocol.py hands them to the others).

Paths are relative to the kernel's current working directory, where its code's own
relative paths go. Each one is resolved here, with every symbolic link followed, and
refused when it ends up outside that directory. Every function returns a ``Result``
carrying a JSON document: the answer, or ``{"error": {"reason", "path", ...}}`` for what
the client got wrong (a missing file, a path that leaves the directory, a full disk).

An upload is written to a hidden temporary file beside its target and renamed over it
at the end, so code running in the kernel sees the old file or the whole new one.
"""

from __future__ import annotations

import base64
import errno
import functools
import os
import stat
from collections.abc import Callable
from typing import Any

MIME = "application/vnd.kernel-broker.files+json"
TEMP_MARK = ".kb-upload-"  # in the name of a file being uploaded; listings leave them out


class Result:
    """What a call evaluates to: a JSON document under a private MIME type."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {MIME: self.doc}

    def __repr__(self) -> str:
        return "<kernel-broker file result>"


class Refusal(Exception):
    """A request this kernel refuses: a reason of broker/files/protocol.py and its path."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(reason)
        self.error = {"reason": reason, "path": path}


def _root() -> str:
    return os.path.realpath(os.getcwd())


def _os_error(e: OSError) -> dict[str, Any]:
    """A filesystem error as the broker reads it: its errno name and the path concerned."""
    path = os.path.relpath(e.filename, _root()) if isinstance(e.filename, str) else ""
    name = errno.errorcode.get(e.errno or 0, "")
    return {"reason": "os", "errno": name, "path": path, "detail": e.strerror or str(e)}


def _answer(func: Callable[..., dict[str, Any]]) -> Callable[..., Result]:
    """``func``'s document as a Result; a refusal or filesystem error as an error document."""

    @functools.wraps(func)
    def wrapper(*args: Any) -> Result:
        try:
            return Result(func(*args))
        except Refusal as e:
            return Result({"error": e.error})
        except OSError as e:
            return Result({"error": _os_error(e)})

    return wrapper


def _inside(root: str, real: str) -> bool:
    return os.path.commonpath([root, real]) == root


def _resolve(rel: str) -> str:
    """The real path of ``rel``; refused when it is absolute, climbs, or leads outside."""
    if "\0" in rel or os.path.isabs(rel) or ".." in rel.split("/"):
        raise Refusal("bad_path", rel)
    root = _root()
    real = os.path.realpath(os.path.join(root, rel))
    if not _inside(root, real):
        raise Refusal("outside", rel)
    return real


def _ident(st: os.stat_result) -> list[int]:
    """What tells a file from a changed or replaced one."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _model(rel: str, st: os.stat_result) -> dict[str, Any]:
    directory = stat.S_ISDIR(st.st_mode)
    return {
        "name": os.path.basename(rel),
        "path": rel,
        "type": "directory" if directory else "file",
        "size": None if directory else st.st_size,
        "mtime": st.st_mtime,
    }


def _entries(real: str, rel: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """A directory's entries by name, at most ``limit``; whether some were left out."""
    names = sorted(n for n in os.listdir(real) if TEMP_MARK not in n)
    out = []
    for name in names[:limit]:
        path = os.path.join(real, name)
        try:
            st = os.stat(path)
        except OSError:  # a broken link: describe the link itself
            st = os.lstat(path)
        out.append(_model(f"{rel}/{name}" if rel else name, st))
    return out, len(names) > limit


@_answer
def describe(rel: str, max_entries: int, first_bytes: int) -> dict[str, Any]:
    """A directory's listing, or a file's description with its first ``first_bytes``."""
    real = _resolve(rel)
    st = os.stat(real)
    if stat.S_ISDIR(st.st_mode):
        entries, truncated = _entries(real, rel, max_entries)
        return {**_model(rel, st), "entries": entries, "truncated": truncated}
    if not stat.S_ISREG(st.st_mode):  # reading a FIFO or a device could block the kernel
        raise Refusal("not_regular", rel)
    with open(real, "rb") as f:
        st = os.fstat(f.fileno())
        data = f.read(first_bytes)
    return {**_model(rel, st), "ident": _ident(st), "data": base64.b64encode(data).decode()}


@_answer
def read(rel: str, offset: int, length: int, ident: list[int]) -> dict[str, Any]:
    """``length`` bytes at ``offset`` of the file ``describe`` saw (409 if it changed)."""
    with open(_resolve(rel), "rb") as f:
        if _ident(os.fstat(f.fileno())) != ident:
            raise Refusal("changed", rel)
        f.seek(offset)
        return {"data": base64.b64encode(f.read(length)).decode()}


def _check_temp(temp: str) -> str:
    if TEMP_MARK not in os.path.basename(temp) or not _inside(_root(), os.path.realpath(temp)):
        raise Refusal("not_upload")
    return temp


@_answer
def begin_upload(rel: str, transfer: str) -> dict[str, Any]:
    """Create the temporary file an upload to ``rel`` is written to (and its directories)."""
    if not rel:
        raise Refusal("no_name")
    real = _resolve(rel)
    if os.path.isdir(real):
        raise Refusal("is_directory", rel)
    os.makedirs(os.path.dirname(real), exist_ok=True)
    temp = _temp(real, transfer)
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return {"temp": temp}


def _temp(real: str, transfer: str) -> str:
    """Where the upload ``transfer`` to ``real`` is written until it is complete."""
    return os.path.join(os.path.dirname(real), f".{os.path.basename(real)}{TEMP_MARK}{transfer}")


@_answer
def write_chunk(temp: str, offset: int) -> dict[str, Any]:
    """Write the request's first buffer at ``offset`` of an upload's temporary file."""
    from IPython import get_ipython

    data = (get_ipython().kernel.get_parent("shell").get("buffers") or [b""])[0]
    with open(_check_temp(temp), "r+b") as f:
        f.seek(offset)
        f.write(data)
    return {"written": offset + len(data)}


@_answer
def commit_upload(temp: str, rel: str) -> dict[str, Any]:
    """Move a finished upload over its target; the target is checked again first."""
    _check_temp(temp)
    real = _resolve(rel)
    if os.path.isdir(real):
        os.unlink(temp)
        raise Refusal("became_directory", rel)
    created = not os.path.exists(real)
    os.replace(temp, real)
    return {**_model(rel, os.stat(real)), "created": created}


@_answer
def abort_upload(rel: str, transfer: str) -> dict[str, Any]:
    """Remove an unfinished upload's temporary file, if ``begin_upload`` made one."""
    try:
        os.unlink(_temp(_resolve(rel), transfer))
    except FileNotFoundError:
        pass
    return {}


@_answer
def delete(rel: str) -> dict[str, Any]:
    """Remove a file, a symbolic link (not what it points to) or an empty directory."""
    if not rel:
        raise Refusal("root")
    parent = _resolve(os.path.dirname(rel))
    target = os.path.join(parent, os.path.basename(rel))
    if stat.S_ISDIR(os.lstat(target).st_mode):
        os.rmdir(target)
    else:
        os.unlink(target)
    return {}
