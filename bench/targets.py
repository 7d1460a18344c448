"""Start and stop the gateway servers under test, each on 127.0.0.1 on a free port.

Our broker announces its port itself (``--port 0``); the anchors are given a port found
free just before they start and are polled until ``GET /api`` answers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .anchors import Anchor

_STARTUP_TIMEOUT = 90.0


@dataclass
class Server:
    """A running gateway process: where it listens, its token, and its log."""

    name: str
    proc: subprocess.Popen
    url: str
    token: str
    log_path: Path

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of the server process itself (not its kernels), now and at peak."""
        return process_memory_mb(self.proc.pid)

    def stop(self) -> None:
        """SIGTERM (gateways shut their kernels down on it), then SIGKILL after a grace period."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def process_memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM from /proc (psutil is not a dependency), in MB."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024  # kB -> MB
    except OSError:
        return {}
    return {"rss_mb": fields.get("VmRSS", 0.0), "peak_rss_mb": fields.get("VmHWM", 0.0)}


def free_port() -> int:
    """A port nobody listens on right now (the anchors cannot pick their own and tell us)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _popen(name: str, cmd: list[str], env: dict[str, str], workdir: Path) -> Server:
    """Start ``cmd`` with stdout and stderr in files (a pipe nobody reads would fill up)."""
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log_file, open(workdir / f"{name}.out", "wb") as out_file:
        # Its own session: a Ctrl-C on our terminal must not reach it (jupyter servers would
        # ask "Shutdown this server?"); we stop it ourselves, in order.
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out_file,
            stderr=log_file,
            env=env,
            cwd=str(workdir),
            start_new_session=True,
        )
    return Server(name, proc, "", "", log_path)


def start_broker(env: dict[str, str], workdir: Path, token: str, *args: str) -> Server:
    """``python -m broker serve [args]`` on a port it picks; its first line says which."""
    cmd = [sys.executable, "-m", "broker", "serve", "--ip", "127.0.0.1", "--port", "0", *args]
    # its kernels' working directory and snapshots in the run's directory, not ~/.local
    env = {**env, "XDG_STATE_HOME": str(workdir / "state"), "XDG_DATA_HOME": str(workdir / "data")}
    # --token=T, not --token T: a generated token may start with "-"
    server = _popen("broker", [*cmd, f"--token={token}"], env, workdir)
    server.token = token
    out = workdir / "broker.out"
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while time.monotonic() < deadline and server.proc.poll() is None:
        line = out.read_text().partition("\n")[0]
        if "listening on" in line:
            server.url = line.rsplit(" ", 1)[1].strip().rstrip("/")
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"broker did not start; see {server.log_path}")


def anchor_command(anchor: Anchor, port: int, token: str, *extra: str) -> list[str]:
    """The anchor's own flags for address, port and token (both are traitlets apps), and
    ``extra`` ones."""
    app = anchor.app
    return [
        str(anchor.executable),
        f"--{app}.ip=127.0.0.1",
        f"--{app}.port={port}",
        f"--{app}.port_retries=0",  # a busy port must fail, not silently move elsewhere
        f"--{app}.auth_token={token}",
        *anchor.flags,
        *extra,
    ]


def start_anchor(
    anchor: Anchor, env: dict[str, str], workdir: Path, token: str, *extra: str
) -> Server:
    """Start an anchor gateway on a free port (with ``extra`` flags) and wait until its REST
    API answers."""
    port = free_port()
    server = _popen(anchor.name, anchor_command(anchor, port, token, *extra), env, workdir)
    server.url, server.token = f"http://127.0.0.1:{port}", token
    try:
        _wait_for_api(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_api(server: Server) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    request = urllib.request.Request(
        server.url + "/api/kernelspecs", headers={"Authorization": f"token {server.token}"}
    )
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited at startup; see {server.log_path}")
        try:
            with urllib.request.urlopen(request, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"{server.name} did not answer within {_STARTUP_TIMEOUT:.0f} s")


def server_env(jupyter_path: Path, runtime_dir: Path) -> dict[str, str]:
    """The environment every server starts with: our kernelspec, a private runtime dir."""
    env = {**os.environ, "JUPYTER_PATH": str(jupyter_path), "JUPYTER_RUNTIME_DIR": str(runtime_dir)}
    env.pop("BROKER_TOKEN", None)
    return env
