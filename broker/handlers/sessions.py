"""REST handlers for /api/sessions."""

from __future__ import annotations

from urllib.parse import quote

from .base import BaseHandler


class SessionsHandler(BaseHandler):
    def get(self) -> None:
        self.write_json([s.model() for s in self.broker.sessions.list(self.user)])

    async def post(self) -> None:
        session, created = await self.broker.sessions.create(self.json_body(), self.user)
        self.set_header("Location", f"/api/sessions/{quote(session.id)}")
        self.write_json(session.model(), status=201 if created else 200)


class SessionHandler(BaseHandler):
    def get(self, session_id: str) -> None:
        self.write_json(self.broker.sessions.get(session_id, self.user).model())

    async def patch(self, session_id: str) -> None:
        session = await self.broker.sessions.update(session_id, self.json_body(), self.user)
        self.write_json(session.model())

    async def delete(self, session_id: str) -> None:
        await self.broker.sessions.delete(session_id, self.user)
        self.set_status(204)
        self.finish()
