"""Run the broker container of a built deploy/ kustomization as a local process, as a node
would run it, against the test control plane.

What the node would do, done here: mount the pod's volumes (ConfigMaps from the build,
Secrets from the API server, emptyDirs and PersistentVolumeClaims as empty directories
under ``root``), resolve the environment (``value`` and ``secretKeyRef``, read from the
API server), add what the kubelet adds to every container (``KUBERNETES_SERVICE_HOST``
and ``_PORT``), rewrite paths in or above a ``mountPath`` into ``root/fs``, and run the
container's command and args. Push the kernel images the kernelspecs name to the fake
registry. Test-only changes: ``--ip`` and ``--port`` are replaced (127.0.0.1, a free
port), and two args are appended that find the service-account token and CA, which a
kubelet mounts at a fixed path, where the control plane wrote them.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..broker_process import RunningBroker
from .controlplane import ControlPlane
from .images import kernel_image
from .kustomize import Obj, find

IMAGE_HOME = "/home/broker"  # deploy/Dockerfile: ENV HOME


def broker_container(objects: list[Obj]) -> tuple[Obj, Obj]:
    """The broker Deployment and its broker container."""
    deployment = find(objects, "Deployment", "kernel-broker")
    pod = deployment["spec"]["template"]["spec"]
    return deployment, next(c for c in pod["containers"] if c["name"] == "broker")


def kernelspecs(objects: list[Obj]) -> dict[str, dict[str, Any]]:
    """The kernelspecs the broker container mounts, by name."""
    deployment, container = broker_container(objects)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    specs = {}
    for mount in container.get("volumeMounts") or []:
        source = volumes[mount["name"]].get("configMap")
        if source is None:
            continue
        data = find(objects, "ConfigMap", source["name"])["data"]
        for item in source.get("items") or []:
            if item["path"].endswith("/kernel.json"):
                specs[item["path"].split("/")[0]] = json.loads(data[item["key"]])
    return specs


def _mount(objects: list[Obj], volume: Obj, host: Path) -> None:
    host.mkdir(parents=True, exist_ok=True)
    if "configMap" in volume:
        data = find(objects, "ConfigMap", volume["configMap"]["name"])["data"]
        items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            (host / item["path"]).parent.mkdir(parents=True, exist_ok=True)
            (host / item["path"]).write_text(data[item["key"]])
    elif "persistentVolumeClaim" in volume:
        find(objects, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    elif "emptyDir" not in volume:
        raise ValueError(f"volume {volume['name']}: source not supported here")


def _secret_value(plane: ControlPlane, namespace: str, ref: Obj) -> str:
    secret = plane.api.store.get("secrets", namespace, ref["name"])
    if secret is None or ref["key"] not in (secret.get("data") or {}):
        raise LookupError(f"secret {ref['name']!r} with key {ref['key']!r} not found")
    return base64.b64decode(secret["data"][ref["key"]]).decode()


def start_deployed_broker(objects: list[Obj], plane: ControlPlane, root: Path) -> RunningBroker:
    """Start the broker container of ``objects`` (a built kustomization) on ``plane``,
    which must serve TLS (the in-cluster path); the token is read back from its Secret."""
    deployment, container = broker_container(objects)
    namespace = deployment["metadata"]["namespace"]
    for spec in kernelspecs(objects).values():
        image = spec["metadata"]["kernel_provisioner"]["config"]["image"]
        plane.images[image] = kernel_image()
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    fs = root / "fs"  # the container's file system: the image's home and every volume
    mount_paths = [IMAGE_HOME]
    for mount in container.get("volumeMounts") or []:
        _mount(objects, volumes[mount["name"]], fs / mount["mountPath"].lstrip("/"))
        mount_paths.append(mount["mountPath"])

    def host_path(value: str) -> str:
        """Paths in or above a mounted directory, as the container sees them."""
        if any(Path(m).is_relative_to(value) or Path(value).is_relative_to(m) for m in mount_paths):
            return str(fs) + value
        return value

    env = {"PATH": os.environ["PATH"], "HOME": host_path(IMAGE_HOME), **plane.incluster_env}
    token = ""
    for var in container.get("env") or []:
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        value = _secret_value(plane, namespace, ref) if ref else host_path(var["value"])
        env[var["name"]] = value
        token = value if var["name"] == "BROKER_TOKEN" else token
    assert container["command"] == ["kernel-broker"]
    listen = {"--ip": "--ip=127.0.0.1", "--port": "--port=0"}
    args = [listen.get(a.split("=", 1)[0], host_path(a)) for a in container["args"]]
    argv = [sys.executable, "-m", "broker", *args]
    argv += [
        f"--KubernetesProvisioner.token_file={plane.token_file}",
        f"--KubernetesProvisioner.ca_file={plane.ca_file}",
    ]
    log_path = root / "broker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, env=env, cwd=root)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "listening on" not in line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"deployed broker did not start: {line}\n{log_path.read_text()}")
    return RunningBroker(proc, line.rsplit(" ", 1)[1].strip().rstrip("/"), token, log_path)
