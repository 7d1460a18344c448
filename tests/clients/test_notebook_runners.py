"""The notebook runners data teams already use, pointed at the broker with nothing but
``kernel_manager_class`` and the environment: nbconvert's command line and papermill.

They run the broker's marked kernelspec, which exists nowhere else: a run that did not go
through the broker would fail with NoSuchKernel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ..broker_process import RunningBroker
from .conftest import MARKED_SPEC, NOTEBOOKS

pytestmark = pytest.mark.slow


def broker_env(broker: RunningBroker) -> dict[str, str]:
    return {**os.environ, "BROKER_URL": broker.url, "BROKER_TOKEN": broker.token or ""}


def test_nbconvert_executes_a_notebook_on_the_broker(
    clients_broker: RunningBroker, tmp_path: Path
) -> None:
    out = tmp_path / "plots-out.ipynb"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to=notebook",
            "--execute",
            "--ExecutePreprocessor.kernel_manager_class=broker.client.RemoteKernelManager",
            f"--ExecutePreprocessor.kernel_name={MARKED_SPEC}",
            str(NOTEBOOKS / "plots.ipynb"),
            f"--output={out}",
        ],
        env=broker_env(clients_broker),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    outputs = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)


def test_papermill_injects_parameters_and_runs_on_the_broker(
    clients_broker: RunningBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    papermill = pytest.importorskip("papermill")
    from broker.client import RemoteKernelManager

    for name, value in broker_env(clients_broker).items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "parameters-out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / "parameters.ipynb"),
        str(out),
        parameters={"alpha": 0.9, "name": "from papermill"},
        kernel_name=MARKED_SPEC,
        kernel_manager_class=RemoteKernelManager,
        progress_bar=False,
    )
    last = nbformat.read(out, as_version=4).cells[-1]
    assert last.outputs[0].text == "0.9 'from papermill'\n"
