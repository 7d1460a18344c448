"""`llm-agent serve`: a chat endpoint streaming server-sent events, one kernel per session.

``POST /api/chat`` with ``{"message": ..., "session_id": optional}`` answers with an
event stream: ``session`` (the id to send next time), ``text`` deltas, ``tool_call``,
``tool_output``, ``tool_result``, ``answer``, then ``done`` (or ``error``).
``GET /api/chat/{id}/notebook`` returns the transcript; ``DELETE /api/chat/{id}``
ends a session. Sessions idle longer than the idle timeout are closed with their kernel.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nbformat
import openai
from tornado import iostream, web

from .agent import Agent
from .events import Event, event_json

log = logging.getLogger("llm_agent.server")

AgentFactory = Callable[[], Awaitable[Agent]]


class SessionUnavailable(Exception):
    """A session's kernel could not be started; the message says why and what to change."""


@dataclass
class ChatSession:
    """One conversation and its kernel."""

    agent: Agent
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ChatSessions:
    """Sessions by id; each new one starts its own kernel through ``factory``."""

    def __init__(self, factory: AgentFactory, idle_timeout: float, max_sessions: int = 20) -> None:
        self.factory = factory
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.sessions: dict[str, ChatSession] = {}
        # a session whose kernel is starting: a second request for it waits, not starts another
        self._starting: dict[str, asyncio.Future[ChatSession]] = {}

    async def get_or_create(self, session_id: str) -> ChatSession:
        """The session, started on first use. Raises web.HTTPError(503) when full."""
        session = self.sessions.get(session_id)
        if session is None:
            starting = self._starting.get(session_id)
            if starting is None:
                if len(self.sessions) + len(self._starting) >= self.max_sessions:
                    raise web.HTTPError(503, "too many chat sessions; try again later")
                starting = asyncio.ensure_future(self._start(session_id))
                self._starting[session_id] = starting
            session = await asyncio.shield(starting)
        session.last_used = time.monotonic()
        return session

    async def _start(self, session_id: str) -> ChatSession:
        try:
            session = ChatSession(await self.factory())
        finally:
            del self._starting[session_id]
        self.sessions[session_id] = session
        kernel_id = session.agent.kernel.kernel_id
        log.info("chat session started id=%s kernel=%s", session_id, kernel_id)
        return session

    async def close(self, session_id: str) -> bool:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        await session.agent.close()
        log.info("chat session closed id=%s", session_id)
        return True

    async def reap_idle(self, now: float | None = None) -> list[str]:
        """Close sessions idle past the timeout (never one that is answering)."""
        now = time.monotonic() if now is None else now
        idle = [
            sid
            for sid, s in self.sessions.items()
            if now - s.last_used > self.idle_timeout and not s.lock.locked()
        ]
        for sid in idle:
            await self.close(sid)
        return idle

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(sid) for sid in list(self.sessions)))


class _Base(web.RequestHandler):
    def initialize(self, sessions: ChatSessions, token: str | None) -> None:
        self.sessions = sessions
        self.token = token

    def prepare(self) -> None:
        if self.token:
            given = self.request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given, self.token):
                raise web.HTTPError(401, "missing or wrong bearer token")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        message = error.log_message if isinstance(error, web.HTTPError) else None
        self.finish({"reason": self._reason, "message": message or self._reason})


class ChatHandler(_Base):
    """POST /api/chat: one user message, answered as server-sent events."""

    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
            message = body["message"]
            session_id = str(body.get("session_id") or uuid.uuid4().hex)
        except (ValueError, KeyError, TypeError):
            raise web.HTTPError(400, 'send {"message": "...", "session_id": optional}') from None
        try:
            session = await self.sessions.get_or_create(session_id)
        except SessionUnavailable as e:  # the broker: a gateway's error, saying which and why
            raise web.HTTPError(502, str(e)) from None
        if session.lock.locked():
            raise web.HTTPError(409, "this session is still answering a previous message")
        async with session.lock:
            self.set_header("Content-Type", "text/event-stream")
            self.set_header("Cache-Control", "no-cache")
            await self._send("session", {"session_id": session_id})
            try:
                await session.agent.ask(message, self._on_event)
            except Exception as e:  # the stream has started: report in-band, then end it
                log.exception("chat session %s failed", session_id)
                message = (
                    session.agent.model.explain(e)
                    if isinstance(e, openai.APIError)
                    else f"{type(e).__name__}: {e}"
                )
                await self._send("error", {"message": message})
            await self._send("done", {})
            session.last_used = time.monotonic()

    async def _on_event(self, event: Event) -> None:
        await self._send(event.kind, event_json(event))

    async def _send(self, name: str, data: dict) -> None:
        try:
            self.write(f"event: {name}\ndata: {json.dumps(data)}\n\n")
            await self.flush()
        except iostream.StreamClosedError:
            pass  # the client left; the agent finishes the turn so the session stays coherent


class SessionHandler(_Base):
    """DELETE /api/chat/{id} ends a session and shuts its kernel down."""

    async def delete(self, session_id: str) -> None:
        if not await self.sessions.close(session_id):
            raise web.HTTPError(404, "no such session")
        self.set_status(204)


class NotebookHandler(_Base):
    """GET /api/chat/{id}/notebook: the conversation so far as an .ipynb."""

    def get(self, session_id: str) -> None:
        session = self.sessions.sessions.get(session_id)
        if session is None:
            raise web.HTTPError(404, "no such session")
        self.set_header("Content-Type", "application/x-ipynb+json")
        self.write(nbformat.writes(session.agent.transcript.notebook))


def make_app(sessions: ChatSessions, token: str | None = None) -> web.Application:
    """The Tornado application; the caller runs the idle reaper (see ``run_reaper``)."""
    args = {"sessions": sessions, "token": token}
    return web.Application(
        [
            (r"/api/chat", ChatHandler, args),
            (r"/api/chat/([\w-]+)", SessionHandler, args),
            (r"/api/chat/([\w-]+)/notebook", NotebookHandler, args),
        ]
    )


async def run_reaper(sessions: ChatSessions, interval: float) -> None:
    """Close idle sessions every ``interval`` seconds, forever."""
    while True:
        await asyncio.sleep(interval)
        await sessions.reap_idle()
