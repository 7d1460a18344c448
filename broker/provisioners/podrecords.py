"""A kernel pod read back as a kernel record: the pod and its Secret are the record.

A broker that restarts, or a replica asked for a kernel another one started, needs no
database: the pod's labels and annotations say which kernel it is (id, kernelspec, owner)
and where its Secret is; the provisioner reads the connection file from that Secret when
it re-attaches (:meth:`KubernetesProvisioner.load_provisioner_info`). Pure functions over
the pod dict, as ``pod.py`` builds it.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

from . import pod as manifests
from .podactivity import parse_time, recorded
from .podstatus import exit_code, pod_state

# What a label value may be: kernel ids go into label selectors and must not widen them.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
# Variables the pod manifest sets itself; a restart sets them again.
_FIXED_ENV = {"KERNEL_CONNECTION_FILE", "HOME", "MPLCONFIGDIR"}


class Verdict(Enum):
    """What a broker finding this pod should do with it."""

    ADOPT = "adopt"  # ready: re-attach if it answers kernel_info, else delete it
    DROP = "drop"  # its kernel exited or cannot start: delete the pod
    SKIP = "skip"  # starting, or being shut down or restarted by a broker: leave it alone


def valid_kernel_id(kernel_id: str) -> bool:
    """Whether ``kernel_id`` can be looked up by label (every id the broker makes can)."""
    return bool(_LABEL_VALUE.match(kernel_id))


def verdict(pod: dict[str, Any]) -> Verdict:
    """Adopt, drop or skip a kernel pod found in the cluster."""
    meta = pod["metadata"]
    if meta.get("deletionTimestamp") or manifests.ANNOTATION_ENDING in (
        meta.get("annotations") or {}
    ):
        return Verdict.SKIP
    state = pod_state(pod)
    if state.ready:
        return Verdict.ADOPT
    if state.failure or exit_code(pod) is not None:
        return Verdict.DROP
    return Verdict.SKIP


def kernel_record(pod: dict[str, Any]) -> dict[str, Any]:
    """The record ``KernelLauncher.adopt`` takes, read from the pod alone.

    ``owner`` is None for a warm pool kernel (no user named at launch). The connection
    info is left out: the provisioner reads it from the pod's Secret.
    """
    meta = pod["metadata"]
    annotations = meta.get("annotations") or {}
    kernel_id = meta["labels"][manifests.LABEL_KERNEL_ID]
    container = pod["spec"]["containers"][0]
    env = {
        e["name"]: e["value"]
        for e in container.get("env") or []
        if "value" in e and e["name"] not in _FIXED_ENV
    }
    return {
        "id": kernel_id,
        "name": annotations.get(manifests.ANNOTATION_KERNELSPEC, ""),
        "owner": annotations.get(manifests.ANNOTATION_OWNER) or None,
        "created": parse_time(meta.get("creationTimestamp", "")),
        "last_activity": recorded(pod).last,  # as the replicas recorded it on the pod
        "connection_info": None,
        "provisioner_info": {
            "kernel_id": kernel_id,
            "namespace": meta["namespace"],
            "pod_name": meta["name"],
        },
        "launch_args": {"env": env},  # a restart launches the new pod with the same values
    }
