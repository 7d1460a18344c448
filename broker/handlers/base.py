"""What every handler shares: authentication, JSON bodies within limits, JSON errors."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tornado import web

from ..auth import User, token_from
from ..errors import BrokerError
from ..origin import cors_origin

if TYPE_CHECKING:
    from ..app import Broker

log = logging.getLogger("broker.http")
# What a page of an allowed origin may send and read (MCP's headers for browser MCP clients).
CORS_REQUEST_HEADERS = "Authorization, Content-Type, Mcp-Protocol-Version, Mcp-Session-Id"
CORS_EXPOSED_HEADERS = "Location, Mcp-Session-Id"
CHUNKED_CAP = 2**40  # Tornado reads chunks in 64 KiB pieces; data_received stops at the limit


class AuthMixin:
    """Authentication for HTTP and websocket handlers alike."""

    settings: dict[str, Any]
    request: Any

    @property
    def broker(self) -> Broker:
        return self.settings["broker"]

    def authenticate(self) -> User:
        query = self.request.query_arguments.get("token")
        token = token_from(self.request.headers, query[0].decode() if query else None)
        user = self.broker.auth.authenticate(token)
        if user is None:
            raise BrokerError(
                401,
                "Missing or invalid token: send 'Authorization: token <TOKEN>' "
                "or ?token=<TOKEN>; the broker printed its token at startup.",
            )
        return user


def _authenticated(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: BaseHandler, *args: Any, **kwargs: Any) -> Any:
        if not self.public:
            self.user = self.authenticate()
        return method(self, *args, **kwargs)

    return wrapper


def log_error(request: Any, exc: BaseException | None, exc_info: Any = None) -> None:
    """One log line per failed request: client errors as warnings, the rest with a traceback."""
    if isinstance(exc, web.HTTPError):
        message = getattr(exc, "message", None) or exc.log_message or ""
        log.warning("%d %s %s: %s", exc.status_code, request.method, request.path, message)
    else:
        log.error("500 %s %s", request.method, request.path, exc_info=exc_info)


def allowed_methods(handler_class: type) -> str:
    """The ``Allow`` header of a 405: the HTTP methods the handler class implements."""
    names = ("get", "post", "put", "patch", "delete")
    own = [n for n in names if getattr(handler_class, n) is not getattr(web.RequestHandler, n)]
    return ", ".join(n.upper() for n in own)


def error_body(status: int, exc: BaseException | None) -> dict[str, str]:
    """The JSON error document for a status and the exception behind it."""
    if isinstance(exc, BrokerError):
        return {"reason": exc.reason or "Error", "message": exc.message}
    if isinstance(exc, web.HTTPError):
        from http.client import responses

        reason = exc.reason or responses.get(status, "Error")
        return {"reason": reason, "message": exc.log_message or reason}
    return {
        "reason": "Internal Server Error",
        "message": "The broker hit an unexpected error; it is logged. Retry, or report it.",
    }


@web.stream_request_body
class BaseHandler(AuthMixin, web.RequestHandler):
    """JSON API handler: token auth unless ``public``, bodies capped, errors as JSON."""

    public = False  # health probes answer without a token

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Authenticate before every HTTP method a handler defines.

        Not in prepare(): with a streamed body, a response sent before the body is read
        makes Tornado drop the keep-alive connection, and clients then see resets.
        """
        super().__init_subclass__(**kwargs)
        for name in ("get", "post", "put", "patch", "delete"):
            method = cls.__dict__.get(name)
            if method is not None:
                setattr(cls, name, _authenticated(method))

    def initialize(self) -> None:
        self.user: User
        self._chunks: list[bytes] = []
        self._received = 0

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        allow_origin = self.broker.allow_origin
        if allow_origin:
            allowed = cors_origin(self.request.headers.get("Origin"), allow_origin)
            if allowed:
                self.set_header("Access-Control-Allow-Origin", allowed)
                self.set_header("Access-Control-Expose-Headers", CORS_EXPOSED_HEADERS)
            if allowed != "*":  # the answer depends on the Origin: caches must keep it apart
                self.set_header("Vary", "Origin")

    def options(self, *args: str) -> None:
        """A CORS preflight (or a plain OPTIONS): the methods, and for an allowed origin the
        headers its page may send. Public: browsers send no token with a preflight."""
        methods = allowed_methods(type(self))
        self.set_header("Allow", methods)
        if self._headers.get("Access-Control-Allow-Origin"):
            self.set_header("Access-Control-Allow-Methods", methods)
            self.set_header("Access-Control-Allow-Headers", CORS_REQUEST_HEADERS)
            self.set_header("Access-Control-Max-Age", "600")
        elif self.request.headers.get("Origin"):
            log.warning(
                "OPTIONS %s: cross-origin requests from %s are not allowed; the operator can "
                "allow one origin with --Broker.allow_origin",
                self.request.path,
                self.request.headers["Origin"][:100],
            )
        self.set_status(204)
        self.finish()

    def prepare(self) -> None:
        limit = self.broker.max_body_bytes
        length = self.request.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > limit:
            raise body_too_large(limit)
        # A chunked body announces no length: Tornado would refuse a chunk that crosses its
        # own limit with a bare 400 before data_received sees it, so data_received counts.
        self.request.connection.set_max_body_size(limit + 1 if length else CHUNKED_CAP)

    def data_received(self, chunk: bytes) -> None:
        if self._finished:  # 413 already sent; Tornado closes the connection after it
            return
        self._received += len(chunk)
        limit = self.broker.max_body_bytes
        if self._received > limit:
            # Raising here would drop the connection without an answer.
            self._chunks.clear()
            error = body_too_large(limit)
            log_error(self.request, error)
            self.send_error(413, exc_info=(BrokerError, error, None))
            return
        self._chunks.append(chunk)

    def json_body(self, required: bool = True) -> dict[str, Any]:
        """The request body as a JSON object (``{}`` when empty and not required)."""
        raw = b"".join(self._chunks)
        if not raw.strip():
            if required:
                raise BrokerError(400, "Request body must be a JSON object.")
            return {}
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as e:
            raise BrokerError(400, f"Request body is not valid JSON: {e}") from None
        except RecursionError:  # json raises it for deep nesting, well within the size limit
            raise BrokerError(400, "Request body is nested too deeply.") from None
        if not isinstance(body, dict):
            raise BrokerError(400, "Request body must be a JSON object.")
        return body

    def write_json(self, doc: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(doc))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        log_error(self.request, value, (typ, value, tb))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self.broker.metrics.http_errors[status_code] += 1
        if status_code == 405:  # RFC 9110 requires the list of methods that would work
            self.set_header("Allow", allowed_methods(type(self)))
        if status_code == 413:  # the rest of the body is not read: Tornado closes, say so
            self.set_header("Connection", "close")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(error_body(status_code, exc)))


def body_too_large(limit: int) -> BrokerError:
    return BrokerError(
        413,
        f"Request body over the limit of {limit} bytes; send less, or have the operator "
        "raise --Broker.max_body_bytes.",
    )


def only_fields(body: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    """``body``, or 400 naming the fields it has that the endpoint does not know.

    A misspelt field ignored silently (``"timout"``) would run with the wrong settings.
    """
    unknown = sorted(set(body) - set(known))
    if unknown:
        names = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise BrokerError(400, f"Unknown field(s) {names}; this endpoint takes {', '.join(known)}.")
    return body


def query_flag(name: str, value: str) -> bool:
    """A boolean query parameter: true/1, false/0 or absent (false); 400 otherwise."""
    if value.lower() in ("", "false", "0"):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise BrokerError(400, f"Query parameter {name!r} must be true or false.")


def field(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None
) -> Any:
    """``body[name]`` checked against ``kind`` (a bool is not a number); 400 otherwise."""
    value = body.get(name)
    if value is None:
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise BrokerError(400, f"Field {name!r} has the wrong type.")
    return value
