"""Where a broker keeps what outlives it, by default per user and port, and who holds it.

- The state directory holds the kernel records (store.py), local kernels' sockets
  (``run/``) and the lock. By default ``$XDG_STATE_HOME/kernel-broker/port-PORT``
  (``~/.local/state/...``): keyed by port, so two brokers on different ports never share
  records, while the same command run again finds its kernels. A broker on ``--port 0``
  has none by default: its successor would listen elsewhere and nobody would find it.
- ``token`` keeps the token a broker generated (mode 0600), so the same command run again
  accepts the clients it served before (JupyterLab's ``--GatewayClient.auth_token`` among
  them) instead of locking them out with a new one.
- ``broker.lock`` is held (flock) for the life of the broker and names it (pid, instance,
  watchdog pid): a second broker on the same directory fails with one line naming the pid;
  the kernel drops the lock by itself when the broker dies, even by ``kill -9``.
- Each broker starts a watchdog (watchdog.py) that ends the recorded kernels
  ``orphan_timeout`` seconds after the broker is gone, unless a new broker took over;
  the new broker stands the previous watchdog down.
- Per-user data that is not tied to one broker lives under ``$XDG_DATA_HOME/kernel-broker``
  (``~/.local/share/...``): the local kernels' working directory and the snapshots.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import uuid
from pathlib import Path
from typing import Any

from traitlets import Float, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from . import watchdog
from .startup import StartupError
from .state_lock import lock_file, read_lock, write_lock


def xdg_home(variable: str, fallback: str) -> Path:
    """An XDG base directory; relative values are invalid per the specification and ignored."""
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else Path.home() / fallback


def data_dir() -> Path:
    """Per-user data of every broker: ``$XDG_DATA_HOME/kernel-broker``."""
    return xdg_home("XDG_DATA_HOME", ".local/share") / "kernel-broker"


def kernel_work_dir() -> str:
    """The default working directory of local kernels: ``$XDG_DATA_HOME/kernel-broker/work``."""
    return str(data_dir() / "work")


def make_work_dir(path: str) -> None:
    """Create the local kernels' working directory (mode 0700) if missing, at startup."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as e:
        raise StartupError(
            f"cannot create the local kernels' working directory {path}: {e.strerror or e}; "
            "choose another with --KernelRegistry.working_dir DIR"
        ) from None


def _holder(doc: dict[str, Any]) -> str:
    if doc.get("role") == "watchdog":
        return (
            f"the watchdog (pid {doc.get('pid')}) ending the kernels of a broker that did not "
            "return; try again in a moment"
        )
    return f"the broker with pid {doc.get('pid', '?')}"


def unusable(directory: str | Path, error: OSError) -> StartupError:
    """The one-line startup error for a state directory the broker cannot write."""
    return StartupError(
        f"cannot use the state directory {directory}: {error.strerror or error}; give a "
        "writable one with --state-dir DIR (BROKER_STATE_DIR), or keep no records: --no-state"
    )


def remembered_token(directory: str) -> str:
    """The token kept in ``directory`` (created, mode 0600, on first use); a new one without it.

    Only the broker's user can read it, like the token Jupyter Server writes to its runtime
    directory. The file appears whole (written aside, then linked into place), so two
    brokers starting at once agree on one token.
    """
    if not directory:
        return secrets.token_urlsafe(32)
    path = Path(directory) / "token"
    try:
        if not path.exists():
            os.makedirs(directory, mode=0o700, exist_ok=True)
            _link_new_token(path)
        token = path.read_text().strip()
    except OSError as e:
        raise unusable(directory, e) from None
    if not token:
        raise StartupError(
            f"the token file {path} is empty: delete it to have a new token generated, "
            "or give one with --token (BROKER_TOKEN)"
        )
    return token


def _link_new_token(path: Path) -> None:
    aside = path.with_name(f".token-{uuid.uuid4().hex}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        os.link(aside, path)
    except FileExistsError:
        pass  # another broker's token won the race: use it
    finally:
        aside.unlink()


class StateDir(LoggingConfigurable):
    """The broker's state directory: chosen, locked, and watched for the broker's death."""

    directory = Unicode(
        config=True,
        help="Directory of kernel records (env BROKER_STATE_DIR): local kernels outlive the "
        "broker (kill -9 and SIGTERM included) and the next broker on it adopts them. "
        "Default: $XDG_STATE_HOME/kernel-broker/port-PORT ($XDG_STATE_HOME: ~/.local/state); "
        "none with --port 0. Empty (--no-state): kernels end with the broker.",
    )
    orphan_timeout = Float(
        3600.0,
        config=True,
        help="Seconds the recorded kernels of a broker that is gone (crashed or stopped) "
        "keep running for a new broker to adopt; then they are ended.",
    )

    def __init__(self, port: int, **kwargs: Any) -> None:
        self._port = port
        self.explicit = True  # given by flag, config or BROKER_STATE_DIR, not the default
        self._lock: int | None = None
        self._watchdog_pipe: int | None = None
        super().__init__(**kwargs)

    @default("directory")
    def _default_directory(self) -> str:
        if "BROKER_STATE_DIR" in os.environ:
            return os.environ["BROKER_STATE_DIR"]
        self.explicit = False
        if not self._port:
            return ""
        return str(
            xdg_home("XDG_STATE_HOME", ".local/state") / "kernel-broker" / f"port-{self._port}"
        )

    @validate("orphan_timeout")
    def _non_negative(self, proposal: Any) -> float:
        if proposal.value < 0:
            raise ValueError("StateDir.orphan_timeout must be 0 or more seconds")
        return float(proposal.value)

    def snapshot_directory(self) -> str:
        """Default home of snapshots: beside records given explicitly (one volume holds
        everything), otherwise the per-user data directory, shared by every broker."""
        if self.directory and self.explicit:
            return os.path.join(self.directory, "snapshots")
        return str(data_dir() / "snapshots")

    def open(self) -> None:
        """Create and lock the directory and start its watchdog; nothing without one."""
        if not self.directory:
            return
        path = Path(self.directory).absolute()  # the watchdog and successors compare it
        self.directory = str(path)
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock = lock_file(path)
        except OSError as e:
            raise unusable(path, e) from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StartupError(
                f"the state directory {path} is in use by {_holder(read_lock(self._lock))}: "
                "stop that broker, or give this one another --state-dir (BROKER_STATE_DIR), "
                "or --no-state"
            ) from None
        previous = read_lock(self._lock)
        instance = uuid.uuid4().hex
        pid, self._watchdog_pipe = watchdog.spawn(path, self.orphan_timeout, instance)
        write_lock(self._lock, {"pid": os.getpid(), "instance": instance, "watchdog": pid})
        if watchdog.retire(previous.get("watchdog"), path):
            self.log.info(
                "the previous broker's watchdog (pid %s) stood down", previous["watchdog"]
            )
        self.log.info(
            "state directory %s: kernels outlive this broker; %.0f s after it is gone, its "
            "watchdog (pid %d) ends those no broker adopted (--StateDir.orphan_timeout)",
            path,
            self.orphan_timeout,
            pid,
        )
