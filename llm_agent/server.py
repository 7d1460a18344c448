"""`llm-agent serve`: a chat API streaming server-sent events, one kernel per session, and
the chat page that uses it.

``POST /api/chat`` with ``{"message": ..., "session_id": optional}`` answers with an
event stream: ``session`` (the id to send next time), ``text`` deltas, ``tool_call``,
``tool_output``, ``tool_result``, ``answer``, then ``done`` (or ``error``).
``GET /api/chat`` lists the sessions; ``PUT|GET|DELETE /api/chat/{id}`` starts (with
its kernel), describes or ends one; ``POST /api/chat/{id}/interrupt`` interrupts the
code it runs; ``GET /api/chat/{id}/notebook`` returns the transcript; its files are
under ``/api/chat/{id}/files/`` (see ``chat_files``); ``GET /api/status`` says whether
the broker and the model server answer. Sessions idle longer than the idle timeout are
closed with their kernel. The page (see ``page``) is served at ``/``.
"""

from __future__ import annotations

import json
import logging
import uuid

import nbformat
import openai
from tornado import iostream, web

from . import chat_files, page
from .api import APIHandler, StatusCheck, attachment, broker_call
from .events import Event, event_json
from .sessions import SESSION_ID, ChatSessions, SessionUnavailable

log = logging.getLogger("llm_agent.server")

SESSION = r"/api/chat/([\w-]+)"


class ChatHandler(APIHandler):
    """POST /api/chat: one user message, answered as server-sent events.
    GET /api/chat: the sessions, newest first."""

    def get(self) -> None:
        listed = sorted(self.sessions.sessions.values(), key=lambda s: s.created, reverse=True)
        self.finish({"sessions": [s.model() for s in listed]})

    async def post(self) -> None:
        message, session_id = self._parse()
        try:
            session = await self.sessions.get_or_create(session_id)
        except SessionUnavailable as e:  # the broker: a gateway's error, saying which and why
            raise web.HTTPError(502, str(e)) from None
        if session.lock.locked():
            raise web.HTTPError(409, "this session is still answering a previous message")
        async with session.lock:
            session.name_after(message)
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
            session.touch()

    def _parse(self) -> tuple[str, str]:
        """The message and the session id (a new one when none is given)."""
        usage = 'send {"message": "...", "session_id": optional, letters, digits, - and _}'
        try:
            body = json.loads(self.request.body or b"{}")
            message = body["message"]
            session_id = str(body.get("session_id") or uuid.uuid4().hex)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise web.HTTPError(400, usage) from None
        if not isinstance(message, str) or not SESSION_ID.fullmatch(session_id):
            raise web.HTTPError(400, usage)
        return message, session_id

    async def _on_event(self, event: Event) -> None:
        await self._send(event.kind, event_json(event))

    async def _send(self, name: str, data: dict) -> None:
        try:
            self.write(f"event: {name}\ndata: {json.dumps(data)}\n\n")
            await self.flush()
        except iostream.StreamClosedError:
            pass  # the client left; the agent finishes the turn so the session stays coherent


class SessionHandler(APIHandler):
    """PUT /api/chat/{id} starts a session (and its kernel) under an id the client chose;
    GET describes it; DELETE ends it and shuts its kernel down."""

    async def put(self, session_id: str) -> None:
        existed = session_id in self.sessions.sessions
        try:
            session = await self.sessions.get_or_create(session_id)
        except SessionUnavailable as e:
            raise web.HTTPError(502, str(e)) from None
        self.set_status(200 if existed else 201)
        self.finish(session.model())

    def get(self, session_id: str) -> None:
        self.finish(self.sessions.get(session_id).model())

    async def delete(self, session_id: str) -> None:
        if not await self.sessions.close(session_id):
            raise web.HTTPError(404, "no such session")
        self.set_status(204)


class InterruptHandler(APIHandler):
    """POST /api/chat/{id}/interrupt: interrupt the code the session's kernel runs; the
    model is told what the code printed up to then, and the KeyboardInterrupt."""

    async def post(self, session_id: str) -> None:
        kernel = self.session(session_id).agent.kernel
        with broker_call("interrupt the kernel"):
            await kernel.interrupt()
        self.set_status(204)


class NotebookHandler(APIHandler):
    """GET /api/chat/{id}/notebook: the conversation so far as an .ipynb."""

    def get(self, session_id: str) -> None:
        session = self.session(session_id)
        name = f"{session.title or 'conversation'}.ipynb"
        self.set_header("Content-Type", "application/x-ipynb+json")
        self.set_header("Content-Disposition", attachment(name))
        self.finish(nbformat.writes(session.agent.transcript.notebook))


class StatusHandler(APIHandler):
    """GET /api/status: whether the broker and the model server answer, and if not, why;
    and the largest upload this server takes (a page checks a file before sending it)."""

    async def get(self) -> None:
        found = await self.status() if self.status else {}
        self.finish({**found, "max_upload_bytes": self.max_upload_bytes})


def make_app(
    sessions: ChatSessions,
    token: str | None = None,
    *,
    status: StatusCheck | None = None,
    max_upload_bytes: int = chat_files.MAX_UPLOAD_BYTES,
) -> web.Application:
    """The Tornado application: API and page; the caller runs the idle reaper
    (``sessions.run_reaper``)."""
    args = {
        "sessions": sessions,
        "token": token,
        "status": status,
        "max_upload_bytes": max_upload_bytes,
    }
    return web.Application(
        [
            (r"/api/status", StatusHandler, args),
            (r"/api/chat", ChatHandler, args),
            (SESSION, SessionHandler, args),
            (SESSION + r"/interrupt", InterruptHandler, args),
            (SESSION + r"/notebook", NotebookHandler, args),
            *chat_files.routes(SESSION, args),
            *page.routes(),
        ]
    )
