"""The `llm-agent` command: `ask` with an uploaded file, and `serve`, as real processes."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import nbformat
import pytest
import requests

from ..broker_process import RunningBroker
from .agent_process import SERVE_TOKEN, agent_command, agent_env, serve_command, serving
from .scripted_llm import ScriptedLLM, Turn, expect_tool_messages, python

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {SERVE_TOKEN}"}


def run_agent(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=agent_env(), capture_output=True, text=True, timeout=120
    )


def one_line_error(done: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The one stderr line of a failed command: no traceback, no notebook left behind."""
    assert done.returncode == status, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def notebooks(where: Path) -> list[str]:
    return sorted(p.name for p in where.glob("*.ipynb"))


def kernel_ids(broker: RunningBroker) -> set[str]:
    return {k["id"] for k in broker.request("GET", "/api/kernels").json()}


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
    assert "running code" in done.stderr and "read_csv('data.csv')" in done.stderr
    assert f"notebook saved to {notebook}" in done.stderr
    assert (tmp_path / "total.txt").read_text() == "3"
    cells = nbformat.read(notebook, as_version=4).cells
    assert cells[-3].outputs[0].text == "3\n"


def test_a_missing_download_is_one_line_and_the_answer_is_kept(
    llm: ScriptedLLM, broker: RunningBroker, tmp_path: Path
) -> None:
    llm.add(Turn(content="Nothing to save."))
    command = agent_command(llm, broker.url, broker.token, "ask", "Hi", "--download", "none.txt")
    done = run_agent([*command, "--notebook", "chat.ipynb"], tmp_path)
    assert done.returncode == 1 and done.stdout.strip() == "Nothing to save."
    *_, saved, error = done.stderr.strip().splitlines()
    assert saved == "notebook saved to chat.ipynb"
    assert (
        error.startswith("llm-agent: error: cannot download none.txt: ")
        and error.endswith("(404)")
        and "Traceback" not in done.stderr
    )
    assert notebooks(tmp_path) == ["chat.ipynb"]


def test_serve_answers_and_shuts_session_kernels_down_on_sigterm(
    llm: ScriptedLLM, broker: RunningBroker, tmp_path: Path
) -> None:
    llm.add(Turn(content="Hello there."))
    command = serve_command(llm, broker.url, broker.token)
    with serving(command, tmp_path) as url:
        r = requests.post(
            url + "/api/chat", json={"message": "Hi", "session_id": "s1"}, headers=AUTH, timeout=60
        )
        assert r.headers["Content-Type"] == "text/event-stream"
        assert "event: answer\ndata: " + json.dumps({"text": "Hello there."}) in r.text
        notebook = nbformat.reads(
            requests.get(url + "/api/chat/s1/notebook", headers=AUTH, timeout=10).text, 4
        )
        kernels_before = {k["id"] for k in broker.request("GET", "/api/kernels").json()}
    assert notebook.cells[-1].source == "**Assistant:** Hello there."
    kernels_after = {k["id"] for k in broker.request("GET", "/api/kernels").json()}
    assert len(kernels_before - kernels_after) == 1


