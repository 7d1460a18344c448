"""KubernetesProvisioner: each kernel is its own pod (a jupyter_client kernel provisioner).

A kernelspec selects it with::

    "metadata": {"kernel_provisioner": {"provisioner_name": "kubernetes-provisioner",
                                        "config": {"image": "...", "namespace": "kernels"}}}

Launch: the provisioner picks the connection info (HMAC key, fixed ports, a CurveZMQ
keypair), creates the pod, then a Secret owned by the pod carrying the connection file,
and waits on the shared watch (``reflector.py``) until the pod is Ready (the kernel has
bound its ports on the pod IP) or fails; with Curve on, one handshake (``curveprobe.py``)
then tells a kernel that ignored its keys from one that speaks CurveZMQ. Failures
delete the pod and Secret and raise :class:`KernelLaunchError` with what happened and
what to do. The pod (labels, annotations) and its Secret are the kernel's record:
:meth:`load_provisioner_info` rebuilds a provisioner from them alone.
"""

from __future__ import annotations

import secrets
import signal
import time
from typing import Any

import zmq
from jupyter_client.provisioning import KernelProvisionerBase
from traitlets import Unicode

from . import pod as manifests
from .cluster import get_cluster, get_reflector
from .curveprobe import speaks_curve
from .k8s import ClusterConfig, KubeError
from .podclaim import WARM_MARK, claim_pod
from .podrequest import make_request
from .podsettings import KernelRequestError
from .podstatus import exit_code, pod_state
from .podtraits import PodTraits
from .reflector import PodReflector


class KernelLaunchError(RuntimeError):
    """A pod kernel did not start; the message says why and what to do.

    ``status`` is the HTTP status the broker answers with: 400 when the request itself
    was refused, 500 when the pod failed.
    """

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


