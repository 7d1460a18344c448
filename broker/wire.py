"""Jupyter message framings as pure functions over bytes: ZMQ, legacy websocket, v1 websocket.

Nothing here touches a socket. Messages keep their JSON parts as the raw bytes the
kernel (or client) produced, so the bridge can forward them without re-parsing;
only the small header and parent header are decoded, and only when asked. Large parts
are not even copied: they stay views of the frame they arrived in (see :func:`keep`)
and go out as pieces (see :class:`Joined` and :func:`v1_parts`).

Framings (see DESIGN.md, "The contract with real clients"):

- ZMQ: ``[idents..., b"<IDS|MSG>", hmac, header, parent_header, metadata, content, *buffers]``.
- v1 (``v1.kernel.websocket.jupyter.org``): u64 little-endian offset count, offsets,
  then channel, header, parent_header, metadata, content, buffers.
- legacy: one JSON text frame; a binary frame (u32 big-endian count and offsets,
  JSON, buffers) only when the message carries buffers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DELIMITER = b"<IDS|MSG>"
CHANNELS = ("shell", "iopub", "stdin", "control")
V1_SUBPROTOCOL = "v1.kernel.websocket.jupyter.org"
PROTOCOL_VERSION = "5.4"
_EMPTY = b"{}"
_MAX_PARTS = 4 + 1024  # the four JSON parts plus buffers
_LEGACY_PARTS = ("parent_header", "metadata", "content")
ZERO_COPY_BYTES = 1 << 16
"""Received parts at least this large stay views of the frame they arrived in."""

Part = bytes | memoryview


class Joined:
    """Bytes made of pieces, joined only if somebody needs them whole.

    A split stream message's content is the JSON head, a slice of the kernel's text and
    the JSON tail: framing writes the three one after another instead of copying 8 MiB
    to put them side by side.
    """

    __slots__ = ("pieces", "_size")

    def __init__(self, pieces: list[Part]) -> None:
        self.pieces = pieces
        self._size = sum(len(p) for p in pieces)

    def __len__(self) -> int:
        return self._size

    def __bytes__(self) -> bytes:
        return b"".join(self.pieces)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Joined | bytes | bytearray | memoryview):
            return bytes(self) == bytes(other)
        return NotImplemented


def keep(part: Any) -> Part:
    """A received part (a ZMQ frame, a slice of a websocket frame: anything with the buffer
    protocol) as the message keeps it: small ones copied out as plain bytes, large ones
    left a view of the frame, so 50 MB of output is never copied on its way through."""
    return memoryview(part) if len(part) >= ZERO_COPY_BYTES else bytes(part)


Parts = list[Part]


class WireError(ValueError):
    """A frame that does not follow the framing it claims."""


def _loads_object(raw: Part | Joined | str, what: str) -> dict[str, Any]:
    try:
        if isinstance(raw, memoryview):  # decoded as json.loads decodes bytes, minus a copy
            raw = str(raw, "utf-8", "surrogatepass")
        value = json.loads(bytes(raw) if isinstance(raw, Joined) else raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise WireError(f"{what} is not valid JSON: {e}") from None
    except RecursionError:  # json's answer to deep nesting, e.g. [[[[...]]]]
        raise WireError(f"{what} is nested too deeply") from None
    if not isinstance(value, dict):
        raise WireError(f"{what} must be a JSON object")
    return value


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


@dataclass(slots=True)
class Message:
    """One Jupyter message; the JSON parts stay raw bytes until someone needs them."""

    channel: str
    header: Part
    parent_header: Part = _EMPTY
    metadata: Part = _EMPTY
    content: Part | Joined = _EMPTY
    buffers: list[Part] = field(default_factory=list)
    _header: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    _parent: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def header_dict(self) -> dict[str, Any]:
        if self._header is None:
            self._header = _loads_object(self.header, "header")
        return self._header

    @property
    def parent_dict(self) -> dict[str, Any]:
        if self._parent is None:
            self._parent = _loads_object(self.parent_header or _EMPTY, "parent_header")
        return self._parent

    @property
    def msg_id(self) -> str:
        return str(self.header_dict.get("msg_id", ""))

    @property
    def msg_type(self) -> str:
        return str(self.header_dict.get("msg_type", ""))

    def is_type(self, msg_type: str) -> bool:
        """Whether this is a ``msg_type`` message, decoding the header only when its raw
        bytes contain that name: most messages are told apart without a JSON parse (a
        header spelling the name with ``\\u`` escapes, which no kernel writes, is not)."""
        if isinstance(self.header, bytes) and msg_type.encode() not in self.header:
            return False
        return self.msg_type == msg_type

    @property
    def parent_msg_id(self) -> str | None:
        return self.parent_dict.get("msg_id")

    @property
    def size(self) -> int:
        """Bytes carried, as counted by limits and metrics."""
        return (
            len(self.header)
            + len(self.parent_header)
            + len(self.metadata)
            + len(self.content)
            + sum(len(b) for b in self.buffers)
        )

    def content_dict(self) -> dict[str, Any]:
        return _loads_object(self.content, "content")

    def to_dict(self) -> dict[str, Any]:
        """The message as the dict jupyter_client's Session produces (for client code)."""
        return {
            "channel": self.channel,
            "header": self.header_dict,
            "msg_id": self.msg_id,
            "msg_type": self.msg_type,
            "parent_header": self.parent_dict,
            "metadata": _loads_object(self.metadata, "metadata"),
            "content": self.content_dict(),
            "buffers": list(self.buffers),
        }


