"""Start a real broker process for a test, on a free port, and stop it afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from broker.client import ChannelsConnection
from broker.processes import command_line
from broker.store import KernelStore
from broker.wire import Message


async def running(conn: ChannelsConnection, code: str) -> Message:
    """Send ``code``; return its request once the kernel has started running it."""
    request = await conn.request("shell", "execute_request", {"code": code})
    while True:
        msg = await conn.recv(timeout=30)
        if msg.msg_type == "execute_input" and msg.parent_msg_id == request.msg_id:
            return request


async def sleeping(conn: ChannelsConnection, seconds: int = 60) -> Message:
    """Start a long sleep; return its request once the kernel is inside it.

    It prints first and we wait for the print: execute_input comes before IPython has
    prepared the cell, and an interrupt landing then is lost (the sleep runs to its end).
    """
    code = f"import time; print('sleeping', flush=True); time.sleep({seconds})"
    request = await conn.request("shell", "execute_request", {"code": code, "silent": False})
    while True:
        msg = await conn.recv(timeout=30)
        if msg.msg_type == "stream" and msg.parent_msg_id == request.msg_id:
            return request


@dataclass
class RunningBroker:
    """A broker subprocess: its URL, token, log file, and a small REST helper."""

    proc: subprocess.Popen
    url: str
    token: str | None
    log_path: Path
    session: requests.Session = field(default_factory=requests.Session)

    def headers(self, token: str | None = None) -> dict[str, str]:
        token = self.token if token is None else token
        return {"Authorization": f"token {token}"} if token else {}

    def request(
        self, method: str, path: str, body: Any = None, *, token: str | None = None, **kw: Any
    ) -> requests.Response:
        data = kw.pop("data", None)
        if body is not None:
            data = json.dumps(body)
        headers = {**self.headers(token), **kw.pop("headers", {})}
        return self.session.request(
            method, self.url + path, data=data, headers=headers, timeout=120, **kw
        )

    def start_kernel(self, name: str | None = None, token: str | None = None, **env: str) -> str:
        body: dict[str, Any] = {"env": env}
        if name:
            body["name"] = name
        r = self.request("POST", "/api/kernels", body, token=token)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def execute(self, kernel_id: str, code: str, token: str | None = None) -> list[dict]:
        """Run code through the HTTP execute endpoint; the NDJSON events it streamed."""
        r = self.request("POST", f"/api/kernels/{kernel_id}/execute", {"code": code}, token=token)
        assert r.status_code == 200, r.text
        return [json.loads(line) for line in r.text.splitlines()]

    def stdout(self, kernel_id: str, code: str) -> str:
        return "".join(e["text"] for e in self.execute(kernel_id, code) if e["type"] == "stdout")

    def files_left(self, kernel_id: str, token: str | None = None) -> list[str]:
        """Every name in the kernel's working directory, hidden ones too, as the kernel sees
        them after everything sent to it before (the file API's clean-up included)."""
        code = "import os, json; print(json.dumps(sorted(os.listdir())))"
        events = self.execute(kernel_id, code, token)
        return json.loads("".join(e["text"] for e in events if e["type"] == "stdout"))

    def delete_kernel(self, kernel_id: str, token: str | None = None) -> None:
        self.request("DELETE", f"/api/kernels/{kernel_id}", token=token)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, as an orchestrator would; the broker drains and exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.session.close()
        return self.proc.returncode


def xdg_env(root: Path) -> dict[str, str]:
    """XDG base directories under ``root``: a test broker keeps its state, its kernels'
    working directory and its snapshots there, never in the real ~/.local."""
    return {
        "XDG_STATE_HOME": str(root / "xdg" / "state"),
        "XDG_DATA_HOME": str(root / "xdg" / "data"),
    }


@contextlib.contextmanager
def kernel_in(broker: RunningBroker, workdir: Path) -> Iterator[str]:
    """A kernel of ``broker`` whose working directory is ``workdir``; shut down after."""
    kernel_id = broker.start_kernel(KERNEL_WORKING_DIR=str(workdir))
    try:
        yield kernel_id
    finally:
        broker.delete_kernel(kernel_id)


def start_broker(
    tmp: Path,
    *args: str,
    token: str | None = "test-token",
    env: dict[str, str] | None = None,
    port: int = 0,
) -> RunningBroker:
    """Run ``python -m broker serve`` on ``port`` (a free one by default) and wait for its
    announcement.

    Its XDG directories are under ``tmp`` (see :func:`xdg_env`) unless ``env`` says otherwise.
    """
    cmd = [sys.executable, "-m", "broker", "serve", "--ip", "127.0.0.1", f"--port={port}", *args]
    if token:
        cmd.append(f"--token={token}")
    full_env = {**os.environ, **xdg_env(tmp), **(env or {})}
    full_env.pop("BROKER_TOKEN", None)
    return launch(tmp, cmd, full_env, token)


def launch(tmp: Path, cmd: list[str], env: dict[str, str], token: str | None) -> RunningBroker:
    """Run a broker's serve command in ``tmp``, its stderr logged there, until it listens."""
    log_path = tmp / f"broker-{os.getpid()}-{len(list(tmp.glob('broker-*.log')))}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - the process writes to it until it ends
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log_file, env=env, cwd=str(tmp))
    log_file.close()
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "listening on" not in line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"broker did not start: {line}\n{log_path.read_text()}")
    url = line.rsplit(" ", 1)[1].strip().rstrip("/")
    return RunningBroker(proc, url, token, log_path)


