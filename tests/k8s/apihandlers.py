"""The fake API server's HTTP side: its routes and handlers, with authentication, RBAC,
injected faults and Status bodies for errors; the operations themselves are the server's
(``apiserver.py``)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

from tornado import web

from . import rbac, selectors
from .objects import API_VERSIONS, RESOURCES, UPDATABLE, ApiError, status_body
from .store import Obj
from .watch import Watch

if TYPE_CHECKING:
    from .apiserver import FakeApiServer


def make_app(api: FakeApiServer) -> web.Application:
    """The routes of core/v1, coordination.k8s.io/v1 and networking.k8s.io/v1, served
    from ``api``."""
    core = {"api": api, "version": "v1"}
    leases = {"api": api, "version": "coordination.k8s.io/v1"}
    networking = {"api": api, "version": "networking.k8s.io/v1"}
    ns = r"/api/v1/namespaces/([^/]+)/([a-z]+)"
    coordination = r"/apis/coordination.k8s.io/v1/namespaces/([^/]+)/([a-z]+)"
    policies = r"/apis/networking.k8s.io/v1/namespaces/([^/]+)/([a-z]+)"
    return web.Application(
        [
            (r"/version", _VersionHandler, core),
            (ns, _CollectionHandler, core),
            (ns + r"/([^/]+)", _ObjectHandler, core),
            (ns + r"/([^/]+)/status", _StatusHandler, core),
            (r"/api/v1/([a-z]+)", _AllNamespacesHandler, core),
            (coordination, _CollectionHandler, leases),
            (coordination + r"/([^/]+)", _ObjectHandler, leases),
            (policies, _CollectionHandler, networking),
            (policies + r"/([^/]+)", _ObjectHandler, networking),
        ]
    )


def _matcher(namespace: str | None, label_selector: str, field_selector: str):
    try:
        labels = selectors.parse(label_selector)
        fields = selectors.parse_fields(field_selector)
    except selectors.SelectorError as e:
        raise ApiError(400, "BadRequest", str(e)) from None

    def match(obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj["metadata"]
        in_ns = namespace is None or meta["namespace"] == namespace
        return in_ns and labels(meta.get("labels") or {}) and fields(obj)

    return match


class ApiHandler(web.RequestHandler):
    """What every handler does: record, authenticate, authorize, inject faults, answer."""

    api: FakeApiServer
    watch_queue: asyncio.Queue | None = None

    def initialize(self, api: FakeApiServer, version: str) -> None:
        self.api = api
        self.group_version = version

    def check_xsrf_cookie(self) -> None:
        """The API server has no cookies."""

    def prepare(self) -> None:
        self.api.requests.append((self.request.method or "", self.request.path))
        if self.api.users is not None:
            self._authorize(self.api.users)
        for fault in self.api.faults:
            if (
                fault.times > 0
                and fault.method == self.request.method
                and re.search(fault.path, self.request.path)
            ):
                fault.times -= 1
                raise ApiError(fault.code, "InternalError", "injected fault")

    def _authorize(self, users: dict[str, rbac.User]) -> None:
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        user = users.get(token) if scheme.lower() == "bearer" else None
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        watch = self.get_query_argument("watch", "") in ("true", "1")
        attrs = rbac.attributes(self.request.method or "", self.request.path, watch)
        if not rbac.allowed(user, attrs):
            raise ApiError(403, "Forbidden", rbac.forbidden_message(user, attrs))

    def on_connection_close(self) -> None:
        if self.watch_queue is not None:
            self.watch_queue.put_nowait(None)

    def send(self, obj: Any, code: int = 200) -> None:
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(obj))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, ApiError):
            self.set_status(exc.code)
            body = status_body(exc.code, exc.reason, exc.message)
        else:
            body = status_body(status_code, "InternalError", self._reason)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def log_exception(self, typ, value, tb) -> None:  # noqa: ANN001
        if not isinstance(value, ApiError):
            super().log_exception(typ, value, tb)

    def body_json(self) -> Any:
        try:
            return json.loads(self.request.body or b"null")
        except ValueError as e:
            raise ApiError(400, "BadRequest", f"invalid JSON body: {e}") from None

    def resource(self, resource: str) -> str:
        if API_VERSIONS.get(resource) != self.group_version:
            raise ApiError(404, "NotFound", f"the server could not find resource {resource}")
        return resource

    async def list_or_watch(self, namespace: str | None, resource: str) -> None:
        match = _matcher(
            namespace,
            self.get_query_argument("labelSelector", ""),
            self.get_query_argument("fieldSelector", ""),
        )
        if self.get_query_argument("watch", "") in ("true", "1"):
            await Watch(self, namespace, resource, match).run()
            return
        items = [o for o in self.api.store.list(resource, namespace) if match(o)]
        self.send(
            {
                "kind": f"{RESOURCES[resource]}List",
                "apiVersion": API_VERSIONS[resource],
                "metadata": {"resourceVersion": str(self.api.store.rv)},
                "items": items,
            }
        )


class _VersionHandler(ApiHandler):
    def get(self) -> None:
        major, minor, _ = self.api.version.split(".")
        self.send({"major": major, "minor": minor, "gitVersion": f"v{self.api.version}"})


class _CollectionHandler(ApiHandler):
    async def get(self, namespace: str, resource: str) -> None:
        await self.list_or_watch(namespace, self.resource(resource))

    def post(self, namespace: str, resource: str) -> None:
        body = self.body_json()
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "body must be a JSON object")
        self.send(self.api.create(namespace, self.resource(resource), body), 201)


class _AllNamespacesHandler(ApiHandler):
    async def get(self, resource: str) -> None:
        await self.list_or_watch(None, self.resource(resource))


class _ObjectHandler(ApiHandler):
    def get(self, namespace: str, resource: str, name: str) -> None:
        self.send(self.api.get(namespace, self.resource(resource), name))

    def patch(self, namespace: str, resource: str, name: str) -> None:
        kind = self.request.headers.get("Content-Type", "").split(";")[0]
        if kind not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"unsupported patch type {kind}; use merge-patch or strategic-merge-patch",
            )
        self.send(self.api.patch(namespace, self.resource(resource), name, self.body_json(), False))

    def put(self, namespace: str, resource: str, name: str) -> None:
        resource = self.resource(resource)
        if resource not in UPDATABLE:
            raise ApiError(405, "MethodNotAllowed", f"this test server does not update {resource}")
        self.send(self.api.update(namespace, resource, name, self.body_json()))

    def delete(self, namespace: str, resource: str, name: str) -> None:
        options = self.body_json() or {}
        grace = options.get("gracePeriodSeconds")
        if "gracePeriodSeconds" in self.request.query_arguments:
            grace = int(self.get_query_argument("gracePeriodSeconds"))
        self.send(self.api.delete(namespace, self.resource(resource), name, grace))


class _StatusHandler(ApiHandler):
    def get(self, namespace: str, resource: str, name: str) -> None:
        self.send(self.api.get(namespace, self.resource(resource), name))

    def patch(self, namespace: str, resource: str, name: str) -> None:
        self.send(self.api.patch(namespace, self.resource(resource), name, self.body_json(), True))
