"""The framings in broker.wire, checked against jupyter_server's own serializers."""

import json
import random
import struct

import pytest
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)

from broker import wire


def _msg(buffers=()):
    return wire.make_message(
        "iopub",
        "display_data",
        {"data": {"text/plain": "x"}},
        session="s",
        parent={"msg_id": "p1", "msg_type": "execute_request"},
        buffers=list(buffers),
    )


def test_v1_frame_reads_back_in_jupyter_server():
    msg = _msg([b"\x00\x01", b"buf2"])
    channel, parts = deserialize_msg_from_ws_v1(wire.pack_v1(msg))
    assert channel == "iopub"
    assert parts == [msg.header, msg.parent_header, msg.metadata, msg.content, b"\x00\x01", b"buf2"]


def test_v1_frame_from_jupyter_server_unpacks():
    parts = [b'{"msg_id":"a","msg_type":"execute_request"}', b"{}", b"{}", b'{"code":"1"}', b"B"]
    msg = wire.unpack_v1(serialize_msg_to_ws_v1(parts, "shell"))
    assert (msg.channel, msg.msg_id, msg.buffers) == ("shell", "a", [b"B"])
    assert msg.content == b'{"code":"1"}'


def test_v1_round_trip_keeps_raw_bytes():
    msg = _msg([b"x" * 10])
    back = wire.unpack_v1(wire.pack_v1(msg))
    assert (back.header, back.content, back.buffers) == (msg.header, msg.content, msg.buffers)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x01",
        struct.pack("<Q", 2**40),
        struct.pack("<Q", 7) + b"\x00" * 8,
        struct.pack("<7Q", 6, 56, 50, 60, 60, 60, 60),
        "text is not v1",
    ],
)
def test_v1_rejects_malformed_frames(frame):
    with pytest.raises(wire.WireError):
        wire.unpack_v1(frame)


def test_legacy_text_frame_is_the_json_jupyter_server_expects():
    msg = _msg()
    frame, binary = wire.pack_legacy(msg)
    doc = json.loads(frame)
    assert not binary
    assert doc["msg_type"] == "display_data" and doc["msg_id"] == msg.msg_id
    assert doc["channel"] == "iopub" and doc["buffers"] == []
    assert doc["content"] == {"data": {"text/plain": "x"}}
    assert doc["parent_header"]["msg_id"] == "p1"


def test_legacy_binary_frame_reads_back_in_jupyter_server():
    msg = _msg([b"\xff" * 3])
    frame, binary = wire.pack_legacy(msg)
    assert binary
    doc = deserialize_binary_message(frame)
    assert doc["buffers"] == [b"\xff" * 3] and doc["channel"] == "iopub"


def test_legacy_binary_from_jupyter_server_unpacks():
    frame = serialize_binary_message(
        {
            "header": {"msg_id": "m", "msg_type": "comm_msg"},
            "parent_header": {},
            "metadata": {},
            "content": {"data": {}},
            "channel": "shell",
            "buffers": [b"abc"],
        }
    )
    msg = wire.unpack_legacy(frame)
    assert (msg.msg_type, msg.buffers) == ("comm_msg", [b"abc"])


def test_legacy_missing_channel_means_shell():
    msg = wire.unpack_legacy(
        json.dumps({"header": {"msg_id": "1", "msg_type": "kernel_info_request"}})
    )
    assert msg.channel == "shell"


@pytest.mark.parametrize("date", [1700000000.5, None])
def test_inbound_float_or_missing_date_becomes_iso(date):
    header = {"msg_id": "1", "msg_type": "kernel_info_request"}
    if date is not None:
        header["date"] = date
    msg = wire.normalize_inbound(wire.unpack_legacy(json.dumps({"header": header})))
    assert json.loads(msg.header)["date"].endswith("Z")


@pytest.mark.parametrize(
    "doc",
    [
        "[]",
        "{not json",
        json.dumps({"header": "x"}),
        json.dumps({"header": {"msg_id": "1", "msg_type": "x"}, "content": [1]}),
        json.dumps({"header": {"msg_id": "1", "msg_type": "x"}, "channel": 5}),
        json.dumps({"header": {"msg_id": "1", "msg_type": "x"}, "content": False}),
        json.dumps({"header": {"msg_id": "1", "msg_type": "x"}, "metadata": 0}),
        json.dumps({"header": {"msg_id": "1", "msg_type": "x"}, "parent_header": []}),
        json.dumps({"header": {"msg_id": "1", "msg_type": "x"}, "channel": False}),
    ],
)
def test_legacy_rejects_malformed_messages(doc):
    with pytest.raises(wire.WireError):
        wire.unpack_legacy(doc)


@pytest.mark.parametrize("channel", ["iopub", "nope"])
def test_clients_cannot_send_on_iopub_or_unknown_channels(channel):
    msg = wire.make_message(channel, "x", {}, session="s")
    with pytest.raises(wire.WireError):
        wire.normalize_inbound(msg)


def test_legacy_rejects_deeply_nested_json():
    with pytest.raises(wire.WireError, match="nested too deeply"):
        wire.unpack_legacy("[" * 100_000 + "]" * 100_000)


def test_v1_rejects_deeply_nested_json_parts():
    msg = wire.make_message("shell", "x", {}, session="s")
    msg.content = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(wire.WireError, match="nested too deeply"):
        wire.normalize_inbound(wire.unpack_v1(wire.pack_v1(msg)))


def test_inbound_requires_msg_id_and_type():
    with pytest.raises(wire.WireError):
        wire.normalize_inbound(wire.unpack_legacy(json.dumps({"header": {"msg_type": "x"}})))


