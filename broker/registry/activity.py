"""Kernel activity shared between replicas: what this replica writes onto its kernels'
pods, and what a kernel's use is once every replica's record is counted.

The format and the rate limit are ``provisioners/podactivity.py``'s. A broker without pod
kernels writes nothing; a pod kernel nobody uses costs no request at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from ..replicas import Replicas
from .managed_kernel import ManagedKernel


@dataclass(frozen=True)
class Use:
    """A kernel's use as the culler weighs it, across replicas."""

    last_activity: float
    connected: bool  # a websocket is open on it, here or on another replica
    busy: bool


def recorded_pod(kernel: ManagedKernel) -> dict[str, Any] | None:
    """The kernel's pod from the watch-fed cache (None for a local kernel)."""
    cached_pod = getattr(kernel.manager.provisioner, "cached_pod", None)
    return cached_pod() if cached_pod is not None else None


def use_of(kernel: ManagedKernel, now: float, interval: float) -> Use:
    """What this replica saw of the kernel, merged with what the others recorded."""
    bridge = kernel.bridge
    pod = recorded_pod(kernel)
    if pod is None:
        return Use(bridge.last_activity, bool(bridge.connections), bridge.execution_state == "busy")
    from ..provisioners.podactivity import fresh, recorded

    others = recorded(pod)
    return Use(
        max(bridge.last_activity, others.last),
        bool(bridge.connections) or fresh(others.connected, now, interval),
        bridge.execution_state == "busy" or fresh(others.busy, now, interval),
    )


class ActivityRecorder:
    """Every half interval, writes onto each served pod kernel's pod what this replica saw
    of its clients' use since (only what the pod does not say yet, see
    ``podactivity.to_record``)."""

    def __init__(
        self,
        kernels: dict[str, ManagedKernel],
        replicas: Replicas,
        *,
        interval: float,
        log: logging.Logger,
    ) -> None:
        self.kernels = kernels
        self.replicas = replicas
        self.interval = interval
        self.log = log

    async def run(self) -> None:
        """Record forever; cancel the task to stop."""
        if not self.replicas.targets:
            return  # no pod kernelspec: nothing is shared
        while True:
            await asyncio.sleep(self.interval / 2)
            await self.record_all()

    async def record_all(self) -> None:
        """One pass over the served kernels, one patch per kernel that needs one."""
        from ..provisioners.podactivity import Activity, recorded, to_record

        for kernel in list(self.kernels.values()):
            pod = recorded_pod(kernel)
            if pod is None or kernel.dead:
                continue
            now, bridge = time.time(), kernel.bridge
            # Only a replica with a client on the kernel records its last activity: the
            # others see its iopub too, and also the traffic of every replica's attach
            # (kernel_info), which is nobody's use and would cost a patch per kernel.
            used_here = bool(bridge.connections) or kernel.executions is not None
            seen = Activity(
                last=bridge.last_activity if used_here else 0.0,
                connected=now if bridge.connections else 0.0,
                busy=now if bridge.execution_state == "busy" else 0.0,
            )
            patch = to_record(seen, recorded(pod), now, self.interval)
            if patch:
                await kernel.manager.provisioner.annotate(patch)
