"""An async client for the broker's REST API (any Jupyter gateway speaks the same)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse


class BrokerAPIError(Exception):
    """An error response: its status, and the broker's reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class BrokerREST:
    """REST calls against a broker at ``base_url`` with ``token``."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._http = AsyncHTTPClient()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request; the decoded JSON answer (None when empty). Raises BrokerAPIError."""
        request = HTTPRequest(
            self.base_url + path,
            method=method,
            headers={**self.headers, "Content-Type": "application/json"},
            body=json.dumps(body) if body is not None else (b"" if method == "POST" else None),
            request_timeout=self.timeout,
        )
        response = await self.fetch(request)
        return json.loads(response.body) if response.body else None

    async def fetch(
        self, request: HTTPRequest, http: AsyncHTTPClient | None = None
    ) -> HTTPResponse:
        """Send a prepared request (with ``headers`` in it); raises BrokerAPIError."""
        try:
            return await (http or self._http).fetch(request)
        except HTTPClientError as e:
            raise api_error(e) from None

    async def start_kernel(
        self, name: str | None = None, env: dict[str, str] | None = None
    ) -> dict:
        body: dict[str, Any] = {"env": env or {}}
        if name:
            body["name"] = name
        return await self.call("POST", "/api/kernels", body)

    async def get_kernel(self, kernel_id: str) -> dict:
        return await self.call("GET", f"/api/kernels/{quote(kernel_id)}")

    async def list_kernels(self) -> list[dict]:
        return await self.call("GET", "/api/kernels")

    async def shutdown_kernel(self, kernel_id: str) -> None:
        await self.call("DELETE", f"/api/kernels/{quote(kernel_id)}")

    async def interrupt_kernel(self, kernel_id: str) -> None:
        await self.call("POST", f"/api/kernels/{quote(kernel_id)}/interrupt")

    async def restart_kernel(self, kernel_id: str) -> dict:
        return await self.call("POST", f"/api/kernels/{quote(kernel_id)}/restart")

    async def kernelspecs(self) -> dict:
        return await self.call("GET", "/api/kernelspecs")


def api_error(e: HTTPClientError, body: bytes | None = None) -> BrokerAPIError:
    """The BrokerAPIError for a failed request; ``body`` when the answer was streamed."""
    if body is None:
        body = e.response.body if e.response is not None else b""
    try:
        doc = json.loads(body)
        return BrokerAPIError(e.code, doc.get("reason", ""), doc.get("message", ""))
    except (ValueError, AttributeError):
        return BrokerAPIError(e.code, e.message or "", body.decode(errors="replace")[:500])
