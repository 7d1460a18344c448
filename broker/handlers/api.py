"""Server-level endpoints: version, status, OpenAPI document, health, metrics, 404s."""

from __future__ import annotations

import os

from .. import __version__
from ..errors import BrokerError
from ..registry import format_time
from .base import BaseHandler

SPEC_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "spec.yaml")


class ApiHandler(BaseHandler):
    """The version, which Jupyter Server asks for before it has a token to send."""

    public = True

    def get(self) -> None:
        self.write_json({"version": __version__})


class StatusHandler(BaseHandler):
    def get(self) -> None:
        kernels = self.broker.registry.list(self.user)
        activity = max([k.bridge.last_activity for k in kernels], default=self.broker.started)
        self.write_json(
            {
                "started": format_time(self.broker.started),
                "last_activity": format_time(activity),
                "kernels": len(kernels),
                "connections": sum(len(k.bridge.connections) for k in kernels),
            }
        )


class SpecHandler(BaseHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/yaml")
        with open(SPEC_PATH, "rb") as f:
            self.finish(f.read())


class HealthHandler(BaseHandler):
    """Liveness: the process answers."""

    public = True

    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadyHandler(BaseHandler):
    """Readiness: the broker accepts new kernels (false while draining)."""

    public = True

    def get(self) -> None:
        if not self.broker.registry.accepting:
            raise BrokerError(503, "The broker is draining; send new kernels elsewhere.")
        self.write_json({"status": "ready"})


class MetricsHandler(BaseHandler):
    def prepare(self) -> None:
        self.public = not self.broker.metrics_require_auth
        super().prepare()

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        self.finish(self.broker.metrics.render(self.broker.gauges()))


class NotFoundHandler(BaseHandler):
    public = True

    def get(self, *args: str, **kwargs: str) -> None:
        raise BrokerError(404, f"No endpoint {self.request.path}; see GET /api/spec.yaml.")

    post = put = patch = delete = get
