"""A fake kubelet (and scheduler) that runs each pod's container as a local process.

Per pod, as a real node does: schedule (nodeSelector against the node's labels, resource
requests against its capacity: ``Unschedulable`` otherwise), give the pod an IP, mount
volumes, pull the image (``ErrImagePull`` then ``ImagePullBackOff`` for images the fake
registry does not know), check the container config (``CreateContainerConfigError`` when
``runAsNonRoot`` meets an image whose user is root, or a secretKeyRef is missing), start
the process, run the tcpSocket readiness probe, report exit codes, and on deletion send
SIGTERM, wait the grace period, SIGKILL and remove the pod.

Networking: each pod gets its own loopback address 127.42.x.y (the whole 127/8 is
loopback on Linux, so nothing needs configuring); with ``network="netns"`` (root only)
each pod gets a network namespace with a veth pair instead (pod 10.244.n.2, node side
10.244.n.1, no default route), so it can reach nothing but the node.

Path mapping (how a pod's filesystem is faked): each pod has a host directory
``<workdir>/<pod uid>/``. Every volume becomes a directory there, laid out as a real
kubelet does (``volumes.py``: Secret files owned by root with their mode, fsGroup applied,
emptyDirs 0777). Image files are mapped to host files by the :class:`Image` entry in the
fake registry (for example the kernel image's ``/opt/kernel/entrypoint.py`` is
``kernel_image/entrypoint.py`` of this repository and ``python`` is this interpreter).
Any argv element, env value or workingDir that equals or starts with a volume's
``mountPath`` or an image file path is rewritten to the host path.

Strict mode (the default when the tests run as root, as in CI): the container process runs
as the pod's ``runAsUser``/``runAsGroup`` (else the image's USER) with fsGroup and
supplementalGroups as supplementary groups, in its own mount namespace with the volumes
bound read-only or writable as declared and, with ``readOnlyRootFilesystem``, everything
else read-only (``container.py``). Without root none of that is possible: the container
runs as the test's user and can read every volume file whatever its mode.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import socket
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from broker.provisioners.podsettings import parse_quantity

from . import volumes
from .apiserver import FakeApiServer
from .store import Event, Obj, now

CONTAINER_RUNTIME = str(Path(__file__).resolve().parent / "container.py")


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


class ConfigError(Exception):
    """CreateContainerConfigError."""


class _Runtime:
    """One pod on this node."""

    def __init__(self, pod: Obj) -> None:
        self.name = pod["metadata"]["name"]
        self.namespace = pod["metadata"]["namespace"]
        self.uid = pod["metadata"]["uid"]
        self.changed = asyncio.Event()
        self.process: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task | None = None
        self.deleting = False
        self.gone = False
        self.ip = ""
        self.netns = ""
        self.requests: dict[str, Decimal] = {}
        self.volumes: dict[str, bool] = {}  # host directory -> read-only


class FakeKubelet:
    """Runs the pods that the fake API server stores."""

    def __init__(
        self,
        api: FakeApiServer,
        workdir: Path,
        images: dict[str, Image],
        node_labels: dict[str, str] | None = None,
        capacity: dict[str, str] | None = None,
        network: str = "loopback",
        probe_interval: float = 0.05,
        pull_backoff: float = 0.2,
        strict: bool | None = None,
    ) -> None:
        self.api = api
        self.workdir = workdir
        self.images = images
        self.node_name = "fake-node-1"
        self.node_labels = {"kubernetes.io/hostname": self.node_name, **(node_labels or {})}
        self.capacity = {
            k: parse_quantity(v) for k, v in (capacity or {"cpu": "8", "memory": "32Gi"}).items()
        }
        self.network = network
        self.probe_interval = probe_interval
        self.pull_backoff = pull_backoff
        self.strict = os.geteuid() == 0 if strict is None else strict
        if self.strict and os.geteuid() != 0:
            raise ValueError("a strict kubelet must run as root (users, mounts)")
        self.start_delay = 0.0
        self.pods: dict[str, _Runtime] = {}
        # Pod addresses start at a random place, so that two control planes on one machine
        # (two test runs at once) do not hand out the same 127.42.x.y with the same ports.
        self._next_ip = random.randrange(0, 250 * 200)
        self._unsubscribe = None

    def start(self) -> None:
        """Follow the store and run pods."""
        blocked = [p for p in self.workdir.parents if not p.stat().st_mode & 0o001]
        if self.strict and blocked:
            raise ValueError(
                f"{blocked[0]} is not traversable by other users, so a container's user "
                f"cannot reach its volumes under {self.workdir}: use a node directory "
                "outside it (ControlPlane makes one with tempfile.mkdtemp)"
            )
        self.api.has_kubelet = True
        self._unsubscribe = self.api.store.subscribe(self._on_event)

    async def stop(self) -> None:
        """Kill every pod process and stop following the store."""
        if self._unsubscribe:
            self._unsubscribe()
        for rt in list(self.pods.values()):
            rt.gone = True
            rt.changed.set()
            if rt.task:
                rt.task.cancel()
        for rt in list(self.pods.values()):
            await asyncio.gather(rt.task, return_exceptions=True)
            await self._kill(rt, 0)
            await self._teardown_network(rt)
        self.pods.clear()

    def log(self, pod_name: str) -> str:
        """The container's output so far (like kubectl logs)."""
        for rt in self.pods.values():
            if rt.name == pod_name:
                path = self.workdir / rt.uid / "container.log"
                return path.read_text() if path.exists() else ""
        return ""

    # -- events ----------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        meta = event.obj["metadata"]
        if event.resource in volumes.SOURCES.values():
            for rt in self.pods.values():
                if rt.namespace == meta["namespace"]:
                    rt.changed.set()
            return
        rt = self.pods.get(meta["uid"])
        if event.type == "ADDED" and rt is None:
            rt = self.pods[meta["uid"]] = _Runtime(event.obj)
            rt.task = asyncio.get_running_loop().create_task(self._run(rt))
        if rt is None:
            return
        if event.type == "DELETED":
            rt.gone = True
        elif meta.get("deletionTimestamp"):
            rt.deleting = True
        rt.changed.set()

    async def _sleep(self, rt: _Runtime, seconds: float) -> None:
        """Sleep (a slow start or pull), cut short only by the pod's deletion."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not (rt.gone or rt.deleting) and (left := deadline - loop.time()) > 0:
            await self._changed(rt, left)

    async def _changed(self, rt: _Runtime, timeout: float | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.changed.wait(), timeout)
        rt.changed.clear()

    def _pod(self, rt: _Runtime) -> Obj | None:
        return self.api.store.get("pods", rt.namespace, rt.name)

    def _update(self, rt: _Runtime, spec: dict | None = None, **status: Any) -> None:
        pod = self._pod(rt)
        if pod is None:
            return
        pod["status"].update(status)
        if spec:
            pod["spec"].update(spec)
        self.api.store.update("pods", pod)

    def _container_status(self, pod: Obj, state: dict, ready: bool = False, **extra: Any) -> list:
        c = pod["spec"]["containers"][0]
        base = {
            "name": c["name"],
            "image": c["image"],
            "imageID": "",
            "ready": ready,
            "restartCount": 0,
            "started": "running" in state,
            "state": state,
        }
        old = (pod["status"].get("containerStatuses") or [{}])[0]
        base["restartCount"] = old.get("restartCount", 0)
        return [{**base, **extra}]

    def _conditions(self, **flags: bool) -> list[dict[str, Any]]:
        out = []
        for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
            if kind in flags:
                out.append(
                    {
                        "type": kind,
                        "status": "True" if flags[kind] else "False",
                        "lastTransitionTime": now(),
                    }
                )
        return out

    def _waiting(self, rt: _Runtime, reason: str, message: str) -> None:
        pod = self._pod(rt)
        if pod is not None:
            state = {"waiting": {"reason": reason, "message": message}}
            self._update(rt, containerStatuses=self._container_status(pod, state))

    # -- the pod lifecycle ---------------------------------------------------------------

    async def _run(self, rt: _Runtime) -> None:
        try:
            if not await self._schedule(rt):
                return
            if self.start_delay:
                await self._sleep(rt, self.start_delay)
            await self._setup_network(rt)
            self._update(
                rt,
                podIP=rt.ip,
                podIPs=[{"ip": rt.ip}],
                hostIP="127.0.0.1",
                startTime=now(),
                conditions=self._conditions(
                    PodScheduled=True, Initialized=True, ContainersReady=False, Ready=False
                ),
            )
            self._waiting(rt, "ContainerCreating", "")
            mounts = await self._mount_volumes(rt)
            image = await self._pull(rt)
            if mounts is None or image is None or rt.gone or rt.deleting:
                return
            try:
                launch = self._container_config(rt, image, mounts)
            except ConfigError as e:
                self._waiting(rt, "CreateContainerConfigError", str(e))
                while not (rt.gone or rt.deleting):
                    await self._changed(rt)
                return
            await self._start_and_follow(rt, launch)
        finally:
            await self._finish(rt)

    async def _schedule(self, rt: _Runtime) -> bool:
        pod = self._pod(rt)
        if pod is None:
            return False
        reason = self._unschedulable_reason(pod, rt)
        if reason:
            self._update(
                rt,
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": f"0/1 nodes are available: {reason}.",
                        "lastTransitionTime": now(),
                    }
                ],
            )
            while not (rt.gone or rt.deleting):
                await self._changed(rt)
            return False
        self._update(
            rt, spec={"nodeName": self.node_name}, conditions=self._conditions(PodScheduled=True)
        )
        return True

    def _unschedulable_reason(self, pod: Obj, rt: _Runtime) -> str:
        selector = pod["spec"].get("nodeSelector") or {}
        if any(self.node_labels.get(k) != v for k, v in selector.items()):
            return "1 node(s) didn't match Pod's node affinity/selector"
        requests = (pod["spec"]["containers"][0].get("resources") or {}).get("requests") or {}
        rt.requests = {k: parse_quantity(v) for k, v in requests.items()}
        for resource, amount in rt.requests.items():
            used = sum(
                (
                    other.requests.get(resource, Decimal(0))
                    for other in self.pods.values()
                    if other is not rt
                ),
                Decimal(0),
            )
            if used + amount > self.capacity.get(resource, Decimal(0)):
                return f"1 Insufficient {resource}"
        return ""

    async def _setup_network(self, rt: _Runtime) -> None:
        self._next_ip += 1
        n = self._next_ip
        if self.network != "netns":
            rt.ip = f"127.42.{(n // 250) % 250}.{n % 250 + 1}"
            return
        rt.netns = f"kbpod{n}"
        host_if, pod_if = f"kbh{n}", f"kbp{n}"
        node_ip, rt.ip = f"10.244.{n % 250}.1", f"10.244.{n % 250}.2"
        for cmd in (
            ["ip", "netns", "add", rt.netns],
            ["ip", "link", "add", host_if, "type", "veth", "peer", "name", pod_if],
            ["ip", "link", "set", pod_if, "netns", rt.netns],
            ["ip", "addr", "add", f"{node_ip}/30", "dev", host_if],
            ["ip", "link", "set", host_if, "up"],
            ["ip", "netns", "exec", rt.netns, "ip", "addr", "add", f"{rt.ip}/30", "dev", pod_if],
            ["ip", "netns", "exec", rt.netns, "ip", "link", "set", pod_if, "up"],
            ["ip", "netns", "exec", rt.netns, "ip", "link", "set", "lo", "up"],
        ):
            proc = await asyncio.create_subprocess_exec(*cmd)
            await proc.wait()

    async def _teardown_network(self, rt: _Runtime) -> None:
        if rt.netns:
            n = rt.netns.removeprefix("kbpod")
            for cmd in (["ip", "link", "del", f"kbh{n}"], ["ip", "netns", "del", rt.netns]):
                proc = await asyncio.create_subprocess_exec(*cmd, stderr=asyncio.subprocess.DEVNULL)
                await proc.wait()
            rt.netns = ""

    async def _mount_volumes(self, rt: _Runtime) -> dict[str, str] | None:
        """Volume directories by mountPath; waits (as FailedMount retries do) for sources."""
        pod = self._pod(rt)
        if pod is None:
            return None
        root = self.workdir / rt.uid
        root.mkdir(exist_ok=True)
        fs_group = (pod["spec"].get("securityContext") or {}).get("fsGroup")
        mounts = {}
        declared = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        for mount in pod["spec"]["containers"][0].get("volumeMounts") or []:
            volume = declared[mount["name"]]
            host = root / "volumes" / mount["name"]
            kind = next((k for k in volumes.SOURCES if k in volume), None)
            if kind is not None:
                if not await self._write_source(rt, kind, volume[kind], host, fs_group):
                    return None
            elif "emptyDir" in volume:
                volumes.empty_dir(host, fs_group, self.strict)
            else:
                volumes.plain_dir(host, self.strict)
            rt.volumes[str(host)] = kind is not None or bool(mount.get("readOnly"))
            mounts[mount["mountPath"]] = str(host)
        return mounts

    async def _write_source(
        self, rt: _Runtime, kind: str, source: dict, host: Path, fs_group: int | None
    ) -> bool:
        name = volumes.source_name(kind, source)
        while not (rt.gone or rt.deleting):
            obj = self.api.store.get(volumes.SOURCES[kind], rt.namespace, name)
            try:
                if obj is not None:
                    files = volumes.payload(kind, source, obj)
                    volumes.write_files(host, files, fs_group, self.strict)
                    return True
                if source.get("optional"):
                    volumes.write_files(host, {}, fs_group, self.strict)
                    return True
            except volumes.MountError as e:
                self._waiting(rt, "ContainerCreating", f"MountVolume.SetUp failed: {e}")
            await self._changed(rt)
        return False

    async def _pull(self, rt: _Runtime) -> Image | None:
        pod = self._pod(rt)
        if pod is None:
            return None
        name = pod["spec"]["containers"][0]["image"]
        image = self.images.get(name)
        if image is None:
            message = (
                f'rpc error: failed to pull and unpack image "{name}": failed to resolve '
                f"reference: {name}: not found"
            )
            self._waiting(rt, "ErrImagePull", message)
            await self._sleep(rt, self.pull_backoff)
            self._waiting(rt, "ImagePullBackOff", f'Back-off pulling image "{name}"')
            while not (rt.gone or rt.deleting):
                await self._changed(rt)
            return None
        if image.pull_seconds:
            await self._sleep(rt, image.pull_seconds)
        return image

    def _container_config(
        self, rt: _Runtime, image: Image, mounts: dict[str, str]
    ) -> dict[str, Any]:
        """What ``container.py`` needs to start the container (argv, env, user, mounts)."""
        pod = self._pod(rt)
        if pod is None:
            raise ConfigError("pod is gone")
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
            env[var["name"]] = host_path(self._env_value(rt, pod, var))
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
            "stage": str(self.workdir / rt.uid / "stage"),
        }

    def _env_value(self, rt: _Runtime, pod: Obj, var: dict) -> str:
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
                "spec.nodeName": self.node_name,
            }
            return fields[path]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = self.api.store.get("secrets", rt.namespace, ref["name"])
            if secret is None or ref["key"] not in (secret.get("data") or {}):
                raise ConfigError(f'secret "{ref["name"]}" not found')
            return base64.b64decode(secret["data"][ref["key"]]).decode()
        raise ConfigError(f"unsupported env source in {var['name']}")

    def _command(self, rt: _Runtime, launch: dict[str, Any]) -> list[str]:
        """The host command line: through ``container.py`` (strict) or the argv itself."""
        argv = launch["argv"]
        if self.strict:
            spec = self.workdir / rt.uid / "container.json"
            spec.touch(mode=0o600)
            spec.write_text(json.dumps(launch))
            Path(launch["stage"]).mkdir(exist_ok=True)
            argv = [sys.executable, CONTAINER_RUNTIME, str(spec)]
        if rt.netns:
            argv = ["ip", "netns", "exec", rt.netns, *argv]
        return argv

    async def _start_and_follow(self, rt: _Runtime, launch: dict[str, Any]) -> None:
        argv = self._command(rt, launch)
        log = open(self.workdir / rt.uid / "container.log", "ab")  # noqa: SIM115
        try:
            rt.process = await asyncio.create_subprocess_exec(
                *argv,
                env=launch["env"],
                cwd=launch["cwd"],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()
        started = now()
        pod = self._pod(rt)
        if pod is None:
            return
        self._update(
            rt,
            phase="Running",
            containerStatuses=self._container_status(pod, {"running": {"startedAt": started}}),
        )
        exit_wait = asyncio.ensure_future(rt.process.wait())
        probe = asyncio.ensure_future(self._probe(rt, pod))
        try:
            while not exit_wait.done() and not (rt.gone or rt.deleting):
                change = asyncio.ensure_future(self._changed(rt))
                await asyncio.wait({exit_wait, change}, return_when=asyncio.FIRST_COMPLETED)
                change.cancel()
        finally:
            probe.cancel()
        if exit_wait.done():
            self._report_exit(rt, exit_wait.result(), started)

    async def _probe(self, rt: _Runtime, pod: Obj) -> None:
        c = pod["spec"]["containers"][0]
        port = ((c.get("readinessProbe") or {}).get("tcpSocket") or {}).get("port")
        while port is not None:
            try:
                _, writer = await asyncio.open_connection(rt.ip, port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(self.probe_interval)
        current = self._pod(rt)
        if current is None:
            return
        state = {
            "running": {
                "startedAt": current["status"]["containerStatuses"][0]["state"]["running"][
                    "startedAt"
                ]
            }
        }
        self._update(
            rt,
            conditions=self._conditions(
                PodScheduled=True, Initialized=True, ContainersReady=True, Ready=True
            ),
            containerStatuses=self._container_status(current, state, ready=True),
        )

    def _report_exit(self, rt: _Runtime, code: int, started: str) -> None:
        pod = self._pod(rt)
        if pod is None:
            return
        code = 128 + -code if code < 0 else code
        term = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": now(),
        }
        phase = "Succeeded" if code == 0 else "Failed"
        self._update(
            rt,
            phase=phase,
            conditions=self._conditions(
                PodScheduled=True, Initialized=True, ContainersReady=False, Ready=False
            ),
            containerStatuses=self._container_status(pod, {"terminated": term}),
        )

    async def _kill(self, rt: _Runtime, grace: float) -> None:
        proc = rt.process
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        try:
            await asyncio.wait_for(proc.wait(), grace if grace > 0 else None)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def _finish(self, rt: _Runtime) -> None:
        """After the container stopped or the pod was deleted: wait for deletion, clean up."""
        while not (rt.gone or rt.deleting):
            await self._changed(rt)
        pod = self._pod(rt)
        grace = (
            0 if rt.gone or pod is None else pod["metadata"].get("deletionGracePeriodSeconds", 0)
        )
        await self._kill(rt, grace)
        await self._teardown_network(rt)
        if not rt.gone:
            self.api.store.delete("pods", rt.namespace, rt.name)
        self.pods.pop(rt.uid, None)


def free_port_probe(ip: str, port: int) -> bool:
    """True when something listens on ip:port (used by tests)."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((ip, port)) == 0


KERNEL_ENTRYPOINT = str(Path(__file__).resolve().parents[2] / "kernel_image" / "entrypoint.py")


def kernel_image(**kwargs: Any) -> Image:
    """The kernel image of ``kernel_image/``: its entrypoint run by this interpreter."""
    return Image(
        files={"python": sys.executable, "/opt/kernel/entrypoint.py": KERNEL_ENTRYPOINT},
        runtime=[os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)],
        **kwargs,
    )
