"""Seeded generators of websocket frames a broker must refuse (or survive), both protocols.

Each generator takes a ``random.Random`` and returns a Frame: the payload (bytes for
a binary frame, str for a text frame) and the close code the broker must answer
with, or None when the frame is odd but valid and the connection must stay open.
"""

from __future__ import annotations

import json
import random
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from broker.wire import Message, make_message, pack_legacy, pack_v1

UNSUPPORTED, INVALID, TOO_BIG = 1003, 1007, 1009
MAX_MESSAGE_BYTES = 64 * 1024  # the fuzzed broker's --Broker.max_message_bytes

NOT_JSON = [b"{", b"}", b"nul", b"\xff\xfe", b'{"a":}', b"[1,", b"{'a': 1}", b'{"a" 1}']
NOT_OBJECTS = [b"[]", b"1", b'"s"', b"null", b"true", b"[{}]", b"0.5"]
BAD_CHANNELS = ["iopub", "hb", "SHELL", " shell", "shell\x00", "nope", "control "]


@dataclass(frozen=True)
class Frame:
    payload: bytes | str
    close: int | None  # the expected close code; None: the connection stays open


def _word(rng: random.Random, n: int = 8) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(n))


def _text(rng: random.Random) -> str:
    """Random text, control characters and astral planes included (no lone surrogates)."""
    return "".join(
        chr(rng.choice([rng.randint(0, 0x7F), rng.randint(0x80, 0xD7FF), 0x1F600]))
        for _ in range(rng.randint(0, 40))
    )


