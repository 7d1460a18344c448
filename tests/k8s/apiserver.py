"""A strict fake Kubernetes API server (core/v1 pods and secrets, coordination.k8s.io/v1
leases, networking.k8s.io/v1 network policies) over real HTTP.

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
  Security Standard (403 listing the violations: ``podsecurity.py``); a pod naming a
  ``runtimeClassName`` the cluster does not have (:attr:`FakeApiServer.runtime_classes`)
  is refused as the RuntimeClass admission plugin refuses it (403).

Fault injection: :meth:`FakeApiServer.fail` (answer N requests with an error status),
:meth:`FakeApiServer.drop_watches` (cut every open watch), ``store.compact()`` (410 on resume).

This module holds the operations; ``objects.py`` the checks and defaults of objects,
``apihandlers.py`` the HTTP side and ``watch.py`` one watch stream.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
from dataclasses import dataclass
from typing import Any

import kubernetes_validate
from tornado import httpserver, web
from tornado.netutil import bind_sockets

from . import podsecurity, rbac
from .apihandlers import make_app
from .objects import (
    API_VERSIONS,
    DEFAULTS,
    GROUPS,
    POD_MUTABLE_SPEC,
    RESOURCES,
    ApiError,
    merge_patch,
    validate_metadata,
    validate_schema,
)
from .store import Obj, Store, now


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
        # RuntimeClass objects (node.k8s.io/v1, cluster-scoped) the cluster has, by name
        self.runtime_classes: set[str] = set()

    def fail(self, method: str, path: str, code: int = 500, times: int = 1) -> None:
        """Make the next ``times`` matching requests fail with ``code``."""
        self.faults.append(Fault(method.upper(), path, code, times))

    def drop_watches(self) -> None:
        """Cut every open watch connection mid-stream, as a load balancer might."""
        for handler in list(self.watches):
            handler.request.connection.stream.close()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = make_app(self)
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
        DEFAULTS.get(resource, lambda obj: None)(body)
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
        runtime = (body.get("spec") or {}).get("runtimeClassName") if resource == "pods" else None
        if runtime and runtime not in self.runtime_classes:
            raise ApiError(
                403,
                "Forbidden",
                f'pods "{body["metadata"]["name"]}" is forbidden: pod rejected: RuntimeClass '
                f'"{runtime}" not found',
            )
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
        group = f".{GROUPS[resource]}" if GROUPS[resource] else ""
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
            if changed - POD_MUTABLE_SPEC:
                raise ApiError(
                    422, "Invalid", f"spec: Forbidden: pod updates may not change {sorted(changed)}"
                )
        validate_metadata(patched["metadata"])
        if {k: v for k, v in patched.items() if k != "metadata"} != {
            k: v for k, v in current.items() if k != "metadata"
        }:  # metadata alone was checked just above; the schema costs ~30 ms a pod
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
