"""Kernels this replica does not serve, listed as if it did: the ready kernel pods of this
broker instance, read from the watch-fed cache (no request, nothing attached).

So ``GET /api/kernels`` on any replica lists every kernel the user owns. A model built
from a pod says what the replicas recorded on it (``provisioners/podactivity.py``):
``last_activity``, and ``busy`` while some replica sees it busy; ``connections`` counts
this replica's websockets, so it is 0. The first request that names such a kernel
attaches it (``adoption.py``).
"""

from __future__ import annotations

import time
from typing import Any

from ..auth import User
from ..pools import WARM_PREFIX
from ..replicas import Replicas
from ..timestamps import format_time


def models_elsewhere(
    replicas: Replicas, known: set[str], user: User, interval: float
) -> list[dict[str, Any]]:
    """REST models of the ready kernel pods ``user`` owns whose ids are not ``known``."""
    if not replicas.targets:
        return []
    from ..provisioners.podactivity import fresh, recorded
    from ..provisioners.podrecords import Verdict, kernel_record, verdict

    models, now = [], time.time()
    for _, pod in replicas.kernel_pods():
        if verdict(pod) is not Verdict.ADOPT:
            continue
        record = kernel_record(pod)
        owner = record["owner"]
        if record["id"] in known or record["id"].startswith(WARM_PREFIX) or not owner:
            continue
        if not user.owns(owner):
            continue
        use = recorded(pod)
        models.append(
            {
                "id": record["id"],
                "name": record["name"],
                "last_activity": format_time(use.last),
                "execution_state": "busy" if fresh(use.busy, now, interval) else "idle",
                "connections": 0,
                "owner": owner,
            }
        )
    return models
