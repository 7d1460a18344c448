"""One launch's client values (``KERNEL_*`` variables) checked against the operator's settings.

The variables are those Enterprise Gateway documents for kernel pods; each is honoured
only inside the operator's bounds and allow-lists, so a client can never widen what the
operator set (another image, uid 0, another namespace, more CPU than ``max_cpus``).
Variables that have no meaning here are ignored and named in :attr:`KernelRequest.ignored`
so that the provisioner logs them once per start. docs/kubernetes.md has the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .podsettings import KernelRequestError, PodSettings, parse_quantity

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
MAX_ENV_VALUE = 4096
# Why a variable EG reads changes nothing here (it still reaches the kernel's environment).
IGNORED = {
    "KERNEL_POD_NAME": "the broker names pods (kernel-<id>-<suffix>) so that ids bind late",
    "KERNEL_SERVICE_ACCOUNT_NAME": "kernel pods mount no service-account token",
    "KERNEL_VOLUME_MOUNTS": "mounts come from the operator's volumes (KERNEL_VOLUMES names them)",
    "KERNEL_EXECUTOR_IMAGE": "Spark executors are not run by this broker",
    "KERNEL_EXTRA_SPARK_OPTS": "Spark drivers are not run by this broker",
}


@dataclass(frozen=True)
class KernelRequest:
    """What one launch asks for, already validated; ``ignored`` maps names to why."""

    kernel_id: str
    owner: str
    env: dict[str, str]
    resources: dict[str, dict[str, str]]
    working_dir: str
    volumes: list[str]
    image: str = ""
    run_as_user: int | None = None
    run_as_group: int | None = None
    ignored: dict[str, str] = field(default_factory=dict)


def _bounded(name: str, text: str, limit: str) -> str:
    if parse_quantity(text) <= 0:
        raise KernelRequestError(f"{name}={text} must be more than zero")
    if parse_quantity(text) > parse_quantity(limit):
        raise KernelRequestError(
            f"{name}={text} is above this broker's limit of {limit}; ask for less"
        )
    return text.strip()


def _quantity(
    env: dict[str, str], resource: str, var: str, bound: str, resources: dict[str, dict]
) -> None:
    """``var`` sets the request and limit of ``resource``; ``<var>_LIMIT`` the limit alone."""
    requests, limits = resources["requests"], resources["limits"]
    if var in env:
        requests[resource] = limits[resource] = _bounded(var, env[var], bound)
    if f"{var}_LIMIT" in env:
        limits[resource] = _bounded(f"{var}_LIMIT", env[f"{var}_LIMIT"], bound)
        if resource in requests and parse_quantity(limits[resource]) < parse_quantity(
            requests[resource]
        ):
            raise KernelRequestError(
                f"{var}_LIMIT={limits[resource]} is below the request of {requests[resource]}; "
                f"a limit must be at least the request"
            )


def _gpus(env: dict[str, str], settings: PodSettings) -> str:
    """The GPU count of KERNEL_GPUS / KERNEL_GPUS_LIMIT (GPUs cannot be overcommitted)."""
    asked = {v: env[v].strip() for v in ("KERNEL_GPUS", "KERNEL_GPUS_LIMIT") if v in env}
    top = settings.bounds.max_gpus
    for var, gpus in asked.items():
        if not gpus.isdigit() or int(gpus) > top:
            raise KernelRequestError(f"{var}={gpus} must be a whole number up to {top}")
    if len({int(g) for g in asked.values()}) > 1:
        raise KernelRequestError("KERNEL_GPUS and KERNEL_GPUS_LIMIT must be equal (GPUs are whole)")
    return next(iter(asked.values()), "0")


def _resources(env: dict[str, str], settings: PodSettings) -> dict[str, dict[str, str]]:
    """The kernelspec's resources with the request's bounded overrides applied."""
    resources = {k: dict(settings.resources.get(k, {})) for k in ("requests", "limits")}
    _quantity(env, "cpu", "KERNEL_CPUS", settings.bounds.max_cpus, resources)
    _quantity(env, "memory", "KERNEL_MEMORY", settings.bounds.max_memory, resources)
    gpus = _gpus(env, settings)
    if int(gpus):
        resources["limits"]["nvidia.com/gpu"] = gpus
    return {k: v for k, v in resources.items() if v}


def _working_dir(env: dict[str, str], settings: PodSettings, ignored: dict[str, str]) -> str:
    """KERNEL_WORKING_DIR under an allowed root; any other directory is ignored.

    Jupyter Server's gateway client sends its own notebook directory, a path on its
    machine that means nothing in a pod (Enterprise Gateway ignores it for containers).
    """
    default = settings.working_dirs[0]
    wanted = env.get("KERNEL_WORKING_DIR", "").strip() or default
    if not wanted.startswith("/") or "/../" in f"{wanted}/" or "\x00" in wanted:
        raise KernelRequestError(f"KERNEL_WORKING_DIR={wanted!r} must be an absolute path")
    for root in settings.working_dirs:
        if wanted == root or wanted.startswith(root.rstrip("/") + "/"):
            return wanted
    allowed = ", ".join(settings.working_dirs)
    ignored["KERNEL_WORKING_DIR"] = f"{wanted!r} is not under {allowed}; starting in {default}"
    return default


def _volumes(env: dict[str, str], settings: PodSettings) -> list[str]:
    names = list(settings.default_volumes)
    for name in filter(None, (n.strip() for n in env.get("KERNEL_VOLUMES", "").split(","))):
        if name not in settings.volumes:
            allowed = ", ".join(sorted(settings.volumes)) or "none"
            raise KernelRequestError(
                f"KERNEL_VOLUMES names {name!r}; it takes comma-separated names of the "
                f"operator's volumes (not volume definitions), allowed: {allowed}"
            )
        if name not in names:
            names.append(name)
    return names


def _env(env: dict[str, str], spec_env: list[str], settings: PodSettings) -> dict[str, str]:
    """Only KERNEL_*, the kernelspec's own variables and allow-listed names reach the pod."""
    passed = {}
    for name, value in env.items():
        if not (name.startswith("KERNEL_") or name in spec_env or name in settings.env_allowlist):
            continue
        if not _ENV_NAME.match(name):
            raise KernelRequestError(f"environment variable name {name!r} is not allowed")
        if len(value) > MAX_ENV_VALUE or "\x00" in value:
            raise KernelRequestError(f"{name} is longer than {MAX_ENV_VALUE} characters")
        passed[name] = value
    return passed


