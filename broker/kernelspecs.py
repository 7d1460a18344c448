"""Kernelspecs as the gateway API presents them, with per-spec user authorization."""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import quote

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.provisioning import KernelProvisionerFactory

from .auth import authorize_spec, may_use_spec
from .errors import BrokerError
from .offered_kernelspecs import KernelSpecNotOffered, runs_in_broker

_RESOURCE_FILES = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg", "kernel.js", "kernel.css")
# How long a loaded kernelspec is reused. A start reads its spec half a dozen times
# (authorization, working directory, provisioner, language), each a directory scan, a file
# read and a traitlets object: ~1 ms of a pooled start's 2 ms in the broker.
SPEC_REUSE_SECONDS = 1.0


class KernelSpecs:
    """Lists, describes and authorizes kernelspecs found by jupyter_client."""

    def __init__(self, manager: KernelSpecManager, default_name: str) -> None:
        self.manager = manager
        self.default_name = default_name
        self._recent: dict[str, tuple[float, Any]] = {}  # name: (loaded at, spec), read-only

    def _spec(self, name: str) -> Any:
        """The kernelspec, loaded at most SPEC_REUSE_SECONDS ago (a changed kernel.json is
        seen within that); refusals are never reused."""
        now = time.monotonic()
        recent = self._recent.get(name)
        if recent is not None and now - recent[0] < SPEC_REUSE_SECONDS:
            return recent[1]
        spec = self._load(name)
        self._recent[name] = (now, spec)
        return spec

    def language(self, name: str) -> str:
        return self._spec(name).language

    def _load(self, name: str) -> Any:
        try:
            return self.manager.get_kernel_spec(name)
        except KernelSpecNotOffered as refused:
            raise BrokerError(403, refused.message) from None
        except (NoSuchKernel, KeyError, ValueError):
            raise BrokerError(
                404, f"No kernelspec {name!r}; list them with GET /api/kernelspecs."
            ) from None

    def runs_in_broker(self, name: str) -> bool:
        """Whether the spec's kernel is a process next to the broker (not, say, a pod)."""
        factory = KernelProvisionerFactory.instance(parent=self.manager.parent)
        return runs_in_broker(self._spec(name), factory)

    def allowed(self, name: str, username: str) -> bool:
        try:
            return may_use_spec(self._spec(name).metadata, username)
        except ValueError:  # unreadable user lists: nobody may use it (a start says why)
            return False

    def authorize(self, name: str, username: str) -> Any:
        """The kernelspec, or 404 / 403 when it does not exist or the user may not use it."""
        spec = self._spec(name)
        authorize_spec(name, spec.metadata, username)
        return spec

    def model(self, name: str) -> dict[str, Any]:
        spec = self._spec(name)
        resources = {
            f.rsplit(".", 1)[0]: f"/kernelspecs/{quote(name)}/{f}"
            for f in _RESOURCE_FILES
            if os.path.isfile(os.path.join(spec.resource_dir, f))
        }
        return {"name": name, "spec": spec.to_dict(), "resources": resources}

    def list_models(self, username: str | None = None) -> dict[str, Any]:
        """``{"default", "kernelspecs"}``, only the specs ``username`` may use when given."""
        names = sorted(self.manager.find_kernel_specs())
        if username is not None:
            names = [n for n in names if self.allowed(n, username)]
        default = self.default_name if self.default_name in names else (names[0] if names else "")
        return {"default": default, "kernelspecs": {n: self.model(n) for n in names}}

    def resource_path(self, name: str, filename: str) -> str:
        """Absolute path of a file in the spec's directory; refuses paths that escape it."""
        base = os.path.realpath(self._spec(name).resource_dir)
        path = os.path.realpath(os.path.join(base, filename))
        if not path.startswith(base + os.sep) or not os.path.isfile(path):
            raise BrokerError(404, f"Kernelspec {name!r} has no resource {filename!r}.")
        return path
