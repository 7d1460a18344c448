"""`kernel-broker kernels install bash|deno|r`: install a third-party kernel, register its spec.

Each kernel comes from a registry this machine reaches: bash_kernel and Deno from PyPI
(pip into the interpreter that runs the broker), IRkernel from Debian (apt-get, as root).
The kernelspec is registered with jupyter_client's own installer, by default under this
interpreter's prefix (``<venv>/share/jupyter/kernels``), where a broker run by it finds it;
``--user`` puts it in the user's Jupyter data directory instead. The broker itself needs
none of them: ``kernel-broker serve`` offers whatever kernelspecs exist.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager


class InstallError(Exception):
    """An install step failed; the message says what to do instead."""


@dataclass(frozen=True)
class Recipe:
    """How one kernel is installed and where its kernelspec directory comes from."""

    kernelspec: str
    summary: str
    pip: tuple[str, ...]
    apt: tuple[str, ...]
    spec_dir: Callable[[Path], Path]
    # Corrections to the kernel's own kernel.json (top-level keys; metadata merged per key).
    spec_updates: dict[str, Any] = field(default_factory=dict)


def _bash_spec(tmp: Path) -> Path:
    """bash_kernel's own installer writes its kernelspec; we point it at a scratch prefix."""
    _run([sys.executable, "-m", "bash_kernel.install", "--prefix", str(tmp)])
    return tmp / "share" / "jupyter" / "kernels" / "bash"


def _deno_binary() -> str:
    """The deno executable the PyPI package ships (its module knows where)."""
    import deno  # the PyPI redistribution: a module that locates its bundled binary

    return deno.find_deno_bin()


def _deno_spec(tmp: Path) -> Path:
    """`deno jupyter --install` writes its kernelspec (logos included) to the user's Jupyter
    data directory, found through XDG_DATA_HOME: pointed at a scratch directory here. Its
    argv names the binary by absolute path, so the broker needs no deno on PATH."""
    _run([_deno_binary(), "jupyter", "--install", "--force"], env={"XDG_DATA_HOME": str(tmp)})
    return tmp / "jupyter" / "kernels" / "deno"


def _r_spec(tmp: Path) -> Path:
    """IRkernel ships its kernelspec directory (kernel.json and logos) inside the R package."""
    rscript = shutil.which("Rscript")
    if not rscript:
        raise InstallError("Rscript is not on PATH after installing IRkernel.")
    found = _run([rscript, "-e", "cat(system.file('kernelspec', package = 'IRkernel'))"])
    if not found.strip():
        raise InstallError("R cannot find the IRkernel package: apt-get install r-cran-irkernel")
    return Path(found.strip())


RECIPES: dict[str, Recipe] = {
    "bash": Recipe("bash", "Bash (bash_kernel)", ("bash_kernel>=0.10",), (), _bash_spec),
    # Deno's kernel binds TCP ports only (it takes an ipc:// address for a host name), and
    # SIGINT ends it, while it honours an interrupt_request on the control channel.
    "deno": Recipe(
        "deno",
        "JavaScript/TypeScript (Deno)",
        ("deno>=2.9,<3",),
        (),
        _deno_spec,
        {"interrupt_mode": "message", "metadata": {"kernel_broker": {"transport": "tcp"}}},
    ),
    "r": Recipe("ir", "R (IRkernel)", (), ("r-cran-irkernel",), _r_spec),
}


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    """Run a command; its stdout, or InstallError with its output when it fails."""
    try:
        done = subprocess.run(
            argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise InstallError(f"{argv[0]} is not installed.") from None
    if done.returncode != 0:
        raise InstallError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr.strip()}")
    return done.stdout


def _missing_pip(requirements: tuple[str, ...]) -> list[str]:
    """The requirements whose distribution is not installed (versions are pip's business)."""
    missing = []
    for req in requirements:
        name = req.split(">")[0].split("=")[0].split("<")[0]
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(req)
    return missing


def _missing_apt(packages: tuple[str, ...]) -> list[str]:
    missing = []
    for package in packages:
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
        )
        if "install ok installed" not in status.stdout:
            missing.append(package)
    return missing


def _install_packages(recipe: Recipe, say: Callable[[str], None]) -> None:
    pip = _missing_pip(recipe.pip)
    if pip:
        say(f"pip install {' '.join(pip)} (into {sys.prefix})")
        _run([sys.executable, "-m", "pip", "install", "--quiet", *pip])
    apt = _missing_apt(recipe.apt) if shutil.which("dpkg-query") else list(recipe.apt)
    if not apt:
        return
    command = f"apt-get install -y --no-install-recommends {' '.join(apt)}"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise InstallError(
            f"{recipe.summary} comes from Debian packages; as root run:\n"
            f"  apt-get update && {command}\nthen run this command again."
        )
    say(f"apt-get update && {command}")
    _run(["apt-get", "update", "-qq"])
    _run(command.split(), env={"DEBIAN_FRONTEND": "noninteractive"})


def _updated_spec(source: Path, copy: Path, updates: dict[str, Any]) -> Path:
    """A copy of the kernelspec directory with ``updates`` applied to its kernel.json."""
    shutil.copytree(source, copy)
    kernel_json = copy / "kernel.json"
    spec = json.loads(kernel_json.read_text())
    for key, value in updates.items():
        if key == "metadata":
            metadata = spec.setdefault("metadata", {})
            for name, fields in value.items():
                metadata.setdefault(name, {}).update(fields)
        else:
            spec[key] = value
    kernel_json.write_text(json.dumps(spec, indent=1))
    return copy


def install(name: str, user: bool = False, say: Callable[[str], None] = print) -> str:
    """Install kernel ``name`` (a key of RECIPES) and register its kernelspec; its path."""
    recipe = RECIPES[name]
    _install_packages(recipe, say)
    with tempfile.TemporaryDirectory() as tmp:
        source = recipe.spec_dir(Path(tmp))
        if recipe.spec_updates:
            source = _updated_spec(source, Path(tmp) / "spec", recipe.spec_updates)
        prefix = None if user else sys.prefix
        path = KernelSpecManager().install_kernel_spec(
            str(source), recipe.kernelspec, user=user, prefix=prefix
        )
    say(f"registered kernelspec {recipe.kernelspec!r} ({recipe.summary}) in {path}")
    return path


def main(argv: list[str]) -> None:
    """`kernel-broker kernels install NAME...`."""
    parser = argparse.ArgumentParser(
        prog="kernel-broker kernels",
        description="Install kernels in other languages and register their kernelspecs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("install", help="install kernels: " + ", ".join(RECIPES))
    add.add_argument("names", nargs="+", choices=sorted(RECIPES), metavar="NAME")
    add.add_argument(
        "--user",
        action="store_true",
        help="register in the user's Jupyter data directory (default: this Python's prefix, "
        f"{os.path.join(sys.prefix, 'share', 'jupyter', 'kernels')})",
    )
    args = parser.parse_args(argv)
    failed = []
    for name in args.names:
        try:
            install(name, user=args.user, say=functools.partial(print, f"kernels install {name}:"))
        except InstallError as e:
            print(f"kernels install {name}: {e}", file=sys.stderr)
            failed.append(name)
    if failed:
        sys.exit(1)
