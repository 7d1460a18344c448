"""Per-kernelspec egress: one NetworkPolicy that lets a kernelspec's pods reach named
destinations, and nothing else.

``deploy/base/networkpolicy.yaml`` denies kernel pods all egress. NetworkPolicies add up,
so a kernelspec whose provisioner config names destinations (``egress``: ``{name: rule}``,
each rule a NetworkPolicy egress rule, ``to`` and ``ports``) gets a policy of its own that
selects its pods by their broker and kernelspec labels and allows exactly those rules.
The manifest is built as data (``egress_policy``), and the API server validates it as any
object; each replica makes sure at startup that it exists as configured
(``ensure_policy``: create, or update what differs).
"""

from __future__ import annotations

import re
from typing import Any

from . import pod as manifests
from .k8s import KubeClient, KubeError
from .podsettings import PodSettings

ANNOTATION_DESTINATIONS = f"{manifests.GROUP}/destinations"
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def policy_name(settings: PodSettings) -> str:
    """``<broker>-<kernelspec>-egress``, squeezed into a DNS-1123 name."""
    raw = f"{settings.broker}-{settings.kernelspec}"
    return f"{_NOT_DNS.sub('-', raw.lower()).strip('-')[:240]}-egress"


def egress_policy(settings: PodSettings) -> dict[str, Any] | None:
    """The kernelspec's egress NetworkPolicy, or None when it allows no destination."""
    if not settings.egress:
        return None
    names = sorted(settings.egress)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": policy_name(settings),
            "namespace": settings.namespace,
            "labels": {
                **manifests.COMPONENT_LABELS,
                manifests.LABEL_BROKER: manifests.label_value(settings.broker),
                manifests.LABEL_KERNELSPEC: manifests.label_value(settings.kernelspec),
            },
            "annotations": {ANNOTATION_DESTINATIONS: ",".join(names)},
        },
        "spec": {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/component": "kernel",
                    manifests.LABEL_BROKER: manifests.label_value(settings.broker),
                    manifests.LABEL_KERNELSPEC: manifests.label_value(settings.kernelspec),
                }
            },
            "policyTypes": ["Egress"],
            "egress": [dict(settings.egress[name]) for name in names],
        },
    }


async def ensure_policy(kube: KubeClient, policy: dict[str, Any]) -> str:
    """Create the policy, or update it where it differs; returns what was done."""
    namespace, name = policy["metadata"]["namespace"], policy["metadata"]["name"]
    try:
        current = await kube.read_network_policy(namespace, name)
    except KubeError as e:
        if e.status != 404:
            raise
        await kube.create_network_policy(namespace, policy)
        return "created"
    notes = current["metadata"].get("annotations") or {}
    same = current.get("spec") == policy["spec"] and all(
        notes.get(key) == value for key, value in policy["metadata"]["annotations"].items()
    )
    if same:
        return "unchanged"
    updated = {**policy, "metadata": {**policy["metadata"]}}
    updated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    await kube.replace_network_policy(namespace, updated)
    return "updated"
