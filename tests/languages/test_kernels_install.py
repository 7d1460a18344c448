"""`kernel-broker kernels install`: what it registers and where, and what it refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import BASH, installed


def kernels_command(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home)}
    env.pop("JUPYTER_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "broker", "kernels", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_unknown_kernel_is_refused_with_the_choices(tmp_path: Path) -> None:
    done = kernels_command("install", "cobol", home=tmp_path)
    assert done.returncode == 2
    assert "invalid choice: 'cobol'" in done.stderr and "'bash', 'deno', 'r'" in done.stderr


@pytest.mark.bash
@pytest.mark.skipif(not installed(BASH), reason="run `kernel-broker kernels install bash`")
def test_user_install_registers_the_spec_in_the_user_data_dir(tmp_path: Path) -> None:
    done = kernels_command("install", "bash", "--user", home=tmp_path)
    assert done.returncode == 0, done.stderr
    spec_dir = tmp_path / ".local" / "share" / "jupyter" / "kernels" / "bash"
    assert f"registered kernelspec 'bash' (Bash (bash_kernel)) in {spec_dir}" in done.stdout
    spec = json.loads((spec_dir / "kernel.json").read_text())
    assert spec["language"] == "bash" and "{connection_file}" in spec["argv"]
