"""POST /api/kernels/{id}/execute and the executions it leaves behind."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

from tornado.iostream import StreamClosedError

from ..errors import BrokerError
from ..executions import Execution, ExecutionLimits
from .base import BaseHandler, field, only_fields, query_flag

_background: set[asyncio.Task[None]] = set()  # keeps fire-and-forget cancels alive
EXECUTE_FIELDS = ("code", "timeout", "background", "ansi")


def requested_timeout(body: dict, limits: ExecutionLimits) -> float:
    """The request's timeout in seconds: the default when it names none, 400 out of range."""
    timeout = field(body, "timeout", (int, float))
    if timeout is None:
        return limits.default
    if not 0 < timeout <= limits.max_timeout:
        raise BrokerError(
            400,
            f"Field 'timeout' must be more than 0 and at most {limits.max_timeout:g} seconds "
            "(--ExecutionLimits.max_timeout).",
        )
    return float(timeout)


class ExecuteHandler(BaseHandler):
    """Run code: stream NDJSON events, or with ``"background": true`` answer 202 at once."""

    execution: Execution | None = None

    async def post(self, kernel_id: str) -> None:
        kernel = await self.broker.registry.find(kernel_id, self.user)
        body = only_fields(self.json_body(), EXECUTE_FIELDS)
        code = field(body, "code", str)
        if code is None:
            raise BrokerError(400, "Field 'code' is required.")
        timeout = requested_timeout(body, self.broker.execution_limits)
        background = field(body, "background", bool, False)
        ansi = field(body, "ansi", bool, False)
        kernel.check_alive()
        executions = self.broker.registry.executions(kernel)
        ex = executions.submit(code, timeout)
        location = f"/api/kernels/{quote(kernel_id)}/executions/{ex.id}"
        self.set_header("Location", location)
        if background:
            self.write_json(ex.model(events=False), status=202)
            return
        self.execution = ex
        self.set_header("Content-Type", "application/x-ndjson")
        try:
            await self._send({"type": "start", "execution_id": ex.id})
            async for event in ex.follow(ansi):
                await self._send(event)
        except StreamClosedError:
            return  # the client left; on_connection_close interrupted the execution
        finally:
            self.execution = None
        self.finish()

    async def _send(self, event: dict) -> None:
        self.write(json.dumps(event) + "\n")
        await self.flush()

    def on_connection_close(self) -> None:
        """A client that goes away mid-execution interrupts it."""
        ex = self.execution
        if ex is None:  # nothing running; path_kwargs is unset if the method was refused
            return
        kernel = self.broker.registry.kernels.get(self.path_kwargs.get("kernel_id", ""))
        if kernel is not None:
            task = asyncio.ensure_future(self.broker.registry.executions(kernel).cancel(ex))
            _background.add(task)
            task.add_done_callback(_background.discard)


class ExecutionsHandler(BaseHandler):
    async def get(self, kernel_id: str) -> None:
        kernel = await self.broker.registry.find(kernel_id, self.user)
        items = self.broker.registry.executions(kernel).list()
        self.write_json([ex.model(events=False) for ex in items])


class ExecutionHandler(BaseHandler):
    async def get(self, kernel_id: str, exec_id: str) -> None:
        kernel = await self.broker.registry.find(kernel_id, self.user)
        ansi = query_flag("ansi", self.get_argument("ansi", ""))
        self.write_json(self.broker.registry.executions(kernel).get(exec_id).model(ansi=ansi))

    async def delete(self, kernel_id: str, exec_id: str) -> None:
        kernel = await self.broker.registry.find(kernel_id, self.user)
        executions = self.broker.registry.executions(kernel)
        ex = executions.get(exec_id)
        await executions.cancel(ex)
        self.write_json(ex.model(events=False))
