"""What the fake API server checks and fills in on the objects it stores, as a real one
does: kinds and API versions, name, label and annotation syntax, the official schema
(``kubernetes-validate --strict``), pod and secret defaults, JSON merge patch, and the
``Status`` body of an error."""

from __future__ import annotations

import base64
import binascii
import copy
import re
from typing import Any

import kubernetes_validate

from .store import Obj

RESOURCES = {
    "pods": "Pod",
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "leases": "Lease",
    "networkpolicies": "NetworkPolicy",
}
API_VERSIONS = {
    "pods": "v1",
    "secrets": "v1",
    "configmaps": "v1",
    "leases": "coordination.k8s.io/v1",
    "networkpolicies": "networking.k8s.io/v1",
}
GROUPS = {
    "pods": "",
    "secrets": "",
    "configmaps": "",
    "leases": "coordination.k8s.io",
    "networkpolicies": "networking.k8s.io",
}
# Objects updated whole (PUT) here; the broker patches pods and never updates secrets.
UPDATABLE = {"leases", "networkpolicies"}
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
POD_MUTABLE_SPEC = {"activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"}


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


DEFAULTS = {"pods": _default_pod, "secrets": _default_secret}