def test_zmq_round_trip_signs_and_verifies():
    signer = wire.Signer(b"secret")
    msg = _msg([b"buf"])
    frames = wire.to_zmq(msg, signer, idents=[b"id"])
    back = wire.from_zmq("iopub", frames, signer)
    assert (back.header, back.buffers) == (msg.header, [b"buf"])


def test_zmq_rejects_a_forged_signature():
    frames = wire.to_zmq(_msg(), wire.Signer(b"secret"))
    with pytest.raises(wire.WireError):
        wire.from_zmq("iopub", frames, wire.Signer(b"other"))


def test_zmq_frames_match_jupyter_client_session():
    from jupyter_client.session import Session

    session = Session(key=b"k")
    frames = wire.to_zmq(_msg([b"b"]), wire.Signer(b"k"))
    parsed = session.deserialize(frames[frames.index(wire.DELIMITER) + 1 :])
    assert parsed["msg_type"] == "display_data" and parsed["buffers"][0].tobytes() == b"b"


def test_split_stream_keeps_text_in_order_and_under_limit():
    text = "é" * 5000 + "z" * 7000
    msg = wire.make_message("iopub", "stream", {"name": "stdout", "text": text}, session="s")
    pieces = wire.split_stream(msg, 4096)
    assert len(pieces) > 1 and all(len(p.content) <= 4096 for p in pieces)
    assert "".join(p.content_dict()["text"] for p in pieces) == text
    assert len({p.msg_id for p in pieces}) == len(pieces)


def test_split_stream_leaves_other_messages_whole():
    msg = _msg()
    assert wire.split_stream(msg, 1) == [msg]


@pytest.mark.parametrize("as_view", [False, True], ids=["bytes", "view"])
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_split_stream_never_cuts_an_escape_or_a_character(ensure_ascii, as_view):
    rng = random.Random(7)
    alphabet = ["a", "é", "€", "😀", '"', "\\", "\n", "\x01", "\u2028", "u", "\\u"]
    for _ in range(1500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300)))
        msg = wire.make_message("iopub", "stream", {}, session="s")
        msg.content = json.dumps(
            {"name": "stdout", "text": text}, ensure_ascii=ensure_ascii
        ).encode()
        if as_view:  # as a large part received from a kernel is kept
            msg.content = memoryview(msg.content)
        limit = rng.randint(60, 200)
        pieces = wire.split_stream(msg, limit)
        assert "".join(p.content_dict()["text"] for p in pieces) == text
        assert all(len(p.content) <= limit for p in pieces)


def test_find_in_a_view_matches_bytes_find_across_its_windows(monkeypatch):
    monkeypatch.setattr(wire, "_WINDOW", 7)  # needles straddle many window edges
    rng = random.Random(3)
    for _ in range(300):
        data = bytes(rng.choice(b'ab"\\t') for _ in range(rng.randint(0, 60)))
        needle = rng.choice([b'"', b'"text"', b"ab", b"\\"])
        start = rng.randint(0, 10)
        assert wire._find(memoryview(data), needle, start) == data.find(needle, start)


def test_large_parts_travel_as_views_of_the_frame_they_came_in():
    """50 MB of output is not copied by the broker: received parts over ZERO_COPY_BYTES
    stay views of the received frame, and split pieces are views of those."""
    text = "x" * (3 * wire.ZERO_COPY_BYTES)
    msg = wire.make_message("iopub", "stream", {"name": "stdout", "text": text}, session="s")
    frame = wire.pack_v1(msg)
    received = wire.unpack_v1(frame)
    assert isinstance(received.header, bytes)  # small parts are plain bytes
    assert isinstance(received.content, memoryview) and received.content.obj is frame
    pieces = wire.split_stream(received, wire.ZERO_COPY_BYTES)
    assert len(pieces) == 4
    for piece in pieces:
        _, text_view, _ = piece.content.pieces
        assert text_view.obj is frame
        channel, parts = deserialize_msg_from_ws_v1(wire.pack_v1(piece))
        assert channel == "iopub" and json.loads(parts[3])["name"] == "stdout"
    assert "".join(p.content_dict()["text"] for p in pieces) == text
    legacy, binary = wire.pack_legacy(pieces[0])
    assert not binary and json.loads(legacy)["content"] == pieces[0].content_dict()


def _parse_ws_frame(data: bytes):
    """One server frame read back by the websockets package's own parser."""
    from websockets.frames import Frame
    from websockets.streams import StreamReader

    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False, max_size=None)
    try:
        while True:
            next(parser)
    except StopIteration as done:
        return done.value


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 200_000])
@pytest.mark.parametrize("binary", [True, False])
def test_websocket_frame_reads_back_in_the_websockets_package(size: int, binary: bool):
    payload = bytes(random.getrandbits(8) for _ in range(min(size, 64))) * (size // 64 + 1)
    pieces = [payload[:3], memoryview(payload)[3:size]] if size > 3 else [payload[:size]]
    frame = _parse_ws_frame(b"".join(bytes(p) for p in wire.websocket_frame(pieces, binary)))
    assert frame.fin and frame.data == payload[:size]
    assert frame.opcode.name == ("BINARY" if binary else "TEXT")


def test_websocket_frame_writes_large_pieces_as_they_are():
    big = memoryview(bytes(wire.ZERO_COPY_BYTES))
    writes = wire.websocket_frame([b"head", big, b"tail", b"end"], binary=True)
    assert len(writes) == 3 and writes[1] is big
    assert writes[0].endswith(b"head") and writes[2] == b"tailend"


@pytest.mark.parametrize("msg_type", ["status", "stream", "execute_reply"])
def test_is_type_agrees_with_the_decoded_header(msg_type: str):
    msg = wire.make_message("iopub", msg_type, {}, session="status")
    for candidate in ("status", "stream", "execute_reply", "execute"):
        assert msg.is_type(candidate) == (msg.msg_type == candidate)