def test_serve_without_a_token_makes_one_prints_it_and_requires_it(
    llm: ScriptedLLM, tmp_path: Path
) -> None:
    command = agent_command(llm, "http://127.0.0.1:1", "none", "serve", "--port", "0")
    proc = subprocess.Popen(command, cwd=tmp_path, env=agent_env(), stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().rsplit(" ", 1)[1].strip().rstrip("/")
        label, token = proc.stdout.readline().decode().split()
        assert label == "Token:" and len(token) >= 32
        refused = requests.get(url + "/api/chat", timeout=10)
        allowed = requests.get(
            url + "/api/chat", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert refused.status_code == 401 and allowed.json() == {"sessions": []}


def test_serve_answers_502_naming_a_broker_it_cannot_reach(
    llm: ScriptedLLM, tmp_path: Path
) -> None:
    command = serve_command(llm, "http://127.0.0.1:1", "none")
    with serving(command, tmp_path) as url:
        r = requests.post(url + "/api/chat", json={"message": "Hi"}, headers=AUTH, timeout=60)
    assert r.status_code == 502
    assert r.json()["message"].startswith("cannot reach the broker at http://127.0.0.1:1: ")


def test_serve_names_a_model_server_it_cannot_reach_in_the_error_event(
    llm: ScriptedLLM, broker: RunningBroker, tmp_path: Path
) -> None:
    command = serve_command(llm, broker.url, broker.token)
    command[command.index("--base-url") + 1] = "http://127.0.0.1:1/v1"
    with serving([*command, "--max-retries", "0"], tmp_path) as url:
        r = requests.post(url + "/api/chat", json={"message": "Hi"}, headers=AUTH, timeout=60)
    error = next(b for b in r.text.split("\n\n") if b.startswith("event: error"))
    message = json.loads(error.split("data: ", 1)[1])["message"]
    assert message.startswith("cannot reach the model server at http://127.0.0.1:1/v1 "), message


def test_an_unreachable_broker_is_one_line_naming_it(llm: ScriptedLLM, tmp_path: Path) -> None:
    done = run_agent(agent_command(llm, "http://127.0.0.1:1", "none", "ask", "Hello"), tmp_path)
    assert one_line_error(done) == (
        "llm-agent: error: cannot reach the broker at http://127.0.0.1:1: connection refused; "
        "start one (./kb serve listens on http://127.0.0.1:8889) or give its URL with "
        "--broker or BROKER_URL"
    )
    assert notebooks(tmp_path) == []


def test_the_default_broker_is_where_kb_serve_listens(llm: ScriptedLLM, tmp_path: Path) -> None:
    command = agent_command(llm, "", "", "ask", "Hello")
    del command[command.index("--broker") : command.index("--broker") + 4]  # and --token
    line = one_line_error(run_agent(command, tmp_path))
    assert "the broker at http://127.0.0.1:8889" in line


def test_an_unreachable_model_server_is_one_line_and_leaves_no_notebook(
    llm: ScriptedLLM, broker: RunningBroker, tmp_path: Path
) -> None:
    command = agent_command(llm, broker.url, broker.token, "ask", "Hello", "--max-retries", "0")
    command[command.index("--base-url") + 1] = "http://127.0.0.1:1/v1"
    before = kernel_ids(broker)
    line = one_line_error(run_agent(command, tmp_path))
    assert line.startswith(
        "llm-agent: error: cannot reach the model server at http://127.0.0.1:1/v1"
    )
    assert line.endswith("start it, or give its /v1 URL with --base-url or OPENAI_BASE_URL")
    assert notebooks(tmp_path) == []
    assert kernel_ids(broker) <= before  # the kernel it started is shut down


def test_without_a_model_server_url_or_key_ask_names_both(llm: ScriptedLLM, tmp_path: Path) -> None:
    command = agent_command(llm, "http://127.0.0.1:1", "none", "ask", "Hello")
    for option in ("--base-url", "--api-key"):
        del command[command.index(option) : command.index(option) + 2]
    line = one_line_error(run_agent(command, tmp_path), status=2)
    assert line.startswith("llm-agent ask: error: no model server: give its /v1 URL with ")
    assert "--base-url or OPENAI_BASE_URL" in line and "set OPENAI_API_KEY" in line


def test_with_a_key_and_no_url_ask_says_it_uses_the_hosted_api(
    llm: ScriptedLLM, tmp_path: Path
) -> None:
    """(The broker is unreachable, so nothing is sent to the hosted API.)"""
    command = agent_command(llm, "http://127.0.0.1:1", "none", "ask", "Hello")
    del command[command.index("--base-url") : command.index("--base-url") + 2]
    done = run_agent(command, tmp_path)
    assert done.returncode == 1
    first, error = done.stderr.strip().splitlines()
    assert first.startswith("llm-agent: no --base-url: using https://")
    assert error.startswith("llm-agent: error: cannot reach the broker")


def test_a_mistyped_option_is_one_line_with_the_close_match(
    llm: ScriptedLLM, tmp_path: Path
) -> None:
    command = [*agent_command(llm, "http://127.0.0.1:1", "none", "ask", "Hello"), "--modle", "m"]
    assert one_line_error(run_agent(command, tmp_path), status=2) == (
        "llm-agent ask: error: unknown option --modle; did you mean --model? (llm-agent ask --help)"
    )


def test_a_broker_url_without_a_scheme_is_one_line(llm: ScriptedLLM, tmp_path: Path) -> None:
    command = agent_command(llm, "127.0.0.1:8889", "none", "ask", "Hello")
    line = one_line_error(run_agent(command, tmp_path), status=2)
    assert line.startswith("llm-agent ask: error: argument --broker: '127.0.0.1:8889' is not a URL")


WEAK = "```python\nprint(6 * 7)\n```"  # what a small model answers instead of calling the tool


@pytest.mark.parametrize(
    ("tool_choice", "script", "sent", "answer"),
    [
        ("auto", [Turn(content=WEAK, when_required=[python("print(6 * 7)")])], [None], WEAK),
        (
            "required-first",
            [
                Turn(content=WEAK, when_required=[python("print(6 * 7)")]),
                Turn(content="It is 42.", check=expect_tool_messages("42")),
            ],
            ["required", None],
            "It is 42.",
        ),
        (
            "required",
            [
                Turn(content=WEAK, when_required=[python("print(6 * 7)")]),
                Turn(content="Done?", when_required=[python("print('again')")]),
                Turn(content="It is 42.", check=expect_tool_messages("again")),  # no tools now
            ],
            ["required", "required", None],
            "It is 42.",
        ),
        ("none", [Turn(content="No code: 42.")], ["none"], "No code: 42."),
    ],
    ids=["auto", "required-first", "required", "none"],
)
def test_tool_choice_is_sent_on_the_rounds_it_names(
    llm: ScriptedLLM,
    broker: RunningBroker,
    tmp_path: Path,
    tool_choice: str,
    script: list[Turn],
    sent: list[str | None],
    answer: str,
) -> None:
    llm.add(*script)
    command = agent_command(llm, broker.url, broker.token, "ask", "What is 6*7?")
    done = run_agent([*command, "--tool-choice", tool_choice, "--max-rounds", "2"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == answer
    assert [r.get("tool_choice") for r in llm.requests] == sent
