"""Fixtures for client tests: one broker with a marked kernelspec, and notebook helpers."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nbformat
import pytest
from traitlets.config import Config

from broker.client import RemoteKernelManager

from ..broker_process import RunningBroker, start_broker
from ..conftest import write_kernelspec

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
MARKED_SPEC = "marked-python"


@pytest.fixture(scope="session")
def clients_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    """A broker whose extra kernelspec sets KB_SPEC, so a test can tell which spec ran."""
    root = tmp_path_factory.mktemp("clients-jupyter-path")
    write_kernelspec(root, MARKED_SPEC, env={"KB_SPEC": MARKED_SPEC})
    running = start_broker(
        tmp_path_factory.mktemp("clients-broker"), env={"JUPYTER_PATH": str(root)}
    )
    yield running
    running.stop()


def manager_config(broker: RunningBroker, token: str | None = None) -> Config:
    """nbclient configuration selecting our manager and pointing it at ``broker``."""
    config = Config()
    config.RemoteKernelManager.url = broker.url
    config.RemoteKernelManager.token = broker.token if token is None else token
    return config


@pytest.fixture
async def remote_km(clients_broker: RunningBroker) -> AsyncIterator[RemoteKernelManager]:
    """A started RemoteKernelManager, shut down afterwards."""
    km = RemoteKernelManager(url=clients_broker.url, token=clients_broker.token)
    await km.start_kernel()
    yield km
    await km.shutdown_kernel()


def read_notebook(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def subprocess_env() -> dict[str, str]:
    """The environment for child Python processes that import this checkout."""
    root = str(Path(__file__).parent.parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


PYTHON = sys.executable
