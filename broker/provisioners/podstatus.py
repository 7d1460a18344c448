"""Reading a kernel pod's status: is it ready, still starting, or failed (and why)?

Pure functions over the pod dict the watch delivers. Each failure message says what
happened and what the operator or user can do about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Waiting reasons that will not fix themselves while a kernel start is waiting.
_FATAL_WAITING = {
    "ErrImagePull": "the image {image} could not be pulled ({message}); check the image name "
    "and tag in the kernelspec and that the cluster can reach the registry",
    "ImagePullBackOff": "the image {image} could not be pulled ({message}); check the image "
    "name and tag in the kernelspec and that the cluster can reach the registry",
    "InvalidImageName": "the image name {image} is invalid ({message}); fix the kernelspec",
    "CreateContainerConfigError": "the kernel container could not be configured ({message}); "
    "check the kernelspec's securityContext, env and volumes",
    "CreateContainerError": "the kernel container could not be created ({message})",
    "CrashLoopBackOff": "the kernel keeps crashing ({message}); see the pod's logs",
    "RunContainerError": "the kernel container could not start ({message})",
}


@dataclass(frozen=True)
class PodState:
    """What a start waiting on this pod should do next."""

    ready: bool = False
    ip: str = ""
    failure: str = ""
    exit_code: int | None = None


def _condition(pod: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return {}


def _container_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def exit_code(pod: dict[str, Any] | None) -> int | None:
    """The kernel's exit code once its container has stopped, else None (still running).

    A pod that no longer exists (or is being deleted without a recorded exit) counts as
    killed (-9), as a process would.
    """
    if pod is None:
        return -9
    state = _container_status(pod).get("state") or {}
    if "terminated" in state:
        return int(state["terminated"].get("exitCode", 1))
    if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return 0 if pod["status"]["phase"] == "Succeeded" else 1
    return None


def pod_state(pod: dict[str, Any]) -> PodState:
    """Classify a pod for a start that is waiting on it."""
    name = pod["metadata"]["name"]
    scheduled = _condition(pod, "PodScheduled")
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return PodState(
            failure=f"kernel pod {name} cannot be scheduled: {scheduled.get('message', '')}; "
            "ask for fewer resources (KERNEL_CPUS, KERNEL_MEMORY) or ask the operator to check "
            "the kernelspec's node selector, tolerations and the cluster's capacity"
        )
    status = _container_status(pod)
    image = status.get("image") or pod["spec"]["containers"][0].get("image", "")
    waiting = (status.get("state") or {}).get("waiting") or {}
    template = _FATAL_WAITING.get(waiting.get("reason", ""))
    if template:
        detail = template.format(image=image, message=waiting.get("message", "no details"))
        return PodState(failure=f"kernel pod {name}: {detail}")
    code = exit_code(pod)
    if code is not None:
        term = (status.get("state") or {}).get("terminated") or {}
        reason = term.get("reason") or pod.get("status", {}).get("reason", "")
        return PodState(
            exit_code=code,
            failure=f"kernel pod {name} exited with code {code} ({reason or 'no reason'}) before "
            "it was ready; see the pod's logs (kubectl logs) for the kernel's error",
        )
    ip = pod.get("status", {}).get("podIP", "")
    ready = _condition(pod, "Ready").get("status") == "True" and bool(ip)
    return PodState(ready=ready, ip=ip)
