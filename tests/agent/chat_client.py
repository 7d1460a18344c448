"""`llm-agent serve`'s application in this process (a real HTTP server on 127.0.0.1, real
kernels on the test broker), and a client of its event stream."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

from llm_agent.sessions import ChatSessions

TOKEN = "chat-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_UPLOAD = 1 << 20  # what the test server takes: small enough to refuse a file cheaply

Event = tuple[str, dict[str, Any]]


@dataclass
class ChatServer:
    url: str
    sessions: ChatSessions

    async def call(
        self, method: str, path: str, body: bytes | str | None = None, **kwargs: Any
    ) -> HTTPResponse:
        """One request with the token (unless ``headers`` says otherwise); any status."""
        if body is None and method in ("POST", "PUT"):
            body = b""
        return await AsyncHTTPClient().fetch(
            self.url + path,
            method=method,
            body=body,
            headers=kwargs.pop("headers", AUTH),
            raise_error=False,
            request_timeout=120,
            **kwargs,
        )


def message_of(response: HTTPResponse) -> str:
    """The ``message`` of an error answer, which is always ``{"reason", "message"}``."""
    body = json.loads(response.body)
    assert set(body) == {"reason", "message"}, body
    return body["message"]


async def post_chat(
    url: str,
    body: dict,
    token: str = TOKEN,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> list[Event]:
    """POST /api/chat and parse the event stream as it arrives (each to ``on_event``)."""
    events: list[Event] = []
    pending = b""

    def on_chunk(chunk: bytes) -> None:
        nonlocal pending
        pending += chunk
        while b"\n\n" in pending:
            block, pending = pending.split(b"\n\n", 1)
            lines = dict(line.split(": ", 1) for line in block.decode().splitlines())
            events.append((lines["event"], json.loads(lines["data"])))
            if on_event is not None:
                on_event(*events[-1])

    request = HTTPRequest(
        url + "/api/chat",
        method="POST",
        body=json.dumps(body),
        headers={"Authorization": f"Bearer {token}"},
        streaming_callback=on_chunk,
        request_timeout=120,
    )
    await AsyncHTTPClient().fetch(request)
    return events
