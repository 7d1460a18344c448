"""The one error type handlers turn into a JSON ``{"reason", "message"}`` response."""

from __future__ import annotations

from http.client import responses

from tornado.web import HTTPError


class BrokerError(HTTPError):
    """A failure a client should see: an HTTP status and a message saying what to do next."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message.replace("%", "%%"), reason=responses.get(status, "Error"))
        self.message = message


def not_found(what: str, ident: str) -> BrokerError:
    return BrokerError(404, f"No {what} {ident!r}; list them with GET /api/{what}s.")
