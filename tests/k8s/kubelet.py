"""A fake kubelet (and scheduler) that runs each pod's container as a local process.

Per pod, as a real node does: schedule (nodeSelector against the node's labels, resource
requests against its capacity: ``Unschedulable`` otherwise), give the pod an IP, mount
volumes, pull the image (``ErrImagePull`` then ``ImagePullBackOff`` for images the fake
registry does not know), check the container config (``CreateContainerConfigError`` when
``runAsNonRoot`` meets an image whose user is root, or a secretKeyRef is missing), start
the process, run the tcpSocket readiness probe, report exit codes, and on deletion send
SIGTERM, wait the grace period, SIGKILL and remove the pod.

Where the parts live: ``scheduling.py`` (does the pod fit), ``podnetwork.py`` (its
address: loopback 127.42.x.y or a network namespace), ``volumes.py``, ``images.py`` (the
fake registry), ``containerconfig.py`` (argv, env, user, and how image and volume paths
map to host paths), ``podstatus.py`` (what is reported) and ``container.py`` (the strict
runtime).

Strict mode (the default when the tests run as root, as in CI): the container process runs
as the pod's ``runAsUser``/``runAsGroup`` (else the image's USER) with fsGroup and
supplementalGroups as supplementary groups, in its own mount namespace with the volumes
bound read-only or writable as declared and, with ``readOnlyRootFilesystem``, everything
else read-only (``container.py``). Without root none of that is possible: the container
runs as the test's user and can read every volume file whatever its mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from pathlib import Path
from typing import Any

from broker.provisioners.podsettings import parse_quantity

from . import volumes
from .apiserver import FakeApiServer
from .containerconfig import ConfigError, container_config, host_command
from .images import Image
from .podnetwork import setup_network, teardown_network
from .podruntime import PodRuntime
from .podstatus import conditions, container_status, ready_status, terminated_status
from .scheduling import unschedulable_reason
from .store import Event, Obj, now


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
        self.pods: dict[str, PodRuntime] = {}
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
            await rt.kill(0)
            await teardown_network(rt)
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
        if event.resource != "pods":  # leases, network policies: nothing for a node to run
            return
        rt = self.pods.get(meta["uid"])
        if event.type == "ADDED" and rt is None:
            rt = self.pods[meta["uid"]] = PodRuntime(event.obj)
            rt.task = asyncio.get_running_loop().create_task(self._run(rt))
        if rt is None:
            return
        if event.type == "DELETED":
            rt.gone = True
        elif meta.get("deletionTimestamp"):
            rt.deleting = True
        rt.changed.set()

    async def _sleep(self, rt: PodRuntime, seconds: float) -> None:
        """Sleep (a slow start or pull), cut short only by the pod's deletion."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not (rt.gone or rt.deleting) and (left := deadline - loop.time()) > 0:
            await self._changed(rt, left)

    async def _changed(self, rt: PodRuntime, timeout: float | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.changed.wait(), timeout)
        rt.changed.clear()

    def _pod(self, rt: PodRuntime) -> Obj | None:
        return self.api.store.get("pods", rt.namespace, rt.name)

    def _update(self, rt: PodRuntime, spec: dict | None = None, **status: Any) -> None:
        pod = self._pod(rt)
        if pod is None:
            return
        pod["status"].update(status)
        if spec:
            pod["spec"].update(spec)
        self.api.store.update("pods", pod)

    def _waiting(self, rt: PodRuntime, reason: str, message: str) -> None:
        pod = self._pod(rt)
        if pod is not None:
            state = {"waiting": {"reason": reason, "message": message}}
            self._update(rt, containerStatuses=container_status(pod, state))

    # -- the pod lifecycle ---------------------------------------------------------------

    async def _run(self, rt: PodRuntime) -> None:
        try:
            if not await self._schedule(rt):
                return
            if self.start_delay:
                await self._sleep(rt, self.start_delay)
            self._next_ip += 1
            await setup_network(rt, self._next_ip, self.network)
            self._update(
                rt,
                podIP=rt.ip,
                podIPs=[{"ip": rt.ip}],
                hostIP="127.0.0.1",
                startTime=now(),
                conditions=conditions(
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

    async def _schedule(self, rt: PodRuntime) -> bool:
        pod = self._pod(rt)
        if pod is None:
            return False
        reason = unschedulable_reason(pod, rt, self.node_labels, self.capacity, self.pods.values())
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
            rt, spec={"nodeName": self.node_name}, conditions=conditions(PodScheduled=True)
        )
        return True

    async def _mount_volumes(self, rt: PodRuntime) -> dict[str, str] | None:
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
        self, rt: PodRuntime, kind: str, source: dict, host: Path, fs_group: int | None
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

    async def _pull(self, rt: PodRuntime) -> Image | None:
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
        self, rt: PodRuntime, image: Image, mounts: dict[str, str]
    ) -> dict[str, Any]:
        pod = self._pod(rt)
        if pod is None:
            raise ConfigError("pod is gone")
        return container_config(
            pod,
            rt,
            image,
            mounts,
            node_name=self.node_name,
            secret=lambda namespace, name: self.api.store.get("secrets", namespace, name),
            stage=str(self.workdir / rt.uid / "stage"),
        )

    async def _start_and_follow(self, rt: PodRuntime, launch: dict[str, Any]) -> None:
        argv = host_command(launch, self.workdir / rt.uid / "container.json", self.strict, rt.netns)
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
            containerStatuses=container_status(pod, {"running": {"startedAt": started}}),
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
            pod = self._pod(rt)
            if pod is not None:
                self._update(rt, **terminated_status(pod, exit_wait.result(), started))

    async def _probe(self, rt: PodRuntime, pod: Obj) -> None:
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
        self._update(rt, **ready_status(current))

    async def _finish(self, rt: PodRuntime) -> None:
        """After the container stopped or the pod was deleted: wait for deletion, clean up."""
        while not (rt.gone or rt.deleting):
            await self._changed(rt)
        pod = self._pod(rt)
        grace = (
            0 if rt.gone or pod is None else pod["metadata"].get("deletionGracePeriodSeconds", 0)
        )
        await rt.kill(grace)
        await teardown_network(rt)
        if not rt.gone:
            self.api.store.delete("pods", rt.namespace, rt.name)
        self.pods.pop(rt.uid, None)


def free_port_probe(ip: str, port: int) -> bool:
    """True when something listens on ip:port (used by tests)."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((ip, port)) == 0
