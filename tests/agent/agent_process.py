"""`llm-agent` as a process: its command line against a broker and the scripted model,
and `llm-agent serve` running for the length of a test."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from .scripted_llm import VISION_MODEL, ScriptedLLM

ROOT = Path(__file__).resolve().parents[2]
SERVE_TOKEN = "serve-token"  # what the tests give `llm-agent serve` as --auth-token


def agent_command(llm: ScriptedLLM, broker_url: str, token: str, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "llm_agent", *args,
        "--broker", broker_url, "--token", token,
        "--base-url", llm.url + "/v1", "--model", VISION_MODEL, "--api-key", "test-key",
    ]  # fmt: skip


def serve_command(llm: ScriptedLLM, broker_url: str, token: str, *args: str) -> list[str]:
    """``llm-agent serve`` on a free port, with the tests' token."""
    serve = ("serve", "--port", "0", "--auth-token", SERVE_TOKEN, *args)
    return agent_command(llm, broker_url, token, *serve)


def agent_env() -> dict[str, str]:
    """This checkout importable, and none of the settings a user's shell may carry."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("BROKER_URL", "BROKER_TOKEN", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        env.pop(name, None)
    env.pop("LLM_AGENT_TOKEN", None)
    return env


@contextlib.contextmanager
def serving(command: list[str], cwd: Path, log: Path | None = None) -> Iterator[str]:
    """``llm-agent serve`` as a process (its stderr to ``log``); its URL. SIGTERM at the
    end: it must exit 0."""
    stderr = open(log, "wb") if log else None  # noqa: SIM115 - the process writes to it
    proc = subprocess.Popen(
        command, cwd=cwd, env=agent_env(), stdout=subprocess.PIPE, stderr=stderr
    )
    if stderr is not None:
        stderr.close()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert "llm-agent listening on" in line, line
        yield line.rsplit(" ", 1)[1].strip().rstrip("/")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
