"""Durability: kernels outlive the broker when it has a state directory (kill -9, SIGTERM,
adoption), and a websocket that drops resumes where its client stopped receiving."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import requests
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from broker.client import ChannelsConnection, stream_text
from broker.client.channels import channels_url
from broker.provisioners.local import pid_alive
from broker.store import KernelStore
from broker.wire import Message

from .broker_process import RunningBroker, kill_recorded_kernels, running, start_broker
from .conftest import write_kernelspec

pytestmark = pytest.mark.slow

# 50 MB printed at once (one message, split in 8 MiB pieces on the way out) or in fifty
# flushed prints; every line differs, so the text proves order and that nothing repeats.
FIFTY_MB = {
    "one print": (
        "print(''.join(f'{i:0999d}\\n' for i in range(50_000)))",
        "".join(f"{i:0999d}\n" for i in range(50_000)) + "\n",
    ),
    "fifty prints": (
        "for i in range(50): print(f'{i:02d}' * 500_000, flush=True)",
        "".join(f"{i:02d}" * 500_000 + "\n" for i in range(50)),
    ),
}


@pytest.fixture
def state_dir(tmp_path):
    yield tmp_path / "state"
    kill_recorded_kernels(tmp_path / "state")


def start(tmp_path, state_dir, broker_env, *args):
    return start_broker(tmp_path, f"--state-dir={state_dir}", *args, env=broker_env)


async def test_kill_9_during_execution_keeps_kernel_and_variables(
    tmp_path, state_dir, broker_env
) -> None:
    first = start(tmp_path, state_dir, broker_env)
    kernel = first.start_kernel()
    first.execute(kernel, "answer = 42")
    conn = await ChannelsConnection.connect(first.url, kernel, first.token, session_id="s1")
    # the kernel is running it: the broker dies in the middle of the execution
    await running(conn, "import time; time.sleep(1); done = True")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await conn.recv()

    second = start(tmp_path, state_dir, broker_env)
    try:
        assert kernel in [k["id"] for k in second.request("GET", "/api/kernels").json()]
        assert "kernel adopted id=" + kernel in second.log()
        async with await ChannelsConnection.connect(
            second.url, kernel, second.token, session_id="s1"
        ) as again:
            reply, outputs = await again.execute("print(answer, done)")
            assert stream_text(outputs) == "42 True\n"
    finally:
        second.delete_kernel(kernel)
        second.stop()


async def test_sigterm_keeps_kernels_and_tells_clients_to_reconnect(
    tmp_path, state_dir, broker_env
) -> None:
    first = start(tmp_path, state_dir, broker_env)
    kernel = first.start_kernel()
    first.execute(kernel, "x = 'kept'")
    conn = await ChannelsConnection.connect(first.url, kernel, first.token)
    assert first.stop() == 0
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(10):
            while True:
                await conn.recv()
    assert info.value.rcvd.code == 1012
    second = start(tmp_path, state_dir, broker_env)
    try:
        assert second.stdout(kernel, "print(x)") == "kept\n"
    finally:
        second.delete_kernel(kernel)
        second.stop()


def test_records_are_private_and_removed_on_shutdown(tmp_path, state_dir, broker_env) -> None:
    b = start(tmp_path, state_dir, broker_env, "--pool-size=0")
    try:
        kernel = b.start_kernel()
        record = state_dir / "kernels" / f"{kernel}.json"
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        assert json.loads(record.read_text())["owner"] == "default"
        b.delete_kernel(kernel)
        assert not record.exists()
    finally:
        b.stop()


def test_a_record_whose_kernel_is_gone_is_dropped(tmp_path, state_dir, broker_env) -> None:
    first = start(tmp_path, state_dir, broker_env, "--pool-size=0")
    kernel = first.start_kernel()
    pid = int(first.stdout(kernel, "import os; print(os.getpid())"))
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    os.kill(pid, signal.SIGKILL)
    second = start(tmp_path, state_dir, broker_env, "--pool-size=0")
    try:
        assert second.request("GET", "/api/kernels").json() == []
        assert f"kernel record dropped id={kernel}" in second.log()
        assert not (state_dir / "kernels" / f"{kernel}.json").exists()
    finally:
        second.stop()


def test_a_zombie_is_not_alive_and_is_reaped() -> None:
    """A kernel that died but was not reaped (its parent, a killed broker, cannot) must not
    look alive: the monitor would never restart it and a shutdown would wait forever."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert not pid_alive(child.pid)
    with pytest.raises(ChildProcessError):  # pid_alive reaped it
        os.waitpid(child.pid, os.WNOHANG)


