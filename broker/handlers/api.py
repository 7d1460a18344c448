"""Server-level endpoints: version, status, OpenAPI document, health, metrics, 404s."""

from __future__ import annotations

import copy
import functools
import os
from typing import Any

import yaml

from .. import __version__
from ..errors import BrokerError
from ..timestamps import format_time
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


@functools.cache
def _spec() -> dict[str, Any]:
    with open(SPEC_PATH, "rb") as f:
        return yaml.safe_load(f)


@functools.cache
def spec_document(
    default_timeout: float, max_timeout: float, max_body_bytes: int, max_upload_bytes: int
) -> bytes:
    """spec.yaml with this broker's limits filled in, so that the bounds it states hold."""
    doc = copy.deepcopy(_spec())
    timeout = doc["components"]["schemas"]["ExecuteRequest"]["properties"]["timeout"]
    timeout["default"], timeout["maximum"] = default_timeout, max_timeout
    responses = doc["components"]["responses"]
    responses["TooLarge"]["description"] += f" ({max_body_bytes} bytes)"
    responses["UploadTooLarge"]["description"] += f" ({max_upload_bytes} bytes)"
    return yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True).encode()


class _BlockDumper(yaml.SafeDumper):
    """Multi-line descriptions stay ``|`` blocks, as written in spec.yaml."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _text)


class SpecHandler(BaseHandler):
    """The OpenAPI document: public, like the source it describes (no kernel, no user)."""

    public = True

    def get(self) -> None:
        limits = self.broker.execution_limits
        self.set_header("Content-Type", "application/yaml")
        self.finish(
            spec_document(
                limits.default,
                limits.max_timeout,
                self.broker.max_body_bytes,
                self.broker.file_limits.max_upload_bytes,
            )
        )


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
        raise BrokerError(
            404,
            f"No endpoint {self.request.path}; GET /api/spec.yaml (no token needed) lists them.",
        )

    post = put = patch = delete = get
