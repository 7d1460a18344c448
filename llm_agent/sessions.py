"""The conversations `llm-agent serve` holds: one agent, and so one kernel, per session."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tornado import web

from .agent import Agent

log = logging.getLogger("llm_agent.server")

AgentFactory = Callable[[], Awaitable[Agent]]
SESSION_ID = re.compile(r"[\w-]{1,64}")  # what a client may choose as a session's id
TITLE_CHARS = 80  # a session's title: the start of its first message


class SessionUnavailable(Exception):
    """A session's kernel could not be started; the message says why and what to change."""


@dataclass
class ChatSession:
    """One conversation and its kernel."""

    id: str
    agent: Agent
    title: str = ""
    created: str = field(
        default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    )
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def touch(self) -> None:
        """Count as activity now (the idle reaper spares the session for another timeout)."""
        self.last_used = time.monotonic()

    def name_after(self, message: str) -> None:
        """Take the first message's start as the title."""
        if not self.title:
            words = " ".join(message.split())
            cut = len(words) > TITLE_CHARS
            self.title = words[: TITLE_CHARS - 1] + "…" if cut else words

    def model(self) -> dict[str, Any]:
        """The session as the API shows it."""
        return {
            "id": self.id,
            "title": self.title,
            "created": self.created,
            "busy": self.lock.locked(),
            "language": self.agent.kernel.language,
        }


class ChatSessions:
    """Sessions by id; each new one starts its own kernel through ``factory``."""

    def __init__(self, factory: AgentFactory, idle_timeout: float, max_sessions: int = 20) -> None:
        self.factory = factory
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.sessions: dict[str, ChatSession] = {}
        # a session whose kernel is starting: a second request for it waits, not starts another
        self._starting: dict[str, asyncio.Future[ChatSession]] = {}

    def get(self, session_id: str) -> ChatSession:
        """An existing session. Raises web.HTTPError(404) for one that is not (or no longer)."""
        session = self.sessions.get(session_id)
        if session is None:
            raise web.HTTPError(
                404, "no such chat session (it ended, or was idle too long): start a new one"
            )
        return session

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
        session.touch()
        return session

    async def _start(self, session_id: str) -> ChatSession:
        try:
            session = ChatSession(session_id, await self.factory())
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


async def run_reaper(sessions: ChatSessions, interval: float) -> None:
    """Close idle sessions every ``interval`` seconds, forever."""
    while True:
        await asyncio.sleep(interval)
        await sessions.reap_idle()
