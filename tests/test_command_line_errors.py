"""A mistyped command line is an error, not a warning: one line naming what was not
understood and its close match, exit status 2, and no broker started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# One process each: the quick loop keeps the two cheapest (no provisioner or nbclient import).
slow = pytest.mark.slow


def kernel_broker(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m broker ARGS`` in ``tmp``; every case here must fail before listening."""
    env = {**os.environ, "HOME": str(tmp)}
    for name in ("BROKER_PORT", "BROKER_TOKEN", "BROKER_URL"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def usage_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a refused command line (exit 2, nothing listening)."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "listening on" not in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--prot", "3"], "unknown option --prot; did you mean --port?"),
        pytest.param(["--prot=3"], "unknown option --prot; did you mean --port?", marks=slow),
        pytest.param(
            ["--no-auht"], "unknown option --no-auht; did you mean --no-auth?", marks=slow
        ),
        pytest.param(
            ["--Broker.prot=3"],
            "unknown option --Broker.prot; did you mean --Broker.port?",
            marks=slow,
        ),
        pytest.param(["--Borker.port=3"], "no class Borker; did you mean Broker?", marks=slow),
        pytest.param(
            ["--KubernetesProvisioner.token_fil=x"],
            "did you mean --KubernetesProvisioner.token_file?",
            marks=slow,
        ),
        pytest.param(
            ["--pool-size=two"], "bad value for --KernelPools.default_pool_size", marks=slow
        ),
        pytest.param(["8888"], "unexpected argument '8888'", marks=slow),
    ],
    ids=["alias", "alias=", "flag", "trait", "class", "provisioner-trait", "value", "positional"],
)
def test_serve_refuses_what_it_does_not_understand(
    tmp_path: Path, args: list[str], says: str
) -> None:
    line = usage_error(kernel_broker(tmp_path, "serve", "--port=0", *args))
    assert line.startswith("kernel-broker serve: error: ") and says in line, line
    assert "kernel-broker serve --help-all" in line


@slow
def test_serve_accepts_the_settings_of_a_provisioner(tmp_path: Path) -> None:
    """Provisioner classes load lazily, yet their settings are known: the check lets a
    right one through (this start then fails later, on the missing certificate)."""
    missing = tmp_path / "none.pem"
    done = kernel_broker(
        tmp_path,
        "serve",
        "--port=0",
        "--KubernetesProvisioner.namespace=x",
        f"--certfile={missing}",
    )
    assert done.returncode == 1 and "--certfile" in done.stderr, done.stderr


@slow
def test_an_unknown_setting_in_a_config_file_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "broker_config.py").write_text("c.KernelRegistry.max_kernel = 3\n")
    done = kernel_broker(tmp_path, "serve", "--port=0", "--config=broker_config.py")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == (
        "kernel-broker serve: config file broker_config.py: unknown option "
        "c.KernelRegistry.max_kernel; did you mean c.KernelRegistry.max_kernels?"
    )


def test_an_unknown_command_suggests_the_close_one(tmp_path: Path) -> None:
    line = usage_error(kernel_broker(tmp_path, "sevre"))
    assert line == (
        "kernel-broker: error: unknown command 'sevre'; did you mean serve? (kernel-broker --help)"
    )


@slow
def test_run_refuses_an_unknown_option_in_one_line(tmp_path: Path) -> None:
    line = usage_error(kernel_broker(tmp_path, "run", "nb.ipynb", "--otput", "o.ipynb"))
    assert line == (
        "kernel-broker run: error: unknown option --otput; did you mean --output? "
        "(kernel-broker run --help)"
    )


@slow
def test_run_refuses_a_url_without_a_scheme(tmp_path: Path) -> None:
    line = usage_error(kernel_broker(tmp_path, "run", "nb.ipynb", "--url", "127.0.0.1:8889"))
    assert line.startswith(
        "kernel-broker run: error: argument --url: '127.0.0.1:8889' is not a URL"
    )
