"""Authentication and RBAC authorization, as a real API server does them.

A request's bearer token names a user; the request is turned into the attributes RBAC
sees (verb, API group, resource with its subresource, namespace, name) and allowed only
when one of the user's rules in that namespace grants it. A refusal is the API server's
403: a ``Forbidden`` Status whose message names the user, verb, resource, API group and
namespace, word for word as kube-apiserver writes it.

The broker's rules are read from ``deploy/base/role.yaml`` each time a control plane is
made, so a change there is what the tests enforce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROLE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "base" / "role.yaml"
_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class User:
    """Who a token belongs to and what RBAC lets them do (``admin``: everything)."""

    name: str
    rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # namespace -> rules
    admin: bool = False


@dataclass(frozen=True)
class Attributes:
    """A resource request as the authorizer sees it."""

    verb: str
    group: str
    resource: str  # "pods" or "pods/status"
    namespace: str  # "" for a cluster-scoped request
    name: str


def broker_user(namespace: str, path: Path = ROLE_FILE) -> User:
    """The broker's service account, bound (as deploy/base does) to the Role in ``path``."""
    rules = yaml.safe_load(path.read_text())["rules"]
    return User(f"system:serviceaccount:{namespace}:kernel-broker", {namespace: rules})


def attributes(method: str, path: str, watch: bool) -> Attributes | None:
    """The RBAC attributes of a request, or None for a non-resource URL (``/version``)."""
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource, name = rest[0], rest[1] if len(rest) > 1 else ""
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    if method == "GET":
        verb = "watch" if watch else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _METHOD_VERBS.get(method, method.lower())
    return Attributes(verb, group, resource, namespace, name)


def _grants(rule: dict[str, Any], attrs: Attributes) -> bool:
    def has(key: str, value: str) -> bool:
        values = rule.get(key) or []
        return "*" in values or value in values

    names = rule.get("resourceNames")
    return (
        has("verbs", attrs.verb)
        and has("apiGroups", attrs.group)
        and has("resources", attrs.resource)
        and (not names or attrs.name in names)
    )


def allowed(user: User, attrs: Attributes | None) -> bool:
    """Whether RBAC allows the request (non-resource URLs: discovery, always)."""
    if user.admin or attrs is None:
        return True
    return any(_grants(rule, attrs) for rule in user.rules.get(attrs.namespace, []))


def forbidden_message(user: User, attrs: Attributes) -> str:
    """kube-apiserver's message for a request RBAC refused."""
    base = attrs.resource.split("/")[0]
    qualified = f"{base}.{attrs.group}" if attrs.group else base
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (
        f'{subject} is forbidden: User "{user.name}" cannot {attrs.verb} resource '
        f'"{attrs.resource}" in API group "{attrs.group}" {scope}'
    )