def _namespace(env: dict[str, str], settings: PodSettings) -> None:
    asked = env.get("KERNEL_NAMESPACE", "").strip()
    if asked and asked != settings.namespace:
        raise KernelRequestError(
            f"KERNEL_NAMESPACE={asked!r}: kernels of this kernelspec run in namespace "
            f"{settings.namespace!r} (the operator's setting); leave it unset"
        )


def _image(env: dict[str, str], settings: PodSettings) -> str:
    asked = env.get("KERNEL_IMAGE", "").strip()
    if not asked or asked == settings.image:
        return settings.image
    if asked in settings.images:
        return asked
    allowed = ", ".join([settings.image, *settings.images])
    raise KernelRequestError(f"KERNEL_IMAGE={asked!r} is not allowed; allowed images: {allowed}")


def _id(env: dict[str, str], var: str, configured: int | None, allowed: list[int]) -> int | None:
    asked = env.get(var, "").strip()
    if not asked:
        return configured
    if not asked.isdigit():
        raise KernelRequestError(f"{var}={asked!r} must be a whole number")
    value = int(asked)
    if value == 0:
        raise KernelRequestError(f"{var}=0 would run the kernel as root, which is refused")
    if value != configured and value not in allowed:
        choices = ", ".join(str(i) for i in [configured, *allowed] if i is not None) or "none"
        raise KernelRequestError(f"{var}={value} is not allowed; allowed: {choices}")
    return value


def make_request(
    kernel_id: str, env: dict[str, str], spec_env: list[str], settings: PodSettings
) -> KernelRequest:
    """Validate one launch's client values against the operator's settings."""
    _namespace(env, settings)
    ignored = {name: why for name, why in IGNORED.items() if name in env}
    return KernelRequest(
        kernel_id=kernel_id,
        # no user yet: a warm pool kernel (the broker always names the user of a kernel)
        owner=env.get("KERNEL_USERNAME", "").strip(),
        env=_env(env, spec_env, settings),
        resources=_resources(env, settings),
        working_dir=_working_dir(env, settings, ignored),
        volumes=_volumes(env, settings),
        image=_image(env, settings),
        run_as_user=_id(env, "KERNEL_UID", settings.run_as_user, settings.uids),
        run_as_group=_id(env, "KERNEL_GID", settings.run_as_group, settings.gids),
        ignored=ignored,
    )
