"""Jupyter Server's /api/sessions: named associations of a path with a kernel."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from .auth import User
from .errors import BrokerError, not_found
from .registry import KernelRegistry
from .registry.managed_kernel import ManagedKernel

_TEXT_FIELDS = ("path", "name", "type")


@dataclass(eq=False)
class Session:
    id: str
    path: str
    name: str
    type: str
    kernel: ManagedKernel

    def model(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "name": self.name,
            "type": self.type,
            "kernel": self.kernel.model(),
            "notebook": {"path": self.path, "name": self.name},
        }


def _text(body: dict[str, Any], key: str, default: str = "") -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise BrokerError(400, f"Field {key!r} must be a string.")
    return value


def _kernel_request(body: dict[str, Any]) -> dict[str, Any]:
    kernel = body.get("kernel")
    if kernel is None:
        return {}
    if not isinstance(kernel, dict):
        raise BrokerError(400, "Field 'kernel' must be an object with 'name' or 'id'.")
    for key in ("name", "id"):
        if kernel.get(key) is not None and not isinstance(kernel[key], str):
            raise BrokerError(400, f"Field 'kernel.{key}' must be a string.")
    return kernel


class SessionStore:
    """Sessions in memory; a session's kernel is started, or found, through the registry."""

    def __init__(self, registry: KernelRegistry) -> None:
        self.registry = registry
        self.sessions: dict[str, Session] = {}

    def _live(self) -> list[Session]:
        """Sessions whose kernel still exists (a kernel shut down elsewhere ends its session)."""
        for sid, s in list(self.sessions.items()):
            if s.kernel.id not in self.registry.kernels:
                del self.sessions[sid]
        return list(self.sessions.values())

    def list(self, user: User) -> list[Session]:
        return [s for s in self._live() if user.owns(s.kernel.owner)]

    def get(self, session_id: str, user: User) -> Session:
        for s in self.list(user):
            if s.id == session_id:
                return s
        raise not_found("session", session_id)

    async def _kernel_for(self, body: dict[str, Any], user: User) -> ManagedKernel:
        request = _kernel_request(body)
        if request.get("id"):
            return self.registry.get(request["id"], user)
        return await self.registry.start(request.get("name"), request.get("env"), user)

    async def create(self, body: dict[str, Any], user: User) -> tuple[Session, bool]:
        """A new session, or the existing one for the same path (Jupyter Server does this)."""
        path = _text(body, "path")
        for s in self.list(user):
            if path and s.path == path:
                return s, False
        kernel = await self._kernel_for(body, user)
        session = Session(
            uuid.uuid4().hex, path, _text(body, "name"), _text(body, "type", "notebook"), kernel
        )
        self.sessions[session.id] = session
        return session, True

    async def update(self, session_id: str, body: dict[str, Any], user: User) -> Session:
        session = self.get(session_id, user)
        for key in _TEXT_FIELDS:
            if key in body:
                setattr(session, key, _text(body, key))
        if "kernel" in body:
            old = session.kernel
            session.kernel = await self._kernel_for(body, user)
            if old is not session.kernel and not any(
                s.kernel is old for s in self.sessions.values()
            ):
                await self.registry.shutdown(old)
        return session

    async def delete(self, session_id: str, user: User) -> None:
        session = self.get(session_id, user)
        del self.sessions[session_id]
        await self.registry.shutdown(session.kernel)