def now_iso() -> str:
    """The ISO 8601 UTC timestamp Jupyter headers carry."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def new_header(msg_type: str, session: str, username: str = "kernel-broker") -> dict[str, Any]:
    return {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "session": session,
        "username": username,
        "date": now_iso(),
        "version": PROTOCOL_VERSION,
    }


def make_message(
    channel: str,
    msg_type: str,
    content: dict[str, Any],
    *,
    session: str,
    parent: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    buffers: list[bytes] | None = None,
) -> Message:
    """A new message (requests the broker or a client sends; synthetic status messages)."""
    header = new_header(msg_type, session)
    msg = Message(
        channel=channel,
        header=_dumps(header),
        parent_header=_dumps(parent or {}),
        metadata=_dumps(metadata or {}),
        content=_dumps(content),
        buffers=list(buffers or []),
    )
    msg._header = header
    msg._parent = parent or {}
    return msg


def message_from_dict(msg: dict[str, Any], channel: str | None = None) -> Message:
    """A Message from a jupyter_client-style dict (client side)."""
    header = msg["header"]
    parent = msg.get("parent_header") or {}
    out = Message(
        channel=channel or msg.get("channel") or "shell",
        header=_dumps(header),
        parent_header=_dumps(parent),
        metadata=_dumps(msg.get("metadata") or {}),
        content=_dumps(msg.get("content") or {}),
        buffers=[bytes(b) for b in msg.get("buffers") or []],
    )
    out._header = header
    out._parent = parent
    return out


# --- ZMQ -----------------------------------------------------------------


class Signer:
    """HMAC signing of the four JSON parts, as the connection file's key and scheme say."""

    def __init__(self, key: bytes, scheme: str = "hmac-sha256") -> None:
        if key and not scheme.startswith("hmac-"):
            raise ValueError(f"unsupported signature scheme {scheme!r}")
        self._digest = getattr(hashlib, scheme[5:]) if key else None
        self._key = key

    def sign(self, parts: list[bytes]) -> bytes:
        if self._digest is None:
            return b""
        h = hmac.new(self._key, digestmod=self._digest)
        for p in parts:
            h.update(p)
        return h.hexdigest().encode()

    def verify(self, signature: bytes, parts: list[bytes]) -> bool:
        if self._digest is None:
            return True
        return hmac.compare_digest(signature, self.sign(parts))


def from_zmq(channel: str, frames: list[Part], signer: Signer, verify: bool = True) -> Message:
    """A message received from a kernel socket; the identities before the delimiter are dropped.

    ``verify=False`` skips the HMAC check, for transports that already authenticate
    the sender (see Bridge).
    """
    try:
        i = frames.index(DELIMITER)
    except ValueError:
        raise WireError("no <IDS|MSG> delimiter in ZMQ message") from None
    parts = frames[i + 1 :]
    if len(parts) < 5:
        raise WireError("ZMQ message has fewer than five parts after the delimiter")
    signature, header, parent, metadata, content = parts[:5]
    if verify and not signer.verify(signature, [header, parent, metadata, content]):
        raise WireError("invalid HMAC signature")
    return Message(channel, header, parent, metadata, content, list(parts[5:]))


