"""The execute API as a JSON client sees it: plain tracebacks, strict bodies, ISO times."""

from __future__ import annotations

import json
import re
from datetime import datetime

from .broker_process import RunningBroker

ESCAPE = "\x1b["
ISO = "%Y-%m-%dT%H:%M:%S.%fZ"  # the kernel model's format


def error_event(broker: RunningBroker, kernel: str, body: dict) -> dict:
    r = broker.request("POST", f"/api/kernels/{kernel}/execute", body)
    assert r.status_code == 200, r.text
    events = [json.loads(line) for line in r.text.splitlines()]
    return next(e for e in events if e["type"] == "error")


def traceback_of(events: list[dict]) -> str:
    return "\n".join(line for e in events if e["type"] == "error" for line in e["traceback"])


def test_tracebacks_are_plain_text_by_default(broker: RunningBroker, kernel: str) -> None:
    error = error_event(broker, kernel, {"code": "1 / 0"})
    text = "\n".join(error["traceback"])
    assert "ZeroDivisionError" in text
    assert ESCAPE not in text


def test_ansi_true_keeps_the_kernels_colours(broker: RunningBroker, kernel: str) -> None:
    error = error_event(broker, kernel, {"code": "1 / 0", "ansi": True})
    assert ESCAPE in "\n".join(error["traceback"])


def test_stored_executions_are_plain_unless_asked(broker: RunningBroker, kernel: str) -> None:
    r = broker.request(
        "POST", f"/api/kernels/{kernel}/execute", {"code": "1 / 0", "background": True}
    )
    assert r.status_code == 202, r.text
    path = f"/api/kernels/{kernel}/executions/{r.json()['id']}"
    broker.execute(kernel, "1")  # queued behind it: the background one has ended
    plain = broker.request("GET", path).json()
    raw = broker.request("GET", path + "?ansi=true").json()
    assert ESCAPE not in traceback_of(plain["events"])
    assert ESCAPE in traceback_of(raw["events"])


def test_a_misspelt_field_is_refused_by_name(broker: RunningBroker, kernel: str) -> None:
    r = broker.request("POST", f"/api/kernels/{kernel}/execute", {"code": "1", "timout": 1})
    assert r.status_code == 400
    body = r.json()
    assert set(body) >= {"reason", "message"}
    assert "timout" in body["message"]


def test_execution_times_use_the_kernel_models_format(broker: RunningBroker, kernel: str) -> None:
    r = broker.request("POST", f"/api/kernels/{kernel}/execute", {"code": "1", "background": True})
    path = f"/api/kernels/{kernel}/executions/{r.json()['id']}"
    broker.execute(kernel, "1")
    done = broker.request("GET", path).json()
    for name in ("created", "started", "finished"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", done[name]), done[name]
        datetime.strptime(done[name], ISO)
    kernel_model = broker.request("GET", f"/api/kernels/{kernel}").json()
    datetime.strptime(kernel_model["last_activity"], ISO)


def test_the_api_document_is_public_as_the_404_hint_says(broker: RunningBroker) -> None:
    missing = broker.request("GET", "/api/no-such-thing")
    assert missing.status_code == 404
    assert "/api/spec.yaml" in missing.json()["message"]
    assert broker.request("GET", "/api/spec.yaml", token="").status_code == 200
