"""The status a fake kubelet reports for a pod: container statuses and pod conditions, as
a real kubelet writes them."""

from __future__ import annotations

from typing import Any

from .store import Obj, now


def container_status(pod: Obj, state: dict, ready: bool = False, **extra: Any) -> list:
    """``status.containerStatuses`` of the pod's one container in ``state``."""
    c = pod["spec"]["containers"][0]
    base = {
        "name": c["name"],
        "image": c["image"],
        "imageID": "",
        "ready": ready,
        "restartCount": 0,
        "started": "running" in state,
        "state": state,
    }
    old = (pod["status"].get("containerStatuses") or [{}])[0]
    base["restartCount"] = old.get("restartCount", 0)
    return [{**base, **extra}]


def conditions(**flags: bool) -> list[dict[str, Any]]:
    """``status.conditions`` with the given ones true or false, in the kubelet's order."""
    out = []
    for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
        if kind in flags:
            out.append(
                {
                    "type": kind,
                    "status": "True" if flags[kind] else "False",
                    "lastTransitionTime": now(),
                }
            )
    return out


def terminated_status(pod: Obj, code: int, started: str) -> dict[str, Any]:
    """The status fields of a pod whose container exited with ``code`` (a signal: 128+n)."""
    code = 128 + -code if code < 0 else code
    term = {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "startedAt": started,
        "finishedAt": now(),
    }
    return {
        "phase": "Succeeded" if code == 0 else "Failed",
        "conditions": conditions(
            PodScheduled=True, Initialized=True, ContainersReady=False, Ready=False
        ),
        "containerStatuses": container_status(pod, {"terminated": term}),
    }


def ready_status(pod: Obj) -> dict[str, Any]:
    """The status fields of a running pod whose readiness probe passed."""
    running = pod["status"]["containerStatuses"][0]["state"]["running"]
    state = {"running": {"startedAt": running["startedAt"]}}
    return {
        "conditions": conditions(
            PodScheduled=True, Initialized=True, ContainersReady=True, Ready=True
        ),
        "containerStatuses": container_status(pod, state, ready=True),
    }
