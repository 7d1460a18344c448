"""A strict fake Kubernetes API server (core/v1 pods and secrets, coordination.k8s.io/v1
leases) over real HTTP.

What it does as a real server does:

- create: kind/apiVersion/namespace checked against the URL (400), name syntax, label and
  annotation syntax, and the whole object validated with ``kubernetes-validate --strict``
  against the official schema (422 Invalid with a Status body); 409 AlreadyExists;
  uid, resourceVersion, creationTimestamp, namespace and pod defaults filled in.
- get, list (label selectors with the full grammar, field selectors on metadata.name and
  metadata.namespace), watch (resourceVersion, timeoutSeconds, allowWatchBookmarks, synthetic
  ADDED events when no version is given, 410 Expired as an ERROR event when the version is
  older than the kept history, objects that stop or start matching the selector become
  DELETED or ADDED events).
- patch: merge-patch and strategic-merge-patch (for the maps used here the two agree; list
  merge keys are not implemented), pod spec is immutable, status only through ``/status``;
  a ``metadata.resourceVersion`` in the patch is a precondition (409 Conflict if stale).
- update (PUT, leases): ``metadata.resourceVersion`` is required (422) and must be the
  stored one (409 Conflict), as for Leases, which do not allow unconditional updates.
- delete: pods on a node get a deletionTimestamp and the kubelet finishes the deletion after
  the grace period; gracePeriodSeconds=0 or unscheduled pods go at once. Owned objects are
  garbage-collected with their owner (ownerReferences by uid).
- bearer-token authentication (401 otherwise) and RBAC authorization per user (403
  Forbidden naming user, verb, resource, API group and namespace: ``rbac.py``).
- admission: creating in a namespace that does not exist is 404; pods in a namespace
  labelled ``pod-security.kubernetes.io/enforce: restricted`` must pass the restricted Pod
  Security Standard (403 listing the violations: ``podsecurity.py``).

Fault injection: :meth:`FakeApiServer.fail` (answer N requests with an error status),
:meth:`FakeApiServer.drop_watches` (cut every open watch), ``store.compact()`` (410 on resume).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import re
import secrets
import ssl
from dataclasses import dataclass
from typing import Any

import kubernetes_validate
from tornado import httpserver, iostream, web
from tornado.netutil import bind_sockets

from . import podsecurity, rbac, selectors
from .store import Event, Obj, Store, now

RESOURCES = {"pods": "Pod", "secrets": "Secret", "configmaps": "ConfigMap", "leases": "Lease"}
API_VERSIONS = {
    "pods": "v1",
    "secrets": "v1",
    "configmaps": "v1",
    "leases": "coordination.k8s.io/v1",
}
_GROUPS = {"pods": "", "secrets": "", "configmaps": "", "leases": "coordination.k8s.io"}
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_POD_MUTABLE_SPEC = {"activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"}


class ApiError(Exception):
    """An error answered as a Kubernetes Status object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """A ``Status`` object as the API server sends with errors."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _check_qualified_key(key: str, what: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise ApiError(422, "Invalid", f"{what} {key!r}: prefix must be a DNS subdomain")
    if len(name) > 63 or not _LABEL_NAME.match(name):
        raise ApiError(422, "Invalid", f"{what} {key!r}: name part must be a qualified name")


def validate_metadata(meta: dict[str, Any]) -> None:
    """Name, label and annotation syntax, as the API server checks them."""
    name = meta.get("name", "")
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise ApiError(422, "Invalid", f"metadata.name {name!r}: must be a DNS-1123 subdomain")
    for key, value in (meta.get("labels") or {}).items():
        _check_qualified_key(key, "metadata.labels")
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            raise ApiError(422, "Invalid", f"metadata.labels[{key}] value {value!r} is invalid")
    for key in meta.get("annotations") or {}:
        _check_qualified_key(key, "metadata.annotations")


def validate_schema(obj: Obj, version: str) -> None:
    """The official OpenAPI schema, strict (unknown fields rejected)."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path) or "(root)"
        raise ApiError(422, "Invalid", f"{obj.get('kind')} is invalid: {path}: {e.message}") from e


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _default_pod(pod: Obj) -> None:
    spec = pod["spec"]
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", "default")
    for c in spec["containers"]:
        tagged = ":" in c["image"].rsplit("/", 1)[-1] and not c["image"].endswith(":latest")
        c.setdefault("imagePullPolicy", "IfNotPresent" if tagged else "Always")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
    pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}


