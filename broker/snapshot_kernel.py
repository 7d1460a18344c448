"""The half of snapshot and restore that runs inside the kernel.

The broker never imports this module: it sends its source to the kernel inside a
``user_expressions`` entry of a silent execute_request (see broker/snapshots.py), so
a pod kernel needs nothing but cloudpickle installed. The expression evaluates to a
``Result`` whose only MIME type carries a JSON document, and the execute_reply
brings it back on the shell channel, to the broker alone: no other client sees it.
Everything here therefore uses only the standard library, IPython and cloudpickle.

A snapshot holds the variables ``%who`` lists: the user namespace without IPython's
own names (In, Out, _ih, exit, quit, get_ipython, ...) and without names that start
with an underscore. Each variable is pickled on its own, so one that cannot be
pickled is reported instead of spoiling the rest.
"""

from __future__ import annotations

import base64
import pickle
import sys
import types
import zlib
from typing import Any

MIME = "application/vnd.kernel-broker.snapshot+json"
_REASON_CHARS = 300
_SAMPLE_BYTES = 1024 * 1024


class Result:
    """What the user expression evaluates to: a JSON document under a private MIME type."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {MIME: self.doc}

    def __repr__(self) -> str:
        return "<kernel-broker snapshot result>"


def user_variables(user_ns: dict[str, Any], hidden: dict[str, Any]) -> dict[str, Any]:
    """The variables ``%who`` would list (the same rule as IPython's ``who_ls``)."""
    missing = object()
    return {
        name: value
        for name, value in user_ns.items()
        if not name.startswith("_") and value is not hidden.get(name, missing)
    }


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_REASON_CHARS]


def pickle_each(variables: dict[str, Any]) -> tuple[dict[str, bytes], dict[str, str]]:
    """``(pickles, skipped)``: each variable pickled alone, or the reason it was not."""
    import cloudpickle

    pickles: dict[str, bytes] = {}
    skipped: dict[str, str] = {}
    for name, value in variables.items():
        if isinstance(value, types.ModuleType):
            skipped[name] = f"module {value.__name__}: import it again after restoring"
            continue
        try:
            pickles[name] = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # any object's reducer may raise anything
            skipped[name] = _reason(e)
    return pickles, skipped


def compress(data: bytes) -> tuple[str, bytes]:
    """lz4 when the kernel has it (fast), else zlib, else nothing.

    zlib is slow on data it cannot shrink (arrays of random floats): when a 1 MiB
    sample saves under a tenth, the data is stored as it is.
    """
    try:
        import lz4.frame
    except ImportError:
        sample = data[:_SAMPLE_BYTES]
        if len(zlib.compress(sample, 1)) > 0.9 * len(sample):
            return "none", data
        return "zlib", zlib.compress(data, 1)
    return "lz4", lz4.frame.compress(data)


def decompress(compression: str, data: Any) -> Any:
    if compression == "none":
        return data
    if compression == "zlib":
        return zlib.decompress(data)
    if compression == "lz4":
        try:
            import lz4.frame
        except ImportError:
            raise RuntimeError(
                "the snapshot is lz4-compressed and this kernel lacks lz4: pip install lz4"
            ) from None
        return lz4.frame.decompress(data)
    raise RuntimeError(f"unknown compression {compression!r}")


def snapshot(max_bytes: int) -> Result:
    """Pickle the user's variables; the payload travels base64-encoded within the limit."""
    from IPython import get_ipython

    shell = get_ipython()
    pickles, skipped = pickle_each(user_variables(shell.user_ns, shell.user_ns_hidden))
    compression, packed = compress(pickle.dumps(pickles, protocol=pickle.HIGHEST_PROTOCOL))
    doc: dict[str, Any] = {
        "saved": sorted(pickles),
        "skipped": skipped,
        "compression": compression,
        "size": len(packed),
        "python": ".".join(map(str, sys.version_info[:3])),
    }
    if len(packed) > max_bytes:
        # Tell the user what to delete; the payload itself stays in the kernel.
        largest = sorted(pickles, key=lambda n: len(pickles[n]), reverse=True)[:5]
        doc["largest"] = {name: len(pickles[name]) for name in largest}
    else:
        doc["payload"] = base64.b64encode(packed).decode()
    return Result(doc)


def _rebind(func: types.FunctionType, user_ns: dict[str, Any]) -> types.FunctionType:
    """A notebook function unpickled by cloudpickle with the user namespace as its globals.

    cloudpickle gives it a private copy of the globals it used at snapshot time; the
    original read the live namespace, so the copy would not see later assignments.
    Names it used that the namespace lacks (a module imported as ``np``) are kept.
    """
    for name, value in func.__globals__.items():
        if not name.startswith("__"):
            user_ns.setdefault(name, value)
    fresh = types.FunctionType(
        func.__code__, user_ns, func.__name__, func.__defaults__, func.__closure__
    )
    fresh.__kwdefaults__ = func.__kwdefaults__
    fresh.__qualname__ = func.__qualname__
    fresh.__doc__ = func.__doc__
    fresh.__dict__.update(func.__dict__)
    fresh.__annotations__ = func.__annotations__
    return fresh


def load_into(user_ns: dict[str, Any], pickles: dict[str, bytes]) -> tuple[list[str], dict]:
    """``(restored, failed)``: each variable unpickled into ``user_ns``, or why it failed."""
    restored: list[str] = []
    failed: dict[str, str] = {}
    for name, data in pickles.items():
        try:
            user_ns[name] = pickle.loads(data)
        except Exception as e:  # e.g. a module the new kernel lacks
            failed[name] = _reason(e)
        else:
            restored.append(name)
    for name in restored:  # after every value is in place, so functions find them
        value = user_ns[name]
        if isinstance(value, types.FunctionType) and value.__module__ == "__main__":
            user_ns[name] = _rebind(value, user_ns)
    return sorted(restored), failed


def restore(compression: str) -> Result:
    """Load the snapshot that came as the execute_request's first buffer."""
    from IPython import get_ipython

    shell = get_ipython()
    buffers = shell.kernel.get_parent("shell").get("buffers") or []
    if not buffers:
        raise RuntimeError("the restore request carried no snapshot")
    pickles = pickle.loads(decompress(compression, buffers[0]))
    restored, failed = load_into(shell.user_ns, pickles)
    return Result({"restored": restored, "failed": failed})
