"""Which browser origins the broker accepts: its own, and the one the operator allows.

Jupyter Server and Tornado accept a websocket whose ``Origin`` names the host the request
was sent to (``urlparse(origin).netloc == Host``), and non-browser clients that send no
``Origin``. ``websocket-client`` (and so Enterprise Gateway's own Python clients) sends
``Origin: http://HOST[:PORT]`` (``https://`` for ``wss://``) with the same host and port
as its ``Host`` header, the port left out when it is 80 or 443. This module accepts the
same, compares host names without regard to case and default ports as the scheme
implies, and trusts a browser's ``Sec-Fetch-Site: same-origin``, which a page cannot forge.

REST requests from a page of another origin (Thebe, a custom agent UI) are allowed by CORS
for the operator's ``--Broker.allow_origin`` only, as Jupyter Server does; without it the
broker sends no CORS headers and browsers keep other origins' pages out.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def _host_port(netloc: str, default_port: int) -> tuple[str, int] | None:
    """``(host, port)`` of ``host[:port]`` (IPv6 in brackets), or None when malformed."""
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None:
        return None
    return parts.hostname.lower(), default_port if port is None else port


def same_origin(origin: str, host: str) -> bool:
    """Whether ``origin`` (an ``Origin`` header) names the server at ``host`` (``Host``).

    A ``Host`` without a port means the default port of the origin's scheme: behind a
    proxy that ends TLS, ``Origin: https://example.org`` meets ``Host: example.org``.
    """
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    if default is None or not parts.netloc:
        return False
    ours = _host_port(parts.netloc, default)
    return ours is not None and ours == _host_port(host.strip(), default)


def origin_allowed(headers: Mapping[str, str], allow_origin: str) -> bool:
    """Whether a websocket upgrade with these request headers may proceed.

    ``allow_origin`` is ``--Broker.allow_origin``: ``*`` for any origin, else one origin
    (``https://lab.example.org``) accepted besides the broker's own.
    """
    origin = headers.get("Origin") or headers.get("Sec-Websocket-Origin")
    if origin is None:  # not a browser: origins protect browsers' users only
        return True
    if cors_origin(origin, allow_origin):
        return True
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.strip().lower() in ("same-origin", "none")
    return same_origin(origin, headers.get("Host", ""))


def cors_origin(origin: str | None, allow_origin: str) -> str | None:
    """``Access-Control-Allow-Origin`` for a request from ``origin``: the operator's allowed
    origin (``*`` for any), or None when the request's origin is not the allowed one."""
    allowed = allow_origin.strip().rstrip("/").lower()
    if not origin or not allowed:
        return None
    if allowed == "*":
        return "*"
    return origin if origin.strip().rstrip("/").lower() == allowed else None
