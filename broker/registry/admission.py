"""Whether a start request may go ahead, and with what.

A request's environment is validated, its owner, kernelspec, launch timeout and working
directory decided, and the broker's kernel limits checked, all before anything starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..auth import User
from ..errors import BrokerError
from ..kernel_env import launch_timeout, validate_request_env
from ..kernelspecs import KernelSpecs
from .managed_kernel import ManagedKernel


@dataclass(frozen=True)
class StartRequest:
    """An admitted start: which kernelspec, with what environment, for whom, where, and
    within how many seconds."""

    name: str
    env: dict[str, str]
    owner: str
    cwd: str
    timeout: float


class Admission:
    """Checks start requests against the operator's settings and the kernels running."""

    def __init__(
        self,
        specs: KernelSpecs,
        kernels: dict[str, ManagedKernel],
        *,
        env_allowlist: list[str],
        launch_timeout: float,
        max_launch_timeout: float,
        working_dir: str,
        allow_working_dir_override: bool,
        max_kernels: int,
        max_kernels_per_user: int,
    ) -> None:
        self.specs = specs
        self.kernels = kernels
        self.env_allowlist = env_allowlist
        self.launch_timeout = launch_timeout
        self.max_launch_timeout = max_launch_timeout
        self.working_dir = working_dir
        self.allow_working_dir_override = allow_working_dir_override
        self.max_kernels = max_kernels
        self.max_kernels_per_user = max_kernels_per_user
        self.starting = 0  # starts in progress: they count against the limits

    def admit(
        self, name: str | None, request_env: Any, user: User, accepting: bool
    ) -> StartRequest:
        """The request as it will start, or the BrokerError that refuses it."""
        env = validate_request_env(request_env, self.env_allowlist)
        owner = _owner(user, env)
        env["KERNEL_USERNAME"] = owner
        name = name or self.specs.default_name
        self.specs.authorize(name, owner)
        timeout = launch_timeout(env, self.launch_timeout, self.max_launch_timeout)
        cwd = self.working_dir_for(name, env)
        self._check_limits(owner, accepting)
        return StartRequest(name, env, owner, cwd, timeout)

    @contextmanager
    def in_progress(self) -> Iterator[None]:
        """Count a start against the limits while it runs."""
        self.starting += 1
        try:
            yield
        finally:
            self.starting -= 1

    def working_dir_for(self, name: str, env: dict[str, str]) -> str:
        """Where a local kernel starts; "" for a kernel elsewhere (a pod), whose provisioner
        reads KERNEL_WORKING_DIR itself: the broker's own directories mean nothing there."""
        if not self.specs.runs_in_broker(name):
            return ""
        requested = env.get("KERNEL_WORKING_DIR")
        if not requested or not self.allow_working_dir_override:
            return self.working_dir
        if not os.path.isdir(requested):
            raise BrokerError(
                400, f"KERNEL_WORKING_DIR {requested!r} is not an existing directory."
            )
        return requested

    def _check_limits(self, owner: str, accepting: bool) -> None:
        if not accepting:
            raise BrokerError(503, "The broker is shutting down; start the kernel on another one.")
        total = len(self.kernels) + self.starting
        if self.max_kernels and total >= self.max_kernels:
            raise BrokerError(
                429,
                f"The broker runs its maximum of {self.max_kernels} kernels "
                "(--max-kernels); shut one down or try later.",
            )
        mine = sum(1 for k in self.kernels.values() if k.owner == owner)
        if self.max_kernels_per_user and mine >= self.max_kernels_per_user:
            raise BrokerError(
                429,
                f"User {owner!r} already runs {mine} kernels, the most allowed "
                "(--max-kernels-per-user); shut one down.",
            )


def _owner(user: User, env: dict[str, str]) -> str:
    """The requested KERNEL_USERNAME for a user allowed to impersonate, else the user."""
    requested = env.get("KERNEL_USERNAME")
    if requested and user.impersonate:
        return requested
    return user.name
