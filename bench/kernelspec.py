"""The one kernelspec every target launches, so all of them run the same ipykernel."""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

SPEC_NAME = "bench-python"


def write_kernelspec(jupyter_path: Path) -> dict:
    """Write ``bench-python`` under ``jupyter_path/kernels`` and return the spec.

    Its argv names this interpreter by absolute path: the anchors' venvs bring their own
    ipykernel, and a relative ``python`` would make each gateway run a different kernel.
    """
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Kernel Broker bench (ipykernel)",
        "language": "python",
        "metadata": {},
    }
    spec_dir = jupyter_path / "kernels" / SPEC_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec


def describe() -> str:
    """What the kernels run, for the report."""
    return f"{sys.executable} (Python {sys.version.split()[0]}, ipykernel {version('ipykernel')})"
