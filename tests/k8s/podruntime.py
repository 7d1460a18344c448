"""One pod on the fake node, as the kubelet tracks it while it runs."""

from __future__ import annotations

import asyncio
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
