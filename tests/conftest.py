"""Fixtures: a real broker process with real kernels, and extra kernelspecs to exercise."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .broker_process import RunningBroker, start_broker

SLOW_START = "slow-start"  # a kernel that takes two seconds to start: a start outlasts a client
SLOW_LAUNCHER = (
    "import runpy, sys, time; time.sleep(2); "
    "sys.argv = ['ipykernel_launcher', '-f', sys.argv[1]]; "
    "runpy.run_module('ipykernel_launcher', run_name='__main__')"
)


def write_kernelspec(root: Path, name: str, metadata: dict | None = None, **extra: object) -> None:
    """A python kernelspec named ``name`` under ``root/kernels``."""
    spec_dir = root / "kernels" / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name,
        "language": "python",
        "metadata": metadata or {},
        **extra,
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


@pytest.fixture(scope="session")
def spec_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JUPYTER_PATH for test brokers: a few kernelspecs beside the installed python3."""
    root = tmp_path_factory.mktemp("jupyter-path")
    write_kernelspec(root, "only-alice", {"kernel_broker": {"authorized_users": ["alice"]}})
    write_kernelspec(
        root,
        "eg-no-bob",
        {"process_proxy": {"class_name": "x", "config": {"unauthorized_users": ["bob"]}}},
    )
    (root / "kernels" / "only-alice" / "logo-64x64.png").write_bytes(b"\x89PNG fake logo")
    write_kernelspec(root, SLOW_START)
    spec_path = root / "kernels" / SLOW_START / "kernel.json"
    spec = json.loads(spec_path.read_text())
    spec["argv"] = [sys.executable, "-c", SLOW_LAUNCHER, "{connection_file}"]
    spec_path.write_text(json.dumps(spec))
    return root


@pytest.fixture(scope="session")
def broker_env(spec_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Extra kernelspecs, and a HOME of its own so that kernels of concurrent test runs do
    not share IPython's history database (its writes collide and print errors)."""
    home = tmp_path_factory.mktemp("home")
    return {"JUPYTER_PATH": str(spec_root), "HOME": str(home)}


@pytest.fixture(scope="session")
def broker(
    tmp_path_factory: pytest.TempPathFactory, broker_env: dict[str, str]
) -> Iterator[RunningBroker]:
    """One broker shared by the tests that do not change its configuration."""
    running = start_broker(tmp_path_factory.mktemp("broker"), env=broker_env)
    yield running
    running.stop()


@pytest.fixture
def kernel(broker: RunningBroker) -> Iterator[str]:
    """A fresh kernel on the shared broker, shut down afterwards."""
    kernel_id = broker.start_kernel()
    yield kernel_id
    broker.delete_kernel(kernel_id)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The kernel's working directory (KERNEL_WORKING_DIR), private to the test."""
    path = tmp_path / "work"
    path.mkdir()
    return path