def test_kill_9_in_the_middle_of_a_start_leaves_no_orphan(tmp_path, state_dir, broker_env) -> None:
    """The process is recorded as soon as it exists, before it answers: the next broker
    finds the record, sees the kernel never answers, and ends it."""
    root = tmp_path / "jupyter"
    write_kernelspec(root, "mute", argv=[sys.executable, "-c", "import time; time.sleep(600)"])
    env = {**broker_env, "JUPYTER_PATH": f"{root}{os.pathsep}{broker_env['JUPYTER_PATH']}"}
    first = start(tmp_path, state_dir, env, "--pool-size=0")
    try:
        with ThreadPoolExecutor(1) as pool:
            starting = pool.submit(first.request, "POST", "/api/kernels", {"name": "mute"})
            store = KernelStore(str(state_dir))
            deadline = time.monotonic() + 60
            while not store.load_all() and time.monotonic() < deadline:
                time.sleep(0.05)  # the record file is the event; nothing else announces it
            (record,) = store.load_all()
            pid = record["provisioner_info"]["pid"]
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait()
            assert isinstance(starting.exception(), requests.ConnectionError)
    finally:
        first.stop()  # already dead unless the test failed before the kill
    assert pid_alive(pid)
    second = start(tmp_path, state_dir, env, "--pool-size=0", "--KernelRegistry.adopt_timeout=1")
    try:
        assert f"kernel record dropped id={record['id']}" in second.log()
        assert not pid_alive(pid) and store.load_all() == []
    finally:
        second.stop()


def test_pool_kernels_survive_a_restart_too(tmp_path, state_dir, broker_env) -> None:
    first = start(tmp_path, state_dir, broker_env, "--pool-size=1")
    from .test_pools import wait_for_pool

    asyncio.run(wait_for_pool(first, 1))
    assert first.stop() == 0
    second = start(tmp_path, state_dir, broker_env, "--pool-size=1")
    try:
        assert "pool kernel adopted" in second.log()
        kernel = second.start_kernel()
        assert second.stdout(kernel, "print(1)") == "1\n"
        second.delete_kernel(kernel)
        asyncio.run(wait_for_pool(second, 1))  # refills wait for hand-outs to pause
    finally:
        second.request("GET", "/api/kernels")
        second.stop()
    # without a state directory the drain leaves nothing running; here the pool remains
    records = list((state_dir / "kernels").glob("*.json"))
    assert len(records) >= 1
    third = start(tmp_path, state_dir, broker_env, "--pool-size=0")
    third.stop()  # adopts the pool kernels and, with no pool configured, shuts them down


def stdout_of(messages: list[Message], request: Message) -> str:
    return "".join(
        m.content_dict()["text"]
        for m in messages
        if m.msg_type == "stream" and m.parent_msg_id == request.msg_id
    )


def finished(messages: list[Message], request: Message) -> bool:
    """Whether the request's reply and its idle status are among ``messages``."""
    mine = [m for m in messages if m.parent_msg_id == request.msg_id]
    idle = (m.msg_type == "status" and m.content_dict()["execution_state"] == "idle" for m in mine)
    return any(m.channel == "shell" for m in mine) and any(idle)


async def until_done(
    conn: ChannelsConnection, request: Message, before: list[Message] | None = None
) -> list[Message]:
    """What ``conn`` receives until the request is finished, counting what came ``before``
    on another connection (the reply may overtake 50 MB of iopub output)."""
    received: list[Message] = []
    while not finished([*(before or []), *received], request):
        received.append(await conn.recv(timeout=120))
    return received


