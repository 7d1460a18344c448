"""The fake scheduler's one question: does a pod fit on the node (its nodeSelector against
the node's labels, its resource requests against what the node has left)?"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from broker.provisioners.podsettings import parse_quantity

from .podruntime import PodRuntime
from .store import Obj


def unschedulable_reason(
    pod: Obj,
    rt: PodRuntime,
    node_labels: dict[str, str],
    capacity: dict[str, Decimal],
    others: Iterable[PodRuntime],
) -> str:
    """Why the pod does not fit ("" when it does); records its requests in ``rt``."""
    selector = pod["spec"].get("nodeSelector") or {}
    if any(node_labels.get(k) != v for k, v in selector.items()):
        return "1 node(s) didn't match Pod's node affinity/selector"
    requests = (pod["spec"]["containers"][0].get("resources") or {}).get("requests") or {}
    rt.requests = {k: parse_quantity(v) for k, v in requests.items()}
    others = [other for other in others if other is not rt]
    for resource, amount in rt.requests.items():
        used = sum((other.requests.get(resource, Decimal(0)) for other in others), Decimal(0))
        if used + amount > capacity.get(resource, Decimal(0)):
            return f"1 Insufficient {resource}"
    return ""
