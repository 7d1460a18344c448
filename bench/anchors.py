"""The anchor gateways (Enterprise Gateway, Kernel Gateway), each in its own throwaway venv.

They are installed from the package index with pip into ``bench/.anchors/NAME`` (gitignored)
and reused while the requirement they were built for is unchanged.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ANCHOR_ROOT = Path(__file__).resolve().parent / ".anchors"


@dataclass(frozen=True)
class Anchor:
    """One gateway we compare against: what to install and which script starts it."""

    name: str
    requirement: str
    script: str
    app: str  # the traitlets application class its flags are set on
    flags: tuple[str, ...] = ()  # what it needs besides address, port and token

    @property
    def venv_dir(self) -> Path:
        return ANCHOR_ROOT / self.name

    @property
    def executable(self) -> Path:
        return self.venv_dir / "bin" / self.script

    @property
    def python(self) -> Path:
        return self.venv_dir / "bin" / "python"

    @property
    def _stamp(self) -> Path:
        return self.venv_dir / ".bench-installed"

    def is_installed(self) -> bool:
        stamp = self._stamp
        return (
            stamp.is_file() and stamp.read_text() == self.requirement and self.executable.exists()
        )

    def version(self) -> str:
        """The installed distribution's version, as pip resolved the requirement."""
        dist = self.requirement.split("=")[0].rstrip("<>!~")
        out = subprocess.run(
            [str(self.python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()


ANCHORS = {
    "eg": Anchor(
        "eg",
        "jupyter_enterprise_gateway==3.3.*",
        "jupyter-enterprisegateway",
        "EnterpriseGatewayApp",
        # EG refuses kernels to user "root" by default (the user is this process's when the
        # request names none), and benchmarks here run as root: name someone else.
        ("--EnterpriseGatewayApp.unauthorized_users=nobody-in-particular",),
    ),
    "kg": Anchor(
        "kg", "jupyter_kernel_gateway==3.0.*", "jupyter-kernelgateway", "KernelGatewayApp"
    ),
}


def ensure_installed(anchor: Anchor, log: Callable[[str], None] = print) -> Anchor:
    """Create the venv and pip install the anchor, unless this requirement is installed there."""
    if anchor.is_installed():
        log(f"{anchor.name}: reusing {anchor.venv_dir} ({anchor.requirement})")
        return anchor
    log(f"{anchor.name}: creating venv {anchor.venv_dir}")
    venv.EnvBuilder(clear=True, with_pip=True).create(anchor.venv_dir)
    log(f"{anchor.name}: pip install {anchor.requirement} (pip's progress follows)")
    # pip's own progress goes straight to our terminal: installs take a minute or two.
    subprocess.run(
        [str(anchor.python), "-m", "pip", "install", "--progress-bar", "off", anchor.requirement],
        check=True,
        stdout=sys.stderr,
    )
    anchor._stamp.write_text(anchor.requirement)
    log(f"{anchor.name}: installed {anchor.requirement} -> {anchor.version()}")
    return anchor
