"""One kernel the broker serves: its manager, its bridge, its owner, and its REST model."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from ..bridge import Bridge
from ..errors import BrokerError
from ..executions import Executions
from ..timestamps import format_time

CLOSE_RESTART = 1012  # websocket close code: service restarting, reconnect


@dataclass(eq=False)
class ManagedKernel:
    """One kernel: its manager (and provisioner), its bridge, its owner."""

    id: str
    name: str
    owner: str
    manager: AsyncKernelManager
    bridge: Bridge
    created: float = field(default_factory=time.time)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    restarts: int = 0
    reason: str = ""
    dead: bool = False
    executions: Executions | None = None

    @property
    def execution_state(self) -> str:
        return "dead" if self.dead else self.bridge.execution_state

    def check_alive(self) -> None:
        """409 for a kernel that is dead: nothing can run until it is restarted."""
        if self.dead:
            raise BrokerError(409, f"Kernel {self.id} is dead; restart or shut it down.")

    def model(self) -> dict[str, Any]:
        model = {
            "id": self.id,
            "name": self.name,
            "last_activity": format_time(self.bridge.last_activity),
            "execution_state": self.execution_state,
            "connections": len(self.bridge.connections),
            "owner": self.owner,
        }
        if self.reason:
            model["reason"] = self.reason
        return model
