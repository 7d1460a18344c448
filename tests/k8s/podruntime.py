"""One pod on the fake node, as the kubelet tracks it while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from decimal import Decimal

from .store import Obj


class PodRuntime:
    """One pod on this node."""

    def __init__(self, pod: Obj) -> None:
        self.name = pod["metadata"]["name"]
        self.namespace = pod["metadata"]["namespace"]
        self.uid = pod["metadata"]["uid"]
        self.changed = asyncio.Event()
        self.process: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task | None = None
        self.deleting = False
        self.gone = False
        self.ip = ""
        self.netns = ""
        self.requests: dict[str, Decimal] = {}
        self.volumes: dict[str, bool] = {}  # host directory -> read-only

    async def kill(self, grace: float) -> None:
        """SIGTERM, ``grace`` seconds, then SIGKILL (at once when ``grace`` is 0)."""
        proc = self.process
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        try:
            await asyncio.wait_for(proc.wait(), grace if grace > 0 else None)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