def _default_secret(secret: Obj) -> None:
    secret.setdefault("type", "Opaque")
    data = secret.setdefault("data", {})
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError):
            raise ApiError(422, "Invalid", f"data[{key}]: illegal base64 data") from None
    for key, value in (secret.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(value.encode()).decode()


_DEFAULTS = {"pods": _default_pod, "secrets": _default_secret}


@dataclass
class Fault:
    """Answer ``times`` requests matching ``method`` and ``path`` (a regex) with ``code``."""

    method: str
    path: str
    code: int
    times: int


class FakeApiServer:
    """The API server: a Store behind Tornado handlers on 127.0.0.1."""

    def __init__(
        self,
        version: str = kubernetes_validate.utils.latest_version(),
        users: dict[str, rbac.User] | None = None,
        bookmark_interval: float = 1.0,
        history: int = 1000,
    ) -> None:
        self.store = Store(history)
        self.version = version
        # bearer token -> user; None: no authentication or authorization at all
        self.users = users
        # namespace -> its labels (Pod Security admission reads them)
        self.namespaces: dict[str, dict[str, str]] = {"default": {}, "kube-system": {}}
        self.bookmark_interval = bookmark_interval
        self.faults: list[Fault] = []
        self.watches: set[web.RequestHandler] = set()
        self.requests: list[tuple[str, str]] = []
        self.port = 0
        self._server: httpserver.HTTPServer | None = None
        self.has_kubelet = False

    def fail(self, method: str, path: str, code: int = 500, times: int = 1) -> None:
        """Make the next ``times`` matching requests fail with ``code``."""
        self.faults.append(Fault(method.upper(), path, code, times))

    def drop_watches(self) -> None:
        """Cut every open watch connection mid-stream, as a load balancer might."""
        for handler in list(self.watches):
            handler.request.connection.stream.close()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        """Listen on a free port of 127.0.0.1."""
        core = {"api": self, "version": "v1"}
        leases = {"api": self, "version": "coordination.k8s.io/v1"}
        ns = r"/api/v1/namespaces/([^/]+)/([a-z]+)"
        coordination = r"/apis/coordination.k8s.io/v1/namespaces/([^/]+)/([a-z]+)"
        app = web.Application(
            [
                (r"/version", _VersionHandler, core),
                (ns, _CollectionHandler, core),
                (ns + r"/([^/]+)", _ObjectHandler, core),
                (ns + r"/([^/]+)/status", _StatusHandler, core),
                (r"/api/v1/([a-z]+)", _AllNamespacesHandler, core),
                (coordination, _CollectionHandler, leases),
                (coordination + r"/([^/]+)", _ObjectHandler, leases),
            ]
        )
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self._server = httpserver.HTTPServer(app, ssl_options=ssl_context)
        self._server.add_sockets(sockets)

    async def stop(self) -> None:
        """Stop listening and end open watches."""
        if self._server is not None:
            self._server.stop()
            self.drop_watches()
            await self._server.close_all_connections()
            self._server = None

    # -- operations shared by handlers and the kubelet -------------------------------

    def create(self, namespace: str, resource: str, body: Obj) -> Obj:
        """Validate, default and store a new object."""
        self._check_kind(resource, body)
        meta = body.setdefault("metadata", {})
        if meta.get("namespace", namespace) != namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        meta["namespace"] = namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        for forbidden in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"):
            if meta.get(forbidden):
                raise ApiError(422, "Invalid", f"metadata.{forbidden} may not be set on create")
        validate_metadata(meta)
        validate_schema(body, self.version)
        self._admit(namespace, resource, body)
        _DEFAULTS.get(resource, lambda obj: None)(body)
        if self.store.get(resource, namespace, meta["name"]) is not None:
            raise ApiError(409, "AlreadyExists", f'{resource} "{meta["name"]}" already exists')
        created = self.store.create(resource, body)
        if meta.get("ownerReferences"):
            # Owners must exist by uid, or the garbage collector removes the dependent.
            asyncio.get_running_loop().call_soon(self.store.collect_garbage, namespace)
        return created

    def _admit(self, namespace: str, resource: str, body: Obj) -> None:
        """Admission: the namespace must exist; pods must meet its Pod Security level."""
        if namespace not in self.namespaces:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
        level = self.namespaces[namespace].get(podsecurity.ENFORCE_LABEL)
        if resource == "pods" and level == "restricted":
            found = podsecurity.violations(body)
            if found:
                raise ApiError(403, "Forbidden", podsecurity.admission_message(body, found))

    @staticmethod
    def _check_kind(resource: str, body: Obj) -> None:
        kind, version = RESOURCES[resource], API_VERSIONS[resource]
        if body.get("kind") != kind or body.get("apiVersion") != version:
            raise ApiError(
                400, "BadRequest", f"expected kind {kind} apiVersion {version} in the body"
            )

    @staticmethod
    def _conflict(resource: str, name: str) -> ApiError:
        group = f".{_GROUPS[resource]}" if _GROUPS[resource] else ""
        return ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {resource}{group} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
        )

    def update(self, namespace: str, resource: str, name: str, body: Any) -> Obj:
        """Replace an object (PUT): only the current resourceVersion may be replaced."""
        current = self.get(namespace, resource, name)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "body must be a JSON object")
        self._check_kind(resource, body)
        meta = body.setdefault("metadata", {})
        if meta.get("name") != name or meta.setdefault("namespace", namespace) != namespace:
            raise ApiError(400, "BadRequest", "the name or namespace in the body does not match")
        if not meta.get("resourceVersion"):
            raise ApiError(
                422,
                "Invalid",
                f'{RESOURCES[resource]} "{name}" is invalid: metadata.resourceVersion: '
                "Invalid value: 0x0: must be specified for an update",
            )
        if meta["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise self._conflict(resource, name)
        for kept in ("uid", "creationTimestamp"):
            meta[kept] = current["metadata"][kept]
        validate_metadata(meta)
        validate_schema(body, self.version)
        return self.store.update(resource, body)

    def get(self, namespace: str, resource: str, name: str) -> Obj:
        """The stored object or 404."""
        obj = self.store.get(resource, namespace, name)
        if obj is None:
            raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
        return obj

    def patch(self, namespace: str, resource: str, name: str, patch: Any, status: bool) -> Obj:
        """Merge-patch an object (or only its status)."""
        current = self.get(namespace, resource, name)
        if not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "patch body must be a JSON object")
        if status:
            patch = {"status": patch.get("status", {})}
        elif "status" in patch:
            patch = {k: v for k, v in patch.items() if k != "status"}
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise self._conflict(resource, name)
        patched = merge_patch(current, patch)
        for immutable in ("name", "namespace", "uid", "creationTimestamp"):
            if patched["metadata"].get(immutable) != current["metadata"].get(immutable):
                raise ApiError(422, "Invalid", f"metadata.{immutable}: field is immutable")
        if resource == "pods":
            changed = {
                k
                for k in set(patched["spec"]) | set(current["spec"])
                if patched["spec"].get(k) != current["spec"].get(k)
            }
            if changed - _POD_MUTABLE_SPEC:
                raise ApiError(
                    422, "Invalid", f"spec: Forbidden: pod updates may not change {sorted(changed)}"
                )
        validate_metadata(patched["metadata"])
        validate_schema(patched, self.version)
        return self.store.update(resource, patched)

    def delete(self, namespace: str, resource: str, name: str, grace: int | None) -> Obj:
        """Delete now, or (pods on a node) mark for graceful deletion by the kubelet."""
        obj = self.get(namespace, resource, name)
        if resource == "pods" and obj["spec"].get("nodeName") and self.has_kubelet:
            if grace is None:
                grace = obj["spec"]["terminationGracePeriodSeconds"]
            if grace > 0:
                meta = obj["metadata"]
                if not meta.get("deletionTimestamp"):
                    meta["deletionTimestamp"] = now()
                    meta["deletionGracePeriodSeconds"] = grace
                    return self.store.update(resource, obj)
                return obj
        return self.store.delete(resource, namespace, name) or obj


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


