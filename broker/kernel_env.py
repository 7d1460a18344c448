"""The environment a kernel starts with: built from an allow-list, never the broker's own."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import BrokerError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# C0 and C1 control characters and DEL, except tab and newline (multi-line values are fine)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
MAX_VALUE_BYTES = 32 * 1024


def validate_request_env(env: Any, allowed_names: Iterable[str]) -> dict[str, str]:
    """Check the ``env`` of a start request: ``KERNEL_*`` names plus operator-allowed ones.

    Values must be strings without control characters (tab and newline are fine).
    """
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise BrokerError(400, "'env' must be an object mapping names to strings.")
    allowed = set(allowed_names)
    out: dict[str, str] = {}
    for name, value in env.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise BrokerError(400, f"Invalid environment variable name {name!r}.")
        if not isinstance(value, str):
            raise BrokerError(400, f"Environment variable {name} must be a string.")
        if _CONTROL.search(value) or len(value.encode()) > MAX_VALUE_BYTES:
            raise BrokerError(
                400,
                f"Environment variable {name} has control characters or is over "
                f"{MAX_VALUE_BYTES} bytes.",
            )
        if not (name.startswith("KERNEL_") or name in allowed):
            raise BrokerError(
                403,
                f"Environment variable {name} is not allowed; only KERNEL_* and the "
                "operator's allow-list (--env-allowlist) reach kernels.",
            )
        out[name] = value
    return out


def kernel_environment(
    request_env: Mapping[str, str],
    inherit: Iterable[str],
    broker_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The full environment for a kernel process.

    Only the names in ``inherit`` are copied from the broker's environment (PATH, LANG,
    ...); everything else comes from the validated request.
    """
    source = os.environ if broker_env is None else broker_env
    env = {name: source[name] for name in inherit if name in source}
    env.update(request_env)
    return env


def launch_timeout(request_env: Mapping[str, str], default: float, maximum: float) -> float:
    """Seconds to wait for a kernel to start: ``KERNEL_LAUNCH_TIMEOUT`` bounded by the maximum."""
    raw = request_env.get("KERNEL_LAUNCH_TIMEOUT")
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BrokerError(400, "KERNEL_LAUNCH_TIMEOUT must be a number of seconds.") from None
    if not value > 0:
        raise BrokerError(400, "KERNEL_LAUNCH_TIMEOUT must be positive.")
    return min(value, maximum)
