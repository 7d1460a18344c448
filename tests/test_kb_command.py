"""`./kb`, as a user runs it: every documented command works, and local kernels can plot.

These run this checkout's ./kb, which uses its .venv; they run only inside that .venv
(where ./kb test puts them), so that ./kb finds everything installed and installs nothing.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
KB = ROOT / "kb"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
        reason="./kb installs into this checkout's .venv: run these tests in it (./kb test)",
    ),
]


def kb_env(home: Path) -> dict[str, str]:
    """A user's environment: no broker settings, and a home (and state) of the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROKER_", "OPENAI_"))}
    env.pop("VIRTUAL_ENV", None)
    return {**env, "HOME": str(home), "XDG_STATE_HOME": str(home / "state")}


def kb(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KB), *args], cwd=home, env=kb_env(home), capture_output=True, text=True, timeout=120
    )


def test_kb_help_lists_the_commands_and_how_to_put_them_on_path(tmp_path: Path) -> None:
    done = kb(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    for command in ("serve", "run NOTEBOOK", "llm-agent", "test", "bench"):
        assert command in done.stdout
    assert "source .venv/bin/activate" in done.stdout


def test_kb_run_help_is_kernel_broker_runs_help(tmp_path: Path) -> None:
    done = kb(tmp_path, "run", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: kernel-broker run")
    assert "--output" in done.stdout


@pytest.mark.parametrize("name", ["llm-agent", "agent"])
def test_kb_forwards_the_agent_command(tmp_path: Path, name: str) -> None:
    done = kb(tmp_path, name, "ask", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: llm-agent ask")


def test_kb_forwards_any_kernel_broker_command(tmp_path: Path) -> None:
    done = kb(tmp_path, "no-such-command")
    assert done.returncode == 2
    assert "kernel-broker: error: unknown command 'no-such-command'" in done.stderr


def test_the_activated_venv_has_both_commands_on_path(tmp_path: Path) -> None:
    script = "source .venv/bin/activate && kernel-broker --help; llm-agent --help"
    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=kb_env(tmp_path),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "usage: kernel-broker COMMAND" in done.stderr
    assert "usage: llm-agent" in done.stdout


@pytest.fixture
def kb_serve(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``./kb serve --port 0`` as the README starts it; its URL and auth header."""
    proc = subprocess.Popen(
        [str(KB), "serve", "--port", "0", "--token", "kb-test"],
        cwd=tmp_path, env=kb_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, line
        yield line.rsplit(" ", 1)[1].strip().rstrip("/"), {"Authorization": "token kb-test"}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


PLOT = """\
import numpy as np, pandas as pd, matplotlib.pyplot as plt
frame = pd.DataFrame({"x": np.arange(5), "y": np.arange(5) ** 2})
frame.plot(x="x", y="y")
plt.show()
"""


def test_kb_serve_kernels_plot_with_numpy_pandas_and_matplotlib(
    kb_serve: tuple[str, dict[str, str]],
) -> None:
    url, auth = kb_serve
    r = requests.post(url + "/api/kernels", json={}, headers=auth, timeout=120)
    assert r.status_code == 201, r.text
    kernel = r.json()["id"]
    try:
        r = requests.post(
            f"{url}/api/kernels/{kernel}/execute", json={"code": PLOT}, headers=auth, timeout=120
        )
        events = [json.loads(line) for line in r.text.splitlines()]
    finally:
        requests.delete(f"{url}/api/kernels/{kernel}", headers=auth, timeout=60)
    assert not [e for e in events if e["type"] == "error"], events
    images = [e["data"]["image/png"] for e in events if "image/png" in e.get("data", {})]
    assert len(images) == 1
    assert base64.b64decode(images[0]).startswith(b"\x89PNG\r\n\x1a\n")