KERNEL_BROKER = Path(sys.executable).with_name("kernel-broker")  # the venv's command


def free_port() -> int:
    """A port free right now, for a process that must be run again on the same port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_state_dir(tmp: Path, port: int) -> Path:
    """Where a broker run with :func:`xdg_env` of ``tmp`` keeps its records by default."""
    return tmp / "xdg" / "state" / "kernel-broker" / f"port-{port}"


def kill_9(broker: RunningBroker) -> None:
    broker.proc.send_signal(signal.SIGKILL)
    broker.proc.wait()


def serve_with_generated_token(tmp: Path, port: int, env: dict[str, str]) -> RunningBroker:
    """``kernel-broker serve`` as the README runs it, with no token given: the broker prints
    the one it uses (generated, or kept from an earlier run on this port)."""
    full_env = {**os.environ, **env, **xdg_env(tmp), "BROKER_PORT": str(port)}
    full_env.pop("BROKER_TOKEN", None)
    broker = launch(tmp, [str(KERNEL_BROKER), "serve"], full_env, None)
    assert broker.proc.stdout is not None
    line = broker.proc.stdout.readline().decode()
    assert line.startswith("Token: "), line
    broker.token = line.split()[1]
    return broker


def start_users_broker(
    tmp: Path,
    users: dict[str, Any],
    admin_token: str,
    *args: str,
    env: dict[str, str] | None = None,
) -> RunningBroker:
    """A broker whose tokens come from a users file; requests default to the admin's token."""
    users_file = tmp / "users.json"
    users_file.write_text(json.dumps(users))
    broker = start_broker(tmp, f"--users-file={users_file}", *args, token=None, env=env)
    broker.token = admin_token
    return broker


def lock_holder(state_dir: Path) -> dict[str, Any]:
    """What a state directory's lock file says: the broker's pid, instance, watchdog pid."""
    path = state_dir / "broker.lock"
    return json.loads(path.read_text() or "{}") if path.exists() else {}


def kill_recorded_kernels(state_dir: Path) -> None:
    """Kill the kernels recorded in a broker's state directory, and its watchdog.

    A broker with a state directory keeps its kernels (pool kernels too) when it stops,
    and its watchdog waits to end them: that is the point of it. The test that made them
    ends them.
    """
    if not state_dir.is_dir():
        return
    watchdog = lock_holder(state_dir).get("watchdog")
    if watchdog and "broker.watchdog" in command_line(watchdog):
        os.kill(watchdog, signal.SIGKILL)
    for record in KernelStore(str(state_dir)).load_all():
        pid = record.get("provisioner_info", {}).get("pid")
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
