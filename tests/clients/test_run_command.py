"""`kernel-broker run NOTEBOOK`: parameters, output file, errors, kernel death, cleanup."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

from broker.client.parameters import inject_parameters, parse_value

from ..broker_process import RunningBroker
from .conftest import NOTEBOOKS, PYTHON, subprocess_env


def run_command(*args: str, token: str | None = None, timeout: float = 120):
    env = subprocess_env()
    env.pop("BROKER_URL", None)
    env.pop("BROKER_TOKEN", None)
    if token is not None:
        env["BROKER_TOKEN"] = token
    return subprocess.run(
        [PYTHON, "-m", "broker", "run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def kernels(broker: RunningBroker) -> list[dict]:
    return broker.request("GET", "/api/kernels").json()


@pytest.fixture
def run_broker(tmp_path: Path, clients_broker: RunningBroker):
    """The clients broker, checked to hold no kernel before and after each run."""
    assert kernels(clients_broker) == []
    yield clients_broker
    assert kernels(clients_broker) == [], "kernel-broker run left a kernel running"


def test_parse_value_converts_like_papermill() -> None:
    assert [parse_value(v) for v in ("True", "None", "3", "2.5", "text")] == [
        True,
        None,
        3,
        2.5,
        "text",
    ]


def test_parameters_go_after_the_parameters_cell() -> None:
    nb = nbformat.read(NOTEBOOKS / "parameters.ipynb", as_version=4)
    inject_parameters(nb, {"alpha": 2})
    inject_parameters(nb, {"alpha": 3, "name": "it's"})  # replaces, never stacks
    assert [c.metadata.get("tags") for c in nb.cells] == [
        ["parameters"],
        ["injected-parameters"],
        None,
    ]
    assert nb.cells[1].source == '# Parameters\nalpha = 3\nname = "it\'s"\n'


def test_parameters_go_first_without_a_parameters_cell() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(x)")])
    inject_parameters(nb, {"x": 1})
    assert nb.cells[0].metadata["tags"] == ["injected-parameters"]


@pytest.mark.slow
def test_run_writes_the_executed_notebook(tmp_path: Path, run_broker: RunningBroker) -> None:
    out = tmp_path / "out.ipynb"
    done = run_command(
        str(NOTEBOOKS / "parameters.ipynb"),
        *("--url", run_broker.url, "--token", run_broker.token),
        *("-p", "alpha", "42", "-r", "name", "7"),
        *("--output", str(out)),
    )
    assert done.returncode == 0, done.stderr
    nb = nbformat.read(out, as_version=4)
    assert nb.cells[2].outputs[0]["text"] == "42 '7'\n"
    assert "[3/3] cell 3: print(alpha" in done.stderr  # progress numbers cells as JupyterLab


@pytest.mark.slow
def test_token_comes_from_the_environment(tmp_path: Path, run_broker: RunningBroker) -> None:
    out = tmp_path / "out.ipynb"
    args = (str(NOTEBOOKS / "parameters.ipynb"), "--url", run_broker.url, "-o", str(out))
    assert run_command(*args, token=run_broker.token).returncode == 0
    refused = run_command(*args, token="wrong")
    assert refused.returncode == 3
    assert "refused the token" in refused.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("problem", "says"),
    [
        ("wrong token", r"refused the token: give the token it printed at startup with --token"),
        (
            "refused connection",
            r"cannot reach the broker at http://127\.0\.0\.1:1: connection refused",
        ),
        ("unknown kernel", r"no kernelspec 'no-such-spec'; it offers .*marked-python.*--kernel"),
    ],
)
def test_a_run_that_never_started_leaves_the_last_output_alone(
    tmp_path: Path, run_broker: RunningBroker, problem: str, says: str
) -> None:
    out = tmp_path / "parameters.out.ipynb"
    out.write_text("the result of an earlier run")
    url, token, kernel = run_broker.url, run_broker.token, "python3"
    if problem == "wrong token":
        token = "wrong"
    elif problem == "refused connection":
        url = "http://127.0.0.1:1"
    else:
        kernel = "no-such-spec"
    done = run_command(
        str(NOTEBOOKS / "parameters.ipynb"),
        *("--url", url, "--token", token, "--kernel", kernel, "-o", str(out)),
    )
    assert done.returncode == 3
    assert done.stderr.splitlines() == [
        done.stderr.splitlines()[0],
        f"kernel-broker run: nothing ran, so {out} was not written",
    ]
    assert re.search(says, done.stderr) and "Traceback" not in done.stderr, done.stderr
    assert out.read_text() == "the result of an earlier run"


@pytest.mark.slow
def test_cell_error_exits_nonzero_and_shows_it(tmp_path: Path, run_broker: RunningBroker) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(s) for s in ("print('ok')", "raise ValueError('boom')")]
    )
    path = tmp_path / "fails.ipynb"
    nbformat.write(nb, path)
    done = run_command(str(path), "--url", run_broker.url, "--token", run_broker.token)
    assert done.returncode == 1
    assert "ValueError: boom" in done.stderr
    executed = nbformat.read(tmp_path / "fails.out.ipynb", as_version=4)
    assert executed.cells[1].outputs[0]["ename"] == "ValueError"


@pytest.mark.slow
def test_kernel_death_is_reported_quickly(tmp_path: Path, run_broker: RunningBroker) -> None:
    started = time.monotonic()
    done = run_command(
        str(NOTEBOOKS / "kernel_death.ipynb"),
        *("--url", run_broker.url, "--token", run_broker.token, "-o", str(tmp_path / "o.ipynb")),
    )
    assert done.returncode == 3, done.stderr
    assert "kernel died while running cell 2" in done.stderr
    assert time.monotonic() - started < 30


@pytest.mark.slow
def test_cell_timeout_fails_the_run(tmp_path: Path, run_broker: RunningBroker) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time; time.sleep(30)")])
    nbformat.write(nb, tmp_path / "slow.ipynb")
    done = run_command(
        str(tmp_path / "slow.ipynb"),
        *("--url", run_broker.url, "--token", run_broker.token, "--timeout", "1"),
    )
    assert done.returncode == 1
    assert "timed out" in done.stderr


@pytest.mark.slow
def test_without_url_a_private_broker_runs_the_notebook(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import os; print(os.path.exists('data.txt'))")]
    )
    nbformat.write(nb, tmp_path / "local.ipynb")
    (tmp_path / "data.txt").write_text("beside the notebook")
    done = run_command(str(tmp_path / "local.ipynb"), "-o", "-")
    assert done.returncode == 0, done.stderr
    executed = nbformat.reads(done.stdout, as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "True\n"
