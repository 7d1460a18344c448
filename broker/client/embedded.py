"""A private broker subprocess on 127.0.0.1 for one command, stopped when it ends."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import tempfile
from pathlib import Path


class EmbeddedBroker:
    """``python -m broker serve`` on a free loopback port with a generated token, keeping
    no kernel records (its kernels end with it), its kernels working in ``cwd``.

    The token travels in the environment, not on the command line, where other users
    of the machine could read it.
    """

    def __init__(self, cwd: Path, start_timeout: float = 60.0) -> None:
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.token = secrets.token_urlsafe(24)
        self.url = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="kernel-broker-", suffix=".log")  # noqa: SIM115

    async def start(self) -> None:
        env = {**os.environ, "BROKER_TOKEN": self.token}
        env.pop("BROKER_PORT", None)
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "broker", "serve", "--ip", "127.0.0.1", "--port", "0", "--no-state"),
            # kernels start beside the notebook, as with jupyter nbconvert --execute
            f"--KernelRegistry.working_dir={self.cwd}",
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            cwd=str(self.cwd),
            env=env,
        )
        assert self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), self.start_timeout)
        except TimeoutError:
            line = b""
        text = line.decode(errors="replace")
        if "listening on" not in text:
            await self.stop()
            raise RuntimeError(f"the embedded broker did not start:\n{self.log_tail()}")
        self.url = text.rsplit(" ", 1)[1].strip().rstrip("/")

    def log_tail(self, lines: int = 20) -> str:
        text = Path(self._log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> None:
        """SIGTERM (the broker shuts its kernels down), then SIGKILL after 30 s."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self._log.close()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