class KubernetesProvisioner(PodTraits, KernelProvisionerBase):  # type: ignore[misc]
    """Runs a kernel as a Kubernetes pod built from ``kernel_image/`` (or any image with a
    kernel: ``command``); settings in ``podtraits.py``."""

    pod_name = Unicode("")
    _reflector: PodReflector | None = None
    _marked: dict[str, Any] | None = None  # the pod as mark_warm's patch returned it

    # -- configuration -----------------------------------------------------------------

    def _cluster_config(self) -> ClusterConfig:
        return ClusterConfig(
            in_cluster=self.in_cluster,
            kubeconfig=self.kubeconfig,
            context=self.context,
            token_file=self.token_file,
            ca_file=self.ca_file,
        )

    def _selector(self) -> str:
        broker = manifests.label_value(self.broker_name)
        return f"{manifests.LABEL_BROKER}={broker},app.kubernetes.io/component=kernel"

    def cluster_target(self) -> tuple[ClusterConfig, str, str]:
        """Where this broker's kernel pods live: cluster, namespace and label selector."""
        return self._cluster_config(), self.namespace, self._selector()

    def _kernelspec_name(self) -> str:
        km = self.parent
        name = getattr(km, "kernel_name", "") or getattr(self.kernel_spec, "display_name", "")
        return name or "kernel"

    async def _ensure_reflector(self) -> PodReflector:
        if self._reflector is None:
            self._reflector = await get_reflector(
                self._cluster_config(), self.namespace, self._selector()
            )
        return self._reflector

    # -- the provisioner contract --------------------------------------------------------

    @property
    def has_process(self) -> bool:
        """True while this provisioner has a pod (from launch until cleanup)."""
        return bool(self.pod_name)

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Validate the request before anything is created; the pod needs no local command."""
        kwargs = await super().pre_launch(**kwargs)
        kwargs.setdefault("cmd", list(self.command))
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> dict[str, Any]:
        """Create the pod and its Secret, wait until it is ready; returns connection info."""
        env = dict(kwargs.get("env") or {})
        settings = self.pod_settings(self._kernelspec_name())
        try:
            request = make_request(self.kernel_id, env, list(self.kernel_spec.env), settings)
        except KernelRequestError as e:
            raise KernelLaunchError(f"kernel request rejected: {e}", status=400) from None
        if request.ignored:
            ignored = "; ".join(f"{k}: {why}" for k, why in sorted(request.ignored.items()))
            self.log.info("kernel %s: ignoring %s", self.kernel_id, ignored)
        timeout = self._launch_timeout(env)
        reflector = await self._ensure_reflector()
        kube = (await get_cluster(self._cluster_config())).kube
        info = self._new_connection_info()
        name = f"kernel-{self.kernel_id}-{secrets.token_hex(3)}"
        pod = manifests.make_pod(name, f"{name}-connection", request, settings)
        started = time.monotonic()
        try:
            created = await kube.create_pod(self.namespace, pod)
        except KubeError as e:
            raise KernelLaunchError(
                f"the API server refused the kernel pod ({e.status} {e.reason}: {e.message}); "
                "check the kernelspec's pod settings (runtime_class, resources, node_selector) "
                "against what the cluster offers and allows"
            ) from None
        self.pod_name = name
        try:
            secret = manifests.make_secret(f"{name}-connection", created, info)
            await kube.create_secret(self.namespace, secret)
            ip = await self._wait_ready(reflector, timeout, started)
            if self.curve:
                await self._check_curve(ip, info)
        except BaseException:
            await self._remove_pod(grace_seconds=0)
            raise
        # jupyter_client compares connection info with the key as bytes.
        self.connection_info = {**info, "ip": ip, "key": info["key"].encode()}
        if self.curve:
            # What a CurveZMQ client sets as socket.curve_serverkey (jupyter_client itself
            # reads curve_publickey, which is the same key).
            self.connection_info["curve_serverkey"] = info["curve_publickey"]
        self.log.info("kernel %s runs in pod %s at %s", self.kernel_id, name, ip)
        return self.connection_info

    async def _check_curve(self, ip: str, info: dict[str, Any]) -> None:
        url = f"tcp://{ip}:{info['shell_port']}"
        if await speaks_curve(url, info["curve_publickey"]) is False:
            raise KernelLaunchError(
                f"the kernel in pod {self.pod_name} does not speak CurveZMQ: its image's kernel "
                "ignored the keys in its connection file (ipykernel < 7, IRkernel and most other "
                "kernels do). Use an image with ipykernel >= 7, such as the broker's kernel "
                'image, or accept plain-text kernel traffic for this kernelspec: "curve": false '
                "in its kernel_provisioner config, or for an Enterprise Gateway kernelspec "
                "--OfferedKernelSpecManager.plaintext_kernelspecs=<name> (docs/kubernetes.md)"
            )

    def _launch_timeout(self, env: dict[str, str]) -> float:
        asked = env.get("KERNEL_LAUNCH_TIMEOUT", "").strip()
        try:
            return min(float(asked), self.launch_timeout) if asked else self.launch_timeout
        except ValueError:
            raise KernelLaunchError(
                f"KERNEL_LAUNCH_TIMEOUT={asked!r} is not a number of seconds"
            ) from None

    def _new_connection_info(self) -> dict[str, Any]:
        shell, iopub, stdin, control, hb = self.ports
        info: dict[str, Any] = {
            "transport": "tcp",
            "ip": "0.0.0.0",
            "shell_port": shell,
            "iopub_port": iopub,
            "stdin_port": stdin,
            "control_port": control,
            "hb_port": hb,
            "key": secrets.token_hex(32),
            "signature_scheme": "hmac-sha256",
            "kernel_name": self._kernelspec_name(),
        }
        if self.curve:
            public, secret = zmq.curve_keypair()
            info["curve_publickey"] = public.decode("ascii")
            info["curve_secretkey"] = secret.decode("ascii")
        return info

    async def _wait_ready(self, reflector: PodReflector, timeout: float, started: float) -> str:
        """The pod's IP once it is ready, ``timeout`` seconds after ``started`` at most."""
        name = self.pod_name
        outcome: dict[str, Any] = {}

        def settled() -> bool:
            pod = reflector.get(name)
            if pod is None:
                return False
            state = pod_state(pod)
            outcome["state"] = state
            return state.ready or bool(state.failure)

        remaining = max(timeout - (time.monotonic() - started), 0.0)
        if not await reflector.wait_for(settled, remaining):
            raise KernelLaunchError(
                f"kernel pod {name} was not ready within {timeout:g} s (launch timeout); "
                "the cluster may be short of capacity or the image slow to pull: retry, or raise "
                "KERNEL_LAUNCH_TIMEOUT up to the broker's limit"
            )
        state = outcome["state"]
        if state.failure:
            raise KernelLaunchError(state.failure)
        return state.ip

    async def _remove_pod(self, grace_seconds: int | None) -> None:
        """Delete the pod and its Secret, and wait (bounded) until the watch sees it gone."""
        name = self.pod_name
        if not name:
            return
        kube = (await get_cluster(self._cluster_config())).kube
        await kube.delete_pod(self.namespace, name, grace_seconds)
        # The Secret is garbage-collected with its pod; deleting it too makes that immediate.
        await kube.delete_secret(self.namespace, f"{name}-connection")
        reflector = await self._ensure_reflector()
        await reflector.wait_for(lambda: reflector.get(name) is None, self.grace_seconds + 10)

    async def poll(self) -> int | None:
        """None while the kernel's container runs; its exit code (or -9 if gone) after."""
        if not self.pod_name or self._reflector is None:
            return 0 if not self.pod_name else None
        return exit_code(self._reflector.get(self.pod_name))

    async def wait(self) -> int | None:
        """Wait for the kernel's container to stop; returns its exit code."""
        if not self.pod_name:
            return 0
        reflector = await self._ensure_reflector()
        name = self.pod_name
        await reflector.wait_for(lambda: exit_code(reflector.get(name)) is not None, None)
        return exit_code(reflector.get(name))

    async def send_signal(self, signum: int) -> None:
        """Pods cannot be signalled from outside: SIGTERM and SIGKILL delete the pod.

        Interrupts go through the control channel (kernelspec ``interrupt_mode: message``).
        """
        if signum == signal.SIGKILL:
            await self.kill()
        elif signum == signal.SIGTERM:
            await self.terminate()
        elif signum != 0:
            self.log.warning(
                "signal %s cannot reach a pod kernel; use interrupt_mode 'message'", signum
            )

    async def kill(self, restart: bool = False) -> None:
        """Delete the pod at once (grace period 0)."""
        if self.pod_name:
            kube = (await get_cluster(self._cluster_config())).kube
            await kube.delete_pod(self.namespace, self.pod_name, grace_seconds=0)

    async def terminate(self, restart: bool = False) -> None:
        """Delete the pod with its grace period (SIGTERM, then SIGKILL)."""
        if self.pod_name:
            kube = (await get_cluster(self._cluster_config())).kube
            await kube.delete_pod(self.namespace, self.pod_name, grace_seconds=None)

    async def cleanup(self, restart: bool = False) -> None:
        """Make sure the pod and its Secret are gone."""
        await self._remove_pod(grace_seconds=0)
        self.pod_name = ""

    async def mark_ending(self, restart: bool = False) -> None:
        """Mark the pod before its kernel is shut down or restarted.

        Every replica serving this kernel sees its container exit; the mark, which the
        shared watch delivers before the exit, tells them it was meant, so none of them
        restarts the kernel a second time or resurrects one being shut down. (jupyter_client's
        ``shutdown_requested`` hook runs only after the kernel was asked to stop: too late.)
        """
        await self.annotate({manifests.ANNOTATION_ENDING: "restart" if restart else "shutdown"})

    async def mark_warm(self) -> None:
        """Mark a proven pool kernel's pod: from now on any replica may claim it."""
        self._marked = await self.annotate({WARM_MARK: "ready"})

    async def annotate(self, annotations: dict[str, str]) -> dict[str, Any] | None:
        """Merge ``annotations`` into the pod's; returns the pod as patched (None when it
        is already gone: it needs none)."""
        if not self.pod_name:
            return None
        kube = (await get_cluster(self._cluster_config())).kube
        try:
            return await kube.patch_pod_metadata(
                self.namespace, self.pod_name, {"annotations": annotations}
            )
        except KubeError as e:
            self.log.debug("kernel %s: pod %s not annotated: %s", self.kernel_id, self.pod_name, e)
            return None

    def cached_pod(self) -> dict[str, Any] | None:
        """The kernel's pod as the shared watch last delivered it (no request)."""
        if self._reflector is None or not self.pod_name:
            return None
        return self._reflector.get(self.pod_name)

    def ended_on_purpose(self) -> bool:
        """Whether the kernel's pod is gone, being deleted, or marked as ending by a broker."""
        pod = self.cached_pod()
        if pod is None:
            return True
        meta = pod["metadata"]
        return bool(meta.get("deletionTimestamp")) or manifests.ANNOTATION_ENDING in (
            meta.get("annotations") or {}
        )

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        """Allow for the pod's grace period as well."""
        return max(recommended, float(self.grace_seconds))

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        """A pod start includes scheduling and maybe an image pull."""
        return max(recommended, self.launch_timeout)

    async def bind_kernel(self, kernel_id: str, owner: str) -> bool:
        """Claim this pooled pod for ``owner``'s kernel ``kernel_id`` (labels, annotation).

        Kernel ids are bound late, so any warm pod can serve any matching request; the
        claim is atomic across replicas (``podclaim.py``). False: another replica claimed
        it first, and this provisioner must let it go without deleting it.
        """
        kube = (await get_cluster(self._cluster_config())).kube
        # the pod as our own mark left it, if we marked it: the watch may not have it yet
        pod = (
            self._marked or self.cached_pod() or await kube.read_pod(self.namespace, self.pod_name)
        )
        self._marked = None
        if not await claim_pod(kube, pod, self.kernel_id, kernel_id, owner):
            return False
        self.kernel_id = kernel_id
        return True

    # -- persistence: the pod and its Secret are the record --------------------------------

    async def get_provisioner_info(self) -> dict[str, Any]:
        """Where the kernel's pod is; enough to find it (and its Secret) again."""
        info = await super().get_provisioner_info()
        info.update({"namespace": self.namespace, "pod_name": self.pod_name})
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        """Re-attach to a running kernel pod, reading the connection file from its Secret."""
        self.kernel_id = provisioner_info["kernel_id"]
        self.namespace = provisioner_info.get("namespace", self.namespace)
        self.pod_name = provisioner_info["pod_name"]
        kube = (await get_cluster(self._cluster_config())).kube
        await self._ensure_reflector()
        try:  # the pod from the watch's cache when it has it: one request fewer per kernel
            pod = self.cached_pod() or await kube.read_pod(self.namespace, self.pod_name)
            secret_name = pod["metadata"]["annotations"][manifests.ANNOTATION_SECRET]
            secret = await kube.read_secret(self.namespace, secret_name)
        except KubeError as e:
            self.pod_name = ""
            raise KernelLaunchError(
                f"kernel pod {provisioner_info['pod_name']} is gone: {e}"
            ) from e
        info = manifests.read_secret_connection(secret)
        self.connection_info = {
            **info,
            "ip": pod.get("status", {}).get("podIP", ""),
            "key": info["key"].encode(),
        }
