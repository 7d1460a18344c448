"""The `llm-agent` command: `ask` with an uploaded file, and `serve`, as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import requests

from ..broker_process import RunningBroker
from .scripted_llm import VISION_MODEL, ScriptedLLM, Turn, expect_tool_messages, python

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def agent_command(llm: ScriptedLLM, broker_url: str, token: str, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "llm_agent", *args,
        "--broker", broker_url, "--token", token,
        "--base-url", llm.url + "/v1", "--model", VISION_MODEL, "--api-key", "test-key",
    ]  # fmt: skip


def agent_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_ask_prints_the_answer_shows_tool_runs_and_saves_the_notebook(
    llm: ScriptedLLM, broker: RunningBroker, tmp_path: Path
) -> None:
    (tmp_path / "data.csv").write_text("a\n1\n2\n")
    llm.add(
        Turn(
            tool_calls=[
                python(
                    "import pandas as pd\ntotal = pd.read_csv('data.csv').a.sum()\nprint(total)"
                ),
                python("open('total.txt', 'w').write(str(total))"),
            ]
        ),
        Turn(content="The sum is 3.", check=expect_tool_messages("3", "Out[2]: 1")),
    )
    notebook = tmp_path / "chat.ipynb"
    command = agent_command(
        llm,
        broker.url,
        broker.token,
        "ask",
        "Sum column a",
        "--file",
        "data.csv",
        "--download",
        "total.txt",
    )
    done = subprocess.run(
        [*command, "--notebook", str(notebook)],
        cwd=tmp_path, env=agent_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "The sum is 3."
    assert "running python" in done.stderr and "read_csv('data.csv')" in done.stderr
    assert f"notebook saved to {notebook}" in done.stderr
    assert (tmp_path / "total.txt").read_text() == "3"
    cells = nbformat.read(notebook, as_version=4).cells
    assert cells[-3].outputs[0].text == "3\n"


def test_serve_answers_and_shuts_session_kernels_down_on_sigterm(
    llm: ScriptedLLM, broker: RunningBroker, tmp_path: Path
) -> None:
    llm.add(Turn(content="Hello there."))
    command = agent_command(llm, broker.url, broker.token, "serve", "--port", "0")
    proc = subprocess.Popen(command, cwd=tmp_path, env=agent_env(), stdout=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        assert "llm-agent listening on" in line, line
        url = line.rsplit(" ", 1)[1].strip().rstrip("/")
        r = requests.post(url + "/api/chat", json={"message": "Hi", "session_id": "s1"}, timeout=60)
        assert r.headers["Content-Type"] == "text/event-stream"
        assert "event: answer\ndata: " + json.dumps({"text": "Hello there."}) in r.text
        notebook = nbformat.reads(requests.get(url + "/api/chat/s1/notebook", timeout=10).text, 4)
        kernels_before = {k["id"] for k in broker.request("GET", "/api/kernels").json()}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert notebook.cells[-1].source == "**Assistant:** Hello there."
    kernels_after = {k["id"] for k in broker.request("GET", "/api/kernels").json()}
    assert len(kernels_before - kernels_after) == 1


def test_unreachable_broker_is_a_one_line_error(llm: ScriptedLLM, tmp_path: Path) -> None:
    done = subprocess.run(
        agent_command(llm, "http://127.0.0.1:1", "none", "ask", "Hello"),
        cwd=tmp_path, env=agent_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("llm-agent: error: ") and "Traceback" not in done.stderr