def to_zmq(msg: Message, signer: Signer, idents: list[bytes] | None = None) -> list[bytes]:
    """Frames to send on a kernel socket, signed."""
    json_parts = [msg.header, msg.parent_header, msg.metadata, msg.content]
    return [*(idents or []), DELIMITER, signer.sign(json_parts), *json_parts, *msg.buffers]


# --- v1 websocket ----------------------------------------------------------


def pack_v1(msg: Message) -> bytes:
    """The v1 binary frame for a message; JSON parts are copied, never parsed."""
    return b"".join(v1_parts(msg))


def v1_parts(msg: Message) -> Parts:
    """The v1 frame as the pieces it is made of, in order: written one after another they
    are the frame, with no copy of a (possibly 50 MB) content."""
    parts = [msg.channel.encode(), msg.header, msg.parent_header, msg.metadata, msg.content]
    parts += msg.buffers
    count = len(parts) + 1  # one offset where each part starts, plus the end
    offset = 8 * (count + 1)
    offsets = [offset]
    for p in parts:
        offset += len(p)
        offsets.append(offset)
    return [struct.pack(f"<{count + 1}Q", count, *offsets), *_flat(parts)]


def _flat(parts: list[Part | Joined]) -> Parts:
    return [
        piece for part in parts for piece in (part.pieces if isinstance(part, Joined) else [part])
    ]