class _Base(web.RequestHandler):
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
            await _Watch(self, namespace, resource, match).run()
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


class _Watch:
    """One watch stream: newline-delimited JSON events over a chunked response."""

    def __init__(self, handler: _Base, namespace: str | None, resource: str, match) -> None:
        self.h = handler
        self.api = handler.api
        self.resource = resource
        self.namespace = namespace
        self.match = match
        self.sent_rv = 0

    async def emit(self, type_: str, obj: Obj) -> None:
        self.h.write(json.dumps({"type": type_, "object": obj}) + "\n")
        await self.h.flush()

    def translate(self, event: Event) -> tuple[str, Obj] | None:
        """The event as this watcher sees it through its selector."""
        if event.resource != self.resource:
            return None
        now_in, was_in = self.match(event.obj), self.match(event.old)
        if event.type == "MODIFIED" and was_in and not now_in:
            return "DELETED", event.obj
        if event.type == "MODIFIED" and now_in and not was_in:
            return "ADDED", event.obj
        return (event.type, event.obj) if now_in else None

    async def send_event(self, event: Event) -> None:
        if event.rv <= self.sent_rv:
            return
        self.sent_rv = event.rv
        out = self.translate(event)
        if out:
            await self.emit(*out)

    async def run(self) -> None:
        h = self.h
        rv_arg = h.get_query_argument("resourceVersion", "")
        timeout = float(h.get_query_argument("timeoutSeconds", "1800"))
        bookmarks = h.get_query_argument("allowWatchBookmarks", "") in ("true", "1")
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        h.watch_queue = queue
        unsubscribe = self.api.store.subscribe(queue.put_nowait)
        self.api.watches.add(h)
        h.set_header("Content-Type", "application/json")
        h.set_header("Transfer-Encoding", "chunked")
        try:
            await self._initial(rv_arg)
            await self._follow(queue, timeout, bookmarks)
        except iostream.StreamClosedError:
            return
        finally:
            unsubscribe()
            self.api.watches.discard(h)
        if not h._finished:
            h.finish()

    async def _initial(self, rv_arg: str) -> None:
        store = self.api.store
        if rv_arg in ("", "0"):
            self.sent_rv = store.rv
            for obj in store.list(self.resource, self.namespace):
                if self.match(obj):
                    await self.emit("ADDED", obj)
            await self.h.flush()
            return
        if not rv_arg.isdigit():
            raise ApiError(400, "BadRequest", f"invalid resourceVersion {rv_arg!r}")
        rv = int(rv_arg)
        if rv < store.compacted_rv:
            body = status_body(410, "Expired", f"too old resource version: {rv} ({store.rv})")
            await self.emit("ERROR", body)
            raise iostream.StreamClosedError()
        self.sent_rv = rv
        for event in list(store.history):
            await self.send_event(event)
        await self.h.flush()

    async def _follow(self, queue: asyncio.Queue, timeout: float, bookmarks: bool) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            wait = min(left, self.api.bookmark_interval) if bookmarks else left
            try:
                event = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if bookmarks and queue.empty() and loop.time() < deadline:
                    marker = {
                        "kind": RESOURCES[self.resource],
                        "apiVersion": API_VERSIONS[self.resource],
                    }
                    marker["metadata"] = {"resourceVersion": str(self.api.store.rv)}
                    self.sent_rv = self.api.store.rv
                    await self.emit("BOOKMARK", marker)
                continue
            if event is None:  # the connection closed
                raise iostream.StreamClosedError()
            await self.send_event(event)


