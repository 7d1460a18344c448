"""What every API handler of `llm-agent serve` does: check the token, answer errors as
JSON ``{"reason", "message"}``, find the session a request names."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

from tornado import web

from .files import TransferError
from .health import BROKER_ERRORS
from .sessions import ChatSession, ChatSessions

StatusCheck = Callable[[], Awaitable[dict[str, Any]]]


class APIHandler(web.RequestHandler):
    """Token check, JSON errors ``{"reason", "message"}``, and the session lookup."""

    def initialize(
        self,
        sessions: ChatSessions,
        token: str | None,
        status: StatusCheck | None = None,
        max_upload_bytes: int = 0,
    ) -> None:
        self.sessions = sessions
        self.token = token
        self.status = status
        self.max_upload_bytes = max_upload_bytes

    def prepare(self) -> Awaitable[None] | None:
        if self.token:
            given = self.request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                raise web.HTTPError(
                    401, "missing or wrong token: send the one llm-agent serve printed as "
                    "'Authorization: Bearer TOKEN'"
                )  # fmt: skip
        else:
            # Without a token any web page the user visits could make this server run code
            # (a form posts across origins without asking); the browser's Origin says so.
            origin = self.request.headers.get("Origin")
            if origin and urlsplit(origin).netloc != self.request.host:
                raise web.HTTPError(403, "cross-origin requests are refused")
        return None

    def session(self, session_id: str) -> ChatSession:
        session = self.sessions.get(session_id)
        session.touch()
        return session

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        message = error.log_message if isinstance(error, web.HTTPError) else None
        self.finish({"reason": self._reason, "message": message or self._reason})


@contextmanager
def broker_call(what: str) -> Iterator[None]:
    """Turn a failure of the broker into an answer: a refused file transfer keeps the
    broker's status (404 for a missing file), anything else is a gateway's 502 saying
    what the broker did not do (``what``)."""
    try:
        yield
    except TransferError as e:
        raise web.HTTPError(e.status if 400 <= e.status < 500 else 502, str(e)) from None
    except BROKER_ERRORS as e:
        raise web.HTTPError(502, f"the broker did not {what}: {e}") from None


def attachment(name: str) -> str:
    """A Content-Disposition that has browsers save the body as ``name`` (any characters)."""
    return f"attachment; filename*=UTF-8''{quote(name)}"
