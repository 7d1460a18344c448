"""The images of the fake registry: what a pod's image files are on the host, the image's
USER, and how long a pull takes; and the kernel image of ``kernel_image/``."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Image:
    """An image the fake registry can "pull": its files, USER and pull time.

    ``runtime`` lists host paths the image's files need besides themselves (the
    interpreter's prefix and the venv), which a strict kubelet makes reachable.
    """

    files: dict[str, str]
    user: int = 1000
    group: int = 1000
    runtime: list[str] = field(default_factory=list)
    pull_seconds: float = 0.0
    env: dict[str, str] = field(default_factory=lambda: {"PATH": os.environ.get("PATH", "")})


KERNEL_ENTRYPOINT = str(Path(__file__).resolve().parents[2] / "kernel_image" / "entrypoint.py")


def kernel_image(**kwargs: Any) -> Image:
    """The kernel image of ``kernel_image/``: its entrypoint run by this interpreter."""
    return Image(
        files={"python": sys.executable, "/opt/kernel/entrypoint.py": KERNEL_ENTRYPOINT},
        runtime=[os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)],
        **kwargs,
    )
