"""Turn the messages of one execute request into an ``Execution``, calling back as they arrive."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from broker.client.results import Execution, ExecutionError, Result, strip_ansi
from broker.wire import Message

Callback = Callable[[Any], Awaitable[None] | None]


@dataclass
class Callbacks:
    """Optional handlers, one per event type; each may be a plain or an async function."""

    on_stdout: Callback | None = None  # str
    on_stderr: Callback | None = None  # str
    on_result: Callback | None = None  # Result (display data and execute results)
    on_error: Callback | None = None  # ExecutionError
    on_status: Callback | None = None  # str: busy, idle, restarting, dead


async def _call(callback: Callback | None, value: Any) -> None:
    if callback is not None:
        outcome = callback(value)
        if inspect.isawaitable(outcome):
            await outcome


class Collector:
    """Accumulates one request's output; ``done`` once the reply and idle status arrived.

    The broker's synthetic ``restarting`` and ``dead`` statuses carry no parent header:
    they end the execution whatever request they follow, since its reply will never come.
    """

    def __init__(self, msg_id: str, callbacks: Callbacks | None = None) -> None:
        self.msg_id = msg_id
        self.callbacks = callbacks or Callbacks()
        self.execution = Execution()
        self.replied = False
        self.idle = False
        self._clear_pending = False

    @property
    def done(self) -> bool:
        ex = self.execution
        return (self.replied and self.idle) or ex.kernel_restarted or ex.kernel_died

    async def feed(self, msg: Message) -> None:
        """Take one message from the kernel's channels; messages of other requests are ignored."""
        parent = msg.parent_msg_id
        if msg.msg_type == "status" and not parent:
            await self._kernel_status(msg.content_dict().get("execution_state", ""))
            return
        if parent != self.msg_id:
            return
        content = msg.content_dict()
        if msg.channel == "shell":
            self.replied = True
            if self.execution.execution_count is None:
                self.execution.execution_count = content.get("execution_count")
            return
        handler = getattr(self, f"_on_{msg.msg_type}", None)
        if handler is not None:
            await handler(content)

    async def _kernel_status(self, state: str) -> None:
        if state == "restarting":
            self.execution.kernel_restarted = True
            self.execution.restart_reason = self.execution.restart_reason or "crash"
        elif state == "dead":
            self.execution.kernel_died = True
        else:
            return
        await _call(self.callbacks.on_status, state)

    async def _on_status(self, content: dict[str, Any]) -> None:
        state = content.get("execution_state", "")
        self.idle = state == "idle"
        await _call(self.callbacks.on_status, state)

    async def _on_execute_input(self, content: dict[str, Any]) -> None:
        self.execution.execution_count = content.get("execution_count")

    async def _on_stream(self, content: dict[str, Any]) -> None:
        self._apply_pending_clear()
        name, text = content.get("name", "stdout"), content.get("text", "")
        logs = self.execution.logs
        (logs.stderr if name == "stderr" else logs.stdout).append(text)
        outputs = self.execution.outputs
        if outputs and outputs[-1]["output_type"] == "stream" and outputs[-1]["name"] == name:
            outputs[-1]["text"] += text
        else:
            outputs.append({"output_type": "stream", "name": name, "text": text})
        await _call(
            self.callbacks.on_stderr if name == "stderr" else self.callbacks.on_stdout, text
        )

    async def _on_display_data(self, content: dict[str, Any], main: bool = False) -> None:
        self._apply_pending_clear()
        data, metadata = content.get("data") or {}, content.get("metadata") or {}
        result = Result.from_bundle(data, metadata, main=main)
        self.execution.results.append(result)
        output: dict[str, Any] = {
            "output_type": "execute_result" if main else "display_data",
            "data": data,
            "metadata": metadata,
        }
        if main:
            output["execution_count"] = content.get("execution_count")
        self.execution.outputs.append(output)
        await _call(self.callbacks.on_result, result)

    async def _on_execute_result(self, content: dict[str, Any]) -> None:
        await self._on_display_data(content, main=True)

    async def _on_error(self, content: dict[str, Any]) -> None:
        error = ExecutionError.from_content(content)
        self.execution.error = error
        self.execution.outputs.append(
            {
                "output_type": "error",
                "ename": error.name,
                "evalue": error.value,
                "traceback": [strip_ansi(line) for line in content.get("traceback") or []],
            }
        )
        await _call(self.callbacks.on_error, error)

    async def _on_clear_output(self, content: dict[str, Any]) -> None:
        if content.get("wait"):
            self._clear_pending = True
        else:
            self.execution.outputs.clear()

    def _apply_pending_clear(self) -> None:
        # clear_output(wait=True) clears only when the next output arrives (no flicker)
        if self._clear_pending:
            self.execution.outputs.clear()
            self._clear_pending = False