class _VersionHandler(_Base):
    def get(self) -> None:
        major, minor, _ = self.api.version.split(".")
        self.send({"major": major, "minor": minor, "gitVersion": f"v{self.api.version}"})


class _CollectionHandler(_Base):
    async def get(self, namespace: str, resource: str) -> None:
        await self.list_or_watch(namespace, self.resource(resource))

    def post(self, namespace: str, resource: str) -> None:
        body = self.body_json()
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "body must be a JSON object")
        self.send(self.api.create(namespace, self.resource(resource), body), 201)


class _AllNamespacesHandler(_Base):
    async def get(self, resource: str) -> None:
        await self.list_or_watch(None, self.resource(resource))


class _ObjectHandler(_Base):
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
        if resource != "leases":
            raise ApiError(405, "MethodNotAllowed", "this test server updates only leases")
        self.send(self.api.update(namespace, resource, name, self.body_json()))

    def delete(self, namespace: str, resource: str, name: str) -> None:
        options = self.body_json() or {}
        grace = options.get("gracePeriodSeconds")
        if "gracePeriodSeconds" in self.request.query_arguments:
            grace = int(self.get_query_argument("gracePeriodSeconds"))
        self.send(self.api.delete(namespace, self.resource(resource), name, grace))


class _StatusHandler(_Base):
    def get(self, namespace: str, resource: str, name: str) -> None:
        self.send(self.api.get(namespace, self.resource(resource), name))

    def patch(self, namespace: str, resource: str, name: str) -> None:
        self.send(self.api.patch(namespace, self.resource(resource), name, self.body_json(), True))
