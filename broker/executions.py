"""Code executions over HTTP for clients that do not speak websocket.

Each kernel has one queue: executions run one at a time, in order. An execution
turns the kernel's messages into plain events (stdout, stderr, display data,
execute result, error, end) that a client streams as NDJSON or reads later.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .bridge import Bridge
from .errors import not_found
from .wire import Message, make_message

FINAL = ("ok", "error", "timeout", "cancelled", "aborted")
_INTERRUPT_TRIES = 3  # an interrupt that lands before the code runs is lost: repeat it


@dataclass(eq=False)
class Execution:
    """One submitted piece of code and everything it produced."""

    code: str
    timeout: float | None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: str = "queued"
    execution_count: int | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # set when the kernel is about to run the code (execute_input): earlier, an interrupt is lost
    _started: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # set with the execute_reply: later, an interrupt would hit whatever the kernel does next
    _replied: bool = field(default=False, repr=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # cancel asked

    def add(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self._changed.set()

    def finish(self, status: str) -> None:
        if self.status in FINAL:
            return
        self.status = status
        self.finished = time.time()
        self._started.set()  # nothing left to interrupt
        self.add(
            {
                "type": "end",
                "status": status,
                "execution_count": self.execution_count,
                "execution_id": self.id,
            }
        )

    async def follow(self) -> AsyncIterator[dict[str, Any]]:
        """Every event so far, then new ones as they come, until the end event."""
        sent = 0
        while True:
            while sent < len(self.events):
                event = self.events[sent]
                sent += 1
                yield event
                if event["type"] == "end":
                    return
            self._changed.clear()
            await self._changed.wait()

    def model(self, events: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "execution_count": self.execution_count,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }
        if events:
            doc["events"] = self.events
        return doc


def event_from(msg: Message) -> dict[str, Any] | None:
    """The event an iopub message becomes, or None for messages clients need not see."""
    kind = msg.msg_type
    if kind not in ("stream", "display_data", "update_display_data", "execute_result", "error"):
        if kind == "clear_output":
            return {"type": "clear_output", "wait": bool(msg.content_dict().get("wait"))}
        return None
    content = msg.content_dict()
    if kind == "stream":
        return {"type": content.get("name", "stdout"), "text": content.get("text", "")}
    if kind == "error":
        return {
            "type": "error",
            "name": content.get("ename", ""),
            "value": content.get("evalue", ""),
            "traceback": content.get("traceback", []),
        }
    event = {"type": kind, "data": content.get("data", {}), "metadata": content.get("metadata", {})}
    if kind == "execute_result":
        event["execution_count"] = content.get("execution_count")
    return event


class Executions:
    """The execution queue of one kernel."""

    def __init__(
        self, bridge: Bridge, interrupt: Callable[[], Awaitable[None]], keep: int = 100
    ) -> None:
        self.bridge = bridge
        self.interrupt = interrupt
        self.keep = keep
        self._all: OrderedDict[str, Execution] = OrderedDict()
        self._queue: asyncio.Queue[Execution] = asyncio.Queue()
        self._current: Execution | None = None
        self._worker = asyncio.ensure_future(self._work())

    def submit(self, code: str, timeout: float | None) -> Execution:
        ex = Execution(code, timeout)
        self._all[ex.id] = ex
        while len(self._all) > self.keep:
            oldest = next(iter(self._all.values()))
            if oldest.status not in FINAL:
                break
            self._all.popitem(last=False)
        self._queue.put_nowait(ex)
        return ex

    def get(self, exec_id: str) -> Execution:
        ex = self._all.get(exec_id)
        if ex is None:
            raise not_found("execution", exec_id)
        return ex

    def list(self) -> list[Execution]:
        return list(self._all.values())

    async def cancel(self, ex: Execution) -> None:
        """Drop a queued execution, or have the running one interrupted."""
        if ex.status == "queued":
            ex.finish("cancelled")
        elif ex is self._current and ex.status == "running":
            ex.status = "cancelling"
            ex._stop.set()

    def close(self) -> None:
        self._worker.cancel()
        for ex in self._all.values():
            ex.finish("aborted")

    async def _work(self) -> None:
        while True:
            ex = await self._queue.get()
            if ex.status != "queued":
                continue
            self._current = ex
            try:
                await self._run(ex)
            finally:
                self._current = None

    async def _run(self, ex: Execution) -> None:
        ex.status = "running"
        ex.started = time.time()
        done = asyncio.Event()
        state: dict[str, Any] = {"reply": None, "idle": False}

        def consume(msg: Message) -> None:
            if msg.channel == "iopub" and msg.msg_type == "status":
                execution_state = msg.content_dict().get("execution_state")
                if execution_state in ("restarting", "dead"):
                    ex.add(
                        {"type": "stderr", "text": f"[kernel-broker] kernel {execution_state}\n"}
                    )
                    state["lost"] = True
                    done.set()
                state["idle"] = state["idle"] or execution_state == "idle"
            elif msg.channel == "iopub" and msg.msg_type == "execute_input":
                ex._started.set()
            elif msg.channel == "iopub":
                event = event_from(msg)
                if event is not None:
                    ex.add(event)
            elif msg.msg_type == "execute_reply":
                state["reply"] = msg.content_dict()
                ex._replied = True
            if state["reply"] is not None and state["idle"]:
                done.set()

        request = make_message(
            "shell",
            "execute_request",
            {
                "code": ex.code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            session=self.bridge.session,
        )
        await self.bridge.request(request, consume)
        try:
            await self._wait(ex, done)
        finally:
            self.bridge.release(request.msg_id)
        reply = state["reply"] or {}
        ex.execution_count = reply.get("execution_count", ex.execution_count)
        if state.get("lost"):
            ex.finish("aborted")
        elif ex.status == "cancelling":
            ex.finish("cancelled")
        elif ex.status == "timing out":
            ex.finish("timeout")
        else:
            ex.finish("ok" if reply.get("status") == "ok" else "error")

    async def _wait(self, ex: Execution, done: asyncio.Event) -> None:
        """Wait for the reply; on timeout or cancel, interrupt until the kernel gives up."""
        finished = asyncio.ensure_future(done.wait())
        stop = asyncio.ensure_future(ex._stop.wait())
        try:
            await asyncio.wait({finished, stop}, timeout=ex.timeout, return_when="FIRST_COMPLETED")
        finally:
            stop.cancel()
        if done.is_set():
            return
        if not ex._stop.is_set():
            ex.status = "timing out"
        # the kernel must have begun (it said so on iopub), or the interrupt hits nothing
        started = asyncio.ensure_future(ex._started.wait())
        await asyncio.wait({finished, started}, return_when="FIRST_COMPLETED")
        started.cancel()
        for attempt in range(_INTERRUPT_TRIES):
            if done.is_set() or ex._replied or _interrupted(ex):
                break
            await self.interrupt()
            try:
                await asyncio.wait_for(asyncio.shield(finished), 2.0**attempt)
            except TimeoutError:
                continue
        try:  # an interrupt that landed is answered; give the reply time to arrive
            await asyncio.wait_for(finished, 10.0)
        except TimeoutError:
            ex.add({"type": "stderr", "text": "[kernel-broker] the interrupt was not answered\n"})


def _interrupted(ex: Execution) -> bool:
    """Whether the kernel already reported the KeyboardInterrupt (no need to send another)."""
    return any(e["type"] == "error" and e.get("name") == "KeyboardInterrupt" for e in ex.events)
