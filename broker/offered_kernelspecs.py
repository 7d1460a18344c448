"""Which kernelspecs the broker offers: the operator's allow-list, and no local kernels where
they would be dangerous.

A local kernel is a process inside the broker's own container. In a Kubernetes pod that
container holds the service-account token that may create pods and read Secrets, so user
code in a local kernel could take over the namespace. jupyter_client always adds its
native ``python3`` kernelspec (ipykernel's) next to whatever ``JUPYTER_PATH`` holds, and
its ``allowed_kernelspecs`` only filters listings: ``get_kernel_spec`` still loads any
spec by name. :class:`OfferedKernelSpecManager` enforces both rules where every start,
pool refill, restart and adoption loads its spec, so no path around the listing exists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel
from jupyter_client.provisioning import KernelProvisionerFactory
from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import Bool, List, Unicode

from .eg_kernelspecs import UntranslatableKernelSpec, is_eg_kubernetes, translate
from .startup import truthy


class KernelSpecNotOffered(NoSuchKernel):
    """A kernelspec exists but this broker does not offer it; ``message`` says why and what
    to do instead."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(name)
        self.message = message

    def __str__(self) -> str:
        return self.message


def local_kernels_default(environ: Mapping[str, str] = os.environ) -> bool:
    """``BROKER_LOCAL_KERNELS`` when set; otherwise on, except in a Kubernetes pod (the
    kubelet sets ``KUBERNETES_SERVICE_HOST`` in every container)."""
    value = environ.get("BROKER_LOCAL_KERNELS", "").strip()
    if value:
        return truthy(value)
    return "KUBERNETES_SERVICE_HOST" not in environ


def runs_in_broker(spec: KernelSpec, factory: KernelProvisionerFactory) -> bool:
    """Whether the spec's provisioner starts the kernel as a process next to the broker.

    A provisioner that is not registered counts as local: what cannot be checked is refused.
    """
    stanza = spec.metadata.get("kernel_provisioner") or {}
    name = stanza.get("provisioner_name") or factory.default_provisioner_name
    entry_point = factory.provisioners.get(name)
    if entry_point is None:
        return True
    provisioner = entry_point.load()
    return isinstance(provisioner, type) and issubclass(provisioner, LocalProvisioner)


class OfferedKernelSpecManager(KernelSpecManager):
    """A KernelSpecManager that finds and loads only the kernelspecs the broker offers.

    ``local_kernels`` is set by the broker (``Broker.local_kernels``); jupyter_client's
    ``allowed_kernelspecs`` is enforced on loading too, not only on listing.
    """

    local_kernels = Bool(True, help="Offer kernelspecs whose kernels run inside the broker.")
    plaintext_kernelspecs = List(
        Unicode(),
        config=True,
        help="Enterprise Gateway Kubernetes kernelspecs whose pod kernels may run without "
        "CurveZMQ (images with ipykernel < 7, such as EG's elyra/kernel-py, or IRkernel): "
        "their code and outputs cross the network in plain text, signed but not encrypted.",
    )

    def _load(self, name: str) -> tuple[KernelSpec, str]:
        """The kernelspec (an EG Kubernetes one translated) and why it is not offered, or ""."""
        spec = super().get_kernel_spec(name)
        if is_eg_kubernetes(spec):
            try:
                plaintext = name.lower() in {n.lower() for n in self.plaintext_kernelspecs}
                spec = translate(name, spec, plaintext=plaintext)
            except UntranslatableKernelSpec as refused:
                return spec, str(refused)
        return spec, self._refusal(name, spec)

    def _refusal(self, name: str, spec: KernelSpec) -> str:
        """Why ``name`` is not offered, or "" when it is."""
        allowed = {n.lower() for n in self.allowed_kernelspecs}
        if allowed and name.lower() not in allowed:
            return (
                f"Kernelspec {name!r} is not in KernelSpecManager.allowed_kernelspecs; "
                "add it there to offer it."
            )
        factory = KernelProvisionerFactory.instance(parent=self.parent)
        if not self.local_kernels and runs_in_broker(spec, factory):
            return (
                f"Kernelspec {name!r} would run its kernel as a process inside the broker, and "
                "local kernels are off here (Broker.local_kernels: --no-local-kernels or "
                "BROKER_LOCAL_KERNELS=0, the default in a Kubernetes pod, where such a kernel "
                "could use the broker's service-account token)."
            )
        return ""

    def find_kernel_specs(self) -> dict[str, str]:
        offered = {}
        for name, resource_dir in super().find_kernel_specs().items():
            try:
                _, refused = self._load(name)
            except (NoSuchKernel, OSError, ValueError, KeyError):
                continue  # unreadable, or its provisioner is not installed: nothing to start
            if not refused:
                offered[name] = resource_dir
        return offered

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        """The kernelspec (EG Kubernetes ones translated, see ``eg_kernelspecs.py``);
        :class:`KernelSpecNotOffered` when it exists but is refused."""
        spec, refused = self._load(kernel_name)
        if refused:
            offered = ", ".join(sorted(self.find_kernel_specs()))
            hint = f"Start one of: {offered}." if offered else "No kernelspec is offered here."
            raise KernelSpecNotOffered(kernel_name, f"{refused} {hint}")
        return spec


def default_refusal(manager: KernelSpecManager, name: str) -> str:
    """Why the default kernelspec ``name`` exists but is not offered, or "" (also when it
    does not exist: that is answered per request, as before)."""
    try:
        manager.get_kernel_spec(name)
    except KernelSpecNotOffered as refused:
        return (
            f"the default kernel is not offered. {refused.message} Set --default-kernel "
            "(env BROKER_DEFAULT_KERNEL) to an offered kernelspec."
        )
    except NoSuchKernel:
        pass
    return ""
