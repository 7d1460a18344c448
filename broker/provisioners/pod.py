"""Kernel pod and Secret manifests, built as plain dicts by plain functions.

Nothing a client sends is ever templated into YAML: client values (``KERNEL_*``
variables) are parsed, checked against operator bounds and allow-lists first
(``podrequest.py``), and only then placed into the dicts as data. ``make_pod`` and
``make_secret`` are pure, so they are unit-tested and schema-validated without any cluster.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from .podrequest import KernelRequest
from .podsettings import HOME_DIR, PodSettings

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
TMP_DIR = "/tmp"
# root:fsGroup r--r-----: the kernel (in fsGroup) reads it; no other user does.
CONNECTION_FILE_MODE = 0o440

_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]")


def label_value(text: str) -> str:
    """``text`` squeezed into a valid label value (the exact value goes in an annotation)."""
    value = _LABEL_VALUE_BAD.sub("-", text)[:63].strip("-_.")
    return value or "unknown"


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
        # The writable emptyDir, named: kernels that need a temporary file at start (R's
        # "-e" does) find it whatever their image's defaults.
        {"name": "TMPDIR", "value": TMP_DIR},
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


def _pod_security_context(req: KernelRequest, settings: PodSettings) -> dict[str, Any]:
    """Who the kernel runs as, stated rather than left to the image.

    A kubelet writes Secret files owned by root:root; only ``fsGroup`` makes them the
    kernel's group, so the connection file is readable by the kernel's container and no
    other user (docs/kubernetes.md, "Who can read the connection file").
    """
    ctx: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    for key, value in (
        ("runAsUser", req.run_as_user),
        ("runAsGroup", req.run_as_group),
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
        "image": req.image or settings.image,
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
        "securityContext": _pod_security_context(req, settings),
        "containers": [container],
        "volumes": volumes,
    }
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        spec["tolerations"] = [dict(t) for t in settings.tolerations]
    if settings.runtime_class:
        spec["runtimeClassName"] = settings.runtime_class
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
