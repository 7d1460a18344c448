"""Kernel pod and Secret manifests, built as plain dicts by plain functions.

Nothing a client sends is ever templated into YAML: client values (``KERNEL_*``
variables) are parsed, checked against operator bounds and allow-lists here, and only
then placed into the dicts as data. ``make_pod`` and ``make_secret`` are pure, so they
are unit-tested and schema-validated without any cluster.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

GROUP = "kernel-broker.jupyter.org"
LABEL_KERNEL_ID = f"{GROUP}/kernel-id"
LABEL_OWNER = f"{GROUP}/owner"
LABEL_KERNELSPEC = f"{GROUP}/kernelspec"
LABEL_BROKER = f"{GROUP}/broker"
ANNOTATION_OWNER = f"{GROUP}/owner"
ANNOTATION_KERNELSPEC = f"{GROUP}/kernelspec"
ANNOTATION_SECRET = f"{GROUP}/connection-secret"
# Set before a broker asks the kernel to stop ("shutdown" or "restart"), so that other
# replicas watching the pod read the kernel's end as intended, not as a crash to repair.
ANNOTATION_ENDING = f"{GROUP}/ending"
COMPONENT_LABELS = {
    "app.kubernetes.io/name": "kernel-broker",
    "app.kubernetes.io/component": "kernel",
}

CONNECTION_DIR = "/etc/kernel-broker"
CONNECTION_FILE = f"{CONNECTION_DIR}/connection.json"
CONTAINER_NAME = "kernel"
HOME_DIR = "/home/kernel"
TMP_DIR = "/tmp"
# root:fsGroup r--r-----: the kernel (in fsGroup) reads it; no other user does.
CONNECTION_FILE_MODE = 0o440
# kernel_image/Dockerfile's USER 1000:1000, stated in every pod rather than left to the
# image; None leaves a value to the image or to a platform that assigns ids (OpenShift).
KERNEL_UID = KERNEL_GID = 1000

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
_UNITS = {
    None: 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
MAX_ENV_VALUE = 4096


class KernelRequestError(ValueError):
    """A value from the client (KERNEL_* variable) that the operator's rules reject."""


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity (``500m``, ``2``, ``1.5Gi``) as a number of base units."""
    m = _QUANTITY.match(text.strip())
    if not m:
        raise KernelRequestError(f"{text!r} is not a quantity (examples: 500m, 2, 512Mi, 1Gi)")
    try:
        return Decimal(m.group(1)) * _UNITS[m.group(2)]
    except InvalidOperation:
        raise KernelRequestError(f"{text!r} is not a quantity") from None


@dataclass(frozen=True)
class Bounds:
    """Upper limits on what one kernel may request through ``KERNEL_CPUS`` and friends."""

    max_cpus: str = "4"
    max_memory: str = "8Gi"
    max_gpus: int = 0


@dataclass(frozen=True)
class PodSettings:
    """Operator settings for kernel pods (from the provisioner's traitlets and kernelspec)."""

    image: str
    namespace: str
    broker: str
    kernelspec: str
    command: list[str] = field(default_factory=lambda: ["python", "/opt/kernel/entrypoint.py"])
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    bounds: Bounds = Bounds()
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_volumes: list[str] = field(default_factory=list)
    working_dirs: list[str] = field(default_factory=lambda: [HOME_DIR, "/uploaded_files"])
    run_as_user: int | None = KERNEL_UID
    run_as_group: int | None = KERNEL_GID
    fs_group: int | None = KERNEL_GID
    image_pull_policy: str = "IfNotPresent"
    ports: tuple[int, ...] = (52700, 52701, 52702, 52703, 52704)
    grace_seconds: int = 5
    env_allowlist: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KernelRequest:
    """What one launch asks for, already validated."""

    kernel_id: str
    owner: str
    env: dict[str, str]
    resources: dict[str, dict[str, str]]
    working_dir: str
    volumes: list[str]


def label_value(text: str) -> str:
    """``text`` squeezed into a valid label value (the exact value goes in an annotation)."""
    value = _LABEL_VALUE_BAD.sub("-", text)[:63].strip("-_.")
    return value or "unknown"


def _bounded(name: str, text: str, limit: str) -> str:
    if parse_quantity(text) <= 0:
        raise KernelRequestError(f"{name}={text} must be more than zero")
    if parse_quantity(text) > parse_quantity(limit):
        raise KernelRequestError(
            f"{name}={text} is above this broker's limit of {limit}; ask for less"
        )
    return text.strip()


def _resources(env: dict[str, str], settings: PodSettings) -> dict[str, dict[str, str]]:
    """The kernelspec's resources with the request's bounded overrides applied."""
    requests = dict(settings.resources.get("requests", {}))
    limits = dict(settings.resources.get("limits", {}))
    if "KERNEL_CPUS" in env:
        requests["cpu"] = _bounded("KERNEL_CPUS", env["KERNEL_CPUS"], settings.bounds.max_cpus)
        limits["cpu"] = requests["cpu"]
    if "KERNEL_MEMORY" in env:
        memory = _bounded("KERNEL_MEMORY", env["KERNEL_MEMORY"], settings.bounds.max_memory)
        requests["memory"] = limits["memory"] = memory
    if "KERNEL_GPUS" in env:
        gpus = env["KERNEL_GPUS"].strip()
        if not gpus.isdigit() or int(gpus) > settings.bounds.max_gpus:
            raise KernelRequestError(
                f"KERNEL_GPUS={gpus} must be a whole number up to {settings.bounds.max_gpus}"
            )
        if int(gpus):
            limits["nvidia.com/gpu"] = gpus
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def _working_dir(env: dict[str, str], settings: PodSettings) -> str:
    wanted = env.get("KERNEL_WORKING_DIR", "").strip() or settings.working_dirs[0]
    if not wanted.startswith("/") or "/../" in f"{wanted}/" or "\x00" in wanted:
        raise KernelRequestError(f"KERNEL_WORKING_DIR={wanted!r} must be an absolute path")
    for root in settings.working_dirs:
        if wanted == root or wanted.startswith(root.rstrip("/") + "/"):
            return wanted
    allowed = ", ".join(settings.working_dirs)
    raise KernelRequestError(
        f"KERNEL_WORKING_DIR={wanted!r} is not allowed; use one under {allowed}"
    )


def _volumes(env: dict[str, str], settings: PodSettings) -> list[str]:
    names = list(settings.default_volumes)
    for name in filter(None, (n.strip() for n in env.get("KERNEL_VOLUMES", "").split(","))):
        if name not in settings.volumes:
            allowed = ", ".join(sorted(settings.volumes)) or "none"
            raise KernelRequestError(f"KERNEL_VOLUMES names {name!r}; allowed volumes: {allowed}")
        if name not in names:
            names.append(name)
    return names


def _env(env: dict[str, str], spec_env: list[str], settings: PodSettings) -> dict[str, str]:
    """Only KERNEL_*, the kernelspec's own variables and allow-listed names reach the pod."""
    passed = {}
    for name, value in env.items():
        if not (name.startswith("KERNEL_") or name in spec_env or name in settings.env_allowlist):
            continue
        if not _ENV_NAME.match(name):
            raise KernelRequestError(f"environment variable name {name!r} is not allowed")
        if len(value) > MAX_ENV_VALUE or "\x00" in value:
            raise KernelRequestError(f"{name} is longer than {MAX_ENV_VALUE} characters")
        passed[name] = value
    return passed


def make_request(
    kernel_id: str, env: dict[str, str], spec_env: list[str], settings: PodSettings
) -> KernelRequest:
    """Validate one launch's client values against the operator's settings."""
    return KernelRequest(
        kernel_id=kernel_id,
        # no user yet: a warm pool kernel (the broker always names the user of a kernel)
        owner=env.get("KERNEL_USERNAME", "").strip(),
        env=_env(env, spec_env, settings),
        resources=_resources(env, settings),
        working_dir=_working_dir(env, settings),
        volumes=_volumes(env, settings),
    )


def _labels(req: KernelRequest, settings: PodSettings) -> dict[str, str]:
    return {
        **COMPONENT_LABELS,
        LABEL_KERNEL_ID: req.kernel_id,
        LABEL_OWNER: label_value(req.owner),
        LABEL_KERNELSPEC: label_value(settings.kernelspec),
        LABEL_BROKER: label_value(settings.broker),
    }


def _container_env(req: KernelRequest) -> list[dict[str, Any]]:
    fixed = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "KERNEL_CONNECTION_FILE", "value": CONNECTION_FILE},
        {"name": "HOME", "value": HOME_DIR},
        {"name": "MPLCONFIGDIR", "value": f"{TMP_DIR}/matplotlib"},
    ]
    reserved = {e["name"] for e in fixed}
    client = [{"name": k, "value": v} for k, v in sorted(req.env.items()) if k not in reserved]
    return fixed + client


