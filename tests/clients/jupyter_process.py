"""Run `jupyter server` or `jupyter lab` pointed at a broker with --gateway-url, for a test."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..broker_process import RunningBroker, free_port

_READY = re.compile(r"(http://127\.0\.0\.1:\d+)/")


@dataclass
class RunningJupyter:
    """A Jupyter Server process: its URL, its own token, and its log."""

    proc: subprocess.Popen
    url: str
    token: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_jupyter(
    app: str, broker: RunningBroker, root: Path, *args: str, timeout: float = 120
) -> RunningJupyter:
    """``jupyter <app>`` on a free 127.0.0.1 port; returns once it says where it listens."""
    token = secrets.token_hex(16)
    log_path = root.parent / f"jupyter-{app}-{secrets.token_hex(4)}.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        app,
        f"--gateway-url={broker.url}",
        f"--GatewayClient.auth_token={broker.token}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--ServerApp.port={free_port()}",  # its --port=0 announces a port it does not serve
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        "--no-browser",
        *(["--allow-root"] if os.geteuid() == 0 else []),
        *args,
    ]
    home = root.parent / f"jupyter-home-{secrets.token_hex(4)}"
    env = {  # no user configuration or runtime files leak in or out
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    found: list[str] = []
    ready = threading.Event()

    def follow() -> None:  # copy the log, and say when the server announces its URL
        assert proc.stderr is not None
        announced = False  # earlier lines name other URLs (the gateway's)
        with open(log_path, "w") as log:
            for line in proc.stderr:
                log.write(line)
                log.flush()
                announced = announced or "is running at" in line
                match = _READY.search(line) if announced else None
                if match and not found:
                    found.append(match.group(1))
                    ready.set()
        ready.set()

    threading.Thread(target=follow, daemon=True).start()
    if not ready.wait(timeout) or not found:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"jupyter {app} did not start:\n{log_path.read_text()}")
    running = RunningJupyter(proc, found[0], token, log_path)
    _wait_listening(running, timeout)
    return running


def _wait_listening(running: RunningJupyter, timeout: float) -> None:
    """Jupyter Server announces its URL a moment before it binds it, and tells nothing
    when it does: try to connect until it accepts."""
    host, port = running.url.rsplit("/", 1)[1].split(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or running.proc.poll() is not None:
                running.stop()
                raise RuntimeError(f"jupyter never listened:\n{running.log()}") from None
            time.sleep(0.05)
