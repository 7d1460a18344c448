"""What this replica does when it gains or loses the Lease: the holder keeps the pod pools
(surveying first the warm pods the previous holder left); a replica that loses it stops
handing them out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..pools import KernelPools
from ..replicas import Replicas


class Leadership:
    """Follows this replica's Lease; ``changed`` is the elector's callback."""

    def __init__(
        self,
        replicas: Replicas,
        pools: KernelPools,
        survey: Callable[[], Awaitable[None]],
        background: Callable[[Awaitable[None]], None],
    ) -> None:
        """``survey`` adopts the kernel pods no one here serves; ``background`` runs a
        task that the broker cancels when it drains."""
        self.replicas = replicas
        self.pools = pools
        self.survey = survey
        self.background = background
        self.started = False  # until then, startup surveys and fills the pools itself

    def changed(self, leading: bool) -> None:
        """The Lease holder keeps the pod pools; a replica losing it stops handing them out."""
        if leading and self.started:
            self.background(self._lead())
        else:
            for name in self.replicas.pod_specs:
                for warm in self.pools.release(name):
                    self.background(warm.bridge.close())

    async def _lead(self) -> None:
        await self.survey()  # warm pods the previous holder left
        self.pools.refill_all()
