"""One watch of the fake API server: newline-delimited JSON events over a chunked
response, from a resourceVersion (410 Expired as an ERROR event when it is older than the
kept history) or from synthetic ADDED events, with bookmarks and a timeout; objects that
stop or start matching the selector become DELETED or ADDED events."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from tornado import iostream

from .objects import API_VERSIONS, RESOURCES, ApiError, status_body
from .store import Event, Obj

if TYPE_CHECKING:
    from .apihandlers import ApiHandler


class Watch:
    """One watch stream: newline-delimited JSON events over a chunked response."""

    def __init__(self, handler: ApiHandler, namespace: str | None, resource: str, match) -> None:
        self.h = handler
        self.api = handler.api
        self.resource = resource
        self.namespace = namespace
        self.match = match
        self.sent_rv = 0

    async def emit(self, type_: str, obj: Obj) -> None:
        self.h.write(json.dumps({"type": type_, "object": obj}) + "\n")
        await self.h.flush()

    def translate(self, event: Event) -> tuple[str, Obj] | None:
        """The event as this watcher sees it through its selector."""
        if event.resource != self.resource:
            return None
        now_in, was_in = self.match(event.obj), self.match(event.old)
        if event.type == "MODIFIED" and was_in and not now_in:
            return "DELETED", event.obj
        if event.type == "MODIFIED" and now_in and not was_in:
            return "ADDED", event.obj
        return (event.type, event.obj) if now_in else None

    async def send_event(self, event: Event) -> None:
        if event.rv <= self.sent_rv:
            return
        self.sent_rv = event.rv
        out = self.translate(event)
        if out:
            await self.emit(*out)

    async def run(self) -> None:
        h = self.h
        rv_arg = h.get_query_argument("resourceVersion", "")
        timeout = float(h.get_query_argument("timeoutSeconds", "1800"))
        bookmarks = h.get_query_argument("allowWatchBookmarks", "") in ("true", "1")
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        h.watch_queue = queue
        unsubscribe = self.api.store.subscribe(queue.put_nowait)
        self.api.watches.add(h)
        h.set_header("Content-Type", "application/json")
        h.set_header("Transfer-Encoding", "chunked")
        try:
            await self._initial(rv_arg)
            await self._follow(queue, timeout, bookmarks)
        except iostream.StreamClosedError:
            return
        finally:
            unsubscribe()
            self.api.watches.discard(h)
        if not h._finished:
            h.finish()

    async def _initial(self, rv_arg: str) -> None:
        store = self.api.store
        if rv_arg in ("", "0"):
            self.sent_rv = store.rv
            for obj in store.list(self.resource, self.namespace):
                if self.match(obj):
                    await self.emit("ADDED", obj)
            await self.h.flush()
            return
        if not rv_arg.isdigit():
            raise ApiError(400, "BadRequest", f"invalid resourceVersion {rv_arg!r}")
        rv = int(rv_arg)
        if rv < store.compacted_rv:
            body = status_body(410, "Expired", f"too old resource version: {rv} ({store.rv})")
            await self.emit("ERROR", body)
            raise iostream.StreamClosedError()
        self.sent_rv = rv
        for event in list(store.history):
            await self.send_event(event)
        await self.h.flush()

    async def _follow(self, queue: asyncio.Queue, timeout: float, bookmarks: bool) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            wait = min(left, self.api.bookmark_interval) if bookmarks else left
            try:
                event = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if bookmarks and queue.empty() and loop.time() < deadline:
                    marker = {
                        "kind": RESOURCES[self.resource],
                        "apiVersion": API_VERSIONS[self.resource],
                    }
                    marker["metadata"] = {"resourceVersion": str(self.api.store.rv)}
                    self.sent_rv = self.api.store.rv
                    await self.emit("BOOKMARK", marker)
                continue
            if event is None:  # the connection closed
                raise iostream.StreamClosedError()
            await self.send_event(event)
