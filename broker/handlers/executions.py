"""POST /api/kernels/{id}/execute and the executions it leaves behind."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

from tornado.iostream import StreamClosedError

from ..errors import BrokerError
from ..executions import Execution
from .base import BaseHandler, field

_background: set[asyncio.Task[None]] = set()  # keeps fire-and-forget cancels alive


class ExecuteHandler(BaseHandler):
    """Run code: stream NDJSON events, or with ``"background": true`` answer 202 at once."""

    execution: Execution | None = None

    async def post(self, kernel_id: str) -> None:
        kernel = await self.broker.registry.find(kernel_id, self.user)
        body = self.json_body()
        code = field(body, "code", str)
        if code is None:
            raise BrokerError(400, "Field 'code' is required.")
        timeout = field(body, "timeout", (int, float))
        if timeout is not None and not 0 < timeout <= 86400:
            raise BrokerError(400, "Field 'timeout' must be between 0 and 86400 seconds.")
        if kernel.dead:
            raise BrokerError(409, f"Kernel {kernel_id} is dead; restart or shut it down.")
        executions = self.broker.registry.executions(kernel)
        ex = executions.submit(code, timeout)
        location = f"/api/kernels/{quote(kernel_id)}/executions/{ex.id}"
        self.set_header("Location", location)
        if field(body, "background", bool, False):
            self.write_json(ex.model(events=False), status=202)
            return
        self.execution = ex
        self.set_header("Content-Type", "application/x-ndjson")
        try:
            await self._send({"type": "start", "execution_id": ex.id})
            async for event in ex.follow():
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
        self.write_json(self.broker.registry.executions(kernel).get(exec_id).model())

    async def delete(self, kernel_id: str, exec_id: str) -> None:
        kernel = await self.broker.registry.find(kernel_id, self.user)
        executions = self.broker.registry.executions(kernel)
        ex = executions.get(exec_id)
        await executions.cancel(ex)
        self.write_json(ex.model(events=False))
