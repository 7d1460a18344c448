"""Claiming a warm pool pod for one kernel, atomically across replicas.

Any replica may hand out a warm pod (kernel ids are bound late), so two replicas may pick
the same one at once. The claim is a merge patch of the pod's kernel-id and owner labels
that carries the resourceVersion the claimer last saw: the API server applies it only to
that version of the pod (409 Conflict otherwise), so exactly one claim wins. A conflict
that was only a newer version of the same, still warm pod (a status update the cache had
not seen) is retried once from a fresh read.
"""

from __future__ import annotations

from typing import Any

from . import pod as manifests
from .k8s import KubeClient, KubeError

WARM_MARK = f"{manifests.GROUP}/warm"  # set once a pool kernel is proven and may be claimed


def claim_metadata(kernel_id: str, owner: str) -> dict[str, Any]:
    """The labels and annotations that make a pod ``owner``'s kernel ``kernel_id``."""
    return {
        "labels": {
            manifests.LABEL_KERNEL_ID: kernel_id,
            manifests.LABEL_OWNER: manifests.label_value(owner),
        },
        "annotations": {manifests.ANNOTATION_OWNER: owner, WARM_MARK: None},
    }


def still_warm(pod: dict[str, Any] | None, warm_id: str) -> bool:
    """Whether ``pod`` is still the unclaimed pool kernel ``warm_id``."""
    if pod is None or pod["metadata"].get("deletionTimestamp"):
        return False
    return (pod["metadata"].get("labels") or {}).get(manifests.LABEL_KERNEL_ID) == warm_id


async def claim_pod(
    kube: KubeClient,
    pod: dict[str, Any],
    warm_id: str,
    kernel_id: str,
    owner: str,
) -> bool:
    """Make the warm pod ``pod`` (as last seen) ``owner``'s kernel ``kernel_id``; False when
    another replica claimed (or deleted) it first."""
    meta = pod["metadata"]
    for _ in range(2):
        if not still_warm(pod, warm_id):
            return False
        patch = claim_metadata(kernel_id, owner)
        patch["resourceVersion"] = pod["metadata"]["resourceVersion"]
        try:
            await kube.patch_pod_metadata(meta["namespace"], meta["name"], patch)
            return True
        except KubeError as e:
            if e.status == 404:
                return False
            if e.status != 409:
                raise
        try:
            pod = await kube.read_pod(meta["namespace"], meta["name"])
        except KubeError as e:
            if e.status == 404:
                return False
            raise
    return False
