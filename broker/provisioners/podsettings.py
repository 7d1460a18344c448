"""What an operator allows a kernel pod to be: the settings every request is checked against."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

HOME_DIR = "/home/kernel"
# kernel_image/Dockerfile's USER 1000:1000, stated in every pod rather than left to the
# image; None leaves a value to the image or to a platform that assigns ids (OpenShift).
KERNEL_UID = KERNEL_GID = 1000

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
    """Operator settings for kernel pods (from the provisioner's traitlets and kernelspec).

    ``images``, ``uids`` and ``gids`` are what a request may pick with ``KERNEL_IMAGE``,
    ``KERNEL_UID`` and ``KERNEL_GID`` besides ``image``, ``run_as_user`` and
    ``run_as_group``; uid and gid 0 are refused whatever they list.
    """

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
    images: list[str] = field(default_factory=list)
    uids: list[int] = field(default_factory=list)
    gids: list[int] = field(default_factory=list)
    runtime_class: str = ""
    egress: dict[str, dict[str, Any]] = field(default_factory=dict)
