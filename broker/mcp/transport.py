"""MCP's streamable HTTP transport inside the broker's Tornado app, on the broker's own port.

The MCP SDK's transport is an ASGI application. ``McpService`` runs the SDK's session
manager on the broker's event loop; ``McpHandler`` authenticates a request like every
other endpoint, then hands it to that ASGI application: the request becomes an ASGI scope
and body, the ASGI response messages become Tornado writes.

The manager is stateless and answers in JSON: every POST carries a whole exchange and
every tool call names its kernel, so any broker replica can serve any request.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from ..errors import BrokerError
from ..handlers.base import BaseHandler
from .server import USER_SCOPE_KEY, build_server

if TYPE_CHECKING:
    from tornado.httputil import HTTPServerRequest

    from ..app import Broker
    from ..auth import User


class McpService:
    """The SDK's streamable HTTP session manager, running for as long as the broker serves."""

    def __init__(self, broker: Broker) -> None:
        self.manager = StreamableHTTPSessionManager(
            build_server(broker),
            stateless=True,
            json_response=True,
            max_request_body_size=broker.max_body_bytes,
        )
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.running = False

    async def start(self) -> None:
        """Start the manager's task group; returns once requests can be served."""
        ready = asyncio.Event()

        async def run() -> None:
            async with self.manager.run():
                self.running = True
                ready.set()
                await self._stop.wait()
                self.running = False

        self._task = asyncio.ensure_future(run())
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait({self._task, waiter}, return_when="FIRST_COMPLETED")
        waiter.cancel()
        if self._task.done():
            self._task.result()  # the manager failed to start: raise why

    async def stop(self) -> None:
        """End every MCP request still in flight and stop the manager."""
        self._stop.set()
        if self._task is not None:
            await self._task


def asgi_scope(request: HTTPServerRequest, user: User) -> dict[str, Any]:
    """The ASGI HTTP scope of a Tornado request, with the authenticated user in it."""
    host, _, port = request.host.rpartition(":")
    server = (host, int(port)) if port.isdigit() else (request.host, 0)
    client = (request.remote_ip or "", 0)
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": request.version.removeprefix("HTTP/"),
        "method": request.method,
        "scheme": request.protocol,
        "path": request.path,
        "raw_path": request.path.encode(),
        "query_string": request.query.encode(),
        "root_path": "",
        "headers": [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.get_all()
        ],
        "client": client,
        "server": server,
        "state": {},
        USER_SCOPE_KEY: user,
    }


class McpHandler(BaseHandler):
    """``POST /mcp``: the token is checked here (401 without it), then the SDK answers.

    Only POST: a stateless server has no session to DELETE and no server-initiated
    messages for a GET stream (which would hold a connection open for nothing); those
    methods answer 405.
    """

    _app_task: asyncio.Task[None] | None = None
    _disconnected: asyncio.Event | None = None

    async def post(self) -> None:
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type.lower() != "application/json":
            raise BrokerError(
                415,
                "MCP messages are JSON: send 'Content-Type: application/json' "
                "(an MCP client library does).",
            )
        if not self.broker.mcp.running:  # a kept-alive connection, after the drain began
            raise BrokerError(503, "The broker is shutting down; connect to another one.")
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._disconnected = asyncio.Event()
        disconnected = self._disconnected
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        scope = asgi_scope(self.request, self.user)
        self._app_task = asyncio.ensure_future(
            self.broker.mcp.manager.handle_request(scope, receive, self._send)
        )
        try:
            await self._app_task
        except asyncio.CancelledError:
            if not disconnected.is_set():  # not the client leaving (on_connection_close)
                raise
        if not self._finished and not disconnected.is_set():
            self.finish()

    async def _send(self, message: dict[str, Any]) -> None:
        if self._finished:
            return
        if message["type"] == "http.response.start":
            self.set_status(message["status"])
            self.clear_header("Content-Type")
            self.clear_header("Cache-Control")
            for name, value in message.get("headers", []):
                self.add_header(name.decode("latin-1"), value.decode("latin-1"))
        elif message["type"] == "http.response.body":
            self.write(message.get("body", b""))
            if message.get("more_body"):
                await self.flush()
            else:
                self.finish()

    def on_connection_close(self) -> None:
        """A client that goes away cancels its request (an execute interrupts the kernel)."""
        if self._disconnected is not None:
            self._disconnected.set()
        if self._app_task is not None and not self._app_task.done():
            self._app_task.cancel()
