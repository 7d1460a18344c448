"""The Python example of docs/mcp.md, run as written against a real broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ..broker_process import RunningBroker
from .conftest import ALICE

DOC = Path(__file__).parents[2] / "docs" / "mcp.md"


def test_the_documented_python_client_example_runs(mcp_broker: RunningBroker, tmp_path: Path):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    env = {**os.environ, "BROKER_URL": mcp_broker.url, "BROKER_TOKEN": ALICE}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == "4.0\n"
    assert mcp_broker.request("GET", "/api/kernels").json() == []  # it shut its kernel down
