"""The chat page ships with the package: llm_agent built by setuptools from setup.cfg, and
run from the build alone, serves every file of llm_agent/web."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from .agent_process import ROOT, agent_env

pytestmark = pytest.mark.slow  # a build and a process


def build(tmp: Path) -> Path:
    """What an installation puts in site-packages (setuptools' build_py, as a wheel has it)."""
    src, lib = tmp / "src", tmp / "lib"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    for package in ("broker", "llm_agent"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    setup = "from setuptools import setup; setup()"
    subprocess.run(
        [sys.executable, "-c", setup, "-q", "build_py", "--build-lib", str(lib)],
        cwd=src, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return lib


def test_an_installed_llm_agent_serves_every_file_of_the_page(tmp_path: Path) -> None:
    lib = build(tmp_path)
    command = [
        sys.executable, "-m", "llm_agent", "serve", "--port", "0", "--no-auth",
        "--base-url", "http://127.0.0.1:1/v1", "--model", "m",
    ]  # fmt: skip
    env = {**agent_env(), "PYTHONPATH": str(lib)}  # the build, not this checkout
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().rsplit(" ", 1)[1].strip().rstrip("/")
        files = sorted((ROOT / "llm_agent" / "web").iterdir())
        assert files
        for path in files:
            where = "/" if path.name == "index.html" else f"/static/{path.name}"
            response = requests.get(url + where, timeout=10)
            assert (response.status_code, response.content) == (200, path.read_bytes()), where
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
