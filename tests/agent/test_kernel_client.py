"""The kernel client over a real broker: structured results, callbacks, reconnects, timeouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.client import ChannelsConnection
from broker.client.results import Result
from llm_agent.collector import Callbacks
from llm_agent.kernel import KernelSession

from ..broker_process import start_broker

pytestmark = pytest.mark.slow

RICH_CODE = """
from IPython.display import display, HTML, Markdown, JSON, Latex, SVG, Image
import base64
display(HTML('<b>bold</b>'), Markdown('*md*'), Latex(r'$x^2$'))
display({'application/json': {'a': 1}, 'application/x-custom': 'kept'}, raw=True)
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'))
print('out')
import sys; print('err', file=sys.stderr)
import pytest

pytestmark = pytest.mark.slow
40 + 2
"""


async def test_every_mime_type_becomes_a_named_field(kernel_session: KernelSession) -> None:
    result = await kernel_session.execute(RICH_CODE)
    display = result.results
    assert display[0].html == "<b>bold</b>" and display[1].markdown == "*md*"
    assert display[2].latex == "$x^2$"
    assert display[3].json == {"a": 1} and display[3].extra == {"application/x-custom": "kept"}
    assert display[4].svg.startswith("<svg")
    assert result.text == "42" and result.results[-1].is_main_result
    assert result.stdout == "out\n" and result.stderr == "err\n"
    assert result.execution_count == 1 and result.ok


async def test_matplotlib_figure_arrives_as_png(kernel_session: KernelSession) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"
    result = await kernel_session.execute(code)
    assert [r.formats() for r in result.results] == [["text/plain", "image/png"]]
    assert result.results[0].png.startswith("iVBOR")  # base64 of the PNG signature


async def test_error_is_structured_without_colour_codes(kernel_session: KernelSession) -> None:
    result = await kernel_session.execute("def f():\n    raise ValueError('bad value')\nf()")
    assert result.error.name == "ValueError" and result.error.value == "bad value"
    assert "\x1b[" not in result.error.traceback and "raise ValueError" in result.error.traceback
    assert result.outputs[-1]["output_type"] == "error" and not result.ok


async def test_callbacks_fire_per_event_as_output_streams(kernel_session: KernelSession) -> None:
    seen: list[tuple[str, object]] = []

    def stream(name: str, text: str) -> None:
        # ipykernel may send one print as several stream messages ("b", then "\n")
        if seen and seen[-1][0] == name:
            text = str(seen.pop()[1]) + text
        seen.append((name, text))

    async def on_result(result: Result) -> None:
        seen.append(("result", result.text))

    callbacks = Callbacks(
        on_stdout=lambda t: stream("stdout", t),
        on_stderr=lambda t: stream("stderr", t),
        on_result=on_result,
        on_error=lambda e: seen.append(("error", e.name)),
    )
    code = "import sys\nprint('a', flush=True)\nprint('b', file=sys.stderr, flush=True)\n7\n"
    await kernel_session.execute(code, callbacks=callbacks)
    await kernel_session.execute("1/0", callbacks=callbacks)
    assert seen == [
        ("stdout", "a\n"),
        ("stderr", "b\n"),
        ("result", "7"),
        ("error", "ZeroDivisionError"),
    ]


async def test_state_persists_between_executions(kernel_session: KernelSession) -> None:
    await kernel_session.execute("x = 21")
    assert (await kernel_session.execute("x * 2")).text == "42"


async def test_dropped_websocket_reconnects_without_losing_output(
    kernel_session: KernelSession, workdir: Path
) -> None:
    # The kernel prints, then waits for a file the test creates only after it has
    # dropped the websocket: "after" is produced while nobody is connected.
    code = (
        "import os, time\nprint('before', flush=True)\n"
        "while not os.path.exists('go'):\n    time.sleep(0.01)\nprint('after')"
    )

    async def drop_then_release(text: str) -> None:
        if text.startswith("before"):
            await kernel_session.connection.ws.close()  # returns once the broker saw the close
            (workdir / "go").touch()

    result = await kernel_session.execute(code, callbacks=Callbacks(on_stdout=drop_then_release))
    assert result.stdout == "before\nafter\n" and result.ok
    assert kernel_session.reconnects == 1


async def test_websocket_dropped_abruptly_mid_output_resumes_without_loss(
    kernel_session: KernelSession, workdir: Path
) -> None:
    # 20 MB in one print reaches the client as three pieces; the socket is aborted (no close
    # handshake) after the first, so what the broker had already written is lost with it.
    # The kernel finishes only after the drop, so the reply cannot have arrived before it.
    code = (
        "import os, time\nprint(''.join(f'{i:0999d}\\n' for i in range(20_000)))\n"
        "while not os.path.exists('go'):\n    time.sleep(0.01)\nprint('after')"
    )
    big = "".join(f"{i:0999d}\n" for i in range(20_000)) + "\n"

    async def drop_then_release(text: str) -> None:
        if not (workdir / "go").exists():
            kernel_session.connection.ws.transport.abort()
            (workdir / "go").touch()

    result = await kernel_session.execute(code, callbacks=Callbacks(on_stdout=drop_then_release))
    assert result.stdout == big + "after\n" and result.ok
    assert kernel_session.reconnects == 1


async def test_attach_resumes_an_existing_kernel(kernel_session: KernelSession, broker) -> None:
    await kernel_session.execute("shared = 'yes'")
    other = await KernelSession.attach(broker.url, broker.token, kernel_session.kernel_id)
    try:
        assert (await other.execute("shared")).text == "'yes'"
    finally:
        await other.close()
    assert (await kernel_session.execute("1")).ok  # attaching never shuts the kernel down


async def test_timeout_interrupts_and_keeps_the_kernel(kernel_session: KernelSession) -> None:
    await kernel_session.execute("kept = 1")
    result = await kernel_session.execute("import time\ntime.sleep(60)", timeout=1)
    assert result.timed_out and result.interrupted and not result.kernel_restarted
    assert result.error.name == "KeyboardInterrupt"
    assert "interrupted" in result.notice() and "still there" in result.notice()
    assert (await kernel_session.execute("kept")).text == "1"


async def test_timeout_restarts_a_kernel_that_ignores_interrupts(
    kernel_session: KernelSession,
) -> None:
    kernel_session.interrupt_grace = 1.0  # the interrupt cannot work here: escalate soon
    await kernel_session.execute("lost = 1")
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    result = await kernel_session.execute(code, timeout=1)
    assert result.timed_out and result.kernel_restarted and result.restart_reason == "timeout"
    assert "variables" in result.notice() and "gone" in result.notice()
    after = await kernel_session.execute("'lost' in globals()")
    assert after.text == "False" and after.ok  # no stale `restarting` status leaks into it


async def test_crash_is_reported_as_a_restart(kernel_session: KernelSession) -> None:
    await kernel_session.execute("lost = 1")
    result = await kernel_session.execute("import os\nos._exit(1)")
    assert result.kernel_restarted and result.restart_reason == "crash" and not result.ok
    assert "crashed" in result.notice()
    assert (await kernel_session.execute("'lost' in globals()")).text == "False"


async def test_restart_between_executions_is_reported_by_the_next_one_which_still_runs(
    kernel_session: KernelSession, broker
) -> None:
    watcher = await ChannelsConnection.connect(broker.url, kernel_session.kernel_id, broker.token)
    try:
        await kernel_session.execute("lost = 1")
        await kernel_session.execute(
            "import os, threading\nthreading.Timer(0.2, os._exit, [1]).start()"
        )
        while True:  # the broker's synthetic status reaches every client
            msg = await watcher.recv(timeout=30)
            if msg.msg_type == "status" and msg.content_dict()["execution_state"] == "restarting":
                break
    finally:
        await watcher.close()
    result = await kernel_session.execute("'lost' in globals()")
    assert result.restarted_before and not result.kernel_restarted and result.ok
    assert result.text == "False"  # the code ran, on the fresh kernel
    assert "restarted before this code ran" in result.notice()
    assert not (await kernel_session.execute("1")).restarted_before


async def test_kernel_that_dies_for_good_is_reported_dead_and_can_be_restarted(
    tmp_path: Path, broker_env: dict[str, str]
) -> None:
    broker = start_broker(tmp_path, "--KernelRegistry.autorestart=False", env=broker_env)
    try:
        session = await KernelSession.start(broker.url, broker.token)
        try:
            result = await session.execute("import os\nos._exit(1)")
            assert result.kernel_died and not result.kernel_restarted
            assert "died" in result.notice() and "gone" in result.notice()
            await session.restart()
            assert (await session.execute("1 + 1")).text == "2"
        finally:
            await session.close()
    finally:
        broker.stop()


async def test_kernel_shut_down_underneath_is_reported_and_replaced(
    kernel_session: KernelSession, broker
) -> None:
    old_id = kernel_session.kernel_id
    broker.delete_kernel(old_id)  # the broker closes the websocket, then the kernel is gone
    result = await kernel_session.execute("1")
    assert result.kernel_died and "died" in result.notice()
    await kernel_session.restart()
    assert kernel_session.kernel_id != old_id
    assert (await kernel_session.execute("1 + 1")).text == "2"