@pytest.mark.parametrize("protocol", ["v1", "legacy"])
@pytest.mark.parametrize("output", FIFTY_MB, ids=list(FIFTY_MB))
async def test_abrupt_drop_mid_output_resumes_with_everything_exactly_once(
    broker: RunningBroker, kernel: str, output: str, protocol: str
) -> None:
    code, expected = FIFTY_MB[output]
    kw = {"session_id": "drops", "protocol": protocol}
    first = await ChannelsConnection.connect(broker.url, kernel, broker.token, **kw)
    request = await first.request("shell", "execute_request", {"code": code})
    received = []
    while not stdout_of(received, request):
        received.append(await first.recv(timeout=120))
    # No close handshake: what the broker wrote after this is lost with the socket.
    first.ws.transport.abort()
    async with await ChannelsConnection.connect(
        broker.url, kernel, broker.token, resume_after=first.last_msg_id, **kw
    ) as again:
        resumed = await until_done(again, request, received)
    assert resumed[0].msg_type == "stream"  # the rest of the output came from the log
    received += resumed
    ids = [m.msg_id for m in received]
    assert len(ids) == len(set(ids))
    assert stdout_of(received, request) == expected


async def test_resume_after_a_message_sends_exactly_what_followed_it(
    broker: RunningBroker, kernel: str
) -> None:
    async with await ChannelsConnection.connect(
        broker.url, kernel, broker.token, session_id="known"
    ) as conn:
        request = await conn.request(
            "shell", "execute_request", {"code": "for c in 'abc': print(c, flush=True)"}
        )
        received = await until_done(conn, request)
    stream = [m for m in received if m.msg_type == "stream"]
    later = received[received.index(stream[0]) + 1 :]
    async with await ChannelsConnection.connect(
        broker.url, kernel, broker.token, session_id="known", resume_after=stream[0].msg_id
    ) as again:
        replayed = [await again.recv(timeout=30) for _ in later]
        assert [m.msg_id for m in replayed] == [m.msg_id for m in later]
        reply, _ = await again.execute("1")  # then live messages, nothing else in between
        assert reply.content_dict()["status"] == "ok"


async def test_resume_from_an_unknown_id_says_so_then_replays_the_whole_log(
    broker: RunningBroker, kernel: str
) -> None:
    async with await ChannelsConnection.connect(
        broker.url, kernel, broker.token, session_id="unknown"
    ) as conn:
        await conn.execute("print('logged')")
    async with await ChannelsConnection.connect(
        broker.url, kernel, broker.token, session_id="unknown", resume_after="never-sent-0"
    ) as again:
        notice = await again.recv(timeout=30)
        assert notice.msg_type == "stream" and notice.content_dict()["name"] == "stderr"
        assert "never-sent-0" in notice.content_dict()["text"]
        assert "may be missing" in notice.content_dict()["text"]
        replayed: list[Message] = []
        while not stream_text(replayed).endswith("\n"):
            replayed.append(await again.recv(timeout=30))
        assert stream_text(replayed) == "logged\n"


async def test_resuming_closes_the_sessions_other_connections(
    broker: RunningBroker, kernel: str
) -> None:
    stale = await ChannelsConnection.connect(broker.url, kernel, broker.token, session_id="twice")
    async with await ChannelsConnection.connect(
        broker.url, kernel, broker.token, session_id="twice", resume_after="x"
    ):
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(30):
                while True:
                    await stale.recv()
        assert info.value.rcvd.code == 1000


@pytest.mark.parametrize("value", ["x" * 257, "a b", "<script>", "caf\u00e9", "a/b"])
async def test_invalid_resume_after_is_refused_with_400(
    broker: RunningBroker, kernel: str, value: str
) -> None:
    url = channels_url(broker.url, kernel, "s") + "&resume_after=" + quote(value)
    with pytest.raises(InvalidStatus) as info:
        await connect(url, additional_headers=broker.headers())
    assert info.value.response.status_code == 400
    assert set(json.loads(info.value.response.body)) == {"reason", "message"}
