"""The chat page: ``GET /`` and its files under ``/static/``, kept in ``llm_agent/web``.

Plain HTML, CSS and JavaScript modules: nothing is built at run time and nothing is
fetched from elsewhere. The page holds no secret (it asks for the token and keeps it in
the tab's sessionStorage), so it is served without one. A strict Content-Security-Policy
lets it run only its own scripts: what a kernel's output holds is shown, never run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tornado import web

WEB = Path(__file__).parent / "web"
POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


def _secure(handler: web.RequestHandler) -> None:
    handler.set_header("Content-Security-Policy", POLICY)
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Referrer-Policy", "no-referrer")


class PageHandler(web.RequestHandler):
    """GET /: the page."""

    def get(self) -> None:
        _secure(self)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish((WEB / "index.html").read_bytes())


class StaticHandler(web.StaticFileHandler):
    """GET /static/{file}: the page's scripts and styles, revalidated on every load (a
    new version of the package is picked up at once)."""

    def set_extra_headers(self, path: str) -> None:
        _secure(self)
        self.set_header("Cache-Control", "no-cache")


def routes() -> list[tuple[str, type, dict[str, Any]]]:
    return [
        (r"/", PageHandler, {}),
        (r"/static/(.*)", StaticHandler, {"path": str(WEB)}),
    ]
