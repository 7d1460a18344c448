"""Malformed and odd websocket frames, in both protocols, against a live broker.

For every kind of bad frame (see ws_frames.py) a seeded generator makes a batch;
each frame goes on a fresh connection to the fuzzed kernel, which must close with
the documented code: 1007 for a frame that breaks its framing or the message
format, 1003 for a text frame on the v1 protocol, 1009 above max_message_bytes.
After each batch a connection to another kernel, open all along, still executes
code, and the fuzzed kernel still answers a new connection. Odd but valid messages
(unknown types, forged parent headers, comms nobody opened, buffers) keep their
connection open.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from broker.client import ChannelsConnection, stream_text

from ..broker_process import RunningBroker
from .conftest import module_broker
from .ws_frames import MALFORMED, MAX_MESSAGE_BYTES, ODD_BUT_VALID

pytestmark = pytest.mark.slow  # fuzzing, on a broker of its own

SEED = 20261108
FRAMES_PER_KIND = 16


@pytest.fixture(scope="module")
def ws_broker(tmp_path_factory, broker_env) -> Iterator[RunningBroker]:
    yield from module_broker(
        tmp_path_factory, broker_env, "wsfuzz", f"--Broker.max_message_bytes={MAX_MESSAGE_BYTES}"
    )


@pytest.fixture(scope="module")
def target(ws_broker: RunningBroker) -> str:
    """The kernel every fuzzed frame is sent to."""
    return ws_broker.start_kernel()


@pytest.fixture(scope="module")
def witness(ws_broker: RunningBroker) -> str:
    """Another kernel, which must not notice the fuzzing."""
    return ws_broker.start_kernel()


async def connect(broker: RunningBroker, kernel: str, protocol: str) -> ChannelsConnection:
    return await ChannelsConnection.connect(broker.url, kernel, broker.token, protocol=protocol)


async def close_code(conn: ChannelsConnection) -> int:
    """Read until the broker closes the connection; its close code."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await conn.recv(timeout=30)
    assert info.value.rcvd is not None, "the connection dropped without a close frame"
    return info.value.rcvd.code


async def assert_executes(conn: ChannelsConnection) -> None:
    reply, outputs = await conn.execute("print(6 * 7)")
    assert reply.content_dict()["status"] == "ok"
    assert stream_text(outputs) == "42\n"


@pytest.mark.parametrize("kind", sorted(MALFORMED))
async def test_malformed_frames_close_with_a_clear_code(
    ws_broker: RunningBroker, target: str, witness: str, kind: str, figures: Counter[str]
) -> None:
    protocol, generate = MALFORMED[kind]
    rng = random.Random(f"{SEED}-{kind}")
    async with await connect(ws_broker, witness, "v1") as bystander:
        for _ in range(FRAMES_PER_KIND):
            frame = generate(rng)
            conn = await connect(ws_broker, target, protocol)
            await conn.ws.send(frame.payload)
            figures["ws_frames"] += 1
            assert await close_code(conn) == frame.close, repr(frame.payload)[:200]
        await assert_executes(bystander)
    async with await connect(ws_broker, target, protocol) as fresh:
        await assert_executes(fresh)


@pytest.mark.parametrize("protocol", sorted(ODD_BUT_VALID))
async def test_odd_but_valid_messages_keep_the_connection(
    ws_broker: RunningBroker, target: str, protocol: str, figures: Counter[str]
) -> None:
    rng = random.Random(f"{SEED}-odd-{protocol}")
    async with await connect(ws_broker, target, protocol) as conn:
        for _ in range(10 * FRAMES_PER_KIND):
            frame = ODD_BUT_VALID[protocol](rng)
            await conn.ws.send(frame.payload)
            figures["ws_frames"] += 1
        await assert_executes(conn)


def test_the_broker_logged_no_unhandled_error(ws_broker: RunningBroker) -> None:
    """Runs last in this module: every bad frame took a handled path."""
    log = ws_broker.log()
    assert "Traceback" not in log and "Uncaught exception" not in log
