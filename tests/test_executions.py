"""POST /api/kernels/{id}/execute: streamed events, background runs, order, cancel, timeout."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator

import requests

from .broker_process import RunningBroker


def events_of(r: requests.Response) -> list[dict]:
    return [json.loads(line) for line in r.text.splitlines()]


def test_streams_every_kind_of_output(broker: RunningBroker, kernel: str) -> None:
    code = (
        "import sys\n"
        "print('out'); print('err', file=sys.stderr)\n"
        "from IPython.display import display, HTML\n"
        "display(HTML('<b>b</b>'))\n"
        "6 * 7"
    )
    events = broker.execute(kernel, code)
    by_type = {e["type"]: e for e in events}
    assert events[0]["type"] == "start" and events[-1]["type"] == "end"
    for name, text in [("stdout", "out\n"), ("stderr", "err\n")]:
        assert "".join(e["text"] for e in events if e["type"] == name) == text
    assert by_type["display_data"]["data"]["text/html"] == "<b>b</b>"
    assert by_type["execute_result"]["data"]["text/plain"] == "42"
    assert events[-1]["status"] == "ok" and events[-1]["execution_count"] == 1


def test_errors_are_structured(broker: RunningBroker, kernel: str) -> None:
    events = broker.execute(kernel, "raise ValueError('nope')")
    error = next(e for e in events if e["type"] == "error")
    assert (error["name"], error["value"]) == ("ValueError", "nope")
    assert error["traceback"] and events[-1]["status"] == "error"


def test_background_execution_is_read_later(broker: RunningBroker, kernel: str) -> None:
    r = broker.request(
        "POST", f"/api/kernels/{kernel}/execute", {"code": "print('later')", "background": True}
    )
    assert r.status_code == 202
    exec_id = r.json()["id"]
    assert r.headers["Location"].endswith(exec_id)
    # a streamed execution queued behind it finishes after it
    broker.execute(kernel, "1")
    done = broker.request("GET", f"/api/kernels/{kernel}/executions/{exec_id}").json()
    assert done["status"] == "ok"
    assert {"type": "stdout", "text": "later\n"} in done["events"]
    listed = broker.request("GET", f"/api/kernels/{kernel}/executions").json()
    assert exec_id in [e["id"] for e in listed]


def test_executions_run_one_at_a_time_in_order(broker: RunningBroker, kernel: str) -> None:
    ids = [
        broker.request(
            "POST",
            f"/api/kernels/{kernel}/execute",
            {
                "code": f"import time; time.sleep(0.05); o = globals().get('o', []) + [{i}]",
                "background": True,
            },
        ).json()["id"]
        for i in range(5)
    ]
    assert broker.stdout(kernel, "print(o)") == "[0, 1, 2, 3, 4]\n"
    counts = [
        broker.request("GET", f"/api/kernels/{kernel}/executions/{i}").json()["execution_count"]
        for i in ids
    ]
    assert counts == sorted(counts)


def test_timeout_interrupts_the_kernel(broker: RunningBroker, kernel: str) -> None:
    began = time.monotonic()
    r = broker.request(
        "POST",
        f"/api/kernels/{kernel}/execute",
        {"code": "import time; time.sleep(60)", "timeout": 1},
    )
    events = events_of(r)
    assert events[-1]["status"] == "timeout" and time.monotonic() - began < 30
    assert any(e["type"] == "error" and e["name"] == "KeyboardInterrupt" for e in events)
    assert broker.stdout(kernel, "print('alive')") == "alive\n"


@contextlib.contextmanager
def sleeping_execution(broker: RunningBroker, kernel: str) -> Iterator[tuple[str, Iterator[bytes]]]:
    """A streamed execution that printed 'sleeping' and sleeps: (its id, the rest of its lines).

    Waiting for the print makes sure the kernel runs the code before the test acts on it.
    """
    url = f"{broker.url}/api/kernels/{kernel}/execute"
    body = json.dumps({"code": "import time; print('sleeping', flush=True); time.sleep(60)"})
    with requests.post(url, data=body, headers=broker.headers(), stream=True, timeout=60) as r:
        lines = r.iter_lines()
        exec_id = json.loads(next(lines))["execution_id"]
        assert json.loads(next(lines)) == {"type": "stdout", "text": "sleeping\n"}
        yield exec_id, lines


def test_cancel_a_queued_and_a_running_execution(broker: RunningBroker, kernel: str) -> None:
    with sleeping_execution(broker, kernel) as (running, lines):
        queued = broker.request(
            "POST", f"/api/kernels/{kernel}/execute", {"code": "print('never')", "background": True}
        ).json()["id"]
        r2 = broker.request("DELETE", f"/api/kernels/{kernel}/executions/{queued}")
        assert r2.status_code == 200 and r2.json()["status"] == "cancelled"
        broker.request("DELETE", f"/api/kernels/{kernel}/executions/{running}")
        rest = [json.loads(line) for line in lines]
    assert rest[-1]["status"] == "cancelled"
    assert broker.stdout(kernel, "print('next')") == "next\n"


def test_client_disconnect_interrupts(broker: RunningBroker, kernel: str) -> None:
    with sleeping_execution(broker, kernel):
        pass  # the client goes away while the kernel sleeps
    began = time.monotonic()
    assert broker.stdout(kernel, "print('free')") == "free\n"
    assert time.monotonic() - began < 30


def test_code_is_required_and_typed(broker: RunningBroker, kernel: str) -> None:
    for body in ({}, {"code": 5}, {"code": "1", "timeout": -1}, {"code": "1", "timeout": "x"}):
        r = broker.request("POST", f"/api/kernels/{kernel}/execute", body)
        assert r.status_code == 400, body


def test_unknown_execution_is_404(broker: RunningBroker, kernel: str) -> None:
    assert broker.request("GET", f"/api/kernels/{kernel}/executions/nope").status_code == 404


def test_parallel_streams_on_two_kernels(broker: RunningBroker) -> None:
    kernels = [broker.start_kernel() for _ in range(2)]
    results: dict[str, str] = {}
    try:
        threads = [
            threading.Thread(
                target=lambda k=k: results.__setitem__(k, broker.stdout(k, "print(1)"))
            )
            for k in kernels
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert list(results.values()) == ["1\n", "1\n"]
    finally:
        for k in kernels:
            broker.delete_kernel(k)


def test_restart_ends_a_running_execution_as_aborted(broker: RunningBroker, kernel: str) -> None:
    with sleeping_execution(broker, kernel) as (_, lines):
        assert broker.request("POST", f"/api/kernels/{kernel}/restart").status_code == 200
        rest = [json.loads(line) for line in lines]
    assert rest[-1]["status"] == "aborted"
