"""This broker among its replicas: kernel pods found in the cluster, and who does the chores.

Pod kernels need no shared database: their pods (labels, annotations) and Secrets are the
record. This module finds them, from one watch-fed cache per namespace (the pod
reflector, started here at startup): every pod of this broker instance at startup (to
adopt what a previous process left), every one when a kernel list or the culler needs
them, and one pod by its kernel-id label when a request names a kernel this replica does
not know (another replica started it, or served it and died). It also keeps each
kernelspec's egress NetworkPolicy as configured (``provisioners/egress.py``).

Chores that must happen once per cluster rather than once per replica (culling idle
kernels, refilling warm pools of pod kernels, restarting a pod kernel that crashed) are
done by the holder of a Kubernetes Lease (``provisioners/lease.py``). A broker without pod
kernelspecs has no Lease and leads alone.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import KernelProvisionerFactory
from traitlets import Float, Unicode, default
from traitlets.config import LoggingConfigurable

from .kernelspecs import KernelSpecs
from .pools import WARM_PREFIX

if TYPE_CHECKING:  # the Kubernetes client is imported only when a pod kernelspec exists
    from .provisioners.k8s import ClusterConfig, KubeClient
    from .provisioners.lease import LeaseElector
    from .provisioners.reflector import PodReflector

POD_PROVISIONER = "kubernetes-provisioner"

Target = tuple["ClusterConfig", str, str]  # cluster, namespace, label selector


class Replicas(LoggingConfigurable):
    """Finds this broker's kernel pods and takes part in the election of the chores' holder."""

    identity = Unicode(
        config=True, help="This replica's name in the Lease (default: host name, pid, random)."
    )
    lease_name = Unicode(
        "", config=True, help="Name of the Lease (default: '<broker_name>-leader')."
    )
    lease_duration = Float(
        15.0,
        config=True,
        help="Seconds a Lease record must stay unrenewed before another replica takes it over.",
    )
    lease_retry = Float(2.0, config=True, help="Seconds between renewals (or attempts).")
    activity_interval = Float(
        0.0,
        config=True,
        help="Seconds between two records of a kernel's activity on its pod (what the Lease "
        "holder's culler and other replicas' kernel lists read). 0: a quarter of "
        "--cull-idle-timeout, between 1 and 300 s; 300 s when culling is off.",
    )

    @default("identity")
    def _default_identity(self) -> str:
        return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"

    def __init__(self, specs: KernelSpecs, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.specs = specs
        self.pod_specs: set[str] = set()
        self.targets: list[Target] = []
        self.elector: LeaseElector | None = None
        self.reflectors: list[tuple[KubeClient, PodReflector]] = []
        self.policies: list[tuple[ClusterConfig, dict[str, Any]]] = []  # egress, per spec

    # --- startup -------------------------------------------------------------------

    async def start(self, on_change: Callable[[bool], None]) -> None:
        """Find the pod kernelspecs; with any, join the Lease election (first try awaited)."""
        broker_name = self._find_pod_specs()
        if not self.targets:
            return
        from .provisioners.cluster import get_cluster, get_reflector
        from .provisioners.lease import LeaseElector

        for target in self.targets:  # one watch each: what every replica reads pods from
            kube = (await get_cluster(target[0])).kube
            self.reflectors.append((kube, await get_reflector(*target)))
        await self._ensure_policies()
        cfg, namespace, _ = self.targets[0]
        self.elector = LeaseElector(
            (await get_cluster(cfg)).kube,
            namespace,
            self.lease_name or f"{broker_name}-leader",
            self.identity,
            duration=self.lease_duration,
            retry=self.lease_retry,
            on_change=on_change,
            log=self.log,
        )
        await self.elector.start()
        self.log.info(
            "replica identity=%s lease=%s leading=%s",
            self.identity,
            self.elector.name,
            self.elector.leading,
        )

    def _find_pod_specs(self) -> str:
        """Remember which kernelspecs run pods and where; returns the broker name they use."""
        factory = KernelProvisionerFactory.instance(parent=self.parent)
        broker_name = ""
        for name in sorted(self.specs.manager.find_kernel_specs()):
            km = AsyncKernelManager(
                parent=self.parent, kernel_name=name, kernel_spec_manager=self.specs.manager
            )
            provisioner_meta = km.kernel_spec.metadata.get("kernel_provisioner") or {}
            if provisioner_meta.get("provisioner_name") != POD_PROVISIONER:
                continue
            # imported only now: the Kubernetes client takes seconds to import
            from .provisioners.kubernetes import KubernetesProvisioner

            probe = factory.create_provisioner_instance("", km.kernel_spec, km)
            assert isinstance(probe, KubernetesProvisioner)
            self.pod_specs.add(name)
            broker_name = broker_name or probe.broker_name
            from .provisioners.egress import egress_policy

            policy = egress_policy(probe.pod_settings(name))
            if policy is not None:
                self.policies.append((probe.cluster_target()[0], policy))
            if probe.cluster_target() not in self.targets:
                self.targets.append(probe.cluster_target())
        return broker_name

    async def _ensure_policies(self) -> None:
        """Each kernelspec's egress NetworkPolicy exists as configured (every replica
        checks: the same configuration makes the same policy)."""
        from .provisioners.cluster import get_cluster
        from .provisioners.egress import ensure_policy

        for cfg, policy in self.policies:
            name = policy["metadata"]["name"]
            try:
                done = await ensure_policy((await get_cluster(cfg)).kube, policy)
            except Exception as e:  # noqa: BLE001 - kernels then reach nothing: safe
                self.log.error(
                    "egress policy %s not applied: %s; its kernels reach no destination "
                    "until it is (the broker's Role must allow networkpolicies get, create, "
                    "update)",
                    name,
                    e,
                )
                continue
            self.log.info("egress policy %s %s", name, done)

    async def stop(self) -> None:
        """Leave the election, freeing the Lease so another replica takes over at once."""
        if self.elector is not None:
            await self.elector.stop(release=True)

    # --- who does the chores ---------------------------------------------------------

    @property
    def leading(self) -> bool:
        """Whether this replica culls and refills pod pools (alone: always)."""
        return self.elector is None or self.elector.leading

    def leads(self, spec: str) -> bool:
        """Whether this replica keeps the warm pool of ``spec`` (local pools are its own)."""
        return spec not in self.pod_specs or self.leading

    def recording_interval(self, cull_idle_timeout: float) -> float:
        """Seconds between two records of a kernel's activity on its pod."""
        if self.activity_interval > 0:
            return self.activity_interval
        if cull_idle_timeout <= 0:
            return 300.0
        return min(300.0, max(1.0, cull_idle_timeout / 4))

    def is_pod_kernel(self, km: AsyncKernelManager) -> bool:
        """Pod kernels are their own record: they outlive this process without a state dir."""
        return hasattr(km.provisioner, "ended_on_purpose")

    async def ending(self, km: AsyncKernelManager, restart: bool) -> None:
        """Tell the other replicas, through the pod, that this kernel's end is intended."""
        if self.is_pod_kernel(km):
            await km.provisioner.mark_ending(restart)

    def may_restart(self, km: AsyncKernelManager) -> bool:
        """Whether this replica should restart a kernel it saw die.

        Not when a broker shut it down or restarts it (the pod says so), and for pod
        kernels only on the Lease holder, so that a crash is repaired once.
        """
        if not self.is_pod_kernel(km):
            return True
        return not km.provisioner.ended_on_purpose() and self.leading

    # --- finding kernel pods ------------------------------------------------------------

    def kernel_pods(self, kernel_id: str = "") -> list[tuple[KubeClient, dict[str, Any]]]:
        """This broker instance's kernel pods (only ``kernel_id``'s when given), each with
        the client of its cluster, from the watch-fed caches: no request."""
        from .provisioners.pod import LABEL_KERNEL_ID

        return [
            (kube, pod)
            for kube, reflector in self.reflectors
            for pod in list(reflector.pods.values())
            if not kernel_id or pod["metadata"]["labels"].get(LABEL_KERNEL_ID) == kernel_id
        ]

    async def _listed_pods(self, kernel_id: str) -> list[dict[str, Any]]:
        """The pods of this kernel id as the API server has them now (one list call per
        cluster): a kernel started elsewhere a moment ago may not be in the cache yet."""
        from .provisioners.pod import LABEL_KERNEL_ID

        pods = []
        for kube, reflector in self.reflectors:
            selector = f"{reflector.label_selector},{LABEL_KERNEL_ID}={kernel_id}"
            listed = await kube.list_pods(reflector.namespace, selector)
            pods.extend(listed.get("items") or [])
        return pods

    async def find(self, kernel_id: str) -> dict[str, Any] | None:
        """The record of a ready kernel pod with this id, or None."""
        from .provisioners.podrecords import Verdict, valid_kernel_id, verdict

        if not self.targets or not valid_kernel_id(kernel_id):
            return None
        pods = [pod for _, pod in self.kernel_pods(kernel_id)]
        for pod in pods or await self._listed_pods(kernel_id):
            if verdict(pod) is Verdict.ADOPT:
                return _record(pod)
        return None

    async def survey(self, known: Callable[[str], bool]) -> tuple[list[dict[str, Any]], list[str]]:
        """Records of the ready kernel pods not ``known``, and the dead pods it deleted.

        Warm pool pods are included only when this replica keeps their pool.
        """
        from .provisioners.podrecords import Verdict, verdict

        records, dropped = [], []
        for kube, pod in self.kernel_pods():
            record = _record(pod)
            if known(record["id"]):
                continue
            found = verdict(pod)
            if found is Verdict.ADOPT and (record["owner"] or self.leads(record["name"])):
                records.append(record)
            elif found is Verdict.DROP:
                meta = pod["metadata"]
                await kube.delete_pod(meta["namespace"], meta["name"], grace_seconds=0)
                dropped.append(record["id"])
        return records, dropped


def _record(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod's kernel record; a warm pool kernel's has no owner, whatever it runs as."""
    from .provisioners.podrecords import kernel_record

    record = kernel_record(pod)
    if record["id"].startswith(WARM_PREFIX):
        record["owner"] = None
    return record