def odd_message(rng: random.Random, buffers: bool = False) -> Message:
    """A valid message the kernel does not expect: unknown types, forged parents, comms."""
    kind = rng.choice(["unknown", "comm_msg", "input_reply", "forged_parent"])
    channel = "stdin" if kind == "input_reply" else rng.choice(["shell", "control"])
    msg_type = {
        "unknown": f"fuzz_{_word(rng)}{rng.choice(['', '_request', '_reply'])}",
        "comm_msg": "comm_msg",
        "input_reply": "input_reply",
        "forged_parent": "fuzz_forged_request",
    }[kind]
    content = {"comm_id": uuid.uuid4().hex, "data": {_word(rng): _text(rng)}, "value": _text(rng)}
    parent = {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request", "session": _word(rng)}
    return make_message(
        channel,
        msg_type,
        content,
        session=_word(rng),
        parent=parent if kind == "forged_parent" else None,
        metadata={_word(rng): rng.random()},
        # a leading non-space byte: a legacy JSON part that swallowed it stays invalid
        buffers=[b"\x00" + rng.randbytes(rng.randint(0, 64))] if buffers else None,
    )


def _v1(rng: random.Random, buffers: bool = False) -> bytes:
    return pack_v1(odd_message(rng, buffers))


def _v1_with_part(rng: random.Random, index: int, part: bytes) -> bytes:
    """A v1 frame with part ``index`` (0 channel, 1 header, ... 4 content) replaced."""
    msg = odd_message(rng)
    parts = [msg.channel.encode(), msg.header, msg.parent_header, msg.metadata, msg.content]
    parts[index] = part
    offsets = [8 * 8]
    for p in parts:
        offsets.append(offsets[-1] + len(p))
    return struct.pack("<7Q", 6, *offsets) + b"".join(parts)


def _header(rng: random.Random, **changes: object) -> bytes:
    header = json.loads(odd_message(rng).header)
    header.update(changes)
    return json.dumps({k: v for k, v in header.items() if v is not None}).encode()


# --- v1 (binary frames) ------------------------------------------------------


def v1_random_bytes(rng: random.Random) -> Frame:
    return Frame(rng.randbytes(rng.randint(0, 300)), INVALID)


def v1_truncated(rng: random.Random) -> Frame:
    frame = _v1(rng, buffers=rng.random() < 0.5)
    return Frame(frame[: rng.randrange(len(frame))], INVALID)


def v1_bad_offset(rng: random.Random) -> Frame:
    frame = bytearray(_v1(rng))
    (count,) = struct.unpack_from("<Q", frame)
    at = 8 + 8 * rng.randrange(count)
    (old,) = struct.unpack_from("<Q", frame, at)
    new = rng.choice([old + 1, max(old - 1, 0) if old else 1, rng.getrandbits(64), 0, 2**64 - 1])
    struct.pack_into("<Q", frame, at, new if new != old else old + 7)
    return Frame(bytes(frame), INVALID)


def v1_huge_count(rng: random.Random) -> Frame:
    count = rng.choice([2**64 - 1, 2**63, 2**32, 10**9, rng.randint(1100, 2**40)])
    return Frame(struct.pack("<Q", count) + rng.randbytes(rng.randint(0, 200)), INVALID)


def v1_small_count(rng: random.Random) -> Frame:
    count = rng.randrange(6)
    offsets = [8 * (count + 1) + i for i in range(count)]
    return Frame(struct.pack(f"<{count + 1}Q", count, *offsets) + b"x" * count, INVALID)


def v1_invalid_json(rng: random.Random) -> Frame:
    return Frame(_v1_with_part(rng, rng.randint(1, 4), rng.choice(NOT_JSON)), INVALID)


def v1_non_object(rng: random.Random) -> Frame:
    return Frame(_v1_with_part(rng, rng.randint(1, 4), rng.choice(NOT_OBJECTS)), INVALID)


def v1_unknown_channel(rng: random.Random) -> Frame:
    channel = rng.choice([*BAD_CHANNELS, _word(rng)]).encode()
    return Frame(_v1_with_part(rng, 0, rng.choice([channel, b"\xff\xfe"])), INVALID)


def v1_bad_header(rng: random.Random) -> Frame:
    change = rng.choice(
        [{"msg_id": None}, {"msg_type": None}, {"msg_id": ""}, {"msg_type": 5}, {"msg_id": []}]
    )
    return Frame(_v1_with_part(rng, 1, _header(rng, **change)), INVALID)


def v1_deep_nesting(rng: random.Random) -> Frame:
    depth = rng.randint(5_000, 30_000)  # deep, yet under the message size limit
    return Frame(_v1_with_part(rng, rng.randint(1, 4), b"[" * depth + b"]" * depth), INVALID)


def v1_text_frame(rng: random.Random) -> Frame:
    return Frame(rng.choice([_text(rng), json.dumps({"header": {}}), ""]), UNSUPPORTED)


def v1_oversized(rng: random.Random) -> Frame:
    return Frame(rng.randbytes(MAX_MESSAGE_BYTES + rng.randint(1, 100_000)), TOO_BIG)


def v1_odd_but_valid(rng: random.Random) -> Frame:
    return Frame(_v1(rng, buffers=rng.random() < 0.5), None)


# --- legacy (JSON text frames; binary frames when there are buffers) ----------


def _legacy_doc(rng: random.Random) -> dict:
    msg = odd_message(rng)
    return {
        "header": json.loads(msg.header),
        "parent_header": {},
        "metadata": {},
        "content": json.loads(msg.content),
        "channel": msg.channel,
    }


def legacy_not_json(rng: random.Random) -> Frame:
    return Frame(rng.choice(NOT_JSON).decode(errors="replace") + _text(rng), INVALID)


def legacy_non_object(rng: random.Random) -> Frame:
    return Frame(rng.choice(NOT_OBJECTS).decode(), INVALID)


def legacy_bad_header(rng: random.Random) -> Frame:
    doc = _legacy_doc(rng)
    change = rng.choice(
        [{"msg_id": None}, {"msg_type": None}, {"msg_id": ""}, {"msg_type": 5}, {"msg_id": []}]
    )
    header = {**doc["header"], **change}
    doc["header"] = rng.choice([{k: v for k, v in header.items() if v is not None}, [], "h", None])
    return Frame(json.dumps(doc), INVALID)


def legacy_bad_part(rng: random.Random) -> Frame:
    doc = _legacy_doc(rng)
    doc[rng.choice(["parent_header", "metadata", "content"])] = rng.choice(
        [False, 0, "", [], [{}], "x", 1.5, True]
    )
    return Frame(json.dumps(doc), INVALID)


def legacy_bad_channel(rng: random.Random) -> Frame:
    doc = _legacy_doc(rng)
    doc["channel"] = rng.choice([*BAD_CHANNELS, 5, False, [], {}, _word(rng)])
    return Frame(json.dumps(doc), INVALID)


def legacy_deep_nesting(rng: random.Random) -> Frame:
    depth = rng.randint(10_000, 30_000)
    doc = '{"header": {"msg_id": "x", "msg_type": "y"}, "content": ' + "[" * depth
    return Frame(doc + "]" * depth + "}", INVALID)


def legacy_binary_random(rng: random.Random) -> Frame:
    return Frame(rng.randbytes(rng.randint(0, 300)), INVALID)


def _legacy_binary(rng: random.Random) -> bytes:
    frame, binary = pack_legacy(odd_message(rng, buffers=True))
    assert binary
    return frame


def legacy_binary_truncated(rng: random.Random) -> Frame:
    frame = _legacy_binary(rng)
    (count,) = struct.unpack_from("!I", frame)
    last_start = struct.unpack_from(f"!{count}I", frame, 4)[-1]
    # cutting inside the last buffer leaves a valid, shorter buffer: cut before it
    return Frame(frame[: rng.randrange(last_start)], INVALID)


def legacy_binary_huge_count(rng: random.Random) -> Frame:
    count = rng.choice([2**32 - 1, 2**31, 10**6, rng.randint(1100, 2**32 - 1)])
    return Frame(struct.pack("!I", count) + rng.randbytes(rng.randint(4, 200)), INVALID)


def legacy_binary_bad_offset(rng: random.Random) -> Frame:
    frame = bytearray(_legacy_binary(rng))
    at = 4 + 4 * rng.randrange(2)  # the JSON part's bounds; buffer bounds are opaque
    (old,) = struct.unpack_from("!I", frame, at)
    new = rng.choice([old + 1, old - 1, rng.getrandbits(32), 0, 2**32 - 1])
    struct.pack_into("!I", frame, at, new if new != old else old + 3)
    return Frame(bytes(frame), INVALID)


def legacy_oversized(rng: random.Random) -> Frame:
    return Frame("x" * (MAX_MESSAGE_BYTES + rng.randint(1, 100_000)), TOO_BIG)


def legacy_odd_but_valid(rng: random.Random) -> Frame:
    if rng.random() < 0.3:
        return Frame(_legacy_binary(rng), None)
    doc = _legacy_doc(rng)
    doc["header"]["date"] = rng.choice([rng.random() * 2e9, None, "2026-01-01T00:00:00Z"])
    if rng.random() < 0.3:
        del doc["channel"]  # missing means shell
    return Frame(json.dumps(doc), None)


Generator = Callable[[random.Random], Frame]
MALFORMED: dict[str, tuple[str, Generator]] = {
    g.__name__: ("v1" if g.__name__.startswith("v1") else "legacy", g)
    for g in (
        v1_random_bytes,
        v1_truncated,
        v1_bad_offset,
        v1_huge_count,
        v1_small_count,
        v1_invalid_json,
        v1_non_object,
        v1_unknown_channel,
        v1_bad_header,
        v1_deep_nesting,
        v1_text_frame,
        v1_oversized,
        legacy_not_json,
        legacy_non_object,
        legacy_bad_header,
        legacy_bad_part,
        legacy_bad_channel,
        legacy_deep_nesting,
        legacy_binary_random,
        legacy_binary_truncated,
        legacy_binary_huge_count,
        legacy_binary_bad_offset,
        legacy_oversized,
    )
}
ODD_BUT_VALID: dict[str, Generator] = {"v1": v1_odd_but_valid, "legacy": legacy_odd_but_valid}