def unpack_v1(data: bytes) -> Message:
    """Parse a v1 binary frame. Raises WireError for anything malformed.

    Large parts are views of ``data``, which the message keeps alive.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError("v1 frames must be binary")
    data = memoryview(data).cast("B")
    n = len(data)
    if n < 8:
        raise WireError("v1 frame shorter than its offset count")
    (count,) = struct.unpack_from("<Q", data)
    if count < 6 or count > _MAX_PARTS + 2 or 8 * (count + 1) > n:
        raise WireError(f"v1 frame has an impossible offset count {count}")
    offsets = struct.unpack_from(f"<{count}Q", data, 8)
    if offsets[0] != 8 * (count + 1) or offsets[-1] != n:
        raise WireError("v1 offsets do not span the frame")
    if any(a > b for a, b in zip(offsets, offsets[1:], strict=False)):
        raise WireError("v1 offsets are not increasing")
    parts = [keep(data[a:b]) for a, b in zip(offsets, offsets[1:], strict=False)]
    try:
        channel = str(parts[0], "utf-8")
    except UnicodeDecodeError:
        raise WireError("v1 channel is not UTF-8") from None
    return Message(channel, parts[1], parts[2], parts[3], parts[4], parts[5:])


def websocket_frame(pieces: Parts, binary: bool) -> Parts:
    """One unfragmented, unmasked RFC 6455 frame (a server's) carrying ``pieces``, as the
    writes to make in order: the frame header and the small pieces joined (one TCP segment
    for a small message), large pieces as they are, so 50 MB of output is never copied to
    put a header in front of it (Tornado's write_message copies it twice)."""
    size = sum(len(p) for p in pieces)
    first = 0x80 | (0x2 if binary else 0x1)  # FIN, and the opcode
    if size < 126:
        head = struct.pack("!BB", first, size)
    elif size <= 0xFFFF:
        head = struct.pack("!BBH", first, 126, size)
    else:
        head = struct.pack("!BBQ", first, 127, size)
    writes: Parts = []
    small = bytearray(head)
    for piece in pieces:
        if len(piece) < ZERO_COPY_BYTES:
            small += piece
            continue
        if small:
            writes.append(bytes(small))
            small.clear()
        writes.append(piece)
    if small:
        writes.append(bytes(small))
    return writes


# --- legacy websocket ------------------------------------------------------


def _legacy_json(msg: Message) -> Parts:
    """The legacy JSON document's pieces, assembled around the raw parts without re-encoding."""
    h = msg.header_dict
    doc: list[Part | Joined] = [
        b'{"header":',
        msg.header,
        b',"msg_id":',
        _dumps(h.get("msg_id", "")),
        b',"msg_type":',
        _dumps(h.get("msg_type", "")),
        b',"parent_header":',
        msg.parent_header or _EMPTY,
        b',"metadata":',
        msg.metadata or _EMPTY,
        b',"content":',
        msg.content or _EMPTY,
        b',"channel":',
        _dumps(msg.channel),
        b',"buffers":[]}' if not msg.buffers else b"}",
    ]
    return _flat(doc)


def pack_legacy(msg: Message) -> tuple[bytes, bool]:
    """``(frame, binary)``: UTF-8 JSON for a text frame, or the binary frame when there are buffers.

    Text frames are returned as bytes so that 50 MB of output is not decoded only to be
    encoded again by the websocket library.
    """
    parts, binary = legacy_parts(msg)
    return b"".join(parts), binary


def legacy_parts(msg: Message) -> tuple[Parts, bool]:
    """``(pieces, binary)`` of the legacy frame, as :func:`v1_parts` for the v1 one."""
    doc = _legacy_json(msg)
    if not msg.buffers:
        return doc, False
    size = sum(len(p) for p in doc)
    offsets = [4 * (len(msg.buffers) + 2), 4 * (len(msg.buffers) + 2) + size]
    for b in msg.buffers[:-1]:
        offsets.append(offsets[-1] + len(b))
    table = struct.pack(f"!{len(msg.buffers) + 2}I", len(msg.buffers) + 1, *offsets)
    return [table, *doc, *msg.buffers], True


def unpack_legacy(data: str | bytes) -> Message:
    """Parse a legacy frame (JSON text, or binary with buffers). Raises WireError."""
    buffers: list[bytes] = []
    if isinstance(data, str):
        doc = _loads_object(data, "message")
    else:
        data = bytes(data)
        if len(data) < 8:
            raise WireError("legacy binary frame too short")
        (nbufs,) = struct.unpack_from("!I", data)
        if nbufs < 1 or nbufs > _MAX_PARTS or 4 * (nbufs + 1) > len(data):
            raise WireError(f"legacy binary frame has an impossible buffer count {nbufs}")
        offsets = [*struct.unpack_from(f"!{nbufs}I", data, 4), len(data)]
        if offsets[0] != 4 * (nbufs + 1) or any(
            a > b for a, b in zip(offsets, offsets[1:], strict=False)
        ):
            raise WireError("legacy binary offsets are out of order")
        chunks = [data[a:b] for a, b in zip(offsets, offsets[1:], strict=False)]
        doc = _loads_object(chunks[0], "message")
        buffers = chunks[1:]
    header = doc.get("header")
    if not isinstance(header, dict):
        raise WireError("message has no header object")
    # Missing or null parts are empty; false, 0, "" or [] are not objects and are refused.
    parts = {key: {} if doc.get(key) is None else doc[key] for key in _LEGACY_PARTS}
    for key, value in parts.items():
        if not isinstance(value, dict):
            raise WireError(f"{key} must be a JSON object")
    channel = doc.get("channel")
    if channel is None or channel == "":
        channel = "shell"
    if not isinstance(channel, str):
        raise WireError("channel must be a string")
    msg = Message(
        channel=channel,
        header=_dumps(header),
        parent_header=_dumps(parts["parent_header"]),
        metadata=_dumps(parts["metadata"]),
        content=_dumps(parts["content"]),
        buffers=buffers,
    )
    msg._header = header
    return msg


def normalize_inbound(msg: Message) -> Message:
    """Check a client's message before it reaches a kernel and fill what clients omit.

    The channel must be one a client may send on; the header needs msg_id and
    msg_type; a missing or numeric ``date`` becomes an ISO string (some clients send
    floats); all four JSON parts must be objects.
    """
    if msg.channel not in ("shell", "stdin", "control"):
        raise WireError(f"clients cannot send on channel {msg.channel!r}")
    header = msg.header_dict
    if not isinstance(header.get("msg_id"), str) or not header["msg_id"]:
        raise WireError("header.msg_id must be a non-empty string")
    if not isinstance(header.get("msg_type"), str) or not header["msg_type"]:
        raise WireError("header.msg_type must be a non-empty string")
    msg.parent_dict  # noqa: B018 - validates the parent header
    _loads_object(msg.metadata, "metadata")
    _loads_object(msg.content, "content")
    changed = False
    date = header.get("date")
    if isinstance(date, int | float) and not isinstance(date, bool):
        header["date"] = datetime.fromtimestamp(date, UTC).isoformat().replace("+00:00", "Z")
        changed = True
    elif not isinstance(date, str):
        header["date"] = now_iso()
        changed = True
    for key, default in (("session", ""), ("username", ""), ("version", PROTOCOL_VERSION)):
        if not isinstance(header.get(key), str):
            header[key] = default
            changed = True
    if changed:
        msg.header = _dumps(header)
    return msg


_BACKSLASH = ord("\\")
_WINDOW = 1 << 18


def _find(buf: Part, needle: bytes, start: int = 0) -> int:
    """``bytes.find`` for a memoryview too (it has none): a window at a time, copying only
    that much (a quarter MiB stays in the cache)."""
    if isinstance(buf, bytes):
        return buf.find(needle, start)
    overlap = len(needle) - 1
    while start < len(buf):
        i = bytes(buf[start : start + _WINDOW + overlap]).find(needle)
        if i >= 0:
            return start + i
        start += _WINDOW
    return -1


def _text_span(content: Part) -> tuple[int, int] | None:
    """Start and end of the raw ``text`` string value in a stream message's JSON content."""
    key = _find(content, b'"text"')
    if key < 0:
        return None
    i = key + len(b'"text"')
    while i < len(content) and content[i] in b" \t\r\n:":
        i += 1
    if i >= len(content) or content[i] != ord('"'):
        return None
    start = end = i + 1
    while True:  # the first quote not escaped by an odd run of backslashes ends the string
        end = _find(content, b'"', end)
        if end < 0:
            return None
        run = 0
        while content[end - 1 - run] == _BACKSLASH:
            run += 1
        if run % 2 == 0:
            return start, end
        end += 1


def _opens_escape(content: Part, start: int, j: int) -> bool:
    """Whether the backslash at ``j`` opens an escape (an even run of backslashes precedes it)."""
    run = j
    while run > start and content[run - 1] == _BACKSLASH:
        run -= 1
    return (j - run) % 2 == 0


def _safe_cut(content: Part, start: int, pos: int) -> int:
    """The nearest position at or before ``pos`` that splits neither a UTF-8 character nor an
    escape sequence (``\\x``, ``\\uXXXX``, or a surrogate pair of them)."""
    while pos > start and 0x80 <= content[pos] < 0xC0:
        pos -= 1
    # only an escape opened in the last five bytes can straddle the cut
    for j in range(max(start, pos - 5), pos):
        if content[j] == _BACKSLASH and _opens_escape(content, start, j):
            if j + (6 if content[j + 1] == ord("u") else 2) > pos:
                pos = j
                break
    high = pos - 6  # a high surrogate must stay with the low one that follows it
    if (
        high >= start
        and content[high] == _BACKSLASH
        and bytes(content[high + 1 : high + 4]).lower() in (b"ud8", b"ud9", b"uda", b"udb")
        and _opens_escape(content, start, high)
    ):
        pos = high
    return pos


def split_stream(msg: Message, max_bytes: int) -> list[Message]:
    """Split an oversized ``stream`` message into several, each under ``max_bytes``.

    Clients with a frame limit (Jupyter Server's gateway client drops the connection
    above 10 MiB) receive the same text in order. The raw JSON is cut between characters,
    never decoded and re-encoded (on 50 MB of output that would cost seconds), nor copied:
    each piece's content is the JSON head and tail around a view of the text.
    Other message types are returned whole.
    """
    content = msg.content
    if msg.msg_type != "stream" or len(content) <= max_bytes or isinstance(content, Joined):
        return [msg]
    span = _text_span(content)
    if span is None:
        return [msg]
    start, end = span
    head, tail = bytes(content[:start]), bytes(content[end:])
    room = max(16, max_bytes - len(head) - len(tail))
    out = []
    pos = start
    while pos < end:
        cut = end if end - pos <= room else _safe_cut(content, pos, pos + room)
        if cut <= pos:  # a single escape longer than the room: take it whole
            cut = min(end, pos + 12)
        header = dict(msg.header_dict, msg_id=f"{msg.msg_id}-{len(out)}")
        piece = Message(
            msg.channel,
            _dumps(header),
            msg.parent_header,
            msg.metadata,
            Joined([head, memoryview(content)[pos:cut], tail]),
        )
        piece._header = header
        out.append(piece)
        pos = cut
    return out
