"""What a fake pod's container runs with: argv, environment, working directory, user,
groups and mounts, as ``container.py`` takes them.

Path mapping (how a pod's filesystem is faked): each pod has a host directory
``<workdir>/<pod uid>/``. Every volume becomes a directory there, laid out as a real
kubelet does (``volumes.py``). Image files are mapped to host files by the image's entry in
the fake registry (``images.py``: for example the kernel image's
``/opt/kernel/entrypoint.py`` is ``kernel_image/entrypoint.py`` of this repository and
``python`` is this interpreter). Any argv element, env value or workingDir that equals or
starts with a volume's ``mountPath`` or an image file path is rewritten to the host path.

``CreateContainerConfigError`` (:class:`ConfigError`) when ``runAsNonRoot`` meets an image
whose user is root, or when a secretKeyRef names a missing Secret or key.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .images import Image
from .podruntime import PodRuntime
from .store import Obj

CONTAINER_RUNTIME = str(Path(__file__).resolve().parent / "container.py")


class ConfigError(Exception):
    """CreateContainerConfigError."""


SecretLookup = Callable[[str, str], Obj | None]  # (namespace, name) -> the Secret


def container_config(
    pod: Obj,
    rt: PodRuntime,
    image: Image,
    mounts: dict[str, str],
    *,
    node_name: str,
    secret: SecretLookup,
    stage: str,
) -> dict[str, Any]:
    """What ``container.py`` needs to start the container (argv, env, user, mounts)."""
    c = pod["spec"]["containers"][0]
    pod_ctx = pod["spec"].get("securityContext") or {}
    ctx = {**pod_ctx, **(c.get("securityContext") or {})}
    user = ctx.get("runAsUser", image.user)
    if ctx.get("runAsNonRoot") and user == 0:
        raise ConfigError(
            f"container has runAsNonRoot and image will run as root (pod: "
            f'"{rt.name}_{rt.namespace}({rt.uid})", container: {c["name"]})'
        )
    paths = {**image.files, **mounts}

    def host_path(value: str) -> str:
        for prefix in sorted(paths, key=len, reverse=True):
            if value == prefix or value.startswith(prefix.rstrip("/") + "/"):
                return paths[prefix] + value[len(prefix) :]
        return value

    env = dict(image.env)
    env["HOSTNAME"] = rt.name
    for var in c.get("env") or []:
        env[var["name"]] = host_path(_env_value(rt, var, node_name, secret))
    argv = [host_path(a) for a in (c.get("command") or []) + (c.get("args") or [])]
    cwd = host_path(c.get("workingDir") or "/")
    Path(cwd).mkdir(parents=True, exist_ok=True)  # as the runtime does, owned by root
    groups = [pod_ctx["fsGroup"]] if "fsGroup" in pod_ctx else []
    groups += [g for g in pod_ctx.get("supplementalGroups") or [] if g not in groups]
    exposed = [*image.files.values(), *image.runtime]
    return {
        "argv": argv,
        "env": env,
        "cwd": cwd,
        "uid": user,
        # the image's /etc/passwd knows only its own USER's primary group
        "gid": ctx.get("runAsGroup", image.group if user == image.user else 0),
        "groups": groups,
        "read_only_root": bool(ctx.get("readOnlyRootFilesystem")),
        "no_new_privs": ctx.get("allowPrivilegeEscalation") is False,
        "expose": sorted({os.path.realpath(p) for p in exposed} | set(exposed)),
        "volumes": dict(rt.volumes),
        "stage": stage,
    }


def _env_value(rt: PodRuntime, var: dict, node_name: str, secret: SecretLookup) -> str:
    if "value" in var:
        return var["value"]
    source = var.get("valueFrom") or {}
    if "fieldRef" in source:
        path = source["fieldRef"]["fieldPath"]
        fields = {
            "status.podIP": rt.ip,
            "metadata.name": rt.name,
            "metadata.namespace": rt.namespace,
            "metadata.uid": rt.uid,
            "spec.nodeName": node_name,
        }
        return fields[path]
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        found = secret(rt.namespace, ref["name"])
        if found is None or ref["key"] not in (found.get("data") or {}):
            raise ConfigError(f'secret "{ref["name"]}" not found')
        return base64.b64decode(found["data"][ref["key"]]).decode()
    raise ConfigError(f"unsupported env source in {var['name']}")


def host_command(launch: dict[str, Any], spec: Path, strict: bool, netns: str) -> list[str]:
    """The host command line: through ``container.py`` (strict, reading ``launch`` from
    ``spec``) or the argv itself; inside the pod's network namespace if it has one."""
    argv = launch["argv"]
    if strict:
        spec.touch(mode=0o600)
        spec.write_text(json.dumps(launch))
        Path(launch["stage"]).mkdir(exist_ok=True)
        argv = [sys.executable, CONTAINER_RUNTIME, str(spec)]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    return argv
