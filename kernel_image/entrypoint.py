"""Kernel pod entrypoint: start the kernel on the pod IP with the mounted connection file.

Plain Python with no dependency beyond ipykernel, so the image stays small and tests run
it directly. The connection file (key, ports, CurveZMQ keypair) comes from the pod's
Secret, mounted read-only at ``$KERNEL_CONNECTION_FILE``; the pod IP comes from the
downward API (``$POD_IP``). The file is copied with the pod IP filled in to a private
runtime file, because ipykernel rewrites its connection file and the mount is read-only.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

DEFAULT_CONNECTION_FILE = "/etc/kernel-broker/connection.json"


def runtime_connection_file(source: str, ip: str, runtime_dir: str) -> str:
    """Write the connection info with ``ip`` set to a new 0600 file; returns its path."""
    with open(source) as f:
        info = json.load(f)
    info["ip"] = ip
    os.makedirs(runtime_dir, mode=0o700, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="kernel-", suffix=".json", dir=runtime_dir)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
    return path


def kernel_command(argv: list[str], path: str, ip: str) -> list[str]:
    """Another kernel's command (the images of other languages pass one) with
    ``{connection_file}`` and ``{ip}`` filled in, as in a kernelspec's argv."""
    return [a.replace("{connection_file}", path).replace("{ip}", ip) for a in argv]


def main() -> None:
    """Bind the kernel's sockets on the pod IP and run it until it is shut down.

    Without arguments the kernel is ipykernel, in this process; with arguments they are
    another kernel's command, which replaces this process.
    """
    source = os.environ.get("KERNEL_CONNECTION_FILE", DEFAULT_CONNECTION_FILE)
    ip = os.environ.get("POD_IP") or "0.0.0.0"
    runtime_dir = os.path.join(os.environ.get("HOME") or tempfile.gettempdir(), ".kernel")
    path = runtime_connection_file(source, ip, runtime_dir)
    if len(sys.argv) > 1:
        command = kernel_command(sys.argv[1:], path, ip)
        os.execvp(command[0], command)
    from ipykernel.kernelapp import launch_new_instance

    sys.argv = [sys.argv[0], "-f", path, f"--ip={ip}"]
    launch_new_instance()


if __name__ == "__main__":
    main()
