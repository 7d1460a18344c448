"""Warm kernel pools: started ahead of demand, handed out once, refilled in the background."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets import Dict, Float, Int, List, Unicode
from traitlets.config import LoggingConfigurable

from .bridge import Bridge
from .metrics import Metrics

log = logging.getLogger("broker.pools")
# Pool kernels' ids until they are handed out, so that a broker finding one knows it is warm.
WARM_PREFIX = "warm-"


@dataclass(eq=False)
class WarmKernel:
    """A started kernel that answered kernel_info and belongs to nobody yet."""

    spec: str
    manager: AsyncKernelManager
    bridge: Bridge
    created: float = field(default_factory=time.time)
    env: dict[str, str] = field(default_factory=dict)  # what it was started with
    cwd: str = ""


Spawn = Callable[[str], Awaitable[WarmKernel]]
Discard = Callable[[WarmKernel], Awaitable[None]]
Claim = Callable[[WarmKernel], Awaitable[bool]]
Elsewhere = Callable[[str], Awaitable["WarmKernel | None"]]


async def _claimed() -> bool:
    """A kernel of this broker's own pool is nobody else's to take."""
    return True


class KernelPools(LoggingConfigurable):
    """One pool per kernelspec, sized by configuration."""

    sizes = Dict(
        key_trait=Unicode(),
        value_trait=Int(),
        config=True,
        help="Warm kernels kept per kernelspec, e.g. {'python3': 2}. Unset: "
        "default_pool_size kernels of the default kernelspec.",
    )
    default_pool_size = Int(
        1,
        config=True,
        help="Warm kernels of the default kernelspec when 'sizes' is unset "
        "(one makes the first kernel instant; 0 turns pools off).",
    )
    max_concurrent_refills = Int(
        2, config=True, help="Pool kernels started at once, so a burst does not starve the host."
    )
    refill_delay = Float(
        1.0,
        config=True,
        help="Seconds hand-outs from a pool must pause before it refills: a kernel booting "
        "takes a whole core for about a second, which would slow the starts of a burst.",
    )
    refill_low_water = Float(
        0.5,
        config=True,
        help="A pool drawn down to this fraction of its size (or below) refills at once, "
        "without waiting for hand-outs to pause; so does a pool of one or two.",
    )
    late_env = List(
        Unicode(),
        default_value=["KERNEL_USERNAME", "KERNEL_WORKING_DIR", "KERNEL_LAUNCH_TIMEOUT"],
        config=True,
        help="Request variables applied to a pooled kernel at hand-out; any other "
        "variable in a request means a cold start.",
    )

    def __init__(self, spawn: Spawn, discard: Discard, metrics: Metrics, **kw: Any) -> None:
        super().__init__(**kw)
        self._spawn = spawn
        self._discard = discard
        self.metrics = metrics
        self.ready: dict[str, list[WarmKernel]] = {}
        self._filling: dict[str, int] = {}
        self._slots = asyncio.Semaphore(self.max_concurrent_refills)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        # whether this broker keeps a spec's pool (with replicas: the Lease holder does)
        self.may_refill: Callable[[str], bool] = lambda name: True
        self._deferred: dict[str, asyncio.TimerHandle] = {}

    def configured(self, default_spec: str) -> dict[str, int]:
        sizes = dict(self.sizes) or {default_spec: self.default_pool_size}
        return {name: n for name, n in sizes.items() if n > 0}

    def start(self, default_spec: str) -> None:
        """Fill every configured pool in the background."""
        self._targets = self.configured(default_spec)
        for name in list(self.ready):  # adopted from a previous broker, no longer wanted
            while name not in self._targets and self.ready[name]:
                self._spawn_task(self._discard(self.ready[name].pop()))
        for name in self._targets:
            self.ready.setdefault(name, [])
            self._refill(name)

    def matches(self, env: dict[str, str]) -> bool:
        """Whether a request's environment can be applied to an already running kernel."""
        return all(key in self.late_env for key in env)

    async def take(
        self,
        name: str,
        env: dict[str, str],
        late_ok: bool = True,
        claim: Claim = lambda warm: _claimed(),
        elsewhere: Elsewhere | None = None,
    ) -> WarmKernel | None:
        """A warm kernel for this request, never handed out before; None means start cold.

        ``late_ok``: whether the request's late variables can be applied to a running kernel.
        ``claim`` binds a kernel of this pool to the request (False: another broker took
        it first); ``elsewhere`` finds one when another broker keeps this pool.
        """
        if name not in self._targets:
            return None
        warm = None
        if late_ok and self.matches(env) and not self.may_refill(name) and elsewhere:
            warm = await elsewhere(name)
        elif late_ok and self.matches(env):
            while self.ready[name] and warm is None:
                candidate = self.ready[name].pop(0)
                if not await candidate.manager.is_alive():
                    await self._discard(candidate)
                elif await claim(candidate):
                    warm = candidate
        self.metrics.pool_requests[name, "hit" if warm else "miss"] += 1
        low = len(self.ready[name]) <= self._targets[name] * self.refill_low_water
        self._refill_after_pause(name, at_once=warm is None or low)
        return warm

    def _refill_after_pause(self, name: str, at_once: bool) -> None:
        """Refill once hand-outs pause for refill_delay; ``at_once`` when demand outran the
        pool (a miss: that start is cold anyway) or drew it down to its low-water mark."""
        handle = self._deferred.pop(name, None)
        if handle is not None:
            handle.cancel()
        if at_once:
            self._refill(name)
        else:
            loop = asyncio.get_running_loop()
            self._deferred[name] = loop.call_later(self.refill_delay, self._refill_deferred, name)

    def _refill_deferred(self, name: str) -> None:
        del self._deferred[name]
        if not self._closed:
            self._refill(name)

    def refill_all(self) -> None:
        """Top every pool up (this broker has just become the one that keeps them)."""
        for name in getattr(self, "_targets", {}):
            self._refill(name)

    def release(self, name: str) -> list[WarmKernel]:
        """Stop handing out ``name``'s warm kernels (another broker keeps them now)."""
        released, self.ready[name] = self.ready.get(name, []), []
        return released

    def _refill(self, name: str) -> None:
        if not self.may_refill(name):
            return
        missing = self._targets[name] - len(self.ready[name]) - self._filling.get(name, 0)
        for _ in range(max(0, missing)):
            self._filling[name] = self._filling.get(name, 0) + 1
            self._spawn_task(self._fill_one(name))

    def _spawn_task(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill_one(self, name: str) -> None:
        try:
            async with self._slots:
                if self._closed:
                    return
                began = time.perf_counter()
                try:
                    warm = await self._spawn(name)
                except Exception as e:
                    log.error("pool %s: could not start a kernel: %s", name, e)
                    return
                self.metrics.observe_refill(time.perf_counter() - began)
                if self._closed:
                    await self._discard(warm)
                    return
                self.ready[name].append(warm)
        finally:
            self._filling[name] -= 1

    def gauges(self) -> list[tuple[str, str, dict[str, str], float]]:
        return [
            ("broker_pool_ready", "Warm kernels ready per kernelspec.", {"spec": n}, len(w))
            for n, w in sorted(self.ready.items())
        ]

    async def close(self, keep: Callable[[WarmKernel], bool] = lambda warm: False) -> None:
        """Stop refilling; shut down every warm kernel but those ``keep`` says outlive us."""
        self._closed = True
        for handle in self._deferred.values():
            handle.cancel()
        self._deferred.clear()
        for task in list(self._tasks):
            task.cancel()
        warm = [w for kernels in self.ready.values() for w in kernels if not keep(w)]
        self.ready.clear()
        await asyncio.gather(*(self._discard(w) for w in warm), return_exceptions=True)
