"""Code executions over HTTP for clients that do not speak websocket.

Each kernel has one queue: executions run one at a time, in order. An execution
turns the kernel's messages into plain events (stdout, stderr, display data,
execute result, error, end) that a client streams as NDJSON or reads later.

Every execution ends: its timeout counts from its submission (the queue wait included),
and at the deadline the kernel is interrupted for at most ``INTERRUPT_GRACE`` seconds,
after which the execution ends as ``timeout`` whether or not the kernel stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from traitlets import Float
from traitlets.config import Configurable

from .bridge import Bridge
from .errors import not_found
from .execution_events import Event, event_from, render
from .timestamps import format_time
from .wire import Message, make_message

log = logging.getLogger("broker.executions")

FINAL = ("ok", "error", "timeout", "cancelled", "aborted")
INTERRUPT_GRACE = 15.0  # seconds of interrupting after the deadline; the spec states it
_REPLY_AFTER_IDLE = 2.0  # the reply (shell) may trail the idle status (iopub)


class ExecutionLimits(Configurable):
    """How long an HTTP execution may take; GET /api/spec.yaml states the values in force."""

    default_timeout = Float(
        600.0,
        config=True,
        help="Seconds an execution may take from its submission (queue wait included) when "
        "the request names no timeout; then the kernel is interrupted.",
    )
    max_timeout = Float(86400.0, config=True, help="Largest timeout a request may ask for.")

    @property
    def default(self) -> float:
        """The timeout of a request that names none (never above the maximum)."""
        return min(self.default_timeout, self.max_timeout)


@dataclass(eq=False)
class Execution:
    """One submitted piece of code and everything it produced."""

    code: str
    timeout: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: str = "queued"
    execution_count: int | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    events: list[Event] = field(default_factory=list)
    deadline: float = 0.0  # time.monotonic() at which the kernel is interrupted
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # set when the kernel is about to run the code (execute_input): earlier, an interrupt is lost
    _started: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # set with the execute_reply or the idle status: later, an interrupt would hit whatever
    # the kernel does next (and ipykernel drops the reply of a request it was dispatching)
    _settled: bool = field(default=False, repr=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # cancel asked
    _expiry: asyncio.Handle | None = field(default=None, repr=False)  # ends it while queued

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def add(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def note(self, text: str) -> None:
        """A line from the broker itself on the execution's stderr."""
        self.add({"type": "stderr", "text": f"[kernel-broker] {text}\n"})

    def finish(self, status: str) -> None:
        if self.status in FINAL:
            return
        self.status = status
        self.finished = time.time()
        self._started.set()  # nothing left to interrupt
        if self._expiry is not None:
            self._expiry.cancel()
        self.add(
            {
                "type": "end",
                "status": status,
                "execution_count": self.execution_count,
                "execution_id": self.id,
            }
        )

    async def follow(self, ansi: bool = False) -> AsyncIterator[Event]:
        """Every event so far, then new ones as they come, until the end event."""
        sent = 0
        while True:
            while sent < len(self.events):
                event = self.events[sent]
                sent += 1
                yield render(event, ansi)
                if event["type"] == "end":
                    return
            self._changed.clear()
            await self._changed.wait()

    def model(self, events: bool = True, ansi: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "execution_count": self.execution_count,
            "timeout": self.timeout,
            "created": format_time(self.created),
            "started": None if self.started is None else format_time(self.started),
            "finished": None if self.finished is None else format_time(self.finished),
        }
        if events:
            doc["events"] = [render(e, ansi) for e in self.events]
        return doc


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

    def submit(self, code: str, timeout: float) -> Execution:
        ex = Execution(code, timeout)
        ex._expiry = asyncio.get_running_loop().call_later(timeout, _expire_if_queued, ex)
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
            except Exception:  # one broken execution must not stall the kernel's queue
                log.exception("execution %s failed", ex.id)
                ex.note("the broker failed to run this code; it is logged")
                ex.finish("aborted")
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
                    ex.note(f"kernel {execution_state}")
                    state["lost"] = True
                    done.set()
                if execution_state == "idle":
                    state["idle"] = ex._settled = True
            elif msg.channel == "iopub" and msg.msg_type == "execute_input":
                ex._started.set()
            elif msg.channel == "iopub":
                event = event_from(msg)
                if event is not None:
                    ex.add(event)
            elif msg.msg_type == "execute_reply":
                state["reply"] = msg.content_dict()
                ex._settled = True
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
        """Wait for the reply; at the deadline or on cancel, interrupt, for a bounded time."""
        finished = asyncio.ensure_future(done.wait())
        stop = asyncio.ensure_future(ex._stop.wait())
        try:
            left = max(0.0, ex.deadline - time.monotonic())
            await asyncio.wait({finished, stop}, timeout=left, return_when="FIRST_COMPLETED")
            if done.is_set():
                return
            if not ex._stop.is_set():
                ex.status = "timing out"
            async with asyncio.timeout(INTERRUPT_GRACE):
                await self._interrupt_until_done(ex, finished)
        except TimeoutError:
            what = "stop" if ex._started.is_set() else "start (it was busy with other work)"
            ex.note(
                f"the kernel did not {what} within {INTERRUPT_GRACE:g} s after the timeout and "
                "may still run this code; interrupt or restart the kernel"
            )
        finally:
            stop.cancel()
            finished.cancel()

    async def _interrupt_until_done(self, ex: Execution, finished: asyncio.Future[Any]) -> None:
        # the kernel must have begun (it said so on iopub), or the interrupt hits nothing
        started = asyncio.ensure_future(ex._started.wait())
        await asyncio.wait({finished, started}, return_when="FIRST_COMPLETED")
        started.cancel()
        attempt = 0
        while not finished.done():
            if ex._settled:  # done with the request; only the reply (or idle) is to come
                await asyncio.wait({finished}, timeout=_REPLY_AFTER_IDLE)
                return
            if not _interrupted(ex):
                await self.interrupt()
            await asyncio.wait({finished}, timeout=2.0**attempt)
            attempt += 1


def _expire_if_queued(ex: Execution) -> None:
    """At its deadline, an execution still waiting for its turn ends without running."""
    if ex.status == "queued":
        ex.note(f"the timeout ({ex.timeout:g} s) passed while queued; the code did not run")
        ex.finish("timeout")


def _interrupted(ex: Execution) -> bool:
    """Whether the kernel already reported the KeyboardInterrupt (no need to send another)."""
    return any(e["type"] == "error" and e.get("name") == "KeyboardInterrupt" for e in ex.events)
