"""The fake API server's storage: objects, one resourceVersion counter, an event history.

Like etcd behind a real API server, every write bumps a single global resourceVersion
and is recorded as a watch event. The history is bounded: a watch that asks for a
version older than what is kept gets 410 Expired (``compact`` forces that).
"""

from __future__ import annotations

import copy
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def now() -> str:
    """A timestamp as Kubernetes writes them."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Event:
    """One write, as watches see it."""

    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: str
    obj: Obj
    old: Obj | None


class Store:
    """Objects by (resource, namespace, name), with watchable history."""

    def __init__(self, history: int = 1000) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.rv = 1
        self.history: deque[Event] = deque(maxlen=history)
        self.compacted_rv = 1
        self._listeners: list[Callable[[Event], None]] = []

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``listener`` for each event from now on; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, type_: str, resource: str, obj: Obj, old: Obj | None) -> None:
        event = Event(self.rv, type_, resource, copy.deepcopy(obj), old)
        if len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0].rv
        self.history.append(event)
        for listener in list(self._listeners):
            listener(event)

    def compact(self) -> None:
        """Forget all history, as etcd compaction does: older watches get 410."""
        self.history.clear()
        self.compacted_rv = self.rv

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        """A deep copy of the stored object, or None."""
        obj = self.objects.get((resource, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: str, namespace: str | None) -> list[Obj]:
        """Deep copies of all objects of a resource (in one namespace, or all)."""
        return [
            copy.deepcopy(o)
            for (r, ns, _), o in sorted(self.objects.items())
            if r == resource and (namespace is None or ns == namespace)
        ]

    def create(self, resource: str, obj: Obj) -> Obj:
        """Store a new object, filling uid, resourceVersion and creationTimestamp."""
        meta = obj["metadata"]
        self.rv += 1
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = str(self.rv)
        meta["creationTimestamp"] = now()
        self.objects[(resource, meta["namespace"], meta["name"])] = obj
        self._emit("ADDED", resource, obj, None)
        return copy.deepcopy(obj)

    def update(self, resource: str, obj: Obj) -> Obj:
        """Replace a stored object (same uid), bumping its resourceVersion."""
        meta = obj["metadata"]
        key = (resource, meta["namespace"], meta["name"])
        old = self.objects[key]
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        self.objects[key] = obj
        self._emit("MODIFIED", resource, obj, copy.deepcopy(old))
        return copy.deepcopy(obj)

    def delete(self, resource: str, namespace: str, name: str) -> Obj | None:
        """Remove an object and garbage-collect what it owns (background propagation)."""
        obj = self.objects.pop((resource, namespace, name), None)
        if obj is None:
            return None
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._emit("DELETED", resource, obj, None)
        self.collect_garbage(namespace)
        return copy.deepcopy(obj)

    def collect_garbage(self, namespace: str) -> None:
        """Delete objects whose every owner (by uid) no longer exists, like the GC controller."""
        uids = {o["metadata"]["uid"] for (_, ns, _), o in self.objects.items() if ns == namespace}
        for (resource, ns, name), obj in list(self.objects.items()):
            owners = obj["metadata"].get("ownerReferences") or []
            if ns == namespace and owners and not any(o["uid"] in uids for o in owners):
                self.delete(resource, ns, name)
