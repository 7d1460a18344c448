"""One watch-fed cache of the broker's kernel pods, shared by every kernel.

A reflector lists the pods matching its label selector once, then follows a single
watch from that list's resourceVersion. Kernels read the cache and await changes
(:meth:`PodReflector.wait_for`) instead of polling the API server each. When the watch
ends (timeout, dropped connection) it resumes from the last resourceVersion seen; when
the server says that version has expired (410) it lists again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .k8s import KubeClient, WatchExpired

log = logging.getLogger(__name__)

Pod = dict[str, Any]


class PodReflector:
    """A local, watch-fed copy of the pods in ``namespace`` that match ``label_selector``."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        label_selector: str,
        watch_timeout: int = 300,
        retry_delay: float = 1.0,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self.retry_delay = retry_delay
        self.pods: dict[str, Pod] = {}
        self.resource_version = ""
        self._changed = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self._first_list = asyncio.Event()
        self._error: Exception | None = None

    async def start(self) -> None:
        """Start following; returns once the first list has filled the cache."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"pod-reflector-{self.namespace}")
        await self._first_list.wait()
        if self._error is not None and not self.pods and not self.resource_version:
            raise self._error

    async def stop(self) -> None:
        """Stop the watch."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def get(self, name: str) -> Pod | None:
        """The cached pod, or None when it does not exist (as far as the watch knows)."""
        return self.pods.get(name)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until ``predicate()`` holds after a cache change; False on timeout."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                return predicate()
        return True

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _list(self) -> None:
        listed = await self.kube.list_pods(self.namespace, self.label_selector)
        self.pods = {p["metadata"]["name"]: p for p in listed.get("items", [])}
        self.resource_version = listed["metadata"]["resourceVersion"]
        await self._notify()

    async def _watch(self) -> None:
        events = self.kube.watch_pods(
            self.namespace, self.label_selector, self.resource_version, self.watch_timeout
        )
        async for kind, obj in events:
            self.resource_version = obj["metadata"].get("resourceVersion", self.resource_version)
            if kind == "BOOKMARK":
                continue
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                self.pods.pop(name, None)
            else:
                self.pods[name] = obj
            await self._notify()

    async def _run(self) -> None:
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                    self._error = None
                    self._first_list.set()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except WatchExpired:
                log.info(
                    "pod watch expired at resourceVersion %s; listing again", self.resource_version
                )
                need_list = True
            except Exception as e:  # noqa: BLE001 - any failure: back off and resume
                log.warning("pod watch in %s failed: %s; retrying", self.namespace, e)
                self._error = e
                self._first_list.set()
                await asyncio.sleep(self.retry_delay)