def _security_context() -> dict[str, Any]:
    """The container's hardening, as the ``restricted`` Pod Security Standard asks."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_security_context(settings: PodSettings) -> dict[str, Any]:
    """Who the kernel runs as, stated rather than left to the image.

    A kubelet writes Secret files owned by root:root; only ``fsGroup`` makes them the
    kernel's group, so the connection file is readable by the kernel's container and no
    other user (docs/kubernetes.md, "Who can read the connection file").
    """
    ctx: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    for key, value in (
        ("runAsUser", settings.run_as_user),
        ("runAsGroup", settings.run_as_group),
        ("fsGroup", settings.fs_group),
    ):
        if value is not None:
            ctx[key] = value
    return ctx


def _volume_specs(secret_name: str, req: KernelRequest, settings: PodSettings):
    volumes: list[dict[str, Any]] = [
        {
            "name": "connection",
            # Group-readable: the files are root-owned, and fsGroup is the kernel's group.
            "secret": {
                "secretName": secret_name,
                "defaultMode": CONNECTION_FILE_MODE,
                "optional": False,
            },
        },
        {"name": "home", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "connection", "mountPath": CONNECTION_DIR, "readOnly": True},
        {"name": "home", "mountPath": HOME_DIR},
        {"name": "tmp", "mountPath": TMP_DIR},
    ]
    for name in req.volumes:
        allowed = settings.volumes[name]
        volumes.append({"name": name, **allowed["volume"]})
        mount = {"name": name, "mountPath": allowed["mountPath"]}
        if allowed.get("readOnly"):
            mount["readOnly"] = True
        mounts.append(mount)
    return volumes, mounts


def make_pod(name: str, secret_name: str, req: KernelRequest, settings: PodSettings) -> dict:
    """The kernel's pod: one container running the kernel image's entrypoint."""
    volumes, mounts = _volume_specs(secret_name, req, settings)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(settings.command),
        "workingDir": req.working_dir,
        "env": _container_env(req),
        "ports": [
            {"name": f"k{i}", "containerPort": p, "protocol": "TCP"}
            for i, p in enumerate(settings.ports)
        ],
        # Ready only once the kernel has bound its heartbeat port on the pod IP.
        "readinessProbe": {
            "tcpSocket": {"port": settings.ports[4]},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
        "securityContext": _security_context(),
        "volumeMounts": mounts,
    }
    if req.resources:
        container["resources"] = req.resources
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.grace_seconds,
        "securityContext": _pod_security_context(settings),
        "containers": [container],
        "volumes": volumes,
    }
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        spec["tolerations"] = [dict(t) for t in settings.tolerations]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": _labels(req, settings),
            "annotations": {
                ANNOTATION_OWNER: req.owner,
                ANNOTATION_KERNELSPEC: settings.kernelspec,
                ANNOTATION_SECRET: secret_name,
            },
        },
        "spec": spec,
    }


def make_secret(name: str, pod: dict[str, Any], connection_info: dict[str, Any]) -> dict[str, Any]:
    """The Secret holding the kernel's connection file, owned by (and deleted with) its pod."""
    meta = pod["metadata"]
    payload = json.dumps(connection_info, sort_keys=True).encode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": dict(meta["labels"]),
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}
            ],
        },
        "data": {"connection.json": base64.b64encode(payload).decode()},
    }


def read_secret_connection(secret: dict[str, Any]) -> dict[str, Any]:
    """The connection info stored by :func:`make_secret`."""
    return json.loads(base64.b64decode(secret["data"]["connection.json"]))
