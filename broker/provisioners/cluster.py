"""The Kubernetes connections a broker process shares between all its pod kernels.

One :class:`KubeClient` per cluster configuration and one :class:`PodReflector` per
watched namespace, per event loop: a thousand kernels mean one watch, not a thousand.
Call :func:`close_clusters` when the broker shuts down.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .k8s import ClusterConfig, KubeClient
from .reflector import PodReflector


@dataclass
class Cluster:
    """An API client and the reflectors that use it."""

    kube: KubeClient
    reflectors: dict[tuple[str, str], PodReflector] = field(default_factory=dict)


_clusters: dict[tuple[int, ClusterConfig], Cluster] = {}
_lock: dict[int, asyncio.Lock] = {}


async def get_cluster(cfg: ClusterConfig) -> Cluster:
    """The shared client for ``cfg`` on the running loop, connecting on first use."""
    loop_id = id(asyncio.get_running_loop())
    lock = _lock.setdefault(loop_id, asyncio.Lock())
    async with lock:
        key = (loop_id, cfg)
        if key not in _clusters:
            _clusters[key] = Cluster(await KubeClient.connect(cfg))
        return _clusters[key]


async def get_reflector(cfg: ClusterConfig, namespace: str, label_selector: str) -> PodReflector:
    """The shared, started pod reflector for a namespace and selector."""
    cluster = await get_cluster(cfg)
    key = (namespace, label_selector)
    reflector = cluster.reflectors.get(key)
    if reflector is None:
        reflector = cluster.reflectors[key] = PodReflector(cluster.kube, namespace, label_selector)
    await reflector.start()
    return reflector


async def close_clusters() -> None:
    """Stop every watch and close every client opened on the running loop."""
    loop_id = id(asyncio.get_running_loop())
    for key in [k for k in _clusters if k[0] == loop_id]:
        cluster = _clusters.pop(key)
        for reflector in cluster.reflectors.values():
            await reflector.stop()
        await cluster.kube.close()
    _lock.pop(loop_id, None)
