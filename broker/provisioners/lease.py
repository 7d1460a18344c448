"""Leader election over a coordination.k8s.io/v1 Lease: one replica does the shared chores.

Several broker replicas serve the same kernels; culling idle kernels and refilling warm
pools must happen once, not once per replica. The replica whose identity the Lease names
(the holder) does them. It renews the Lease every ``retry`` seconds; another replica takes
it over once it has seen the same Lease record unchanged for ``duration`` seconds.

Expiry is judged by this replica's own monotonic clock since it first saw a record
(as client-go's leader election does), never by comparing the record's ``renewTime`` with
the local wall clock: replicas on different nodes may disagree on the time of day. Writes
carry the resourceVersion they read, so two replicas racing for an expired Lease cannot
both win: the API server answers the second with 409 Conflict.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .k8s import KubeClient, KubeError

_LOG = logging.getLogger("broker.lease")


def _micro_time() -> str:
    """A MicroTime as the API server writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """Holds, renews or waits for one Lease; :attr:`leading` says whether this replica leads."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        *,
        duration: float = 15.0,
        retry: float = 2.0,
        on_change: Callable[[bool], None] = lambda leading: None,
        log: logging.Logger | logging.LoggerAdapter = _LOG,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.retry = retry
        self.on_change = on_change
        self.log = log
        self._renewed = -float("inf")  # monotonic time of our last successful write
        self._observed: tuple[Any, ...] = ()
        self._observed_at = 0.0
        self._leading = False
        self._held: dict[str, Any] | None = None  # the Lease as our last write stored it
        self._task: asyncio.Task[None] | None = None

    @property
    def leading(self) -> bool:
        """True while our last renewal is recent enough that nobody else may take over.

        We stop leading at two thirds of the duration (client-go's renew deadline), so a
        replica whose renewals fail stops culling before another one may start.
        """
        return self._leading and time.monotonic() - self._renewed < self.duration * 2 / 3

    async def start(self) -> None:
        """Make a first attempt (so startup knows who leads), then keep trying in the background."""
        await self.step()
        self._task = asyncio.create_task(self._run(), name=f"lease-{self.name}")

    async def stop(self, release: bool = True) -> None:
        """Stop renewing; ``release`` frees the Lease so another replica takes over at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if release and self._leading:
            try:
                lease = await self.kube.read_lease(self.namespace, self.name)
                if lease["spec"].get("holderIdentity") == self.identity:
                    lease["spec"] = {"leaseDurationSeconds": 1, "renewTime": _micro_time()}
                    await self.kube.replace_lease(self.namespace, lease)
                    self.log.info("lease released name=%s identity=%s", self.name, self.identity)
            except Exception as e:  # noqa: BLE001 - it expires on its own anyway
                self.log.warning("lease %s: could not release it: %s", self.name, e)
        self._set_leading(False)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.retry)
            await self.step()

    async def step(self) -> bool:
        """One attempt to acquire or renew; returns whether this replica leads now."""
        try:
            await self._try_acquire()
        except Exception as e:  # noqa: BLE001 - any failure means we do not hold it now
            # 409: another replica wrote first; anything else: the API server is unreachable.
            # Either way we do not hold it now; `leading` also lapses on its own.
            if not (isinstance(e, KubeError) and e.status == 409):
                self.log.warning("lease %s: %s", self.name, e)
            self._set_leading(False)
        return self.leading

    async def _try_acquire(self) -> None:
        if self._leading and self._held is not None and await self._renew(self._held):
            return
        try:
            lease = await self.kube.read_lease(self.namespace, self.name)
        except KubeError as e:
            if e.status != 404:
                raise
            self._held = await self.kube.create_lease(self.namespace, self._new_lease())
            self._won(transition=True)
            return
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), lease["metadata"].get("resourceVersion"))
        now = time.monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        expired = now - self._observed_at > float(spec.get("leaseDurationSeconds") or 0)
        if holder and holder != self.identity and not expired:
            self._set_leading(False)
            return
        taking_over = holder != self.identity
        spec = {
            **spec,
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "renewTime": _micro_time(),
        }
        if taking_over:
            spec["acquireTime"] = spec["renewTime"]
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        self._held = await self.kube.replace_lease(self.namespace, {**lease, "spec": spec})
        self._won(transition=taking_over)

    async def _renew(self, held: dict[str, Any]) -> bool:
        """Renew from our own last write, without reading first (one request a renewal);
        False when someone else wrote since: then read it, as any other replica does."""
        spec = {**held["spec"], "renewTime": _micro_time()}
        try:
            self._held = await self.kube.replace_lease(self.namespace, {**held, "spec": spec})
        except KubeError as e:
            self._held = None
            if e.status != 409:
                raise
            return False
        self._won(transition=False)
        return True

    def _new_lease(self) -> dict[str, Any]:
        now = _micro_time()
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.duration)),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }

    def _won(self, transition: bool) -> None:
        self._renewed = time.monotonic()
        if transition:
            self.log.info("lease acquired name=%s identity=%s", self.name, self.identity)
        self._set_leading(True)

    def _set_leading(self, leading: bool) -> None:
        if leading != self._leading:
            self._leading = leading
            if not leading:
                self._held = None
                self.log.info("lease lost name=%s identity=%s", self.name, self.identity)
            self.on_change(leading)
